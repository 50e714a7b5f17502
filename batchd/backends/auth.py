"""Credentials AWS keeps refusing: one daemon-wide condition per operation, and the back-off.

An expired SSO login, a role without a permission or a clock so far off that signatures are
invalid fail every call the same way until someone outside batchd fixes it. Retried at the
loops' usual rate such an error is silent (nothing fails, nothing moves) and spends the
account's API budget on answers known in advance. So the backend records each refusal here
(`failed`), the loops ask `wait` before calling again, and the first success (`succeeded`)
ends it. Jobs are never failed for it: the fix is outside batchd and everything carries on.

The back-off: after the first refused call an operation is tried again one poll interval
later, by one call (a probe: one SubmitJob, one DescribeJobs batch); each refused probe
doubles the wait, up to AUTH_BACKOFF_CAP (5 minutes; the poll interval if that is longer).
Calls already in flight when the first refusal came are counted but do not double it.
A refusal nothing tries again (a `batchctl jobdef register` refused once) is not shown for
ever: it is dropped once nothing was refused for twice the longest wait (10 minutes).
Log events, once per transition and operation: `backend_auth_failed`, then
`backend_auth_restored` (a call succeeded) or `backend_auth_expired` (dropped, unproven).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["AUTH_BACKOFF_CAP", "AuthWatch", "Refusal", "backoff_delay"]

AUTH_BACKOFF_CAP = 300.0

# Which jobs each refused operation holds up, and how to say it (batchctl status --jobs).
_IN_FLIGHT = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")
_HELD: dict[str, tuple[tuple[str, ...], str]] = {
    "SubmitJob": (("QUEUED", "SUBMITTING"), "not sent yet"),
    "ListJobs": (("SUBMITTING",), "not known yet whether it was sent"),
    "DescribeJobs": (_IN_FLIGHT, "its state is not updated (may be old)"),
}


def backoff_delay(rounds: int, base: float, cap: float = AUTH_BACKOFF_CAP) -> float:
    """Seconds to wait after the `rounds`-th refused round in a row (1 = the first):
    base, 2 x base, 4 x base ... at most `cap`, and never less than `base`."""
    if rounds <= 0:
        return 0.0
    return max(base, min(cap, base * 2.0 ** min(rounds - 1, 60)))


@dataclass
class Refusal:
    operation: str
    aws_code: str | None
    message: str
    since: float            # first refusal of this run of them
    last_at: float
    count: int              # refused calls
    rounds: int             # refused rounds (the first wave, then each probe)
    next_try_at: float


class AuthWatch:
    def __init__(self, *, base: float = 30.0, cap: float = AUTH_BACKOFF_CAP, log: Any = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.base, self.cap, self.log, self.clock = base, cap, log, clock
        self.refusals: dict[str, Refusal] = {}
        self.failures_total: Counter[str] = Counter()   # by operation, since start

    def _expire(self, now: float) -> None:
        for operation, refusal in list(self.refusals.items()):
            quiet = 2 * max(self.cap, backoff_delay(refusal.rounds, self.base, self.cap))
            if now - refusal.last_at > quiet:
                del self.refusals[operation]
                if self.log is not None:
                    self.log.info("backend_auth_expired", operation=operation,
                                  refused_calls=refusal.count, quiet_seconds=quiet)

    def failed(self, operation: str, aws_code: str | None, message: str) -> None:
        now = self.clock()
        self._expire(now)
        self.failures_total[operation] += 1
        refusal = self.refusals.get(operation)
        if refusal is None:
            self.refusals[operation] = Refusal(
                operation, aws_code, message, since=now, last_at=now, count=1, rounds=1,
                next_try_at=now + backoff_delay(1, self.base, self.cap))
            if self.log is not None:
                self.log.warning("backend_auth_failed", operation=operation,
                                 aws_code=aws_code, error=message)
            return
        refusal.count += 1
        refusal.last_at = now
        refusal.aws_code, refusal.message = aws_code, message
        if now >= refusal.next_try_at:
            # A call made after the wait (a probe) was refused too: wait longer.
            refusal.rounds += 1
            refusal.next_try_at = now + backoff_delay(refusal.rounds, self.base, self.cap)

    def succeeded(self, operation: str) -> None:
        refusal = self.refusals.pop(operation, None)
        if refusal is not None and self.log is not None:
            self.log.info("backend_auth_restored", operation=operation,
                          refused_calls=refusal.count,
                          seconds=round(self.clock() - refusal.since, 3))

    def failing(self, operation: str | None = None) -> bool:
        self._expire(self.clock())
        return bool(self.refusals) if operation is None else operation in self.refusals

    def wait(self, operation: str) -> float:
        """Seconds before `operation` may be tried again (0: now; if `failing`, by one
        call only, whose answer decides)."""
        now = self.clock()
        self._expire(now)
        refusal = self.refusals.get(operation)
        return 0.0 if refusal is None else max(0.0, refusal.next_try_at - now)

    def waiting_reason(self, state: str) -> str | None:
        """What a job in `state` waits for because of a refusal, in words, or None."""
        for operation, (states, what) in _HELD.items():
            refusal = self.refusals.get(operation)
            if refusal is not None and state in states:
                # The code and the operation first: batchctl's table cuts at 80 columns.
                return (f"waiting: AWS refuses the credentials ("
                        f"{refusal.aws_code or 'no credentials'}, {operation}); {what}; "
                        "refresh the login/role batchd runs with, batchd retries by itself")
        return None

    def snapshot(self) -> dict[str, Any]:
        self._expire(self.clock())
        return {"failing": bool(self.refusals),
                "operations": {op: asdict(r) for op, r in sorted(self.refusals.items())},
                "failures_total": dict(self.failures_total),
                "backoff_base_seconds": self.base, "backoff_cap_seconds": self.cap}
