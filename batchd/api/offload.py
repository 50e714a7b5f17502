"""CPU-heavy request work, off the event loop and one request at a time.

Parsing a 100,000-row metadata table and rendering the 300,000 jobs of a 3-step workflow take
seconds of pure Python. Run on the event loop they stalled every other user's request and every
loop of the daemon for that long (2.5-5.6 s for one such import + create, 5.6-7.1 s for two
at once: `make bench BENCH_ARGS="--scenario responsive"`). Here they run in a worker thread. The
thread still needs the GIL, which CPython hands back to the loop every switch interval (5 ms),
so the loop keeps answering within milliseconds; a second thread would only halve the loop's
share of it, hence a bound of `slots` heavy jobs at a time. Others wait their turn in arrival
order (logged as `heavy_work_waiting`); nobody is refused.

While heavy work runs the switch interval is 1 ms instead of 5: a status request passes the
GIL back and forth a dozen times (socket, database thread, loop), each a wait of up to one
interval, and the benchmark measured its p99 at 150 ms with 5 ms and 36 ms with 1 ms during a
100,000-sample create, the create itself no slower. A process pool would not help: its
result has to be unpickled here, one C call that holds the GIL throughout (0.74 s for a
100,000-sample table's Samples, 0.16 s for 300,000 job rows, measured), the very stall this
module removes.

The work passed in is pure computation: SQL stays in the store's single writer, so a failure
raised in the thread (an InvalidInput naming the bad row) is raised to the handler as it was,
before anything is written.

TEST-ONLY: `BATCHD_TEST_HEAVY_GATE=<path>` makes each heavy job, once in its thread, log
`heavy_work_gate_waiting` and wait until `<path>` exists, so a test can hold an import midway
and see who else is answered meanwhile. Read once, when the daemon starts; unset, nothing
waits.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from batchd.errors import BatchdError
from batchd.logs import get_logger

T = TypeVar("T")
log = get_logger(component="offload")
GATE_ENV = "BATCHD_TEST_HEAVY_GATE"
SWITCH_INTERVAL = 0.001


class HeavyWork:
    def __init__(self, slots: int = 1, gate: str | None = None) -> None:
        self.slots = slots
        self.gate = Path(gate) if gate else None
        self.running = 0
        self.waiting = 0
        self._free: asyncio.Semaphore | None = None   # made in the loop that uses it
        self._switch_interval = sys.getswitchinterval()

    @classmethod
    def from_env(cls) -> HeavyWork:
        return cls(gate=os.environ.get(GATE_ENV) or None)

    async def run(self, what: str, fn: Callable[..., T], *args: Any, **fields: Any) -> T:
        """`fn(*args)` in a worker thread once a slot is free; `fields` go into the log."""
        if self._free is None:
            self._free = asyncio.Semaphore(self.slots)
        if self._free.locked():
            log.info("heavy_work_waiting", what=what, running=self.running,
                     ahead=self.waiting, **fields)
        self.waiting += 1
        try:
            await self._free.acquire()
        finally:
            self.waiting -= 1
        if self.running == 0:
            self._switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(min(SWITCH_INTERVAL, self._switch_interval))
        self.running += 1
        log.debug("heavy_work_started", what=what, **fields)
        started = time.monotonic()
        work = asyncio.ensure_future(asyncio.to_thread(self._call, what, fn, args))

        def finished(task: asyncio.Future) -> None:
            # The slot is free only when the thread is: a request cancelled meanwhile (its
            # client went away) must not let another heavy job start beside this one.
            self.running -= 1
            if self.running == 0:
                sys.setswitchinterval(self._switch_interval)
            assert self._free is not None
            self._free.release()
            failed = None if task.cancelled() else task.exception()
            log.debug("heavy_work_done", what=what, ok=failed is None,
                      seconds=round(time.monotonic() - started, 3), **fields)

        work.add_done_callback(finished)
        return await asyncio.shield(work)

    async def discard(self, *lists: list[Any]) -> None:
        """Empty `lists` in a worker thread, a slice at a time. Freeing 300,000 job rows or
        100,000 parsed samples is one C call of 15-30 ms (measured) that never lets go of the
        GIL, on the loop when the handler's locals went. The caller keeps no other reference."""
        await asyncio.to_thread(_empty, lists)

    def _call(self, what: str, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        if self.gate is not None:
            log.info("heavy_work_gate_waiting", what=what, gate=str(self.gate))
            while not self.gate.exists():
                time.sleep(0.01)
        try:
            return fn(*args)
        except BatchdError as exc:
            # A user's mistake needs its message, not its frames: dropped here, in this
            # thread, their locals (the rows parsed so far) are not freed on the loop.
            raise exc.with_traceback(None) from None


def _empty(lists: tuple[list[Any], ...], step: int = 2000) -> None:
    # A slice per statement: between two, CPython can hand the GIL to the loop.
    for items in lists:
        while items:
            del items[-step:]
