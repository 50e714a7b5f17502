"""The local backend's job definitions: `STATE_DIR/local/jobdefs/<name>/<revision>.json`.

Revisions are numbered 1, 2, ... per name like AWS Batch's, and each file is created
exclusively, so two registrations racing for the same revision both succeed (one gets the
next number) and a file once written never changes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from batchd.backends.base import SubmitRequest
from batchd.backends.local.jobs import _now_ms, _read_json
from batchd.backends.local.runner import exclusive_create
from batchd.errors import PermanentBackendError
from batchd.inputs.jobdefs import fill_command, resources, validate_job_definition

ARN_PREFIX = "arn:batchd:local:jobdef/"
DEFAULT_VCPUS = 1.0
DEFAULT_MEMORY = 2048          # MiB


class LocalJobDefinitions:
    def __init__(self, root: Path, log: Any) -> None:
        self.root = root            # .../local/jobdefs
        self.log = log
        self._revisions: dict[str, dict[int, dict[str, Any]]] = {}

    def load(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for name_dir in self.root.iterdir():
            for f in name_dir.glob("*.json"):
                jd = _read_json(f)
                if isinstance(jd, dict) and f.stem.isdigit():
                    self._revisions.setdefault(jd["jobDefinitionName"], {})[int(f.stem)] = jd

    def register(self, spec: dict[str, Any]) -> dict[str, Any]:
        jd = validate_job_definition(spec, filename=spec.get("jobDefinitionName", "<request>")
                                      if isinstance(spec, dict) else "<request>")
        name = jd["jobDefinitionName"]
        name_dir = self.root / name
        name_dir.mkdir(parents=True, exist_ok=True)
        revision = max(self._revisions.get(name, {}) or [0]) + 1
        while True:
            record = dict(jd, revision=revision, status="ACTIVE",
                          jobDefinitionArn=f"{ARN_PREFIX}{name}:{revision}",
                          registeredAt=_now_ms())
            if exclusive_create(name_dir / f"{revision}.json", json.dumps(record)):
                break
            revision += 1
        self._revisions.setdefault(name, {})[revision] = record
        self.log.info("jobdef_registered", job_definition=name, revision=revision)
        return {"jobDefinitionName": name, "revision": revision,
                "jobDefinitionArn": record["jobDefinitionArn"]}

    def listing(self) -> list[dict[str, Any]]:
        out = []
        for name in sorted(self._revisions):
            for rev in sorted(self._revisions[name]):
                jd = self._revisions[name][rev]
                out.append({"jobDefinitionName": name, "revision": rev, "status": "ACTIVE",
                            "jobDefinitionArn": jd["jobDefinitionArn"],
                            "containerProperties": jd.get("containerProperties", {}),
                            "parameters": jd.get("parameters", {})})
        return out

    def resolve(self, ref: str) -> dict[str, Any]:
        """NAME, NAME:REVISION or an ARN -> the registered definition (newest revision)."""
        name = ref.rsplit("/", 1)[-1] if ref.startswith("arn:") else ref
        revision: int | None = None
        if ":" in name:
            name, _, rev = name.rpartition(":")
            if rev.isdigit():
                revision = int(rev)
            else:
                name = f"{name}:{rev}"
        revs = self._revisions.get(name)
        if revs and revision is None:
            return revs[max(revs)]
        if revs and revision in revs:
            return revs[revision]
        raise PermanentBackendError(
            f"job definition {ref} does not exist; register it with "
            "`batchctl jobdef register FILE.json`", aws_code="ClientException")

    def what_to_run(self, request: SubmitRequest) -> dict[str, Any]:
        """The request merged over its job definition, as AWS Batch merges overrides."""
        jd = self.resolve(request.job_definition)
        cp = jd.get("containerProperties") or {}
        command = request.command if request.command is not None else cp.get("command")
        if not command:
            raise PermanentBackendError(
                f"job definition {request.job_definition} has no containerProperties.command "
                "and the job gives none", aws_code="ClientException")
        params = {**(jd.get("parameters") or {}), **request.parameters}
        env = {e["name"]: str(e.get("value", "")) for e in cp.get("environment") or []
               if isinstance(e, dict) and "name" in e}
        env.update(request.environment)
        jd_vcpus, jd_memory = resources(cp)
        return {
            "job_definition": jd["jobDefinitionArn"],
            "argv": fill_command(list(command), params), "env": env,
            "vcpus": float(request.vcpus if request.vcpus is not None else
                           jd_vcpus if jd_vcpus is not None else DEFAULT_VCPUS),
            "memory": int(request.memory if request.memory is not None else
                          jd_memory if jd_memory is not None else DEFAULT_MEMORY),
            "timeout": request.timeout if request.timeout is not None else (
                (jd.get("timeout") or {}).get("attemptDurationSeconds"))}
