"""A `Backend` for loop tests that call one or two of its methods: it has the whole
interface (`name`, `auth`: None, like the local backend's), and every call a test did not
override fails loudly instead of passing by accident."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from batchd.backends.base import Backend, JobStatus, QueueInfo, SubmitRequest


class StubBackend(Backend):
    name = "stub"

    def _unexpected(self, method: str) -> NotImplementedError:
        return NotImplementedError(f"{type(self).__name__}.{method} is not part of this test")

    async def register_job_definition(self, spec: dict[str, Any]) -> dict[str, Any]:
        raise self._unexpected("register_job_definition")

    async def list_job_definitions(self) -> list[dict[str, Any]]:
        raise self._unexpected("list_job_definitions")

    async def submit(self, request: SubmitRequest) -> str:
        raise self._unexpected("submit")

    async def describe(self, job_ids: list[str]) -> list[JobStatus]:
        raise self._unexpected("describe")

    async def find_by_name(self, job_name: str, queue: str) -> JobStatus | None:
        raise self._unexpected("find_by_name")

    async def cancel(self, job_id: str, reason: str, *, terminate: bool) -> None:
        raise self._unexpected("cancel")

    def fetch_logs(self, log_stream: str) -> AsyncIterator[str]:
        raise self._unexpected("fetch_logs")

    async def queues(self, names: list[str]) -> list[QueueInfo]:
        raise self._unexpected("queues")
