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
