"""One user's oversized request must not slow or endanger anyone else's.

Before the limits, a 50 MB project name was parsed, validated character by character, echoed
back in full (~100 MB answer) and written to the log as one 50 MB line, while every other
client waited. Now names are length-checked and bodies size-checked before any parsing.
"""

from __future__ import annotations

import json
import threading

import pytest

from batchctl.client import unix_http_connection
from tests.raw_http import get

pytestmark = pytest.mark.integration

HUGE = 50 * 1024 * 1024


def _post(socket, path: str, body: bytes, headers: dict | None = None) -> tuple[int, bytes]:
    conn = unix_http_connection(str(socket), timeout=120)
    try:
        conn.request("POST", path, body=body,
                     headers={"Host": "batchd", "Content-Type": "application/json",
                              **(headers or {})})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _longest_log_line(daemon) -> int:
    return max((len(line) for path in daemon.log_paths
                for line in path.read_bytes().splitlines()), default=0)


def test_a_50_mb_project_name_is_refused_briefly_and_others_keep_being_answered(local_daemon):
    body = json.dumps({"name": "p" * HUGE, "metadata": "sample_name\ns1\n",
                       "metadata_filename": "m.csv"}).encode()
    pings: list[int] = []

    def ping_while_posting() -> None:
        for _ in range(5):
            pings.append(get(local_daemon.socket, "/v1/ping")[0])

    other = threading.Thread(target=ping_while_posting)
    other.start()
    status, answer = _post(local_daemon.socket, "/v1/projects", body)
    other.join(60)
    assert status in (400, 413), answer[:300]
    assert len(answer) < 1024, len(answer)
    assert json.loads(answer)["error"]["code"] in ("invalid_input", "payload_too_large")
    assert pings == [200] * 5
    assert _longest_log_line(local_daemon) < 4096


def test_a_long_name_in_the_path_is_refused_before_routing(local_daemon):
    status, answer = get(local_daemon.socket, "/v1/projects/" + "x" * 100_000 + "/workflows/w")
    assert status in (400, 413, 414), answer[:300]
    assert len(answer) < 1024
    assert _longest_log_line(local_daemon) < 4096


def test_a_body_over_the_definition_limit_is_refused_from_its_length(local_daemon):
    local_daemon.ctl("import", "demo", "--metadata", str(_csv(local_daemon)))
    status, answer = _post(local_daemon.socket, "/v1/projects/demo/workflows",
                           b"{" + b" " * (2 * 1024 * 1024) + b"}")   # definition_bytes: 1 MiB
    assert status == 413, answer[:300]
    assert json.loads(answer)["error"]["code"] == "payload_too_large"
    assert len(answer) < 1024


def _csv(daemon):
    path = daemon.root / "samples.csv"
    path.write_text("sample_name,file_name\ns1,a.txt\n")
    return path
