"""A tiny HTTP/JSON client for the batchd control API over its Unix socket.

Standard library only: `batchctl status` must answer in well under 100 ms, so nothing heavy
(aiohttp, structlog, botocore) may be imported here. Every failure a user can meet is turned
into a `CtlError` whose message says what to do and whose `exit_code` is one of
`batchshared/exitcodes.py` (the documented contract).
"""

from __future__ import annotations

import errno
import json
import os
import socket
from urllib.parse import quote, urlencode

from batchshared.exitcodes import (
    BY_API_CODE,
    BY_HTTP_STATUS,
    EXIT_ERROR,
    EXIT_NOT_RUNNING,
    EXIT_PERMISSION,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~4 ms at start-up; annotations are strings anyway
    from collections.abc import Iterator, Mapping
    from typing import Any

SYSTEM_SOCKET = "/run/batchd/batchd.sock"
DEFAULT_TIMEOUT = 60.0  # importing 100,000 samples takes a few seconds; be generous

# Files bigger than this are checked against the daemon's limit before they are read.
PRECHECK_BYTES = 1024 * 1024

# Said after "this request accepts at most N bytes (setting S)", as the daemon says it.
TOO_LARGE_HINT = "split the file, or ask an admin to raise that setting"


def too_large_message(what: str, size: int, limit: int, setting: str) -> str:
    return (f"{what} is {size:,} bytes; this request accepts at most {limit:,} bytes "
            f"(setting {setting}); {TOO_LARGE_HINT}")


class CtlError(Exception):
    """A failure to show the user as a one-line message (no traceback) with an exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR, *, code: str | None = None,
                 http_status: int | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.code = code  # the API's error code, when the daemon sent one
        self.http_status = http_status
        self.details = details

    def __str__(self) -> str:
        return self.message


def default_socket_path(environ: Mapping[str, str] | None = None, uid: int | None = None,
                        system_socket: str = SYSTEM_SOCKET) -> str:
    """Where batchd listens when nobody said otherwise (shared by batchd and batchctl).

    `/run/batchd/batchd.sock` if it exists (the system service), else
    `$XDG_RUNTIME_DIR/batchd/batchd.sock` if XDG_RUNTIME_DIR is set, else
    `/tmp/batchd-<uid>/batchd.sock`. The `--socket` flag and `BATCHD_SOCKET` are handled by the
    caller (`resolve_socket_path` here, the settings layers in the daemon) so that each program
    keeps its own precedence rules.
    """
    env = os.environ if environ is None else environ
    if os.path.exists(system_socket):
        return system_socket
    runtime_dir = env.get("XDG_RUNTIME_DIR")
    if runtime_dir:
        return os.path.join(runtime_dir, "batchd", "batchd.sock")
    return f"/tmp/batchd-{os.getuid() if uid is None else uid}/batchd.sock"


def resolve_socket_path(flag: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """`--socket` flag > `BATCHD_SOCKET` > `default_socket_path()`."""
    env = os.environ if environ is None else environ
    return flag or env.get("BATCHD_SOCKET") or default_socket_path(env)


def path_segment(value: str) -> str:
    """Quote one URL path segment (a project or workflow name)."""
    return quote(str(value), safe="")


def unix_http_connection(socket_path: str, timeout: float | None = DEFAULT_TIMEOUT):
    """An http.client connection to a Unix socket (for streamed answers; http.client costs
    ~25 ms to import, so the JSON requests do not use it)."""
    import http.client

    class UnixHTTPConnection(http.client.HTTPConnection):
        def __init__(self) -> None:
            super().__init__("localhost", timeout=timeout)

        def connect(self) -> None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(self.timeout)
                sock.connect(socket_path)
            except BaseException:
                sock.close()
                raise
            self.sock = sock

    return UnixHTTPConnection()


class BadAnswer(ConnectionError):
    """The daemon closed the connection early or sent something that is not HTTP."""


def _recv_more(sock: socket.socket, buf: bytearray) -> None:
    data = sock.recv(65536)
    if not data:
        raise BadAnswer("connection closed before the answer was complete")
    buf += data


def read_http_answer(sock: socket.socket) -> tuple[int, bytes]:
    """(status, body) of one HTTP/1.1 answer: Content-Length, chunked, or until closed."""
    buf = bytearray()
    while (end := buf.find(b"\r\n\r\n")) < 0:
        _recv_more(sock, buf)
    lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
    del buf[:end + 4]
    version, _, rest = lines[0].partition(" ")
    code = rest.partition(" ")[0]
    if not version.startswith("HTTP/") or not code.isdigit():
        raise BadAnswer(f"not an HTTP answer: {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = bytearray()
        while True:
            while (eol := buf.find(b"\r\n")) < 0:
                _recv_more(sock, buf)
            try:
                size = int(bytes(buf[:eol]).split(b";")[0], 16)
            except ValueError as exc:
                raise BadAnswer("malformed chunked answer") from exc
            while len(buf) < eol + 2 + size + 2:
                _recv_more(sock, buf)
            body += buf[eol + 2:eol + 2 + size]
            del buf[:eol + 2 + size + 2]
            if size == 0:
                return int(code), bytes(body)
    if "content-length" in headers:
        try:
            length = int(headers["content-length"])
        except ValueError as exc:
            raise BadAnswer("malformed Content-Length") from exc
        while len(buf) < length:
            _recv_more(sock, buf)
        return int(code), bytes(buf[:length])
    while data := sock.recv(65536):
        buf += data
    return int(code), bytes(buf)


def not_running_message(socket_path: str) -> str:
    return (f"batchd is not running (no daemon answers on {socket_path}). Start it with "
            "`batchd` or `systemctl start batchd`, or point batchctl at the right socket with "
            "--socket / BATCHD_SOCKET.")


def permission_message(socket_path: str) -> str:
    return (f"cannot open the batchd socket {socket_path}: permission denied. Ask an admin to "
            "add you to the `batchd` group (then log in again).")


def _fmt_seconds(seconds: float) -> str:
    return f"{seconds:g} s"


class Client:
    """Send one JSON request per call to batchd and return the decoded JSON answer."""

    def __init__(self, socket_path: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self._limits: dict | None = None

    # -- uploads ----------------------------------------------------------------------------
    def upload_limit(self, kind: str) -> tuple[int, str] | None:
        """(bytes, setting) the daemon accepts in the body of a `kind` upload ("metadata",
        "definition", "jobdef"), asked once from /v1/ping; None if the daemon does not say."""
        if self._limits is None:
            try:
                limits = self.get("/v1/ping").get("limits")
            except CtlError:  # the request itself will meet (and report) the same trouble
                limits = None
            self._limits = limits if isinstance(limits, dict) else {}
        key = f"{kind}_bytes"
        route, overall = self._limits.get(key), self._limits.get("request_bytes")
        if not isinstance(route, int):
            return None
        if isinstance(overall, int) and overall < route:
            return overall, "max_request_bytes"
        return route, f"limits.{key}"

    def check_upload(self, kind: str, size: int, what: str = "the request body") -> None:
        """Refuse here what the daemon would refuse with 413: sending it costs the time to read
        and encode it, and a daemon that answers before reading it all may reset the
        connection before batchctl reads the answer."""
        limit = self.upload_limit(kind)
        if limit is not None and size > limit[0]:
            raise CtlError(too_large_message(what, size, *limit), EXIT_USAGE,
                           code="payload_too_large", http_status=413)

    def check_file(self, kind: str, path: str) -> None:
        """A big file already over the limit is refused before it is read (its JSON encoding
        is never smaller). A small one is read and checked locally first (UTF-8...) and its
        body checked before sending; one that cannot be stat'ed is left to the reader."""
        try:
            size = os.stat(path).st_size
        except OSError:
            return
        if size > PRECHECK_BYTES:
            self.check_upload(kind, size, path)

    # -- public ---------------------------------------------------------------------------
    def request(self, method: str, path: str, body: Any = None,
                query: Mapping[str, Any] | None = None, upload: str | None = None,
                raw: bytes | None = None, headers: Mapping[str, str] | None = None) -> dict:
        """`method path` with an optional JSON `body` (or `raw` bytes, whose Content-Type is
        in `headers`) and `query`; return the JSON answer. `upload` names the kind of file
        the body carries, to check it against its limit.

        Raises `CtlError` (with the exit code of the contract) for every failure.
        """
        url = path
        if query:
            pairs = [(k, v) for k, v in query.items() if v is not None]
            if pairs:
                url = f"{path}?{urlencode(pairs)}"
        sent_headers = {"Accept": "application/json", "Host": "batchd", **(headers or {})}
        payload: bytes | None = None
        if raw is not None:
            payload = raw
        elif body is not None:
            payload = json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")
            sent_headers["Content-Type"] = "application/json; charset=utf-8"
        elif method.upper() in ("POST", "PUT", "PATCH"):
            payload = b""
        if upload is not None and payload:
            self.check_upload(upload, len(payload))
        status, answer = self._exchange(method.upper(), url, payload, sent_headers)
        return self._decode(status, answer)

    def stream(self, path: str, query: Mapping[str, Any] | None = None,
               chunk: int = 65536) -> Iterator[bytes]:
        """GET a plain-text answer (logs) chunk by chunk, without holding it all in memory."""
        pairs = [(k, v) for k, v in (query or {}).items() if v is not None]
        url = f"{path}?{urlencode(pairs)}" if pairs else path
        import http.client
        conn = unix_http_connection(self.socket_path, timeout=self.timeout)
        try:
            try:
                conn.connect()
            except OSError as exc:
                raise self._connect_error(exc) from exc
            conn.request("GET", url, headers={"Host": "batchd"})
            response = conn.getresponse()
            if response.status != 200:
                self._decode(response.status, response.read())
            while True:
                data = response.read(chunk)
                if not data:
                    return
                yield data
        except TimeoutError as exc:
            raise CtlError(f"batchd stopped sending ({path}) for {_fmt_seconds(self.timeout)}",
                           EXIT_ERROR) from exc
        except (http.client.HTTPException, ConnectionError) as exc:
            raise CtlError(f"batchd closed the connection while sending {path}",
                           EXIT_UNAVAILABLE) from exc
        finally:
            conn.close()

    def get(self, path: str, query: Mapping[str, Any] | None = None) -> dict:
        return self.request("GET", path, query=query)

    def post(self, path: str, body: Any = None, upload: str | None = None) -> dict:
        return self.request("POST", path, body=body, upload=upload)

    # -- internals ------------------------------------------------------------------------
    def _exchange(self, method: str, url: str, payload: bytes | None,
                  headers: dict[str, str]) -> tuple[int, bytes]:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            try:
                sock.connect(self.socket_path)
            except OSError as exc:
                raise self._connect_error(exc) from exc
            head = [f"{method} {url} HTTP/1.1"]
            head += [f"{name}: {value}" for name, value in headers.items()]
            if payload is not None:
                head.append(f"Content-Length: {len(payload)}")
            head.append("Connection: close")
            request = ("\r\n".join(head) + "\r\n\r\n").encode("utf-8") + (payload or b"")
            cut_short = False
            try:
                sock.sendall(request)
            except (BrokenPipeError, ConnectionResetError):
                # The daemon may have answered early (e.g. 413 payload too large) and closed:
                # read that answer if there is one, else report the lost connection below.
                cut_short = True
            try:
                return read_http_answer(sock)
            except ConnectionError as exc:
                if cut_short and payload:
                    raise CtlError(
                        f"batchd closed the connection on {self.socket_path} before batchctl "
                        f"had sent the {len(payload):,}-byte request ({method} "
                        f"{url.split('?')[0]}), without an answer: the request is probably "
                        "larger than the daemon accepts (its [limits] settings), or the daemon "
                        "is shutting down.", EXIT_UNAVAILABLE) from exc
                raise
        except TimeoutError as exc:
            raise CtlError(
                f"batchd did not answer within {_fmt_seconds(self.timeout)} "
                f"({method} {url.split('?')[0]}). "
                "It may be busy (a big import takes a few seconds) or stuck; retry with a longer "
                "--request-timeout, and check the daemon's log if it keeps happening.",
                EXIT_ERROR) from exc
        except ConnectionError as exc:
            raise CtlError(
                f"batchd closed the connection on {self.socket_path} without answering "
                f"({method} {url.split('?')[0]}): it may be shutting down or have crashed; "
                "check its log (`journalctl -u batchd` for the system service).",
                EXIT_UNAVAILABLE) from exc
        except OSError as exc:
            raise CtlError(f"talking to batchd on {self.socket_path} failed: "
                           f"{exc.strerror or exc}", EXIT_ERROR) from exc
        finally:
            sock.close()

    def _connect_error(self, exc: OSError) -> CtlError:
        path = self.socket_path
        if isinstance(exc, TimeoutError):
            return CtlError(f"batchd did not accept the connection on {path} within "
                            f"{_fmt_seconds(self.timeout)}; it may be overloaded or stuck.",
                            EXIT_ERROR)
        if exc.errno in (errno.ENOENT, errno.ECONNREFUSED, errno.ENOTDIR, errno.ENOTSOCK):
            return CtlError(not_running_message(path), EXIT_NOT_RUNNING)
        if exc.errno in (errno.EACCES, errno.EPERM):
            return CtlError(permission_message(path), EXIT_PERMISSION)
        if exc.errno is None and "too long" in str(exc):
            return CtlError(f"the socket path {path} is too long for a Unix socket "
                            "(at most 107 bytes); use a shorter --socket / BATCHD_SOCKET.",
                            EXIT_USAGE)
        return CtlError(f"cannot connect to batchd on {path}: {exc.strerror or exc}", EXIT_ERROR)

    def _decode(self, status: int, raw: bytes) -> dict:
        text = raw.decode("utf-8", "replace")
        data: Any = None
        if text.strip():
            try:
                data = json.loads(text)
            except ValueError:
                data = None
        if 200 <= status < 300:
            if data is None and not text.strip():
                return {}
            if not isinstance(data, dict):
                raise CtlError(f"batchd sent an answer batchctl cannot read (HTTP {status}): "
                               f"{text[:200]!r}", EXIT_ERROR, http_status=status)
            return data
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict) and error.get("message"):
            code = str(error.get("code") or "")
            message = str(error["message"])
            exit_code = BY_API_CODE.get(code, EXIT_ERROR)
            if code == "permission_denied" and not message.lower().startswith("not allowed"):
                message = f"not allowed: {message}"
            raise CtlError(message, exit_code, code=code or None, http_status=status,
                           details=error.get("details"))
        exit_code = BY_HTTP_STATUS.get(status, EXIT_ERROR)
        if status == 413:
            message = ("the request is too large for batchd (HTTP 413); split the file or ask "
                       "an admin to raise the daemon's request size limit.")
        else:
            snippet = text.strip()[:200] or "(empty answer)"
            message = f"batchd answered HTTP {status}: {snippet}"
        raise CtlError(message, exit_code, http_status=status)
