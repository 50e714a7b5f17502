"""`python -m tests.bench.oversized`: how fast a real daemon answers oversized requests, and what
they cost everyone else (pings answered meanwhile). A measurement, not a test: it prints
figures (target: an answer within 100 ms) and asserts nothing.

Each request is sent on a raw Unix socket: the head first, then the body by a second thread,
while the main thread waits for the answer, so "answered after" is the time from the first
byte sent to the first byte of the answer and "sent" says how much of the body had been pushed
by then, head included (a 413 from Content-Length comes before the body is read).

examples:
  python -m tests.bench.oversized                 # 50 MB names, 100 MB bodies, 5 rounds
  python -m tests.bench.oversized --rounds 10 --json oversized.json
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import threading
import time
from collections.abc import Iterator

from tests.daemon_harness import new_daemon

MB = 1024 * 1024


def _answer(sock: socket.socket) -> tuple[int, float]:
    """(status, seconds) when the answer's first line arrives."""
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    at = time.perf_counter()
    parts = data.split(b" ", 2)
    return (int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0), at


def timed(path: str, head: bytes, body: Iterator[bytes]) -> dict:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(120)
    sock.connect(path)
    sent = [0]

    def send() -> None:
        try:
            for chunk in _then(head, body):
                view = memoryview(chunk)
                for at in range(0, len(view), MB):  # counted as it goes, in 1 MB pieces
                    sock.sendall(view[at:at + MB])
                    sent[0] += len(view[at:at + MB])
        except OSError:
            pass  # the daemon answered and closed: that is the point

    start = time.perf_counter()
    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        status, at = _answer(sock)
    except OSError:
        status, at = 0, time.perf_counter()
    sent_when_answered = sent[0]
    sock.close()
    sender.join(30)
    return {"status": status, "ms": (at - start) * 1000, "sent_mb": sent_when_answered / MB}


def _then(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def _chunks(total: int, piece: bytes = b"x" * MB) -> Iterator[bytes]:
    for _ in range(total // len(piece)):
        yield piece


def _chunked(total: int) -> Iterator[bytes]:
    for chunk in _chunks(total):
        yield b"%x\r\n%s\r\n" % (len(chunk), chunk)
    yield b"0\r\n\r\n"


def _head(method: str, target: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: batchd", *(f"{k}: {v}" for k, v in
                                                              headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def cases(name_mb: int, body_mb: int) -> dict[str, tuple[bytes, Iterator[bytes]]]:
    name = b"p" * (name_mb * MB)
    in_body = b'{"name": "' + name + b'", "metadata": "sample_name,file_name\\ns1,a\\n"}'
    return {
        f"{name_mb} MB project name in the path": (
            _head("GET", "/v1/projects/" + "p" * (name_mb * MB) + "/workflows/w", {}),
            iter(())),
        f"{name_mb} MB project name in a JSON body": (
            _head("POST", "/v1/projects", {"Content-Type": "application/json",
                                           "Content-Length": str(len(in_body))}),
            iter([in_body])),
        f"{body_mb} MB body, Content-Length": (
            _head("POST", "/v1/projects", {"Content-Type": "application/json",
                                           "Content-Length": str(body_mb * MB)}),
            _chunks(body_mb * MB)),
        f"{body_mb} MB body, chunked": (
            _head("POST", "/v1/projects", {"Content-Type": "application/json",
                                           "Transfer-Encoding": "chunked"}),
            _chunked(body_mb * MB)),
    }


def ping_ms(path: str) -> float:
    result = timed(path, _head("GET", "/v1/ping", {}), iter(()))
    return result["ms"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.bench.oversized", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name-mb", type=int, default=50)
    p.add_argument("--body-mb", type=int, default=100)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--json", metavar="FILE", help="also write the figures here")
    args = p.parse_args(argv)
    daemon = new_daemon("--backend", "local").start()
    results: dict[str, dict] = {}
    try:
        path = str(daemon.socket)
        idle = [ping_ms(path) for _ in range(20)]
        for label in cases(args.name_mb, args.body_mb):
            runs, pings = [], []
            for _ in range(args.rounds):
                head, body = cases(args.name_mb, args.body_mb)[label]
                stop = threading.Event()

                def keep_pinging(stop: threading.Event = stop, pings: list = pings) -> None:
                    while not stop.is_set():
                        pings.append(ping_ms(path))

                other = threading.Thread(target=keep_pinging, daemon=True)
                other.start()
                runs.append(timed(path, head, body))
                stop.set()
                other.join(30)
            ms = sorted(r["ms"] for r in runs)
            results[label] = {
                "status": sorted({r["status"] for r in runs}),
                "answer_ms_median": statistics.median(ms), "answer_ms_max": ms[-1],
                "sent_mb_median": statistics.median(r["sent_mb"] for r in runs),
                "other_client_ping_ms_median": statistics.median(pings) if pings else None,
                "other_client_ping_ms_max": max(pings) if pings else None}
        daemon.assert_alive()
    finally:
        daemon.cleanup()
    print(f"idle ping: median {statistics.median(idle):.1f} ms, max {max(idle):.1f} ms")
    print(f"{'request':45} {'status':>8} {'answer ms (median/max)':>24} {'sent MB':>13}"
          f" {'others ping ms (median/max)':>28}")
    for label, r in results.items():
        others = (f"{r['other_client_ping_ms_median']:.1f}/{r['other_client_ping_ms_max']:.1f}"
                  if r["other_client_ping_ms_median"] is not None else "-")
        print(f"{label:45} {','.join(map(str, r['status'])):>8} "
              f"{r['answer_ms_median']:>11.1f}/{r['answer_ms_max']:<12.1f} "
              f"{r['sent_mb_median']:>13.1f} {others:>28}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"idle_ping_ms": idle, "results": results}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
