"""What every request handler reaches through the app: the daemon's store, backend and settings.

`Context` also holds two caches that keep watch loops (`batchctl status`, `batchctl queues`)
from eating into the database and AWS API budgets that submitting and polling need. It lives
apart from app.py so the route modules, which app.py imports, can reach it without a cycle.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from batchd.api.offload import HeavyWork
from batchd.backends.base import Backend
from batchd.config.settings import Settings
from batchd.errors import BatchdError
from batchd.store import Store
from batchd.wakeups import Wakeups


@dataclass
class Context:
    store: Store
    backend: Backend
    settings: Settings
    wake: Wakeups
    stop: asyncio.Event
    started_at: float = field(default_factory=time.time)
    # Parsing and rendering of big imports/creates: a worker thread, one at a time.
    heavy: HeavyWork = field(default_factory=HeavyWork.from_env)
    _queue_cache: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    _compute_cache: dict[int, tuple[float, Any, dict[str, float]]] = field(default_factory=dict)

    async def compute_spent(self, workflow_id: int, status: dict[str, Any],
                            max_age: float = 30.0) -> dict[str, float]:
        """Compute spent sums every attempt of the workflow (~140 ms at 100,000 jobs) while
        the counts take ~10 ms, so a running workflow's figure may be up to 30 s old; a
        finished workflow's is recomputed once whenever its counts change."""
        now = time.monotonic()
        signature = (status["status"], tuple(sorted(status["counts"].items())))
        cached = self._compute_cache.get(workflow_id)
        if cached is None:
            fresh_enough = False
        elif status["status"] == "RUNNING":
            fresh_enough = now - cached[0] <= max_age
        else:
            fresh_enough = cached[1] == signature
        if not fresh_enough or cached is None:     # (cached is None: not fresh_enough)
            cached = (now, signature, await self.store.compute_spent(workflow_id))
            self._compute_cache[workflow_id] = cached
        return cached[2]

    async def queue_info(self, names: list[str], max_age: float = 60.0) -> dict[str, Any]:
        """The backend's view of the queues, cached: `batchctl queues` in a watch loop must
        not eat into the API budget that submitting and polling need."""
        now = time.time()
        stale = [n for n in names if now - self._queue_cache.get(n, (0.0, {}))[0] > max_age]
        if stale:
            try:
                for info in await self.backend.queues(stale):
                    self._queue_cache[info.name] = (now, {
                        "state": info.state, "status": info.status,
                        "status_reason": info.status_reason, "max_vcpus": info.max_vcpus,
                        "max_memory": info.max_memory})
            except BatchdError as exc:
                return {n: {"error": exc.message} for n in names} | {
                    n: self._queue_cache[n][1] for n in names if n in self._queue_cache}
        return {n: self._queue_cache[n][1] for n in names if n in self._queue_cache}


CONTEXT = web.AppKey("context", Context)
