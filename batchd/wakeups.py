"""How the loops nudge each other, and the one waiting primitive they all use."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field


@dataclass
class Wakeups:
    """Set by whoever creates work for a loop (the API, another loop) so it does not wait for
    its next tick: a submit is acted on in milliseconds, not after a poll interval."""

    submitter: asyncio.Event = field(default_factory=asyncio.Event)
    poller: asyncio.Event = field(default_factory=asyncio.Event)
    checker: asyncio.Event = field(default_factory=asyncio.Event)


async def pause(wake: asyncio.Event, stop: asyncio.Event, timeout: float) -> None:
    """Sleep until `timeout`, a wake-up or a stop request, whichever comes first."""
    if stop.is_set():
        return
    waiters = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stop.wait())]
    try:
        await asyncio.wait(waiters, timeout=max(timeout, 0.0),
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
    wake.clear()


async def linger(stop: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds` unless a stop is requested: to let more work gather before acting."""
    if seconds <= 0 or stop.is_set():
        return
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
