from __future__ import annotations

import asyncio
import time

import pytest

from batchd.backends.aws.ratelimit import Priority, RateBudget


class FakeTime:
    """A virtual clock; `sleep` advances it (and yields once so other tasks run)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps = 0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.now += seconds
        await asyncio.sleep(0)


def budget_with(ft: FakeTime, ceiling: float = 20.0, **kw) -> RateBudget:
    return RateBudget(ceiling, clock=ft.clock, sleep=ft.sleep, **kw)


async def grant_times(budget: RateBudget, ft: FakeTime, n: int,
                      priority: Priority = Priority.SUBMIT) -> list[float]:
    times: list[float] = []

    async def one() -> None:
        await budget.acquire(priority)
        times.append(ft.now)

    await asyncio.gather(*(one() for _ in range(n)))
    return times


def max_in_window(times: list[float], window: float = 1.0) -> int:
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


async def test_rate_holds_virtual_time():
    ft = FakeTime()
    budget = budget_with(ft, 20.0)
    start = ft.now
    times = await grant_times(budget, ft, 200)
    in_two_seconds = sum(1 for t in times if t - start < 2.0)
    # 20/s for 2 s plus a burst of max(1, 20 * 0.1) = 2 tokens
    assert 40 <= in_two_seconds <= 42
    assert max_in_window(times) <= 20 + 2
    duration = max(times) - start
    assert duration == pytest.approx((200 - 2) / 20.0, rel=0.01)
    assert budget.acquired[Priority.SUBMIT] == 200
    await asyncio.sleep(0)
    assert budget._dispatcher is None or budget._dispatcher.done()  # idle: no task left


async def test_rate_holds_real_time():
    budget = RateBudget(20.0)
    grants: list[float] = []

    async def worker() -> None:
        while True:
            await budget.acquire(Priority.SUBMIT)
            grants.append(time.monotonic())

    start = time.monotonic()
    workers = [asyncio.create_task(worker()) for _ in range(30)]
    await asyncio.sleep(2.0)
    for w in workers:
        w.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    in_window = [t for t in grants if t - start < 2.0]
    # 2 s at 20/s (+2 burst); allow a few % for timer granularity
    assert 38 <= len(in_window) <= 43, len(in_window)
    assert max_in_window(grants) <= 23
    await budget.aclose()


async def test_priority_then_fifo():
    ft = FakeTime()
    budget = budget_with(ft, 10.0)
    # drain the burst so everybody has to queue
    await budget.acquire(Priority.POLL)
    order: list[tuple[str, int]] = []

    async def one(priority: Priority, i: int) -> None:
        await budget.acquire(priority)
        order.append((priority.name, i))

    tasks = [asyncio.create_task(one(Priority.SUBMIT, i)) for i in range(5)]
    tasks += [asyncio.create_task(one(Priority.BACKGROUND, i)) for i in range(2)]
    await asyncio.sleep(0)  # submits and background are queued first ...
    tasks += [asyncio.create_task(one(Priority.POLL, i)) for i in range(3)]  # ... polls later
    await asyncio.gather(*tasks)
    assert order == ([("POLL", i) for i in range(3)] + [("SUBMIT", i) for i in range(5)]
                     + [("BACKGROUND", i) for i in range(2)])


async def test_polling_never_starves_behind_submit_backlog():
    ft = FakeTime()
    budget = budget_with(ft, 10.0)
    submits = [asyncio.create_task(budget.acquire(Priority.SUBMIT)) for _ in range(500)]
    await asyncio.sleep(0)
    t0 = ft.now
    await budget.acquire(Priority.POLL)
    assert ft.now - t0 <= 0.25  # a token or two, not 50 s (after 500 submits)
    for t in submits:
        t.cancel()
    await budget.aclose()


async def test_background_is_not_starved_forever():
    ft = FakeTime()
    budget = budget_with(ft, 10.0, starvation_limit=2.0)
    submits = [asyncio.create_task(budget.acquire(Priority.SUBMIT)) for _ in range(200)]
    await asyncio.sleep(0)
    t0 = ft.now
    await budget.acquire(Priority.BACKGROUND)
    waited = ft.now - t0
    assert 2.0 <= waited <= 2.2
    assert sum(t.done() for t in submits) < 200
    for t in submits:
        t.cancel()
    await budget.aclose()


async def test_cancelled_waiter_does_not_consume_a_token():
    ft = FakeTime()
    budget = budget_with(ft, 10.0)
    for _ in range(2):
        await budget.acquire(Priority.SUBMIT)       # burst of 1 token at 10/s (=max(1, 1))
    waiter = asyncio.create_task(budget.acquire(Priority.SUBMIT))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    before = budget.acquired[Priority.SUBMIT]
    await budget.acquire(Priority.SUBMIT)
    assert budget.acquired[Priority.SUBMIT] == before + 1


async def test_adaptation():
    ft = FakeTime()
    budget = budget_with(ft, 40.0, floor=3.0)
    assert budget.rate == 40.0 and budget.ceiling == 40.0
    budget.on_throttled()
    assert budget.rate == 20.0
    budget.on_throttled()                # same burst of 429s (within cooldown): no second cut
    assert budget.rate == 20.0 and budget.throttles == 2
    ft.now += 1.1
    budget.on_throttled()
    assert budget.rate == 10.0
    ft.now += 1.1
    budget.on_server_error()
    assert budget.rate == pytest.approx(8.0)
    for _ in range(5):
        ft.now += 1.1
        budget.on_throttled()
    assert budget.rate == 3.0            # never below the floor
    for _ in range(49):
        budget.on_success()
    assert budget.rate == 3.0            # grows only after 50 successes
    budget.on_success()
    assert budget.rate == pytest.approx(5.0)   # + 5 % of 40
    for _ in range(50 * 100):
        budget.on_success()
    assert budget.rate == 40.0           # never above the ceiling
    snap = budget.snapshot()
    assert snap["throttles"] == 8 and snap["server_errors"] == 1 and snap["rate"] == 40.0


async def test_cut_rate_is_what_gets_granted():
    ft = FakeTime()
    budget = budget_with(ft, 20.0)
    budget.on_throttled()                # 10/s
    start = ft.now
    times = await grant_times(budget, ft, 41)
    assert max(times) - start == pytest.approx(40 / 10.0, rel=0.01)


async def test_set_ceiling():
    ft = FakeTime()
    budget = budget_with(ft, 40.0, floor=5.0)
    budget.set_ceiling(20.0)
    assert budget.ceiling == 20.0 and budget.rate == 20.0
    budget.set_ceiling(30.0)             # rate was at the ceiling: follows it
    assert budget.rate == 30.0
    budget.on_throttled()
    assert budget.rate == 15.0
    budget.set_ceiling(50.0)             # throttled rate stays, then grows back slowly
    assert budget.rate == 15.0 and budget.ceiling == 50.0
    budget.set_ceiling(2.0)
    assert budget.rate == 2.0 and budget.floor == 2.0
    budget.set_ceiling(40.0)
    assert budget.floor == 5.0
    with pytest.raises(ValueError):
        budget.set_ceiling(0)


async def test_counters_by_priority():
    ft = FakeTime()
    budget = budget_with(ft, 100.0)
    await budget.acquire(Priority.POLL)
    await budget.acquire(Priority.SUBMIT)
    await budget.acquire(Priority.SUBMIT)
    await budget.acquire(Priority.BACKGROUND)
    assert budget.snapshot()["acquired"] == {"poll": 1, "submit": 2, "background": 1}
