"""batchctl.client and the CLI against a tiny real HTTP server on a real Unix socket."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from batchctl import cli, client
from batchctl.client import Client, CtlError

REPO = Path(__file__).resolve().parents[2]


# -- a fake batchd ------------------------------------------------------------------------------
class Handler(BaseHTTPRequestHandler):
    server: FakeServer

    def log_message(self, *args):  # client_address is '' on a Unix socket: keep quiet
        pass

    def _handle(self):
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if raw and self.headers.get("Content-Type", "").startswith("text/"):
            body = raw.decode("utf-8")        # a samples table sent as itself
        else:
            body = json.loads(raw) if raw else None
        self.server.requests.append({"method": self.command, "path": url.path,
                                     "query": {k: v[0] for k, v in parse_qs(url.query).items()},
                                     "body": body, "headers": dict(self.headers)})
        route = self.server.routes.get((self.command, url.path))
        if route is None:
            status, answer = 404, {"error": {"code": "not_found",
                                             "message": f"no route {self.command} {url.path}"}}
        elif callable(route):
            result = route(self)
            if result is None:  # the route handled the connection itself
                return
            status, answer = result
        else:
            status, answer = route
        data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _handle


class FakeServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path):
        super().__init__(path, Handler)
        self.routes: dict = {}
        self.requests: list = []


@pytest.fixture
def sockdir():
    # short path (AF_UNIX paths are limited to 107 bytes), traversable by an unprivileged user
    d = tempfile.mkdtemp(prefix="bc-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def fake(sockdir):
    path = os.path.join(sockdir, "batchd.sock")
    server = FakeServer(path)
    server.path = path
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def sent(fake) -> list[dict]:
    """The requests a command made, without the /v1/ping that asks the upload limits."""
    return [r for r in fake.requests if r["path"] != "/v1/ping"]


def run(fake_or_path, *argv):
    """Run batchctl in-process; return (exit code, stdout, stderr)."""
    path = fake_or_path if isinstance(fake_or_path, str) else fake_or_path.path
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["--socket", path, *argv], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


# -- Client.request ---------------------------------------------------------------------------
def test_request_ok_sends_json_and_query(fake):
    fake.routes[("POST", "/v1/things")] = (201, {"ok": True})
    fake.routes[("GET", "/v1/things")] = (200, {"items": [1, 2]})
    c = Client(fake.path)
    assert c.request("POST", "/v1/things", body={"name": "é"}) == {"ok": True}
    assert c.request("GET", "/v1/things", query={"state": "FAILED", "after": None,
                                                 "limit": 1000}) == {"items": [1, 2]}
    post, get = fake.requests
    assert post["body"] == {"name": "é"}
    assert post["headers"]["Content-Type"].startswith("application/json")
    assert get["query"] == {"state": "FAILED", "limit": "1000"}


def test_empty_success_body_is_empty_dict(fake):
    fake.routes[("POST", "/v1/x")] = (200, b"")
    assert Client(fake.path).post("/v1/x") == {}


@pytest.mark.parametrize("code,status,exit_code", [
    ("invalid_input", 400, 2), ("not_found", 404, 5), ("conflict", 409, 6),
    ("permission_denied", 403, 4), ("backend_error", 502, 7), ("unavailable", 503, 8),
    ("payload_too_large", 413, 2), ("internal", 500, 1), ("something_new", 418, 1),
])
def test_error_body_maps_to_exit_code(fake, code, status, exit_code):
    fake.routes[("GET", "/v1/x")] = (status, {"error": {"code": code, "message": "the message",
                                                        "details": {"line": 3}}})
    with pytest.raises(CtlError) as info:
        Client(fake.path).get("/v1/x")
    err = info.value
    assert err.exit_code == exit_code
    assert err.code == code
    assert err.http_status == status
    if code == "permission_denied":
        assert err.message == "not allowed: the message"
    else:
        assert err.message == "the message"


@pytest.mark.parametrize("status,exit_code", [(413, 2), (503, 8), (500, 1), (404, 5)])
def test_error_without_json_body_maps_by_status(fake, status, exit_code):
    fake.routes[("GET", "/v1/x")] = (status, b"plain text")
    with pytest.raises(CtlError) as info:
        Client(fake.path).get("/v1/x")
    assert info.value.exit_code == exit_code


def test_success_body_not_json_is_exit_1(fake):
    fake.routes[("GET", "/v1/x")] = (200, b"<html>")
    with pytest.raises(CtlError) as info:
        Client(fake.path).get("/v1/x")
    assert info.value.exit_code == 1
    assert "cannot read" in info.value.message


def test_missing_socket_exit_3(sockdir):
    path = os.path.join(sockdir, "nothing.sock")
    with pytest.raises(CtlError) as info:
        Client(path).get("/v1/ping")
    assert info.value.exit_code == 3
    assert info.value.message == (
        f"batchd is not running (no daemon answers on {path}). Start it with `batchd` or "
        "`systemctl start batchd`, or point batchctl at the right socket with --socket / "
        "BATCHD_SOCKET.")


def test_stale_socket_file_exit_3(sockdir):
    path = os.path.join(sockdir, "stale.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()  # the file stays, nobody listens: ECONNREFUSED
    assert os.path.exists(path)
    with pytest.raises(CtlError) as info:
        Client(path).get("/v1/ping")
    assert info.value.exit_code == 3
    assert "batchd is not running" in info.value.message


def test_socket_path_too_long_is_usage_error(sockdir):
    path = os.path.join(sockdir, "x" * 200 + ".sock")
    with pytest.raises(CtlError) as info:
        Client(path).get("/v1/ping")
    assert info.value.exit_code in (2, 3)  # "too long" on Linux


def test_eacces_mapping(monkeypatch, sockdir):
    def deny(self, address):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(socket.socket, "connect", deny)
    path = os.path.join(sockdir, "x.sock")
    with pytest.raises(CtlError) as info:
        Client(path).get("/v1/ping")
    assert info.value.exit_code == 4
    assert info.value.message == (
        f"cannot open the batchd socket {path}: permission denied. Ask an admin to add you "
        "to the `batchd` group (then log in again).")


def _request_as(uid, gid, path):
    """Fork, drop to uid/gid, try the request; return (exit code, message) from the child."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: no pytest machinery past this point
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            try:
                Client(path, timeout=5).get("/v1/ping")
                result = {"exit_code": 0, "message": "ok"}
            except CtlError as exc:
                result = {"exit_code": exc.exit_code, "message": exc.message}
            os.write(w, json.dumps(result).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as fh:
        data = fh.read()
    os.waitpid(pid, 0)
    result = json.loads(data)
    return result["exit_code"], result["message"]


def test_permission_denied_socket_exit_4(fake):
    fake.routes[("GET", "/v1/ping")] = (200, {"version": "x"})
    os.chmod(fake.path, 0o000)
    if os.geteuid() == 0:
        # root ignores file modes: drop to `nobody` in a forked child for the check
        exit_code, message = _request_as(65534, 65534, fake.path)
    else:
        with pytest.raises(CtlError) as info:
            Client(fake.path).get("/v1/ping")
        exit_code, message = info.value.exit_code, info.value.message
    assert exit_code == 4, message
    assert "permission denied" in message and "`batchd` group" in message


def test_timeout_exit_1(fake):
    def slow(handler):
        time.sleep(1.5)
        return 200, {}

    fake.routes[("GET", "/v1/slow")] = slow
    start = time.monotonic()
    with pytest.raises(CtlError) as info:
        Client(fake.path, timeout=0.3).get("/v1/slow")
    assert time.monotonic() - start < 1.2
    assert info.value.exit_code == 1
    assert "did not answer within 0.3 s" in info.value.message
    assert "--request-timeout" in info.value.message


def test_connection_closed_without_answer_exit_8(fake):
    def hang_up(handler):
        handler.close_connection = True
        handler.wfile.flush()
        handler.connection.shutdown(socket.SHUT_RDWR)
        return None

    fake.routes[("GET", "/v1/x")] = hang_up
    with pytest.raises(CtlError) as info:
        Client(fake.path).get("/v1/x")
    assert info.value.exit_code == 8
    assert "closed the connection" in info.value.message


# -- socket path resolution --------------------------------------------------------------------
def test_default_socket_path_order(tmp_path):
    system = tmp_path / "system.sock"
    env = {"XDG_RUNTIME_DIR": "/run/user/1000"}
    assert client.default_socket_path(env, uid=1000, system_socket=str(system)) == \
        "/run/user/1000/batchd/batchd.sock"
    assert client.default_socket_path({}, uid=1000, system_socket=str(system)) == \
        "/tmp/batchd-1000/batchd.sock"
    assert client.default_socket_path({"XDG_RUNTIME_DIR": ""}, uid=7,
                                      system_socket=str(system)) == "/tmp/batchd-7/batchd.sock"
    system.touch()
    assert client.default_socket_path(env, uid=1000, system_socket=str(system)) == str(system)


def test_default_socket_path_uses_real_uid(monkeypatch):
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    if os.path.exists(client.SYSTEM_SOCKET):
        pytest.skip("a system batchd socket exists on this machine")
    assert client.default_socket_path() == f"/tmp/batchd-{os.getuid()}/batchd.sock"


def test_resolve_socket_path_precedence():
    env = {"BATCHD_SOCKET": "/env.sock", "XDG_RUNTIME_DIR": "/xdg"}
    assert client.resolve_socket_path("/flag.sock", env) == "/flag.sock"
    assert client.resolve_socket_path(None, env) == "/env.sock"
    assert client.resolve_socket_path(None, {"XDG_RUNTIME_DIR": "/xdg"}).startswith(
        ("/xdg/", client.SYSTEM_SOCKET))


def test_cli_uses_batchd_socket_env(monkeypatch, sockdir):
    path = os.path.join(sockdir, "env.sock")
    monkeypatch.setenv("BATCHD_SOCKET", path)
    err = io.StringIO()
    assert cli.main(["ping"], out=io.StringIO(), err=err) == 3
    assert path in err.getvalue()


# -- commands in-process against the fake daemon -----------------------------------------------
STATUS = {"project": "myproj", "workflow": "FAMLI", "status": "RUNNING",
          "submitted_at": "2024-05-01T12:00:00Z", "total": 4,
          "counts": {"RUNNING": 1, "COMPLETED": 2, "FAILED": 1},
          "steps": [{"step": 0, "description": "famli", "job_definition": "famli:1",
                     "queue": "q", "counts": {"RUNNING": 1, "COMPLETED": 2, "FAILED": 1}}]}
WF = "/v1/projects/myproj/workflows/FAMLI"


def test_ping(fake):
    fake.routes[("GET", "/v1/ping")] = (200, {"version": "0.1.0", "backend": "local",
                                              "pid": 42, "started_at": "x"})
    code, out, err = run(fake, "ping")
    assert code == 0, err
    assert out.strip() == f"batchd 0.1.0 is running (backend local, pid 42, socket {fake.path})"


def test_import_sends_text_and_prints_summary(fake, tmp_path):
    fake.routes[("POST", "/v1/projects")] = (201, {"project": {
        "name": "myproj", "samples": 12345, "columns": ["sample_name", "file_name"]}})
    csv = tmp_path / "samples.csv"
    csv.write_bytes(b"\xef\xbb\xbfsample_name,file_name\ns\xc3\xa9,f.fastq\n")
    code, out, err = run(fake, "import", "myproj", "--metadata", str(csv))
    assert code == 0, err
    assert out.strip() == ("Imported project myproj: 12,345 samples "
                           "(columns: sample_name, file_name)")
    request = sent(fake)[0]
    assert request["body"] == "sample_name,file_name\nsé,f.fastq\n"     # the BOM dropped
    assert request["headers"]["Content-Type"] == "text/csv; charset=utf-8"
    assert unquote(request["headers"]["X-Batchd-Filename"]) == str(csv)
    assert request["query"] == {"name": "myproj", "sample_col": "sample_name",
                                "file_col": "file_name"}


def test_import_not_utf8_fails_locally(fake, tmp_path):
    csv = tmp_path / "latin1.csv"
    csv.write_bytes(b"sample_name,file_name\nok,a\ncaf\xe9,b\n")
    code, out, err = run(fake, "import", "p", "--metadata", str(csv))
    assert code == 2
    assert err.strip() == (f"{csv}: line 3 is not valid UTF-8 (byte offset 30); "
                           "save the file as UTF-8")
    assert fake.requests == []


def test_import_missing_file(fake):
    code, _, err = run(fake, "import", "p", "--metadata", "/nonexistent.csv")
    assert code == 2 and "no such file" in err


def test_import_error_from_daemon_shown_as_is(fake, tmp_path):
    fake.routes[("POST", "/v1/projects")] = (409, {"error": {
        "code": "conflict", "message": "project p already exists"}})
    csv = tmp_path / "s.csv"
    csv.write_text("sample_name,file_name\n")
    code, out, err = run(fake, "import", "p", "--metadata", str(csv))
    assert (code, out, err.strip()) == (6, "", "project p already exists")
    assert "Traceback" not in err


def test_create_sends_base_dir(fake, tmp_path, monkeypatch):
    fake.routes[("POST", "/v1/projects/myproj/workflows")] = (201, {"workflow": {
        "project": "myproj", "name": "FAMLI", "steps": 2, "jobs": 2000}})
    (tmp_path / "defs").mkdir()
    (tmp_path / "defs" / "famli.json").write_text('{"workflow_name": "FAMLI"}')
    monkeypatch.chdir(tmp_path)
    code, out, err = run(fake, "create", "myproj", "--definition", "defs/famli.json")
    assert code == 0, err
    assert out.splitlines()[0] == "Created workflow myproj/FAMLI: 2 steps, 2,000 jobs"
    body = sent(fake)[0]["body"]
    assert body == {"definition": '{"workflow_name": "FAMLI"}',
                    "definition_filename": "defs/famli.json",
                    "base_dir": str(tmp_path / "defs")}


@pytest.mark.parametrize("target", ["myproj/FAMLI", "myproj/FAMLI.json",
                                    "./myproj/FAMLI.json", "/data/runs/myproj/FAMLI.json"])
def test_submit_target_forms(fake, target):
    fake.routes[("POST", WF + "/submit")] = (200, {"workflow": STATUS, "released": 3})
    code, out, err = run(fake, "submit", target)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("Submitted myproj/FAMLI: 3 jobs released")
    assert "batchctl status myproj/FAMLI" in lines[1]


def test_submit_bad_target(fake):
    code, _, err = run(fake, "submit", "justaname")
    assert code == 2 and "PROJECT/WORKFLOW" in err


def test_names_are_url_quoted(fake):
    fake.routes[("GET", "/v1/projects/my%20proj/workflows/a%3Fb")] = (200, STATUS)
    code, _, err = run(fake, "status", "my proj/a?b")
    assert code == 0, err


def test_status_table(fake):
    fake.routes[("GET", WF)] = (200, STATUS)
    code, out, err = run(fake, "status", "myproj/FAMLI")
    assert code == 0, err
    assert out.startswith("myproj/FAMLI  RUNNING  4 jobs")
    assert "COMPLETED" in out and "TOTAL" in out


def test_status_json_is_raw(fake):
    fake.routes[("GET", WF)] = (200, STATUS)
    code, out, _ = run(fake, "status", "myproj/FAMLI", "--json")
    assert code == 0 and json.loads(out) == STATUS


def test_status_failed_workflow_exit_0_without_watch(fake):
    fake.routes[("GET", WF)] = (200, dict(STATUS, status="FAILED"))
    assert run(fake, "status", "myproj/FAMLI")[0] == 0


def _paged_jobs(handler):
    query = {k: v[0] for k, v in parse_qs(urlsplit(handler.path).query).items()}
    if query.get("after") is None:
        return 200, {"jobs": [{"sample": "a", "step": 0, "state": "FAILED", "attempt": 2,
                               "job_id": "j1", "reason": "boom", "failure_class": "oom",
                               "exit_code": 137, "skipped": 0}], "next": "cursor-1"}
    return 200, {"jobs": [{"sample": "b", "step": 0, "state": "FAILED", "attempt": 1,
                           "job_id": "j2", "reason": None, "failure_class": None,
                           "exit_code": 1, "skipped": 0}], "next": None}


def test_status_jobs_follows_cursor_with_filters(fake):
    fake.routes[("GET", WF)] = (200, STATUS)
    fake.routes[("GET", WF + "/jobs")] = _paged_jobs
    code, out, err = run(fake, "status", "myproj/FAMLI", "--state", "failed", "--step", "0")
    assert code == 0, err
    pages = [r["query"] for r in fake.requests if r["path"].endswith("/jobs")]
    assert pages == [{"state": "FAILED", "step": "0", "limit": "1000"},
                     {"state": "FAILED", "step": "0", "limit": "1000", "after": "cursor-1"}]
    assert "oom: boom" in out
    assert "2 jobs (state=FAILED, step=0)" in out


def test_status_jobs_json_collects_all_pages(fake):
    fake.routes[("GET", WF)] = (200, STATUS)
    fake.routes[("GET", WF + "/jobs")] = _paged_jobs
    code, out, _ = run(fake, "status", "myproj/FAMLI", "--jobs", "--json")
    assert code == 0
    assert [j["sample"] for j in json.loads(out)["jobs"]] == ["a", "b"]


def test_status_unknown_state_is_usage_error(fake):
    code, _, _ = run(fake, "status", "myproj/FAMLI", "--state", "BOGUS")
    assert code == 2


@pytest.mark.parametrize("final,exit_code", [("COMPLETED", 0), ("FAILED", 1), ("CANCELLED", 1)])
def test_status_watch_exit_code(fake, final, exit_code):
    fake.routes[("GET", WF)] = (200, dict(STATUS, status=final))
    code, out, _ = run(fake, "status", "myproj/FAMLI", "--watch", "1")
    assert code == exit_code
    assert "\033[2J" not in out  # not a TTY: no screen clearing


def test_status_watch_polls_until_terminal(fake, monkeypatch):
    answers = iter(["RUNNING", "RUNNING", "COMPLETED"])
    fake.routes[("GET", WF)] = lambda h: (200, dict(STATUS, status=next(answers)))
    monkeypatch.setattr("batchctl.commands.workflows.time.sleep", lambda s: None)
    code, out, _ = run(fake, "status", "myproj/FAMLI", "--watch", "5")
    assert code == 0
    assert out.count("myproj/FAMLI  ") == 3
    assert "refreshing every 5 s" in out


def test_dashboard(fake):
    fake.routes[("GET", "/v1/dashboard")] = (200, {"workflows": [
        {"project": "p", "workflow": "w", "status": "COMPLETED", "total": 10,
         "counts": {"COMPLETED": 10}}]})
    code, out, _ = run(fake, "dashboard")
    assert code == 0 and "1 completed workflow (10 jobs); --all to list them" in out
    code, out, _ = run(fake, "dashboard", "--all")
    assert "p/w" in out
    code, out, _ = run(fake, "dashboard", "--json")
    assert json.loads(out)["workflows"][0]["total"] == 10


def test_jobdef_register(fake, tmp_path):
    fake.routes[("POST", "/v1/jobdefs")] = (200, {"jobDefinitionName": "famli", "revision": 3,
                                                  "jobDefinitionArn": "arn:x"})
    f = tmp_path / "famli.json"
    f.write_text('{"jobDefinitionName": "famli", "type": "container"}')
    code, out, err = run(fake, "jobdef", "register", str(f))
    assert code == 0, err
    assert out.strip() == "Registered famli:3"
    assert sent(fake)[0]["body"] == {"spec": {"jobDefinitionName": "famli",
                                                 "type": "container"}, "filename": str(f)}


def test_jobdef_register_bad_json(fake, tmp_path):
    f = tmp_path / "bad.json"
    f.write_text('{\n  "a": 1,\n  "b": ,\n}')
    code, _, err = run(fake, "jobdef", "register", str(f))
    assert code == 2
    assert err.startswith(f"{f} line 3 column 8: ")
    assert fake.requests == []


def test_jobdef_list(fake):
    fake.routes[("GET", "/v1/jobdefs")] = (200, {"job_definitions": [
        {"jobDefinitionName": "famli", "revision": 3,
         "containerProperties": {"command": ["famli"], "vcpus": 4, "memory": 8000}}]})
    code, out, _ = run(fake, "jobdef", "list")
    assert code == 0 and "famli" in out and "8,000" in out


def test_jobdef_without_subcommand_is_usage(fake):
    assert run(fake, "jobdef")[0] == 2


def test_daemon_stop_waits_until_gone(fake):
    def shutdown(handler):
        threading.Timer(0.2, lambda: (fake.shutdown(), fake.server_close(),
                                      os.unlink(fake.path))).start()
        return 200, {"stopping": True}

    fake.routes[("POST", "/v1/shutdown")] = shutdown
    fake.routes[("GET", "/v1/ping")] = (503, {"error": {"code": "unavailable",
                                                        "message": "shutting down"}})
    code, out, err = run(fake, "daemon", "stop", "--request-timeout", "10")
    assert code == 0, err
    assert out.strip() == "batchd stopped"


def test_daemon_stop_no_wait(fake):
    fake.routes[("POST", "/v1/shutdown")] = (200, {"stopping": True})
    code, out, _ = run(fake, "daemon", "stop", "--no-wait")
    assert code == 0 and out.strip() == "batchd is stopping"


def test_version(fake, sockdir):
    fake.routes[("GET", "/v1/ping")] = (200, {"version": "9.9.9", "backend": "local", "pid": 1})
    code, out, _ = run(fake, "version")
    assert code == 0
    assert out.splitlines()[0].startswith("batchctl ")
    assert out.splitlines()[1] == f"batchd 9.9.9 (socket {fake.path})"
    code, out, _ = run(os.path.join(sockdir, "none.sock"), "version")
    assert code == 0 and "not running" in out


def test_ctrl_c_exits_130_quietly(fake, monkeypatch):
    def interrupted(self, path, query=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(Client, "get", interrupted)
    code, out, err = run(fake, "ping")
    assert code == 130
    assert "Traceback" not in err and "KeyboardInterrupt" not in err


def test_unexpected_error_one_line_unless_debug(fake, monkeypatch):
    def broken(self, path, query=None):
        raise RuntimeError("bug")

    monkeypatch.setattr(Client, "get", broken)
    code, _, err = run(fake, "ping")
    assert code == 1
    assert "Traceback" not in err and "RuntimeError: bug" in err and "--debug" in err
    code, _, err = run(fake, "ping", "--debug")
    assert code == 1 and "Traceback" in err


# -- the real entry point, as subprocesses -----------------------------------------------------
SUBCOMMANDS = [["import"], ["create"], ["submit"], ["status"], ["dashboard"], ["jobdef"],
               ["jobdef", "register"], ["jobdef", "list"], ["ping"], ["version"], ["daemon"],
               ["daemon", "stop"]]


def batchctl(*argv, env=None):
    full_env = dict(os.environ, PYTHONPATH=str(REPO), **(env or {}))
    return subprocess.run([sys.executable, "-m", "batchctl", *argv], cwd=REPO, env=full_env,
                          capture_output=True, text=True, timeout=60)


def test_top_level_help():
    proc = batchctl("--help")
    assert proc.returncode == 0, proc.stderr
    for name in ("import", "create", "submit", "status", "dashboard", "jobdef", "ping",
                 "version", "daemon"):
        assert f"\n    {name} " in proc.stdout
    assert "exit codes:" in proc.stdout
    for code in range(9):
        assert f"\n  {code}  " in proc.stdout


@pytest.mark.parametrize("sub", SUBCOMMANDS, ids=" ".join)
def test_subcommand_help_has_example(sub):
    proc = batchctl(*sub, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "example:\n  batchctl " + sub[0] in proc.stdout
    assert "--socket" in proc.stdout  # global flags work after the sub-command too


def test_ping_nonexistent_socket_subprocess():
    proc = batchctl("ping", "--socket", "/nonexistent")
    assert proc.returncode == 3
    assert proc.stdout == ""
    assert proc.stderr.strip() == (
        "batchd is not running (no daemon answers on /nonexistent). Start it with `batchd` or "
        "`systemctl start batchd`, or point batchctl at the right socket with --socket / "
        "BATCHD_SOCKET.")
    assert "Traceback" not in proc.stderr


def test_global_flags_before_subcommand_subprocess():
    proc = batchctl("--socket", "/nonexistent", "status", "p/w")
    assert proc.returncode == 3 and "/nonexistent" in proc.stderr


# What each command word loads: batchctl's shared modules plus the one command module the
# registry's table names; `--help` (every command listed) loads them all.
BASE_MODULES = {"batchctl", "batchctl.cli", "batchctl.client", "batchshared",
                "batchshared.exitcodes",
                "batchctl.registry", "batchctl.commands"}
RENDERING = {"batchctl.render", "batchctl.util", "batchshared.model"}


IMPORT_CASES = {
    "ping": (["ping"], BASE_MODULES | {"batchctl.commands.info"}),
    "version": (["version"], BASE_MODULES | {"batchctl.commands.info"}),
    "status": (["status", "p/w"], BASE_MODULES | RENDERING | {"batchctl.commands.workflows"}),
    "daemon status": (["daemon", "status"],
                      BASE_MODULES | RENDERING | {"batchctl.commands.daemon"}),
    "cancel": (["cancel", "p/w", "--reason", "r", "--yes"],
               BASE_MODULES | RENDERING | {"batchctl.commands.jobs"}),
    "--help": (["--help"], BASE_MODULES | RENDERING | {
        "batchctl.commands." + name for name in ("workflows", "jobs", "jobdef", "daemon", "info")}),
}
# Loaded by none of them (what a bare interpreter already has is not counted).
HEAVY = ("aiohttp", "structlog", "botocore", "aiobotocore", "asyncio", "http.client", "typing",
         "dataclasses", "importlib.metadata")


@pytest.mark.parametrize("case", IMPORT_CASES)
def test_cli_imports_only_the_command_typed(case):
    argv, loaded = IMPORT_CASES[case]
    code = ("import sys; bare = set(sys.modules); from batchctl.cli import main; "
            f"main({['--socket', '/nonexistent/batchd.sock', *argv]!r}); import json; "
            f"heavy = [m for m in {HEAVY!r} if m in sys.modules and m not in bare]; "
            "ours = sorted(m for m in sys.modules "
            "if m.partition('.')[0] in ('batchctl', 'batchd', 'batchshared'))"
            "; print(json.dumps([heavy, ours]), file=sys.__stdout__)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=60)
    assert proc.returncode == 0, proc.stderr
    heavy, ours = json.loads(proc.stdout.strip().splitlines()[-1])
    assert heavy == []
    assert ours == sorted(loaded)


# -- the small HTTP reader used instead of http.client (start-up time) ------------------------
def _answer(raw: bytes, *, split: int = 7):
    """read_http_answer over a real socket pair, the answer arriving in small pieces."""
    import socket as _socket
    import threading

    from batchctl.client import read_http_answer

    ours, theirs = _socket.socketpair()
    ours.settimeout(5)

    def send() -> None:
        for i in range(0, len(raw), split):
            theirs.sendall(raw[i:i + split])
        theirs.close()

    sender = threading.Thread(target=send)
    sender.start()
    try:
        return read_http_answer(ours)
    finally:
        sender.join()
        ours.close()


def test_http_answer_content_length_ignores_what_follows():
    body = b'{"ok": true}'
    raw = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
           + str(len(body)).encode() + b"\r\n\r\n" + body + b"trailing garbage")
    assert _answer(raw) == (200, body)


def test_http_answer_chunked():
    raw = (b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\n\r\n")
    assert _answer(raw, split=3) == (404, b"hello world")


def test_http_answer_until_closed():
    assert _answer(b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\n{}") == (200, b"{}")


@pytest.mark.parametrize("raw", [
    b"",                                                            # closed at once
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",          # closed mid-body
    b"SSH-2.0-OpenSSH_9.6\r\n\r\n",                                 # not HTTP
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",   # bad chunk size
])
def test_http_answer_broken_is_bad_answer(raw):
    from batchctl.client import BadAnswer
    with pytest.raises(BadAnswer):
        _answer(raw)


def test_a_connection_closed_mid_upload_says_the_request_is_probably_too_large(sockdir):
    """What a daemon that stops reading an oversized body and closes without an answer looks
    like: a broken pipe while sending, then a reset or end of stream instead of the 413."""
    path = os.path.join(sockdir, "closer.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)

    def take_the_head_and_hang_up():
        conn, _ = server.accept()
        conn.recv(4096)
        conn.close()     # unread data in its queue: the client's next send or read fails

    thread = threading.Thread(target=take_the_head_and_hang_up, daemon=True)
    thread.start()
    try:
        with pytest.raises(CtlError) as info:
            Client(path, timeout=30).post("/v1/projects", {"metadata": "x" * (16 << 20)})
    finally:
        thread.join(10)
        server.close()
    assert info.value.exit_code == 8
    assert "before batchctl had sent the 16,777,232-byte request" in info.value.message
    assert "probably larger than the daemon accepts" in info.value.message
