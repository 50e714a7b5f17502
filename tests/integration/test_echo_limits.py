"""No answer and no log line carries more than ~200 characters of what a user sent.

Every free-text field of every mutating request is filled with one huge value (as large as its
route's body limit allows) in a request that the daemon refuses or records, against a real
daemon. The answer and the daemon's whole log are then searched for the longest run of that
value: a message that quotes a 900 KB output path or logs a 1,024-character cancel reason in
full is one user making every other user's error messages and log lines unreadable.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from batchctl.client import unix_http_connection

pytestmark = pytest.mark.integration

ECHO = 200            # limits.MAX_ECHO
SLACK = 60            # quoting, an ellipsis, a "(N characters)" note
BIG = 400_000         # fits the 1 MiB definition and 64 MiB metadata limits
JOBDEF_BIG = 200_000  # fits the 256 KiB job definition limit
BODY_BIG = 60_000     # fits the 64 KiB limit of every other body
RUN = re.compile(rb"Q{%d,}" % (ECHO + SLACK + 1))


def q(n: int) -> str:
    return "Q" * n


def _post(socket, path: str, body) -> tuple[int, bytes]:
    conn = unix_http_connection(str(socket), timeout=120)
    try:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        conn.request("POST", path, body=data, headers={"Host": "batchd",
                                                       "Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _metadata(**extra) -> dict:
    return {"name": "p2", "metadata": "sample_name,file_name\ns1,a\n",
            "metadata_filename": "m.csv", **extra}


def _definition(**analysis) -> str:
    step = {"job_definition": "jd", "queue": "local", "outputs": ["/tmp/out/{sample_name}"],
            **analysis}
    return json.dumps({"workflow_name": "w2", "analyses": [step]})


def _jobdef(**container) -> dict:
    return {"spec": {"jobDefinitionName": "jd2", "containerProperties": {
        "command": ["true"], "vcpus": 1, "memory": 64, **container}}, "filename": "jd.json"}


WF = "/v1/projects/p/workflows/w"
CASES = [
    # import: the samples table and everything that names it
    ("project name", "/v1/projects", _metadata(name=q(BIG))),
    ("metadata filename", "/v1/projects", _metadata(metadata_filename=q(BIG), metadata="")),
    ("metadata filename, row problems", "/v1/projects",
     _metadata(metadata_filename=q(BIG), metadata="sample_name,file_name\n" + "s 1,\n" * 30)),
    ("sample column", "/v1/projects", _metadata(sample_col=q(BIG))),
    ("file column", "/v1/projects", _metadata(file_col=q(BIG))),
    ("header column", "/v1/projects", _metadata(metadata=f"sample_name,file_name,{q(BIG)}\n"
                                                         "s1,a,b\n")),
    ("header column twice", "/v1/projects",
     _metadata(metadata=f"sample_name,file_name,{q(BIG)},{q(BIG)}\ns1,a,b,c\n")),
    ("sample name", "/v1/projects", _metadata(metadata=f"sample_name,file_name\n{q(BIG)},a\n")),
    ("sample name twice", "/v1/projects",
     _metadata(metadata=f"sample_name,file_name\nQ{q(BIG)},a\nQ{q(BIG)},a\n")),
    ("unclosed quote", "/v1/projects",
     _metadata(metadata=f'sample_name,file_name\ns1,"{q(BIG)}\n')),
    ("row too long", "/v1/projects", _metadata(metadata=f"sample_name,file_name\ns1,a,{q(BIG)}\n")),
    # create: the workflow definition
    ("definition filename", "/v1/projects/p/workflows",
     {"definition": "{", "definition_filename": q(BIG)}),
    ("definition filename, problems", "/v1/projects/p/workflows",
     {"definition": _definition(queue=""), "definition_filename": q(BIG)}),
    ("definition syntax", "/v1/projects/p/workflows", {"definition": "{" + q(BIG)}),
    ("definition string syntax", "/v1/projects/p/workflows",
     {"definition": '{"workflow_name": "' + q(BIG) + '\n"}'}),
    ("duplicate key", "/v1/projects/p/workflows",
     {"definition": f'{{"{q(BIG)}": 1, "{q(BIG)}": 2}}'}),
    ("workflow name", "/v1/projects/p/workflows",
     {"definition": json.dumps({"workflow_name": q(BIG), "analyses": []})}),
    ("unknown key", "/v1/projects/p/workflows",
     {"definition": json.dumps({"workflow_name": "w2", q(BIG): 1, "analyses": []})}),
    ("job definition", "/v1/projects/p/workflows", {"definition": _definition(
        job_definition=q(BIG))}),
    ("queue", "/v1/projects/p/workflows", {"definition": _definition(queue=q(BIG))}),
    ("relative output", "/v1/projects/p/workflows", {"definition": _definition(
        outputs=[q(BIG)])}),
    ("output template", "/v1/projects/p/workflows", {"definition": _definition(
        outputs=["/o/{" + q(BIG) + "}"])}),
    ("parameter name", "/v1/projects/p/workflows", {"definition": _definition(
        parameters={q(BIG): "x"})}),
    ("parameter template", "/v1/projects/p/workflows", {"definition": _definition(
        parameters={"x": "{" + q(BIG) + "}"})}),
    ("step key", "/v1/projects/p/workflows", {"definition": _definition(**{q(BIG): 1})}),
    ("memory", "/v1/projects/p/workflows", {"definition": _definition(memory=q(BIG))}),
    ("base dir", "/v1/projects/p/workflows", {"definition": _definition(), "base_dir": q(BIG)}),
    # cancel / resubmit
    ("reason (longest accepted)", WF + "/cancel", {"reason": q(1024)}),
    ("reason (too long)", WF + "/cancel", {"reason": q(BODY_BIG)}),
    ("cancel status", WF + "/cancel", {"reason": "r", "status": q(BODY_BIG)}),
    ("cancel sample", WF + "/cancel", {"reason": "r", "sample": q(BODY_BIG)}),
    ("cancel step", WF + "/cancel", {"reason": "r", "step": q(BODY_BIG)}),
    ("resubmit queue", WF + "/resubmit", {"queue": q(BODY_BIG)}),
    ("resubmit memory", WF + "/resubmit", {"memory": q(BODY_BIG)}),
    ("resubmit vcpus", WF + "/resubmit", {"vcpus": q(BODY_BIG)}),
    ("resubmit timeout", WF + "/resubmit", {"timeout": q(BODY_BIG)}),
    ("resubmit status", WF + "/resubmit", {"status": q(BODY_BIG)}),
    ("unknown body key", WF + "/resubmit", {q(BODY_BIG): 1}),
    ("body not JSON", WF + "/resubmit", b"{" + q(BODY_BIG).encode()),
    ("body not an object", WF + "/resubmit", json.dumps(q(BODY_BIG)).encode()),
    # job definitions
    ("jobdef filename", "/v1/jobdefs", {"spec": {}, "filename": q(JOBDEF_BIG)}),
    ("jobdef name", "/v1/jobdefs", {"spec": {"jobDefinitionName": q(JOBDEF_BIG)}}),
    ("jobdef unknown key", "/v1/jobdefs", {"spec": {q(JOBDEF_BIG): 1}}),
    ("jobdef command", "/v1/jobdefs", _jobdef(command=q(JOBDEF_BIG))),
    ("jobdef image", "/v1/jobdefs", _jobdef(image=[q(JOBDEF_BIG)])),
    ("jobdef env name", "/v1/jobdefs", _jobdef(environment=[
        {"name": "AWS_BATCH" + q(JOBDEF_BIG // 2), "value": "x"}])),
    ("jobdef env name twice", "/v1/jobdefs", _jobdef(environment=[
        {"name": "X" + q(JOBDEF_BIG // 3), "value": "x"},
        {"name": "X" + q(JOBDEF_BIG // 3), "value": "x"}])),
    ("jobdef parameter", "/v1/jobdefs", {"spec": {**_jobdef()["spec"],
                                                  "parameters": {"p": [q(JOBDEF_BIG)]}}}),
]


QUERY_BIG = 4000     # a whole query string is at most 4,096 characters
GETS = [
    ("jobs state", WF + "/jobs?state=" + q(QUERY_BIG)),
    ("jobs sample", WF + "/jobs?sample=" + q(QUERY_BIG)),
    ("jobs step", WF + "/jobs?step=" + q(QUERY_BIG)),
    ("jobs limit", WF + "/jobs?limit=" + q(QUERY_BIG)),
    ("logs attempt", WF + "/logs?attempt_id=" + q(QUERY_BIG)),
    ("query key", "/v1/queues?" + q(QUERY_BIG) + "=1"),   # (p/w holds a 1,024-char reason)
    ("unknown route", "/v1/" + q(7000)),
    ("workflow name", "/v1/projects/p/workflows/" + q(7000)),
]


@pytest.fixture(scope="module")
def daemon():
    from tests.daemon_harness import new_daemon
    made = new_daemon("--backend", "local", "--poll-interval", "0.2").start()
    root = made.root
    (root / "jd.json").write_text(json.dumps({"jobDefinitionName": "jd", "containerProperties": {
        "command": ["true"], "vcpus": 1, "memory": 64}}))
    (root / "s.csv").write_text("sample_name,file_name\ns1,a\n")
    (root / "w.json").write_text(json.dumps({"workflow_name": "w", "analyses": [{
        "job_definition": "jd", "queue": "local", "outputs": ["out/{sample_name}"]}]}))
    made.ctl("jobdef", "register", "jd.json")
    made.ctl("import", "p", "--metadata", "s.csv")
    made.ctl("create", "p", "--definition", "w.json")
    yield made
    made.cleanup()


@pytest.mark.parametrize("label, path, body", CASES, ids=[c[0] for c in CASES])
def test_a_huge_value_is_never_echoed_or_logged_in_full(daemon, label, path, body):
    logged = sum(p.stat().st_size for p in daemon.log_paths)
    status, answer = _post(daemon.socket, path, body)
    assert status < 500, answer[:500]
    echoed = RUN.search(answer)
    assert echoed is None, f"{label}: HTTP {status} echoes {len(echoed.group()):,} characters"
    assert len(answer) < 16_384, f"{label}: a {len(answer):,}-byte answer"
    daemon.assert_alive()
    text = b"".join(p.read_bytes() for p in daemon.log_paths)[logged:]
    for line in text.splitlines():
        run = RUN.search(line)
        assert run is None, (f"{label}: a log line carries {len(run.group()):,} characters of "
                             f"it: {line[:300]!r}")


def test_a_cancel_reason_of_the_longest_accepted_length_is_logged_clipped(daemon):
    """The reason travels further than the request: to every cancelled job, to the backend
    and into the poller's decision about each job."""
    root = daemon.root
    (root / "sleep.json").write_text(json.dumps({"jobDefinitionName": "sleeper",
                                                 "containerProperties": {
                                                     "command": ["sleep", "60"], "vcpus": 1,
                                                     "memory": 64}}))
    (root / "ws.json").write_text(json.dumps({"workflow_name": "ws", "analyses": [{
        "job_definition": "sleeper", "queue": "local", "outputs": ["out/{sample_name}.s"]}]}))
    daemon.ctl("jobdef", "register", "sleep.json")
    daemon.ctl("create", "p", "--definition", "ws.json")
    daemon.ctl("submit", "p/ws")
    # Cancel once the job is in the backend: cancelled before it was sent, it never reaches
    # the local backend and the events below would not be logged (a race the loaded CI lost).
    deadline = time.monotonic() + 60
    while not any(j["state"] in ("RUNNABLE", "STARTING", "RUNNING")
                  for j in daemon.ctl_json("status", "p/ws", "--jobs")["jobs"]):
        assert time.monotonic() < deadline, "the job never reached the local backend"
        time.sleep(0.1)
    reason = q(1024)
    daemon.ctl("cancel", "p/ws", "--reason", reason, "--yes")
    status = daemon.wait_for("p/ws")
    assert status["status"] == "CANCELLED"
    kept = daemon.ctl_json("status", "p/ws", "--jobs")
    assert reason in json.dumps(kept), "the reason is stored and shown in full"
    for line in daemon.log().encode().splitlines():
        run = RUN.search(line)
        assert run is None, f"a log line carries {len(run.group()):,} characters: {line[:300]!r}"
    events = {e["event"] for e in daemon.events() if "QQQQ" in json.dumps(e)}
    assert "jobs_cancelled" in events, events
    assert events & {"local_job_cancelled", "local_job_terminating"}, events  # queued/running


@pytest.mark.parametrize("label, path", GETS, ids=[g[0] for g in GETS])
def test_a_huge_query_or_path_is_never_echoed_or_logged_in_full(daemon, label, path):
    from tests.raw_http import get
    logged = sum(p.stat().st_size for p in daemon.log_paths)
    status, answer = get(daemon.socket, path)
    assert status < 500, answer[:500]
    echoed = RUN.search(answer.encode())
    assert echoed is None, f"{label}: HTTP {status} echoes {len(echoed.group()):,} characters"
    text = b"".join(p.read_bytes() for p in daemon.log_paths)[logged:]
    assert RUN.search(text) is None, f"{label}: logged in full"
