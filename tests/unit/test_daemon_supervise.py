"""supervise(): crashes stop the daemon; loops that return because of a stop are not crashes."""

import asyncio

from batchd.daemon import supervise


async def test_loops_returning_on_stop_are_not_crashes():
    stop = asyncio.Event()

    async def loop():
        await stop.wait()

    async def stopper():
        stop.set()  # loops may finish before supervise's own wait sees the event
        await asyncio.sleep(3600)

    crashed = await supervise({"a": loop, "b": loop}, {"s": stopper}, stop, deadline=5)
    assert crashed == []


async def test_a_crashing_loop_stops_the_others_and_is_reported():
    stop = asyncio.Event()
    finished = []

    async def good():
        await stop.wait()
        finished.append("good")

    async def bad():
        raise RuntimeError("boom")

    crashed = await supervise({"good": good, "bad": bad}, {}, stop, deadline=5)
    assert crashed == ["bad"] and finished == ["good"] and stop.is_set()


async def test_a_loop_returning_early_is_a_crash():
    stop = asyncio.Event()

    async def quits():
        return None

    async def good():
        await stop.wait()

    assert await supervise({"quits": quits, "good": good}, {}, stop, deadline=5) == ["quits"]


async def test_a_loop_ignoring_stop_is_cancelled_at_the_deadline():
    stop = asyncio.Event()

    async def stubborn():
        await asyncio.sleep(3600)

    async def stopper():
        stop.set()
        await asyncio.sleep(3600)

    assert await supervise({"stubborn": stubborn}, {"s": stopper}, stop, deadline=0.1) == []


async def test_start_up_writes_retried_on_a_full_disk_then_every_loop_starts():
    from batchd.daemon import StartupRecovery
    from batchd.errors import Unavailable

    class Store:
        calls = 0

        async def mark_all_submitting_unknown(self, settle_until):
            Store.calls += 1
            if Store.calls < 3:
                raise Unavailable("database or disk is full")
            return 2

    class Poller:
        repaired = 0

        async def repair_undecided(self):
            Poller.repaired += 1

    recovery = StartupRecovery(Store())
    recovery.RETRY = 0.01
    await recovery.attempt(recovery.mark_unknown)
    recovery.poller = Poller()
    await recovery.attempt(recovery.repair)     # queued behind the write that failed
    assert Poller.repaired == 0 and not recovery.done.is_set()
    stop = asyncio.Event()
    started = []

    def loop(name):
        async def run():
            assert recovery.done.is_set()       # never before the start-up writes
            started.append(name)
            await stop.wait()
        return run

    async def stopper():
        while len(started) < 3:
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.sleep(3600)

    # A guard against a hang (a loop left waiting for good), not a timing check.
    crashed = await asyncio.wait_for(
        supervise({n: recovery.gate(loop(n), stop) for n in "abc"},
                  {"recovery": lambda: recovery.run(stop), "s": stopper}, stop, deadline=5),
        timeout=60)
    assert crashed == [] and sorted(started) == ["a", "b", "c"]
    assert Store.calls == 3 and Poller.repaired == 1 and recovery.unknown == 2
