"""A big import or create must not make anyone else wait (issue 14).

Parsing a 100,000-row table and rendering 300,000 jobs used to run on the daemon's event loop:
for seconds nobody got an answer. The test-only gate (BATCHD_TEST_HEAVY_GATE, offload.py)
holds a heavy job midway, in whatever thread runs it; the tests ask other questions while it
is held and only then open the gate, so the order of events is the proof, not a stopwatch.
With the work run on the event loop again (the gate kept), the held job blocks the loop and
the other client's request is not answered until the gate opens: the test gives up after
STUCK seconds and fails. Two imports at once: the second waits for the first's slot.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from batchctl.client import Client

pytestmark = pytest.mark.integration

STUCK = 60      # seconds before a request that never comes back counts as not answered


def _write(path, text: str):
    path.write_text(text)
    return str(path)


def _samples(n: int, bad_last: str | None = None) -> str:
    rows = [f"s{i:05d},s{i:05d}.fq,g{i % 3}" for i in range(n)]
    if bad_last is not None:
        rows[-1] = bad_last
    return "sample_name,file_name,group\n" + "\n".join(rows) + "\n"


JOBDEF = {"jobDefinitionName": "jd", "type": "container",
          "containerProperties": {"image": "none", "command": ["true"],
                                  "resourceRequirements": [{"type": "VCPU", "value": "1"},
                                                           {"type": "MEMORY", "value": "64"}]}}


def _register_jobdef(daemon) -> None:
    """create checks every step's job definition against the local registry."""
    daemon.ctl("jobdef", "register", _write(daemon.root / "jd.json", json.dumps(JOBDEF)))


def _definition(name: str, steps: int = 3, output: str = "/tmp/o/{sample_name}.{step}") -> str:
    return json.dumps({"workflow_name": name, "analyses": [
        {"job_definition": "jd", "queue": "q", "outputs": [output.replace("{step}", str(i))],
         "parameters": {"group": "{group}"}} for i in range(steps)]})


def _projects(daemon) -> dict[str, int]:
    return {p["name"]: p["samples"]
            for p in Client(str(daemon.socket)).get("/v1/projects")["projects"]}


def _background(daemon, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "batchctl", "--socket", str(daemon.socket), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=daemon.env,
        cwd=daemon.root)


def _wait_for_events(daemon, name: str, count: int, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + STUCK
    while len(daemon.events(name)) < count:
        daemon.assert_alive()
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"batchctl ended before {name}: {proc.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {count} x {name} in the log:\n{daemon.log()[-3000:]}")
        time.sleep(0.05)
    return daemon.events(name)


@pytest.fixture
def gated(daemon_factory):
    """A local daemon whose heavy jobs wait for `daemon.root / "gate"`, with another user's
    small project and workflow in place (made while the gate stood open)."""
    daemon = daemon_factory("--backend", "local")
    daemon.gate = daemon.root / "gate"
    daemon.env["BATCHD_TEST_HEAVY_GATE"] = str(daemon.gate)
    daemon.start()
    _register_jobdef(daemon)
    daemon.gate.touch()
    daemon.ctl("import", "other", "--metadata", _write(daemon.root / "o.csv", _samples(3)))
    daemon.ctl("create", "other", "--definition", _write(daemon.root / "o.json",
                                                         _definition("wf", 1)))
    daemon.gate.unlink()
    daemon.gate_passes = len(daemon.events("heavy_work_gate_waiting"))
    return daemon


def _answered_meanwhile(daemon) -> None:
    status = daemon.ctl("status", "other/wf", "--json", check=False, timeout=STUCK)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["counts"] == {"WAITING": 3}
    assert daemon.ctl("ping", check=False, timeout=STUCK).returncode == 0
    assert daemon.ctl("dashboard", check=False, timeout=STUCK).returncode == 0


def test_status_is_answered_while_a_big_import_is_held_midway(gated):
    csv = _write(gated.root / "big.csv", _samples(20_000))
    importing = _background(gated, "import", "big", "--metadata", csv)
    try:
        _wait_for_events(gated, "heavy_work_gate_waiting", gated.gate_passes + 1, importing)
        try:
            _answered_meanwhile(gated)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"another client was not answered while the import was "
                                 f"held: {exc}") from None
        # Still held: the answers above came while the import was in progress.
        assert importing.poll() is None
        assert not [e for e in gated.events("project_imported") if e["project"] == "big"]
    finally:
        gated.gate.touch()
        out, err = importing.communicate(timeout=STUCK)
    assert importing.returncode == 0, err
    assert _projects(gated)["big"] == 20_000


def test_status_is_answered_while_a_big_create_is_held_midway(gated):
    gated.gate.touch()
    gated.ctl("import", "big", "--metadata", _write(gated.root / "big.csv", _samples(20_000)))
    gated.gate.unlink()
    passes = len(gated.events("heavy_work_gate_waiting"))
    creating = _background(gated, "create", "big", "--definition",
                           _write(gated.root / "big.json", _definition("wf")))
    try:
        _wait_for_events(gated, "heavy_work_gate_waiting", passes + 1, creating)
        try:
            _answered_meanwhile(gated)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"another client was not answered while the create was "
                                 f"held: {exc}") from None
        assert creating.poll() is None
        assert not [e for e in gated.events("workflow_created") if e["project"] == "big"]
    finally:
        gated.gate.touch()
        out, err = creating.communicate(timeout=STUCK)
    assert creating.returncode == 0, err
    assert gated.status("big/wf")["counts"] == {"WAITING": 60_000}


def test_two_big_imports_take_turns_and_both_succeed(gated):
    csv = _write(gated.root / "big.csv", _samples(20_000))
    first = _background(gated, "import", "big1", "--metadata", csv)
    procs = [first]
    try:
        _wait_for_events(gated, "heavy_work_gate_waiting", gated.gate_passes + 1, first)
        second = _background(gated, "import", "big2", "--metadata", csv)
        procs.append(second)
        waiting = _wait_for_events(gated, "heavy_work_waiting", 1, second)
        assert waiting[0]["project"] == "big2" and waiting[0]["running"] == 1
        _answered_meanwhile(gated)
        # One heavy job at a time: the second has not reached its thread, nor been refused.
        assert len(gated.events("heavy_work_gate_waiting")) == gated.gate_passes + 1
        assert first.poll() is None and second.poll() is None
    finally:
        gated.gate.touch()
        results = [p.communicate(timeout=STUCK) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    names = [e["project"] for e in gated.events("heavy_work_started")
             if e.get("project", "").startswith("big")]
    assert names == ["big1", "big2"]
    listed = _projects(gated)
    assert listed["big1"] == listed["big2"] == 20_000


def test_a_bad_last_row_is_reported_as_before_and_nothing_is_imported(local_daemon):
    csv = _write(local_daemon.root / "bad.csv", _samples(20_000, bad_last="bad name!,x.fq,g"))
    result = local_daemon.ctl("import", "bad", "--metadata", csv, check=False)
    assert result.returncode == 2, result.stderr
    assert "bad.csv line 20001: sample_name 'bad name!' contains ' ', '!'" in result.stderr
    assert "Traceback" not in result.stderr
    assert "bad" not in _projects(local_daemon)


def test_a_create_failing_at_the_last_sample_creates_no_workflow(local_daemon):
    _register_jobdef(local_daemon)
    rows = _samples(20_000).replace("s19999,s19999.fq,g1", "s19999,s19999.fq,")
    local_daemon.ctl("import", "p", "--metadata", _write(local_daemon.root / "p.csv", rows))
    definition = _write(local_daemon.root / "wf.json",
                        _definition("wf", output="{group}"))
    result = local_daemon.ctl("create", "p", "--definition", definition, check=False)
    assert result.returncode == 2, result.stderr
    assert "sample 's19999': analyses[0].outputs[0] ('{group}') is empty" in result.stderr
    assert "Traceback" not in result.stderr
    assert local_daemon.ctl("status", "p/wf", check=False).returncode == 5
