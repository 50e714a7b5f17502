"""The stuck-job watcher: RUNNABLE jobs that will never run, or that wait far longer than peers.

AWS Batch leaves a job RUNNABLE forever when no compute environment of its queue can place it
(too many vCPUs or too much memory, or a MISCONFIGURATION reason), and users' most common
silent failure is not noticing. Once a minute this loop compares each RUNNABLE attempt with its
queue's capacity (DescribeJobQueues/DescribeComputeEnvironments, through the backend, at low
priority) and with how long its peers waited, and flags it in `batchctl status` with the reason.
With `cancel_unplaceable` it gives such a job up as `misconfiguration`; the poller then cancels
it in the backend.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from batchd.backends.base import Backend, QueueInfo
from batchd.config.settings import Settings
from batchd.errors import BackendError
from batchd.failures import MISCONFIGURATION, GiveUp
from batchd.logs import get_logger
from batchd.store import Store
from batchd.wakeups import pause

INTERVAL = 60.0
MIN_PEERS = 5


def unplaceable_reason(attempt: dict[str, Any], queue: QueueInfo | None) -> str | None:
    reason = attempt.get("status_reason") or ""
    if "MISCONFIGURATION" in reason:
        return reason
    if queue is None:
        return None
    vcpus, memory = attempt.get("vcpus"), attempt.get("memory")
    if vcpus and queue.max_vcpus is not None and vcpus > queue.max_vcpus:
        return (f"asks for {vcpus:g} vCPUs but the largest compute environment of queue "
                f"{queue.name} offers {queue.max_vcpus:g}")
    if memory and queue.max_memory is not None and memory > queue.max_memory:
        return (f"asks for {memory:,} MiB but the largest instance of queue {queue.name} has "
                f"{queue.max_memory:,} MiB")
    return None


def slow_reason(age: float, peer_waits: list[float], factor: float, queue: str) -> str | None:
    """RUNNABLE `factor` times longer than the median wait of peers that did start."""
    if len(peer_waits) < MIN_PEERS:
        return None
    median = statistics.median(peer_waits)
    if age > factor * max(median, 60.0):
        return (f"RUNNABLE for {age / 60:,.0f} min while jobs of queue {queue} waited a median "
                f"{median / 60:,.1f} min before starting")
    return None


class StuckWatcher:
    def __init__(self, store: Store, backend: Backend, settings: Settings,
                 stop: asyncio.Event, interval: float = INTERVAL) -> None:
        self.store, self.backend, self.settings, self.stop = store, backend, settings, stop
        self.interval = interval
        self.log = get_logger(loop="stuck")

    async def run(self) -> None:
        while not self.stop.is_set():
            await self.cycle()
            await pause(asyncio.Event(), self.stop, self.interval)

    async def cycle(self) -> int:
        runnable = await self.store.runnable_attempts()
        if not runnable:
            await self.store.set_stuck([], clear_others=True)
            return 0
        names = sorted({a["queue"] for a in runnable})
        try:
            queues = {q.name: q for q in await self.backend.queues(names)}
        except BackendError as exc:
            self.log.info("stuck_check_deferred", error=exc.message)
            queues = {}
        waits = await self.store.recent_runnable_waits()
        now = time.time()
        flagged, give_up = [], []
        for attempt in runnable:
            reason = unplaceable_reason(attempt, queues.get(attempt["queue"]))
            if reason and self.settings.cancel_unplaceable:
                give_up.append((attempt["job_id"], attempt["id"], GiveUp(
                    f"no compute environment can ever run it ({reason}); not retried: ask for "
                    "fewer vCPUs/less memory or use a queue with larger instances, then "
                    "`batchctl resubmit`", MISCONFIGURATION)))
                continue
            if reason is None and attempt["runnable_at"]:
                reason = slow_reason(now - attempt["runnable_at"],
                                     waits.get(attempt["queue"], []),
                                     self.settings.stuck_factor, attempt["queue"])
            if reason:
                flagged.append((attempt["job_id"], f"stuck: {reason}"))
        await self.store.set_stuck(flagged, clear_others=True)
        if give_up:
            await self.store.apply_failures(give_up)
            await self.store.poll_now([attempt_id for _, attempt_id, _ in give_up])
        for job_id, reason in flagged:
            self.log.warning("job_stuck", job=job_id, reason=reason)
        for job_id, _, decision in give_up:
            self.log.warning("job_failed", job=job_id, failure_class=MISCONFIGURATION,
                             reason=decision.reason)
        return len(flagged) + len(give_up)
