"""Fault injection (throttling, 5xx, lost SubmitJob responses, refused credentials, S3
SlowDown, Logs throttling) and counters.

Faults act in *real* time: the TPS limit is a token bucket refilled at `tps_limit` tokens per
real second (the client's rate limiter runs in real time too). Only Batch calls are limited.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from typing import Any

from .config import FakeConfig


class TokenBucket:
    def __init__(self, rate: float | None, burst: float | None = None) -> None:
        self.configure(rate, burst)

    def configure(self, rate: float | None, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = float(burst if burst is not None else (rate or 0.0))
        self.tokens = self.burst
        self.stamp = time.monotonic()

    def take(self) -> bool:
        if self.rate is None:
            return True
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


# What AWS says for each credential problem (the message is what a user sees in batchd).
AUTH_MESSAGES = {
    "ExpiredTokenException": "The security token included in the request is expired",
    "UnrecognizedClientException": "The security token included in the request is invalid.",
    "InvalidSignatureException": "The request signature we calculated does not match the "
                                 "signature you provided.",
    "AccessDeniedException": "User: arn:aws:sts::123456789012:assumed-role/batchd/fake is not "
                             "authorized to perform: batch:{op}",
}


class Faults:
    def __init__(self, config: FakeConfig) -> None:
        self.config = config
        self.bucket = TokenBucket(config.tps_limit, config.tps_burst)
        self.rng = random.Random(config.seed ^ 0x5EED)
        self.drop_submit_remaining = config.drop_submit_response_count

    def reconfigure(self, config: FakeConfig, changed: set[str]) -> None:
        self.config = config
        if changed & {"tps_limit", "tps_burst"}:
            self.bucket.configure(config.tps_limit, config.tps_burst)
        if "drop_submit_response_count" in changed:
            self.drop_submit_remaining = config.drop_submit_response_count
        if "seed" in changed:
            self.rng = random.Random(config.seed ^ 0x5EED)

    def throttle(self) -> bool:
        """True if this Batch call must be answered with 429."""
        return not self.bucket.take()

    def inject_5xx(self) -> int | None:
        rate = self.config.error_5xx_rate
        if rate > 0 and self.rng.random() < rate:
            return 500 if self.rng.random() < 0.5 else 503
        return None

    def auth_error(self, op: str) -> tuple[str, str] | None:
        """(code, message) if this Batch call must be refused with HTTP 403."""
        code = self.config.auth_error_code
        ops = self.config.auth_error_operations
        if not code or (ops and op not in ops):
            return None
        return code, AUTH_MESSAGES.get(code, "fake refused the credentials").format(op=op)

    def random_throttle(self) -> bool:
        """True if this Batch call gets a 429 by `throttle_rate` (not by the token bucket)."""
        rate = self.config.throttle_rate
        return rate > 0 and self.rng.random() < rate

    def s3_slow_down(self) -> bool:
        rate = self.config.s3_503_rate
        return rate > 0 and self.rng.random() < rate

    def logs_throttle(self) -> bool:
        rate = self.config.logs_throttle_rate
        return rate > 0 and self.rng.random() < rate

    def drop_submit(self) -> bool:
        if self.drop_submit_remaining > 0:
            self.drop_submit_remaining -= 1
            return True
        rate = self.config.drop_submit_response_rate
        return rate > 0 and self.rng.random() < rate


class Stats:
    """Counters for `GET /_fake/stats`."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.calls: Counter[str] = Counter()         # per operation, every call received
        self.throttled: Counter[str] = Counter()     # per operation, answered 429
        self.errors_5xx: Counter[str] = Counter()    # per operation, injected 5xx
        self.auth_refused: Counter[str] = Counter()  # per operation, answered 403 (auth_error_*)
        self.dropped_submits = 0                     # jobs created whose response was lost
        self.s3_503: Counter[str] = Counter()        # per S3 operation, injected 503 SlowDown
        self.logs_throttled: Counter[str] = Counter()   # per Logs operation, injected throttle
        self.unlisted = 0                            # jobs left out of ListJobs by list_lag
        self.submits_by_name: Counter[str] = Counter()   # jobs created per jobName
        self.jobs_by_state: Counter[str] = Counter()     # current state of known jobs
        self.transitions: Counter[tuple[str, str]] = Counter()   # (old, new) state: n
        self.outcomes: Counter[str] = Counter()          # behaviour actually applied
        self.forgotten = 0
        self.described_ids = 0                       # job ids asked for in DescribeJobs
        self.last_submit_at: dict[str, float] = {}   # jobName -> latest SubmitJob (epoch s)
        self.held_submits = 0                        # SubmitJob answers held right now
        self.started = time.monotonic()

    def duplicates(self) -> dict[str, int]:
        return {name: n for name, n in self.submits_by_name.items() if n > 1}

    def snapshot(self, include_names: bool = False) -> dict[str, Any]:
        elapsed = max(1e-9, time.monotonic() - self.started)
        out: dict[str, Any] = {
            "calls": dict(self.calls),
            "calls_total": sum(self.calls.values()),
            "calls_per_second": sum(self.calls.values()) / elapsed,
            "throttled": dict(self.throttled),
            "throttled_total": sum(self.throttled.values()),
            "errors_5xx": dict(self.errors_5xx),
            "errors_5xx_total": sum(self.errors_5xx.values()),
            "auth_refused": dict(self.auth_refused),
            "dropped_submits": self.dropped_submits,
            "s3_503": dict(self.s3_503),
            "s3_503_total": sum(self.s3_503.values()),
            "logs_throttled": dict(self.logs_throttled),
            "logs_throttled_total": sum(self.logs_throttled.values()),
            "unlisted": self.unlisted,
            "jobs_created": sum(self.submits_by_name.values()),
            "distinct_job_names": len(self.submits_by_name),
            "duplicate_job_names": self.duplicates(),
            "jobs_by_state": {k: v for k, v in self.jobs_by_state.items() if v},
            "transitions": {f"{a}->{b}": n for (a, b), n in self.transitions.items()},
            "outcomes": dict(self.outcomes),
            "forgotten": self.forgotten,
            "described_ids": self.described_ids,
            "held_submits": self.held_submits,
            "real_seconds": elapsed,
        }
        if include_names:
            out["submits_by_name"] = dict(self.submits_by_name)
            out["last_submit_at"] = dict(self.last_submit_at)
        return out
