"""The account-wide, adaptive rate budget for every AWS Batch API call.

AWS Batch gives an account (per region) one request-rate budget (about 50 TPS) that SubmitJob,
DescribeJobs, ListJobs and the rest share; exceeding it returns HTTP 429. batchd therefore
routes *every* Batch call through one `RateBudget`: a token bucket whose refill rate adapts to
what AWS says.

- Tokens refill at `rate` per second up to a small burst (`burst` seconds' worth, at least one
  token), so over any one-second window at most `rate * (1 + burst)` calls start.
- Callers wait in three FIFO queues served strictly by priority: POLL (DescribeJobs, ListJobs
  reconciliation, Cancel/Terminate) before SUBMIT (SubmitJob) before BACKGROUND
  (DescribeJobQueues ...). A backlog of submits can never delay polling. Only anti-starvation
  exception: a BACKGROUND waiter that has waited `starvation_limit` seconds is served like a
  SUBMIT (still never before POLL), so queue checks keep working during a submit flood.
- No background busy loop: one dispatcher task exists only while somebody waits, and sleeps
  exactly until the next token is due.
- Adaptive: `on_throttled()` halves the rate, `on_server_error()` cuts it to 80 % (at most one
  cut per `cooldown` seconds: the answers to calls already in flight carry no new news), never
  below `floor`; `on_success()` adds 5 % of the ceiling back after every 50 successes, never
  above `ceiling`. `set_ceiling()` applies a configuration reload at runtime.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["Priority", "RateBudget"]


class Priority(enum.IntEnum):
    """Lower value = served first."""

    POLL = 0        # DescribeJobs, ListJobs (reconciliation), CancelJob, TerminateJob
    SUBMIT = 1      # SubmitJob (and user-facing job definition calls)
    BACKGROUND = 2  # DescribeJobQueues, DescribeComputeEnvironments, ...


class _Waiter:
    __slots__ = ("future", "since")

    def __init__(self, future: asyncio.Future[None], since: float) -> None:
        self.future = future
        self.since = since


class RateBudget:
    THROTTLE_FACTOR = 0.5
    SERVER_ERROR_FACTOR = 0.8
    GROW_EVERY = 50          # successes
    GROW_STEP = 0.05         # fraction of the ceiling added per GROW_EVERY successes

    def __init__(self, ceiling: float = 40.0, *, floor: float = 1.0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                 burst: float = 0.1, cooldown: float = 1.0,
                 starvation_limit: float = 10.0) -> None:
        if ceiling <= 0:
            raise ValueError("the rate ceiling must be positive")
        if floor <= 0:
            raise ValueError("the rate floor must be positive")
        if burst < 0:
            raise ValueError("burst must not be negative")
        self._clock = clock
        self._sleep = sleep
        self._ceiling = float(ceiling)
        self._floor_configured = float(floor)
        self._floor = min(self._floor_configured, self._ceiling)
        self._rate = self._ceiling
        self.burst = burst
        self.cooldown = cooldown
        self.starvation_limit = starvation_limit
        self._tokens = self.capacity
        self._updated = clock()
        self._queues: dict[Priority, deque[_Waiter]] = {p: deque() for p in Priority}
        self._dispatcher: asyncio.Task[None] | None = None
        self._last_cut = float("-inf")
        self._successes_since_change = 0
        # counters
        self.acquired: dict[Priority, int] = {p: 0 for p in Priority}
        self.throttles = 0
        self.server_errors = 0
        self.successes = 0
        self.cuts = 0

    # ----------------------------------------------------------------- properties
    @property
    def rate(self) -> float:
        """Current refill rate, calls per second."""
        return self._rate

    @property
    def ceiling(self) -> float:
        return self._ceiling

    @property
    def floor(self) -> float:
        return self._floor

    @property
    def capacity(self) -> float:
        """Bucket size: `burst` seconds' worth at the current rate, at least one token."""
        return max(1.0, self._rate * self.burst)

    @property
    def waiting(self) -> int:
        return sum(1 for q in self._queues.values() for w in q if not w.future.done())

    def snapshot(self) -> dict[str, Any]:
        """Counters for status pages and logs."""
        return {
            "rate": round(self._rate, 3), "ceiling": self._ceiling, "floor": self._floor,
            "acquired": {p.name.lower(): n for p, n in self.acquired.items()},
            "throttles": self.throttles, "server_errors": self.server_errors,
            "successes": self.successes, "cuts": self.cuts, "waiting": self.waiting,
        }

    # ----------------------------------------------------------------- tokens
    def _refill(self) -> None:
        now = self._clock()
        elapsed = now - self._updated
        self._updated = now
        if elapsed > 0:
            self._tokens = min(self.capacity, self._tokens + elapsed * self._rate)

    async def acquire(self, priority: Priority) -> None:
        """Wait for permission to make one call."""
        priority = Priority(priority)
        if not any(self._queues.values()):
            self._refill()
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                self.acquired[priority] += 1
                return
        loop = asyncio.get_running_loop()
        waiter = _Waiter(loop.create_future(), self._clock())
        self._queues[priority].append(waiter)
        self._ensure_dispatcher()
        try:
            await waiter.future
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                self._tokens += 1.0       # granted but not used: give the token back
                self.acquired[priority] -= 1
            raise

    def _ensure_dispatcher(self) -> None:
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.get_running_loop().create_task(
                self._dispatch(), name="rate-budget")

    def _next_waiter(self) -> tuple[Priority, _Waiter] | None:
        for q in self._queues.values():
            while q and q[0].future.done():       # cancelled while waiting
                q.popleft()
        background = self._queues[Priority.BACKGROUND]
        if (background and not self._queues[Priority.POLL]
                and self._clock() - background[0].since >= self.starvation_limit):
            return Priority.BACKGROUND, background[0]
        for priority, q in self._queues.items():
            if q:
                return priority, q[0]
        return None

    async def _dispatch(self) -> None:
        while True:
            self._refill()
            while self._tokens >= 1.0:
                nxt = self._next_waiter()
                if nxt is None:
                    return
                priority, waiter = nxt
                self._queues[priority].popleft()
                self._tokens -= 1.0
                self.acquired[priority] += 1
                waiter.future.set_result(None)
            if self._next_waiter() is None:
                return
            # Sleep exactly until the next whole token (re-evaluated on wake: rate may change).
            await self._sleep(max((1.0 - self._tokens) / self._rate, 0.0005))

    async def aclose(self) -> None:
        """Stop the dispatcher (waiters left get CancelledError)."""
        for q in self._queues.values():
            while q:
                q.popleft().future.cancel()
        if self._dispatcher is not None and not self._dispatcher.done():
            self._dispatcher.cancel()
            try:
                await self._dispatcher
            except asyncio.CancelledError:
                pass
        self._dispatcher = None

    # ----------------------------------------------------------------- adaptation
    def _set_rate(self, rate: float) -> None:
        self._refill()                      # tokens earned so far use the old rate
        self._rate = min(self._ceiling, max(self._floor, rate))
        self._tokens = min(self._tokens, self.capacity)
        self._successes_since_change = 0

    def _cut(self, factor: float) -> None:
        now = self._clock()
        if now - self._last_cut < self.cooldown:
            return
        self._last_cut = now
        self.cuts += 1
        self._set_rate(self._rate * factor)

    def on_throttled(self) -> None:
        """AWS answered 429 / TooManyRequestsException: halve the rate."""
        self.throttles += 1
        self._cut(self.THROTTLE_FACTOR)

    def on_server_error(self) -> None:
        """AWS answered 5xx: ease off a little."""
        self.server_errors += 1
        self._cut(self.SERVER_ERROR_FACTOR)

    def on_success(self) -> None:
        self.successes += 1
        if self._rate >= self._ceiling:
            return
        self._successes_since_change += 1
        if self._successes_since_change >= self.GROW_EVERY:
            self._set_rate(self._rate + self.GROW_STEP * self._ceiling)

    def set_ceiling(self, ceiling: float) -> None:
        """Apply a new configured ceiling (config reload). A rate that was at the old ceiling
        follows it; a rate lowered by throttling stays where it is (capped by the new
        ceiling)."""
        if ceiling <= 0:
            raise ValueError("the rate ceiling must be positive")
        at_ceiling = self._rate >= self._ceiling
        self._refill()
        self._ceiling = float(ceiling)
        self._floor = min(self._floor_configured, self._ceiling)
        self._set_rate(self._ceiling if at_ceiling else min(self._rate, self._ceiling))
