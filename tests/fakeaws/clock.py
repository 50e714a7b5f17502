"""Compressed simulated time and a heap of timed events.

Simulated time starts at the real wall-clock time when the fake starts and then runs
`time_scale` times faster (so createdAt/startedAt/stoppedAt are plausible epoch milliseconds
and `stoppedAt - startedAt` equals the simulated duration). `skip()` jumps it forward.

Events are processed lazily at the start of every request (`advance()`) and by one asyncio
timer armed for the earliest event, so nothing ever scans all jobs.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Callable
from typing import Any


class SimClock:
    def __init__(self, time_scale: float) -> None:
        self.time_scale = float(time_scale)
        self._real0 = time.monotonic()
        self._sim0 = time.time()
        self.frozen: float | None = None     # while an event runs: that event's time

    def now(self) -> float:
        """Simulated epoch seconds (inside an event callback: the event's own time)."""
        if self.frozen is not None:
            return self.frozen
        return self._sim0 + (time.monotonic() - self._real0) * self.time_scale

    def live_now(self) -> float:
        return self._sim0 + (time.monotonic() - self._real0) * self.time_scale

    def now_ms(self) -> int:
        return int(self.now() * 1000)

    def set_scale(self, time_scale: float) -> None:
        sim = self.live_now()
        self._real0, self._sim0 = time.monotonic(), sim
        self.time_scale = float(time_scale)

    def skip(self, seconds: float) -> None:
        self._sim0 += seconds

    def real_delay(self, sim_when: float) -> float:
        """Real seconds until simulated time `sim_when`."""
        if self.time_scale <= 0:
            return 3600.0
        return max(0.0, (sim_when - self.live_now()) / self.time_scale)


class Scheduler:
    """Min-heap of (sim_time, seq, callback, args). Callbacks run in time order."""

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self._heap: list[tuple[float, int, Callable[..., Any], tuple]] = []
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = False

    def __len__(self) -> int:
        return len(self._heap)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._arm()

    def stop(self) -> None:
        if self._timer:
            self._timer.cancel()
        self._timer, self._timer_at, self._loop = None, float("inf"), None

    def clear(self) -> None:
        self._heap.clear()

    def at(self, sim_when: float, callback: Callable[..., Any], *args: Any) -> None:
        heapq.heappush(self._heap, (sim_when, next(self._seq), callback, args))
        if sim_when < self._timer_at and not self._running:
            self._arm()

    def after(self, sim_seconds: float, callback: Callable[..., Any], *args: Any) -> None:
        self.at(self.clock.now() + sim_seconds, callback, *args)

    def advance(self) -> int:
        """Run every event that is due; returns how many ran."""
        if not self._heap or self._running:
            return 0
        self._running = True
        ran = 0
        try:
            heap, clock = self._heap, self.clock
            now = clock.live_now()
            while heap:
                if heap[0][0] > now:
                    now = clock.live_now()
                    if heap[0][0] > now:
                        break
                # Callbacks see the event's time as "now", so a chain of events caught up
                # after a pause (or a skip) gets exact timestamps; they may push due events.
                when, _seq, callback, args = heapq.heappop(heap)
                clock.frozen = when
                try:
                    callback(*args)
                except Exception:                     # a bug must not wedge the simulator
                    logging.getLogger("fakeaws").exception("fake event %s failed", callback)
                ran += 1
        finally:
            self.clock.frozen = None
            self._running = False
        self._arm()
        return ran

    def _arm(self) -> None:
        if self._loop is None:
            return
        nxt = self._heap[0][0] if self._heap else float("inf")
        if nxt == self._timer_at and self._timer is not None:
            return
        if self._timer:
            self._timer.cancel()
            self._timer = None
        self._timer_at = nxt
        if nxt != float("inf"):
            # Batch nearby events: at least 2 ms real between wakeups.
            delay = max(0.002, self.clock.real_delay(nxt))
            self._timer = self._loop.call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer, self._timer_at = None, float("inf")
        self.advance()
        self._arm()

    def rearm(self) -> None:
        """Call after the clock's scale changed or it was skipped."""
        self._timer_at = -1.0
        self._arm()
