"""moto's server in a thread, with Batch in its no-Docker mode: shared by the e2e tests that
prove batchd's requests are accepted by an independent implementation (see
../shared/reference/moto-notes.md)."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def moto_server_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        request = urllib.request.Request(
            f"{url}/moto-api/config", data=json.dumps({"batch": {"use_docker": False}}).encode(),
            method="POST", headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=10).read()
        yield url
    finally:
        server.stop()
