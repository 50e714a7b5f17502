"""batchctl refuses an over-limit upload itself, with the daemon's own words and exit code 2.

Sending it would cost reading and encoding the whole file and pushing it into a socket the
daemon may already be closing (a broken pipe or a reset instead of the 413). The referee is
the daemon's audit trail: every mutating request that reaches it leaves an `audit` event, so
a refusal made by batchctl leaves none.
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration

LIMIT = 1024 * 1024 + 4096   # every upload limit of the daemon below (files over 1 MiB are
                             # checked before batchctl reads them)


@pytest.fixture
def daemon(daemon_factory):
    env = {f"BATCHD_LIMIT_{kind}_BYTES": str(LIMIT) for kind in ("METADATA", "DEFINITION",
                                                                 "JOBDEF")}
    made = daemon_factory("--backend", "local", env=env).start()
    (made.root / "ok.csv").write_text("sample_name,file_name\ns1,a\n")
    made.ctl("import", "p", "--metadata", "ok.csv")
    return made


def _files(root) -> dict[str, tuple[str, ...]]:
    """One over-limit file per upload command, and the batchctl arguments that send it."""
    (root / "big.csv").write_text("sample_name,file_name\n" + "".join(
        f"s{i},{'f' * 60}\n" for i in range(LIMIT // 40)))
    steps = [{"job_definition": "jd", "queue": "local", "outputs": [f"out/{{sample_name}}.{i}"]}
             for i in range(LIMIT // 60)]
    (root / "big.json").write_text(json.dumps({"workflow_name": "w", "analyses": steps}))
    (root / "bigjd.json").write_text(json.dumps({"jobDefinitionName": "jd", "containerProperties": {
        "command": ["echo", *(["x" * 50] * (LIMIT // 50))], "vcpus": 1, "memory": 64}}))
    return {"metadata": ("import", "q", "--metadata", "big.csv"),
            "definition": ("create", "p", "--definition", "big.json"),
            "jobdef": ("jobdef", "register", "bigjd.json")}


@pytest.mark.parametrize("kind", ["metadata", "definition", "jobdef"])
def test_a_file_over_the_limit_is_refused_before_it_is_sent(daemon, kind):
    args = _files(daemon.root)[kind]
    before = len(daemon.events("audit"))
    result = daemon.ctl(*args, check=False)
    assert result.returncode == 2, (result.stdout, result.stderr)
    path = args[-1]
    assert (f"{path} is {(daemon.root / path).stat().st_size:,} bytes; this request accepts at "
            f"most {LIMIT:,} bytes (setting limits.{kind}_bytes); split the file, or ask an "
            "admin to raise that setting") in result.stderr
    assert "Traceback" not in result.stderr
    assert len(daemon.events("audit")) == before, "the request reached the daemon"


def test_a_file_just_under_the_limit_goes_through_as_it_is(daemon):
    """The table is sent as itself, not as a JSON string: JSON escaped every newline and
    quote, so a file just under the limit used to make a body over it and be refused."""
    rows = "".join(f's{i},"a ""quoted"" name {i}"\n' for i in range(LIMIT))
    text = "sample_name,file_name\n" + rows
    text = text[:LIMIT - 64]
    text = text[:text.rindex("\n") + 1]
    (daemon.root / "near.csv").write_text(text)
    assert (daemon.root / "near.csv").stat().st_size <= LIMIT
    result = daemon.ctl("import", "near", "--metadata", "near.csv", check=False)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "Imported project near:" in result.stdout


def test_the_daemon_says_the_same_when_another_client_sends_it(daemon):
    """Clients other than batchctl still get the 413, in the words batchctl uses."""
    from tests.integration.test_oversized_requests import _post
    body = json.dumps({"name": "r", "metadata": "x" * (2 * LIMIT)}).encode()
    status, answer = _post(daemon.socket, "/v1/projects", body)
    assert status == 413
    message = json.loads(answer)["error"]["message"]
    assert message == (f"the request body is {len(body):,} bytes; this request accepts at most "
                       f"{LIMIT:,} bytes (setting limits.metadata_bytes); split the file, or "
                       "ask an admin to raise that setting")


def test_uploads_under_the_limit_still_go_through(daemon):
    (daemon.root / "jd.json").write_text(json.dumps({"jobDefinitionName": "jd",
                                                     "containerProperties": {
                                                         "command": ["true"], "vcpus": 1,
                                                         "memory": 64}}))
    daemon.ctl("jobdef", "register", "jd.json")
    from tests.raw_http import get
    status, text = get(daemon.socket, "/v1/ping")
    assert status == 200 and json.loads(text)["limits"]["jobdef_bytes"] == LIMIT
