"""`python -m tests.bench.lagprobe OUT batchd-args...`: batchd with a fine event-loop lag probe.

The daemon's own LagMonitor wakes every 0.5 s and keeps only the last and the largest lag,
too coarse for a p99 over a 10-second import. This probe runs in the daemon's loop next to
everything else, wakes every 10 ms and appends `<unix time> <lag seconds>` per wake-up to OUT,
so the benchmark can take the samples of any window (e.g. while a 100,000-row import and
create run). A lag is how late a timer fired: what every request and loop waited behind.
"""

from __future__ import annotations

import asyncio
import sys
import time

INTERVAL = 0.01


async def probe(path: str, interval: float = INTERVAL) -> None:
    loop = asyncio.get_running_loop()
    # Line-buffered: one small write per sample, and nothing lost when the daemon is killed.
    with open(path, "a", buffering=1) as out:
        while True:
            started = loop.time()
            await asyncio.sleep(interval)
            lag = max(0.0, loop.time() - started - interval)
            out.write(f"{time.time():.4f} {lag:.6f}\n")


def read(path: str, start: float, end: float) -> list[float]:
    """The lags (seconds) of the samples taken between `start` and `end` (unix time)."""
    lags = []
    try:
        with open(path) as f:
            for line in f:
                at, _, lag = line.partition(" ")
                try:
                    if start <= float(at) <= end:
                        lags.append(float(lag))
                except ValueError:
                    continue     # a line cut short when the daemon stopped
    except FileNotFoundError:
        pass
    return lags


def main() -> None:
    out, args = sys.argv[1], sys.argv[2:]
    sys.argv = ["batchd", *args]
    from batchd import daemon
    from batchd.cli import main as batchd_main

    original = daemon.serve

    async def serve(*a, **kw):
        task = asyncio.create_task(probe(out))
        try:
            return await original(*a, **kw)
        finally:
            task.cancel()

    daemon.serve = serve        # cli.main imports serve from batchd.daemon when it runs
    batchd_main()


if __name__ == "__main__":
    main()
