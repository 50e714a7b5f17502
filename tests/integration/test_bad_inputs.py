"""A catalogue of bad inputs, each refused clearly, leaving nothing behind, daemon still up.

Every case goes to one real daemon (local backend): a samples table through `batchctl import`,
a workflow definition through `batchctl create`, a job definition through `batchctl jobdef
register`, or a raw HTTP request over the Unix socket. Each must be refused with the
documented exit code (2) or HTTP status (400), with a message that names the file, the line
or field and the fix (the expected words), no traceback and no "internal" error; the
listings of projects, workflows (with their job counts) and job definitions must be the same
before and after, and the daemon must answer the next client.

Found by this catalogue and fixed: a definition of blank lines held the event loop for
hours (a quadratic regex in the syntax-error hints); JSON nested 10,000 deep, integers of
5,000 digits and non-UTF-8 bodies were 500 "internal"; a NUL byte, 100,000 columns and a
20 MB value were imported; unregistered job definitions, unfilled Ref:: placeholders,
1,000 retries and 10^9 MiB were accepted; unknown body fields, wrong types, duplicate keys,
non-JSON content types, an encoded '/' in a name, negative or 64-bit-overflowing query
integers were accepted or answered vaguely.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from batchctl.client import unix_http_connection
from tests.daemon_harness import Daemon, new_daemon
from tests.raw_http import get

pytestmark = pytest.mark.integration

MAX_MESSAGE = 4000  # an error is a few lines: a 1 MB template must not be echoed back


@dataclass(frozen=True)
class Case:
    id: str
    kind: str                    # "csv" | "workflow" | "jobdef" | "api"
    input: Any                   # file bytes/text, or (method, path, headers, body) for "api"
    words: tuple[str, ...]       # each must appear in the message (case-insensitive)
    code: int = field(default=0)  # exit code (files) or HTTP status (api); 0 = the default

    @property
    def expected(self) -> int:
        return self.code or (400 if self.kind == "api" else 2)


# -- building blocks -----------------------------------------------------------------------
JOBDEF = {"jobDefinitionName": "tool", "type": "container",
          "containerProperties": {"image": "python:3.11-slim",
                                  "command": ["echo", "Ref::input"], "vcpus": 1,
                                  "memory": 256}}
ANALYSIS = {"job_definition": "tool", "queue": "local", "outputs": ["out/{sample_name}.txt"],
            "parameters": {"input": "{file_name}"}}
SAMPLES = "sample_name,file_name,organism\ns1,a.txt,ecoli\ns2,b.txt,yeast\ns3,c.txt,ecoli\n"


def wf(name: str = "bad", top: dict | None = None, drop: tuple[str, ...] = (),
       **analysis: Any) -> str:
    step = {k: v for k, v in {**ANALYSIS, **analysis}.items() if k not in drop}
    return json.dumps({"workflow_name": name, "analyses": [step], **(top or {})}, indent=2)


def jd(name: str = "bad-def", top: dict | None = None, drop: tuple[str, ...] = (),
       **container: Any) -> str:
    props = {k: v for k, v in {**JOBDEF["containerProperties"], **container}.items()
             if k not in drop}
    return json.dumps({**JOBDEF, "jobDefinitionName": name, "containerProperties": props,
                       **(top or {})}, indent=2)


def body(data: Any) -> bytes:
    return json.dumps(data).encode()


def project(metadata: str, name: str = "p-api", **extra: Any) -> bytes:
    return body({"name": name, "metadata": metadata, **extra})


JOBS = "/v1/projects/base/workflows/ok/jobs"
JSON = {"Content-Type": "application/json"}
GOOD_CSV = "sample_name,file_name\ns1,a\n"

CASES: list[Case] = [
    # -- samples tables (batchctl import) -----------------------------------------------------
    Case("csv-nul-byte", "csv", b"sample_name,file_name\ns1,a\x00b.txt\n",
         ("line 2", "NUL", "CSV UTF-8")),
    Case("csv-not-utf8", "csv", b"sample_name,file_name\ns1,caf\xe9.txt\n",
         ("line 2", "UTF-8")),
    Case("csv-utf16", "csv", "sample_name,file_name\ns1,a.txt\n".encode("utf-16"),
         ("line 1", "UTF-8")),
    Case("csv-bom-mid-file", "csv", "\ufeffsample_name,file_name\ns1,a\n\ufeffs2,b\n",
         ("line 3", "\\ufeff", "sample names may only use")),
    Case("csv-mixed-line-endings", "csv", "sample_name,file_name\r\ns1,a\ns2,b\rs1,c\r\n",
         ("line 4", "also on line 2", "unique")),
    Case("csv-duplicate-header", "csv", "sample_name,file_name,x,x\ns1,a,1,2\n",
         ("line 1", "'x' appears twice", "unique")),
    Case("csv-duplicate-sample", "csv", "sample_name,file_name\ns1,a\ns1,b\n",
         ("line 3", "'s1' is also on line 2", "unique")),
    Case("csv-empty-sample", "csv", "sample_name,file_name\ns1,a\n,b\n",
         ("line 3", "sample_name is empty", "every row needs a sample name")),
    Case("csv-empty-file-name", "csv", "sample_name,file_name\ns1,\n",
         ("line 2", "file_name is empty", "every row needs a file name")),
    Case("csv-wide-100k-columns", "csv",
         ",".join(["sample_name", "file_name"] + [f"c{i}" for i in range(100_000)]) + "\n"
         + ",".join(["s1", "a"] + ["v"] * 100_000) + "\n",
         ("line 1", "100,002 columns", "at most 16,384", "remove the columns")),
    Case("csv-20mb-cell", "csv", "sample_name,file_name,seq\ns1,a," + "A" * (20 << 20) + "\n",
         ("line 2", "longer than 1,048,576", "in a file")),
    Case("csv-wrong-column-count", "csv", "sample_name,file_name,x\ns1,a,1\ns2,b,2\ns3,c\n",
         ("line 4", "expected 3 fields", "got 2", "add the missing fields")),
    Case("csv-missing-file-column", "csv", "sample_name,fastq\ns1,a\n",
         ("line 1", "no 'file_name' column", "--file-col")),
    Case("csv-semicolons", "csv", "sample_name;file_name\ns1;a\n",
         ("line 1", "no 'sample_name' column", "other than commas")),
    Case("csv-unclosed-quote", "csv", 'sample_name,file_name\ns1,"a.txt\ns2,b\n',
         ("line 2", "check the quoting")),
    Case("csv-bad-sample-chars", "csv", "sample_name,file_name\nmy sample/1,a\n",
         ("line 2", "' '", "'/'", "sample names may only use")),
    Case("csv-sample-dotdot", "csv", "sample_name,file_name\n..,a\n",
         ("line 2", "path component", "rename it")),
    Case("csv-sample-too-long", "csv", "sample_name,file_name\n" + "s" * 129 + ",a\n",
         ("line 2", "129 characters", "at most 128")),
    Case("csv-formula-sample-name", "csv", 'sample_name,file_name\n"=HYPERLINK(""x"")",a\n',
         ("line 2", "'='", "sample names may only use")),
    Case("csv-header-only", "csv", "sample_name,file_name\n", ("no samples", "add one row")),
    Case("csv-empty-file", "csv", "", ("is empty", "header line")),
    Case("csv-unnamed-column", "csv", "sample_name,,file_name\ns1,x,a\n",
         ("line 1", "column 2", "give the column a name")),
    Case("csv-trailing-delimiter", "csv", "sample_name,file_name,\ns1,a,\n",
         ("line 1", "column 3", "remove the trailing delimiter")),
    Case("csv-thirty-problems", "csv",
         "sample_name,file_name\n" + "".join(f"s{i},\n" for i in range(30)),
         ("30 problems", "showing the first 20", "line 2", "file_name is empty")),

    # -- workflow definitions (batchctl create base) -------------------------------------------
    Case("wf-comment", "workflow", "# my workflow\n" + wf(),
         ("line 1", "invalid JSON", "remove comments")),
    Case("wf-trailing-comma", "workflow", '{"workflow_name": "bad", "analyses": [],\n}',
         ("line 2", "invalid JSON", "trailing commas")),
    Case("wf-not-utf8", "workflow", wf().encode().replace(b'"bad"', b'"caf\xe9"'),
         ("line 2", "UTF-8")),
    Case("wf-jobdef-unknown", "workflow", wf(job_definition="nosuch"),
         ("analyses[0].job_definition", "not registered", "batchctl jobdef register")),
    Case("wf-jobdef-typo", "workflow", wf(job_definition="tol"),
         ("analyses[0].job_definition", "did you mean 'tool'")),
    Case("wf-jobdef-revision", "workflow", wf(job_definition="tool:9"),
         ("analyses[0].job_definition", "no revision 9", "revisions: 1")),
    Case("wf-ref-without-value", "workflow", wf(drop=("parameters",)),
         ("analyses[0].parameters", "Ref::input", '"input"')),
    Case("wf-absurd-memory", "workflow", wf(containerOverrides={"memory": 10 ** 9}),
         ("analyses[0].containerOverrides.memory", "at most 25,165,824", "digit too many")),
    Case("wf-absurd-vcpus", "workflow", wf(containerOverrides={"vcpus": 100_000}),
         ("analyses[0].containerOverrides.vcpus", "at most 448")),
    Case("wf-absurd-requirement", "workflow",
         wf(containerOverrides={"resourceRequirements": [{"type": "MEMORY", "value": "1e12"}]}),
         ("resourceRequirements[0].value", "25,165,824")),
    Case("wf-retry-1000", "workflow", wf(retry={"max_attempts": 1000}),
         ("analyses[0].retry.max_attempts", "at most 20", "paid for")),
    Case("wf-memory-factor", "workflow", wf(retry={"memory_factor": 1000}),
         ("analyses[0].retry.memory_factor", "at most 16")),
    Case("wf-huge-number", "workflow", wf().replace('"queue"', '"timeout": 1e400, "queue"'),
         ("1e400", "too large")),
    Case("wf-5000-digits", "workflow",
         wf().replace('"queue"', '"timeout": 1' + "0" * 5000 + ', "queue"'),
         ("too large", "write the value you mean")),
    Case("wf-nan", "workflow", wf().replace('"queue"', '"timeout": NaN, "queue"'),
         ("NaN is not allowed", "write a number")),
    Case("wf-huge-timeout", "workflow", wf(timeout=10 ** 12),
         ("analyses[0].timeout", "at most 2,592,000")),
    Case("wf-quoted-number", "workflow", wf(containerOverrides={"memory": "8000"}),
         ("analyses[0].containerOverrides.memory", "without quotes")),
    Case("wf-outputs-string", "workflow", wf(outputs="out.txt"),
         ("analyses[0].outputs", "non-empty list")),
    Case("wf-unknown-key", "workflow", wf(outptus=["x"]),
         ("analyses[0].outptus", "did you mean 'outputs'")),
    Case("wf-depends-on", "workflow", wf(depends_on=[1]),
         ("analyses[0].depends_on", "unknown key", "allowed here")),
    Case("wf-misplaced-key", "workflow", wf(memory=8000),
         ("analyses[0].memory", "containerOverrides.memory")),
    Case("wf-unknown-template", "workflow", wf(outputs=["out/{smaple_name}.txt"]),
         ("analyses[0].outputs[0]", "{smaple_name}", "did you mean {sample_name}")),
    Case("wf-template-attribute", "workflow", wf(outputs=["out/{sample_name.upper}"]),
         ("analyses[0].outputs[0]", "attribute access", "{sample_name}")),
    Case("wf-brace-storm", "workflow", wf(outputs=["{{" * 200_000 + "{"]),
         ("analyses[0].outputs[0]", "never closed")),
    Case("wf-duplicate-keys", "workflow", wf().replace('"queue": "local"',
                                                       '"queue": "local", "queue": "spot"'),
         ("'queue' appears more than once", "keep only one")),
    Case("wf-nested-10000", "workflow", '{"workflow_name": ' + "[" * 10_000 + "]" * 10_000 + "}",
         ("nested more than 64 levels", "flatten")),
    Case("wf-blank-lines", "workflow", "{" + "\n" * 400_000,
         ("line 400001", "invalid JSON")),
    Case("wf-empty-analyses", "workflow", '{"workflow_name": "bad", "analyses": []}',
         ("analyses", "non-empty list")),
    Case("wf-no-name", "workflow", json.dumps({"analyses": [ANALYSIS]}),
         ("workflow_name", "missing", "name the workflow")),
    Case("wf-bad-name", "workflow", wf(name="my workflow"),
         ("workflow_name", "not a valid workflow name", "letters, digits")),
    Case("wf-array", "workflow", "[]", ("top level must be a JSON object",)),
    Case("wf-short-timeout", "workflow", wf(timeout=10), ("analyses[0].timeout", "at least 60")),
    Case("wf-reserved-env", "workflow",
         wf(containerOverrides={"environment": {"AWS_BATCH_X": "1"}}),
         ("containerOverrides.environment.AWS_BATCH_X", "reserved", "rename")),
    Case("wf-repeated-output", "workflow", wf(outputs=["o/{sample_name}", "o/{sample_name}"]),
         ("analyses[0].outputs[1]", "list each output once")),

    # -- job definitions (batchctl jobdef register) --------------------------------------------
    Case("jd-bad-image", "jobdef", jd(image="python 3.11"),
         ("containerProperties.image", "' '", "REPOSITORY[:TAG]")),
    Case("jd-image-url", "jobdef", jd(image="https://docker.io/library/python:3.11"),
         ("containerProperties.image", "is a URL", '"docker.io/library/python:3.11"')),
    Case("jd-absurd-memory", "jobdef", jd(memory=10 ** 9),
         ("containerProperties.memory", "from 1 to 25,165,824")),
    Case("jd-fractional-vcpus", "jobdef", jd(vcpus=0.5),
         ("containerProperties.vcpus", "resourceRequirements")),
    Case("jd-requirement-text", "jobdef",
         jd(drop=("vcpus", "memory"), resourceRequirements=[{"type": "VCPU", "value": "1"},
                                                           {"type": "MEMORY", "value": "lots"}]),
         ("resourceRequirements[1].value", "whole number")),
    Case("jd-no-command", "jobdef", jd(drop=("command",)),
         ("containerProperties.command", "non-empty list")),
    Case("jd-unknown-key", "jobdef", jd(imgae="x"),
         ("containerProperties.imgae", "did you mean 'image'")),
    Case("jd-bad-name", "jobdef", jd(name="my def"),
         ("jobDefinitionName", "letters, digits")),
    Case("jd-retry-1000", "jobdef", jd(top={"retryStrategy": {"attempts": 1000}}),
         ("retryStrategy", "from 1 to 10")),
    Case("jd-huge-timeout", "jobdef", jd(top={"timeout": {"attemptDurationSeconds": 10 ** 12}}),
         ("timeout", "2,592,000")),
    Case("jd-multinode", "jobdef", jd(top={"type": "multinode"}), ("type", '"container"')),
    Case("jd-env-name", "jobdef", jd(environment=[{"name": "1X", "value": "a"}]),
         ("containerProperties.environment[0].name", "not a valid environment variable")),
    Case("jd-duplicate-keys", "jobdef", jd().replace('"vcpus": 1', '"vcpus": 1, "vcpus": 2'),
         ("'vcpus' appears more than once", "keep only one")),
    Case("jd-invalid-json", "jobdef", '{"jobDefinitionName": "x",\n}', ("line 2", "column 1")),
    Case("jd-nested-5000", "jobdef", '{"tags": ' + "[" * 5000 + "]" * 5000 + "}",
         ("nested too deeply",)),
    Case("jd-5000-digits", "jobdef", jd().replace('"memory": 256', '"memory": 1' + "0" * 5000),
         ("too large", "write the value you mean")),
    Case("jd-infinity", "jobdef", jd().replace('"memory": 256', '"memory": 1e999'),
         ("too large",)),
    Case("jd-array", "jobdef", "[]", ("expected a JSON object",)),

    # -- raw API requests ---------------------------------------------------------------------
    Case("api-non-utf8-body", "api", ("POST", "/v1/projects", JSON, b'{"name": "caf\xe9"}'),
         ("not valid UTF-8", "byte offset 13", "UTF-8")),
    Case("api-utf16-body", "api", ("POST", "/v1/projects", JSON,
                                   project(GOOD_CSV).decode().encode("utf-16")),
         ("not valid UTF-8",)),
    Case("api-unknown-field", "api",
         ("POST", "/v1/projects", JSON, body({"name": "p-api", "metdata": GOOD_CSV})),
         ("unknown request field", "metdata", "did you mean 'metadata'")),
    Case("api-wrong-type", "api", ("POST", "/v1/projects", JSON, project(GOOD_CSV, sample_col=5)),
         ("'sample_col'", "must be a string")),
    Case("api-wrong-content-type", "api",
         ("POST", "/v1/projects", {"Content-Type": "text/plain"}, project(GOOD_CSV)),
         ("text/plain", "Content-Type: application/json")),
    Case("api-form-encoded", "api",
         ("POST", "/v1/projects", {"Content-Type": "application/x-www-form-urlencoded"},
          b"name=p-api&metadata=x"), ("Content-Type: application/json",)),
    Case("api-encoded-slash", "api", ("GET", "/v1/projects/a%2Fb/workflows/w", {}, None),
         ("invalid project name", "'/'", "letters, digits")),
    Case("api-nul-in-name", "api", ("GET", "/v1/projects/base/workflows/a%00b", {}, None),
         ("invalid workflow name", "\\x00")),
    Case("api-negative-limit", "api", ("GET", JOBS + "?limit=-5", {}, None),
         ("'limit'", "at least 1")),
    Case("api-zero-limit", "api", ("GET", JOBS + "?limit=0", {}, None), ("'limit'", "at least 1")),
    Case("api-huge-limit", "api", ("GET", JOBS + "?limit=" + "9" * 30, {}, None),
         ("'limit'", "below 2^63")),
    Case("api-huge-after", "api", ("GET", JOBS + "?after=" + "1" + "0" * 30, {}, None),
         ("'after'", "at least 0")),
    Case("api-negative-after", "api", ("GET", JOBS + "?after=-1", {}, None), ("'after'",)),
    Case("api-text-step", "api", ("GET", JOBS + "?step=two", {}, None),
         ("'step'", "whole number")),
    Case("api-bad-state", "api", ("GET", JOBS + "?state=DONE", {}, None),
         ("unknown state", "COMPLETED")),
    Case("api-nested-10000", "api",
         ("POST", "/v1/projects", JSON, b"[" * 10_000 + b"]" * 10_000),
         ("nested more than 64 levels",)),
    Case("api-deep-field", "api", ("POST", "/v1/jobdefs", JSON,
                                   b'{"spec": ' + b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"}"),
         ("nested more than 64 levels",)),
    Case("api-duplicate-keys", "api", ("POST", "/v1/projects", JSON,
                                       b'{"name": "p-a", "name": "p-b", "metadata": "x"}'),
         ("'name' appears more than once",)),
    Case("api-array-body", "api", ("POST", "/v1/projects", JSON, b"[1, 2]"),
         ("must be a JSON object", "array")),
    Case("api-empty-body", "api", ("POST", "/v1/projects", JSON, b""),
         ("must be a JSON object",)),
    Case("api-trailing-garbage", "api", ("POST", "/v1/projects", JSON, project(GOOD_CSV) + b"x"),
         ("invalid JSON", "nothing after it")),
    Case("api-5000-digits", "api",
         ("POST", "/v1/projects", JSON, b'{"name": 1' + b"0" * 5000 + b"}"), ("too large",)),
    Case("api-nan", "api", ("POST", "/v1/projects", JSON, b'{"name": NaN}'),
         ("NaN is not allowed",)),
    Case("api-spec-not-object", "api", ("POST", "/v1/jobdefs", JSON, body({"spec": "tool"})),
         ("'spec'", "JSON object")),
    Case("api-resubmit-absurd-memory", "api",
         ("POST", "/v1/projects/base/workflows/ok/resubmit", JSON,
          body({"status": "FAILED", "memory": 10 ** 12})), ("memory", "from 1 to 25,165,824")),
    Case("api-resubmit-force-text", "api",
         ("POST", "/v1/projects/base/workflows/ok/resubmit", JSON, body({"force": "yes"})),
         ("'force'", "true or false")),
    Case("api-resubmit-unknown-step", "api",
         ("POST", "/v1/projects/base/workflows/ok/resubmit", JSON, body({"step": 5})),
         ("step 5 does not exist", "steps 0 to 0")),
    Case("api-cancel-unknown-sample", "api",
         ("POST", "/v1/projects/base/workflows/ok/cancel", JSON,
          body({"reason": "typo", "sample": "s9"})), ("sample 's9' is not in project base",)),
    Case("api-jobs-unknown-step", "api", ("GET", JOBS + "?step=3", {}, None),
         ("step 3 does not exist",)),
    Case("api-cancel-without-reason", "api",
         ("POST", "/v1/projects/base/workflows/ok/cancel", JSON, body({"status": "QUEUED"})),
         ("a reason is required",)),
]


def catalogue_size() -> int:
    return len(CASES)


# -- the daemon the cases share ----------------------------------------------------------------
@pytest.fixture(scope="module")
def daemon():
    d = new_daemon("--backend", "local", "--poll-interval", "0.2", "--local-vcpus", "2",
                   "--local-memory", "2048")
    try:
        d.start()
        (d.root / "cases").mkdir()
        (d.root / "tool.json").write_text(json.dumps(JOBDEF))
        d.ctl("jobdef", "register", "tool.json")
        (d.root / "base.csv").write_text(SAMPLES)
        d.ctl("import", "base", "--metadata", "base.csv")
        (d.root / "ok.json").write_text(wf(name="ok"))
        d.ctl("create", "base", "--definition", "ok.json")
        yield d
    finally:
        d.cleanup()


def _request(d: Daemon, method: str, path: str, headers: dict, data: bytes | None
             ) -> tuple[int, bytes]:
    conn = unix_http_connection(str(d.socket), timeout=60)
    try:
        conn.request(method, path, body=data, headers={"Host": "batchd", **headers})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _listing(d: Daemon) -> dict[str, Any]:
    """What the store and the job definition registry hold, as their clients see it."""
    found = {}
    for path in ("/v1/projects", "/v1/dashboard", "/v1/jobdefs"):
        status, text = get(d.socket, path)
        assert status == 200, (path, text[:300])
        found[path] = json.loads(text)
    for row in found["/v1/dashboard"]["workflows"]:
        row.pop("updated_at", None)
    found["files"] = sorted(str(p.relative_to(d.state_dir)) for p in
                            (d.state_dir / "local" / "jobdefs").rglob("*"))
    return found


def _run(d: Daemon, case: Case) -> tuple[int, str]:
    """(exit code or HTTP status, the message the user sees)."""
    if case.kind == "api":
        method, path, headers, data = case.input
        status, raw = _request(d, method, path, headers, data)
        error = json.loads(raw)["error"]
        assert error["code"] != "internal", error
        return status, error["message"]
    ext = {"csv": "csv", "workflow": "json", "jobdef": "json"}[case.kind]
    rel = f"cases/{case.id}.{ext}"
    data = case.input if isinstance(case.input, bytes) else case.input.encode()
    (d.root / rel).write_bytes(data)
    args = {"csv": ("import", case.id, "--metadata", rel),
            "workflow": ("create", "base", "--definition", rel),
            "jobdef": ("jobdef", "register", rel)}[case.kind]
    result = d.ctl(*args, check=False, timeout=90)
    assert "Traceback" not in result.stderr, result.stderr
    assert rel in result.stderr, f"the message does not name {rel}: {result.stderr[:500]}"
    return result.returncode, result.stderr


def test_the_catalogue_has_at_least_fifty_distinct_cases():
    assert catalogue_size() >= 50
    assert len({c.id for c in CASES}) == len(CASES)
    assert len({(c.kind, repr(c.input)) for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_bad_input_is_refused_clearly_and_leaves_nothing_behind(daemon, case):
    before = _listing(daemon)
    got, message = _run(daemon, case)
    assert got == case.expected, f"{case.id}: got {got}, expected {case.expected}: {message}"
    assert len(message) < MAX_MESSAGE, f"{len(message):,} characters: {message[:300]}"
    missing = [w for w in case.words if w.lower() not in message.lower()]
    assert not missing, f"{case.id}: {missing} not in: {message}"
    daemon.assert_alive()
    assert get(daemon.socket, "/v1/ping")[0] == 200
    assert _listing(daemon) == before
