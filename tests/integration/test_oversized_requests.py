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


CSV = {"Content-Type": "text/csv; charset=utf-8"}


def test_a_json_import_is_small_and_a_big_table_comes_as_itself(local_daemon):
    """A JSON body is decoded on the event loop in one C call (~4 ms per MB): a 50 MB name
    inside one took ~190 ms to refuse while every other client waited. A JSON import is now at
    most 4 MiB, refused from its Content-Length; a big table is the body itself (what batchctl
    sends), its name in the query, refused with the request line."""
    sock = local_daemon.socket
    body = json.dumps({"name": "p" * (5 << 20), "metadata": "sample_name\ns1\n"}).encode()
    status, answer = _post(sock, "/v1/projects", body)
    assert status == 413, answer[:300]
    assert "an import sent as JSON accepts at most 4,194,304 bytes" in answer.decode()
    assert "Content-Type: text/csv" in answer.decode()

    status, answer = _post(sock, "/v1/projects?name=" + "p" * 300, b"sample_name\ns1\n", CSV)
    assert status == 400 and "300 characters long" in answer.decode(), answer[:300]

    table = b"sample_name,file_name\n" + b"".join(b"s%d,f%d\n" % (i, i) for i in range(50_000))
    status, answer = _post(sock, "/v1/projects?name=big", table + b"caf\xe9,x\n",
                           {**CSV, "X-Batchd-Filename": "lab%20samples.csv"})
    assert status == 400, answer[:300]
    assert json.loads(answer)["error"]["message"] == (
        f"lab samples.csv: line 50002 is not valid UTF-8 (byte offset {len(table) + 3}); "
        "save the file as UTF-8")

    status, answer = _post(sock, "/v1/projects", b"sample_name\ns1\n", CSV)
    assert status == 400 and "query parameter 'name'" in answer.decode(), answer[:300]
    status, answer = _post(sock, "/v1/projects?name=q&sample=x", b"sample_name\ns1\n", CSV)
    assert status == 400 and "unknown query parameter" in answer.decode(), answer[:300]

    status, answer = _post(sock, "/v1/projects?name=big", table, CSV)
    assert status == 201, answer[:300]
    assert json.loads(answer)["project"]["samples"] == 50_000
    assert [p["name"] for p in json.loads(get(sock, "/v1/projects")[1])["projects"]] == ["big"]
