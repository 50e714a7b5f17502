"""GET a path from batchd's socket and return (status, text): for the endpoints that are not
JSON (/metrics) or whose error status is the point (/healthz)."""

from __future__ import annotations

from pathlib import Path

from batchctl.client import unix_http_connection


def get(socket_path: Path | str, path: str, timeout: float = 30.0) -> tuple[int, str]:
    conn = unix_http_connection(str(socket_path), timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": "batchd"})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()
