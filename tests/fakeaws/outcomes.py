"""What one job attempt does: behaviour, simulated duration, log lines, outputs.

Per-job knobs, read from the SubmitJob `parameters` (or, upper-cased, from the container
environment overrides, e.g. FAKE_BEHAVIOUR):

  fake_behaviour        success | no_outputs | app_error | oom | spot | image_error | hang
                        optional repeat suffix: `spot_once` / `oom_x2` = that behaviour on the
                        first 1 / 2 attempts with the same *job key*, success afterwards (job key:
                        parameter `fake_key`, else job definition + command + the non-`fake_*`
                        parameters; Batch retries of the same job count as attempts too)
  fake_duration         simulated seconds RUNNING (default: duration_mean +- duration_spread)
  fake_required_memory  MiB; an attempt with less memory ends `oom` (unless a behaviour is set)
  fake_log_lines        lines in the attempt's log stream
  fake_exit_code        exit code for app_error (default 1)
  fake_outputs / outputs  space/comma separated s3:// URIs written on success

Rules (`FakeConfig.rules`, first match wins, per-job parameters override them):
  {"match": {"name": "glob", "queue": "glob", "job_definition": "glob",
             "param.KEY": "glob", "env.KEY": "glob"},
   "behaviour": "oom", "duration": 60, "required_memory": 4096, "log_lines": 5,
   "exit_code": 2}
Without behaviour, rule or memory shortfall: random spot/oom/app_error at the configured
rates, drawn from a hash of (seed, jobName, attempt) so runs are reproducible.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .config import FakeConfig

if TYPE_CHECKING:
    from .jobs import Job

BEHAVIOURS = frozenset({"success", "no_outputs", "app_error", "oom", "spot", "image_error",
                        "hang"})
_REPEAT = re.compile(r"^(?P<base>[a-z_]+?)(?:_once|_x(?P<n>\d+))$")
_SPLIT = re.compile(r"[\s,]+")


@dataclass(slots=True)
class Plan:
    behaviour: str
    duration: float            # simulated seconds of RUNNING before the outcome
    log_lines: int
    exit_code: int | None


class Outcomes:
    def __init__(self, config: FakeConfig) -> None:
        self.config = config
        self.seen: dict[tuple, int] = {}      # job key -> attempts run (only for *_once/_xN)
        self._globs: dict[str, re.Pattern] = {}

    def reset(self) -> None:
        self.seen.clear()

    # -- knobs -------------------------------------------------------------------------
    @staticmethod
    def knob(job: Job, name: str) -> str | None:
        value = job.parameters.get(name)
        if value is None and job.environment:
            value = job.environment.get(name.upper())
        return value

    def _glob(self, pattern: str) -> re.Pattern:
        rx = self._globs.get(pattern)
        if rx is None:
            rx = self._globs[pattern] = re.compile(fnmatch.translate(pattern))
        return rx

    def _rule_for(self, job: Job) -> dict[str, Any] | None:
        for rule in self.config.rules:
            ok = True
            for key, pattern in (rule.get("match") or {}).items():
                if key == "name":
                    value = job.name
                elif key == "queue":
                    value = job.queue
                elif key == "job_definition":
                    value = job.jobdef_name
                elif key.startswith("param."):
                    value = job.parameters.get(key[6:])
                elif key.startswith("env."):
                    value = (job.environment or {}).get(key[4:])
                else:
                    raise ValueError(f"unknown rule match key {key!r}")
                if value is None or not self._glob(str(pattern)).match(value):
                    ok = False
                    break
            if ok:
                return rule
        return None

    # -- the plan ------------------------------------------------------------------------
    def plan(self, job: Job, attempt: int) -> Plan:
        cfg = self.config
        rule = self._rule_for(job) if cfg.rules else None
        rule = rule or {}
        u_outcome, u_duration = _uniforms(f"{cfg.seed}/{job.name}/{attempt}")

        behaviour = self.knob(job, "fake_behaviour") or rule.get("behaviour")
        if behaviour:
            behaviour = self._apply_repeat(job, behaviour)
            if behaviour not in BEHAVIOURS:
                raise ValueError(f"unknown fake_behaviour {behaviour!r}")
        else:
            required = self.knob(job, "fake_required_memory") or rule.get("required_memory")
            if required is not None and job.memory < int(required):
                behaviour = "oom"
            else:
                r = u_outcome
                if r < cfg.spot_rate:
                    behaviour = "spot"
                elif r < cfg.spot_rate + cfg.oom_rate:
                    behaviour = "oom"
                elif r < cfg.spot_rate + cfg.oom_rate + cfg.app_error_rate:
                    behaviour = "app_error"
                else:
                    behaviour = "success"

        duration_s = self.knob(job, "fake_duration")
        if duration_s is not None:
            duration = float(duration_s)
        elif "duration" in rule:
            duration = float(rule["duration"])
        else:
            duration = cfg.duration_mean * (1 + cfg.duration_spread * (2 * u_duration - 1))
        if behaviour in ("oom", "spot"):
            duration *= 0.5                   # dies half-way
        elif behaviour == "hang":
            duration = float("inf")
        lines = self.knob(job, "fake_log_lines")
        log_lines = int(lines) if lines is not None else int(rule.get("log_lines", cfg.log_lines))
        exit_code: int | None = None
        if behaviour in ("success", "no_outputs"):
            exit_code = 0
        elif behaviour == "app_error":
            code = self.knob(job, "fake_exit_code")
            exit_code = int(code) if code is not None else int(rule.get("exit_code", 1))
        elif behaviour == "oom":
            exit_code = 137
        return Plan(behaviour, max(0.0, duration), log_lines, exit_code)

    def _apply_repeat(self, job: Job, behaviour: str) -> str:
        m = _REPEAT.match(behaviour)
        if not m or m.group("base") not in BEHAVIOURS:
            return behaviour
        times = int(m.group("n") or 1)
        key = self.job_key(job)
        seen = self.seen.get(key, 0)
        self.seen[key] = seen + 1
        return m.group("base") if seen < times else "success"

    @staticmethod
    def validate(behaviour: str | None) -> None:
        if not behaviour:
            return
        m = _REPEAT.match(behaviour)
        base = m.group("base") if m and m.group("base") in BEHAVIOURS else behaviour
        if base not in BEHAVIOURS:
            raise ValueError(f"unknown fake_behaviour {behaviour!r} "
                             f"(one of {sorted(BEHAVIOURS)}, optionally _once / _x<N>)")

    @staticmethod
    def job_key(job: Job) -> tuple:
        key = job.parameters.get("fake_key")
        if key is not None:
            return ("key", key)
        params = tuple(sorted((k, v) for k, v in job.parameters.items()
                              if not k.startswith("fake_")))
        return (job.jobdef_name, tuple(job.command or ()), params)

    # -- outputs -------------------------------------------------------------------------
    def outputs(self, job: Job) -> list[str]:
        mode = self.config.output_parameters
        if mode == "none":
            return []
        named = [job.parameters.get("fake_outputs"), job.parameters.get("outputs")]
        uris = [u for v in named if v for u in _SPLIT.split(v.strip()) if u.startswith("s3://")]
        if mode == "s3":
            for key, value in job.parameters.items():
                if key in ("fake_outputs", "outputs"):
                    continue
                if value.startswith("s3://"):
                    uris.extend(u for u in _SPLIT.split(value.strip()) if u.startswith("s3://"))
        return uris


def _uniforms(key: str) -> tuple[float, float]:
    """Two reproducible uniform [0, 1) numbers from a string (cheaper than random.Random)."""
    d = hashlib.blake2b(key.encode(), digest_size=16).digest()
    return ((int.from_bytes(d[:8], "big") >> 11) / 2**53,
            (int.from_bytes(d[8:], "big") >> 11) / 2**53)
