"""Measurements: process CPU/RSS from /proc, latency percentiles, and read-only figures from
the daemon's SQLite database (never used to drive the daemon, only to measure it)."""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank-with-interpolation percentile (q in 0..100); None for no values."""
    if not values:
        return None
    data = sorted(values)
    if len(data) == 1:
        return float(data[0])
    pos = (len(data) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return float(data[lo] + (data[hi] - data[lo]) * (pos - lo))


def summary(values: Sequence[float], scale: float = 1.0) -> dict[str, Any]:
    return {"n": len(values),
            "p50": _round(percentile(values, 50), scale),
            "p95": _round(percentile(values, 95), scale),
            "max": _round(max(values) if values else None, scale)}


def _round(value: float | None, scale: float) -> float | None:
    return None if value is None else round(value * scale, 4)


# ------------------------------------------------------------------------------ /proc
def proc_cpu_times(pid: int) -> tuple[float, float] | None:
    """(utime, stime) of a live process (seconds): user code vs the kernel (I/O, syscalls)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK   # fields 14, 15 of proc(5)


def thread_cpu_times(pid: int) -> dict[int, tuple[float, float]]:
    """{thread id: (utime, stime)} of a live process's threads: the event loop (tid == pid)
    versus the store's database threads and the resolver pool."""
    times = {}
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = task.joinpath("stat").read_text().rpartition(")")[2].split()
                times[int(task.name)] = (int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK)
    return times


def proc_cpu_seconds(pid: int) -> float | None:
    """utime + stime of a live process (seconds)."""
    times = proc_cpu_times(pid)
    return None if times is None else times[0] + times[1]


def proc_memory_kib(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


class ProcSampler:
    """Background thread sampling one process's RSS (and CPU) every `interval` seconds.
    The last good sample is kept, so figures survive the process exiting."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid, self.interval = pid, interval
        self.peak_rss_kib = 0
        self.last_cpu: float | None = None
        self.last_system: float | None = None     # the kernel's share of last_cpu
        self.cpu_at_start = proc_cpu_seconds(pid)
        self.samples: list[tuple[float, float | None, int]] = []   # (t, cpu, rss)
        self.threads: dict[int, tuple[float, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"sampler-{pid}")

    def start(self) -> ProcSampler:
        self._thread.start()
        return self

    def sample(self) -> None:
        mem = proc_memory_kib(self.pid)
        times = proc_cpu_times(self.pid)
        cpu = None if times is None else times[0] + times[1]
        if times is not None:
            self.last_cpu, self.last_system = cpu, times[1]
        if len(self.samples) % 8 == 0:     # threads live as long as the daemon: sample rarely
            self.threads.update(thread_cpu_times(self.pid))
        rss = mem.get("VmRSS", 0)
        self.peak_rss_kib = max(self.peak_rss_kib, rss, mem.get("VmHWM", 0))
        self.samples.append((time.monotonic(), cpu, rss))
        if len(self.samples) > 20_000:
            del self.samples[::2]

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self) -> dict[str, Any]:
        self.threads.update(thread_cpu_times(self.pid))
        self.sample()
        self._stop.set()
        self._thread.join(timeout=5)
        return self.result()

    def result(self) -> dict[str, Any]:
        return {"cpu_seconds": None if self.last_cpu is None else round(self.last_cpu, 2),
                "system_cpu_seconds": None if self.last_system is None
                else round(self.last_system, 2),
                # CPU by thread, the event loop first: cProfile sees only that one (the
                # others are the store's database threads and the resolver pool).
                "event_loop_cpu_seconds": round(sum(self.threads.get(self.pid, (0.0, 0.0))), 2)
                if self.pid in self.threads else None,
                "threads_cpu_seconds": [
                    {"thread": "event loop" if tid == self.pid else f"thread {tid}",
                     "cpu_seconds": round(user + system, 2), "system_cpu_seconds": round(system, 2)}
                    for tid, (user, system) in sorted(
                        self.threads.items(), key=lambda item: (item[0] != self.pid, item[0]))
                    if user + system >= 0.01],
                "peak_rss_mb": round(self.peak_rss_kib / 1024, 1),
                "rss_mb_now": round(self.samples[-1][2] / 1024, 1) if self.samples else None}


def combine_daemons(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One daemon's figures from the processes it ran as (before and after a restart):
    CPU summed, memory at its peak; threads listed per process, the first one's as before."""
    if len(parts) == 1:
        return parts[0]
    total = dict(parts[0])

    def add(key: str) -> float | None:
        values = [p.get(key) for p in parts]
        return None if any(v is None for v in values) else round(sum(values), 2)

    for key in ("cpu_seconds", "system_cpu_seconds", "event_loop_cpu_seconds"):
        total[key] = add(key)
    total["peak_rss_mb"] = max(p.get("peak_rss_mb") or 0 for p in parts)
    total["rss_mb_now"] = parts[-1].get("rss_mb_now")
    total["threads_cpu_seconds"] = [
        dict(thread, process=i) for i, p in enumerate(parts)
        for thread in p.get("threads_cpu_seconds") or []]
    total["processes"] = parts
    return total


# ------------------------------------------------------------------------------ timing
def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def time_command(argv: list[str], env: dict[str, str], cwd: str, n: int) -> list[float]:
    """Wall time of `n` runs of a command (each must exit 0)."""
    out = []
    for _ in range(n):
        start = time.perf_counter()
        result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, timeout=120)
        out.append(time.perf_counter() - start)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[2:])} exited {result.returncode}: "
                               f"{result.stderr.decode(errors='replace')[-2000:]}")
    return out


# ------------------------------------------------------------------------------ SQLite
class DbView:
    """Read-only queries on batchd's state database."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)

    def close(self) -> None:
        self.conn.close()

    def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.conn.execute(sql, params).fetchone()

    def submit_times(self) -> list[float]:
        """Real epoch seconds at which each attempt's SubmitJob answer was recorded."""
        return [r[0] for r in self.conn.execute(
            "SELECT submitted_at FROM attempts WHERE submitted_at IS NOT NULL "
            "ORDER BY submitted_at")]

    def detections(self) -> list[tuple[float, float]]:
        """(backend stoppedAt in simulated epoch s, real epoch s when batchd recorded it)."""
        return [(r[0], r[1]) for r in self.conn.execute(
            "SELECT a.stopped_at, min(t.at) FROM transitions t JOIN attempts a "
            "ON a.id = t.attempt_id WHERE t.state IN ('SUCCEEDED', 'FAILED') "
            "AND a.stopped_at IS NOT NULL AND a.backend_job_id IS NOT NULL "
            "GROUP BY a.id")]

    def span(self) -> tuple[float | None, float | None]:
        """(workflow submitted_at, last job update) in real epoch seconds."""
        row = self.one("SELECT min(submitted_at) FROM workflows")
        end = self.one("SELECT max(updated_at) FROM jobs WHERE state IN "
                       "('COMPLETED', 'FAILED', 'CANCELLED')")
        return (row[0] if row else None), (end[0] if end else None)

    def vcpu_seconds(self) -> float:
        """vCPU-seconds (simulated) the backend actually ran, every attempt included: spot
        reclaims, OOM kills and always-failing samples add work the planned bound omits."""
        row = self.one("SELECT sum((stopped_at - started_at) * coalesce(vcpus, 1)) "
                       "FROM attempts WHERE started_at IS NOT NULL AND stopped_at IS NOT NULL")
        return float(row[0] or 0.0)

    def attempts_by_state(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT state, count(*) FROM attempts GROUP BY state"))

    def failure_classes(self) -> dict[str, int]:
        return dict(self.conn.execute(
            "SELECT coalesce(failure_class, '-'), count(*) FROM attempts "
            "WHERE failure_class IS NOT NULL GROUP BY 1"))


def submit_rate(times: Sequence[float]) -> dict[str, Any]:
    """SubmitJob answers per real second: overall (first..last) and over the middle 90 %
    (excludes the ramp-up and the tail where fewer jobs were left)."""
    n = len(times)
    if n < 2:
        return {"n": n, "overall": None, "middle_90": None, "seconds": None}
    span = times[-1] - times[0]
    lo, hi = int(n * 0.05), max(int(n * 0.95) - 1, int(n * 0.05) + 1)
    mid_span = times[hi] - times[lo]
    return {"n": n, "seconds": round(span, 2),
            "overall": round((n - 1) / span, 2) if span > 0 else None,
            "middle_90": round((hi - lo) / mid_span, 2) if mid_span > 0 else None}


class CounterSampler:
    """Background thread reading the fake's call counters every `interval` real seconds, so
    rates come from what reached "AWS" (batchd records submit times per batch of 100)."""

    def __init__(self, stats_fn: Callable[[], dict[str, Any]], interval: float = 0.25) -> None:
        self.stats_fn, self.interval = stats_fn, interval
        self.samples: list[tuple[float, int, int]] = []   # (real epoch, SubmitJob, all Batch)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="fake-counters")

    def start(self) -> CounterSampler:
        self._thread.start()
        return self

    def _sample(self) -> bool:
        try:
            calls = self.stats_fn()["calls"]
        except Exception:  # noqa: BLE001 - the fake may be stopping
            return False
        batch = sum(n for op, n in calls.items() if not op.startswith(("S3.", "Logs.")))
        self.samples.append((time.time(), calls.get("SubmitJob", 0), batch))
        return True

    def _run(self) -> None:
        while not self._stop.is_set() and self._sample():
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        # The run may end between two samples: the last submits must still be counted.
        self._sample()

    def _crossing(self, index: int, level: float) -> float | None:
        """Real time at which counter `index` first reached `level` (linear interpolation)."""
        prev = None
        for sample in self.samples:
            if sample[index] >= level:
                if prev is None or sample[index] == prev[index]:
                    return sample[0]
                frac = (level - prev[index]) / (sample[index] - prev[index])
                return prev[0] + frac * (sample[0] - prev[0])
            prev = sample
        return None

    def submit_rate(self) -> dict[str, Any]:
        """SubmitJob calls per real second from the first to the last SubmitJob (overall) and
        between 5 % and 95 % of them (middle_90: no ramp-up, no tail), plus the rate of all
        Batch calls over the same overall window."""
        if not self.samples or self.samples[-1][1] < 2:
            return {"n": self.samples[-1][1] if self.samples else 0, "overall": None,
                    "middle_90": None, "seconds": None, "all_batch_calls_tps": None}
        total = self.samples[-1][1]
        t0, t1 = self._crossing(1, 1), self._crossing(1, total)
        m0, m1 = self._crossing(1, 0.05 * total), self._crossing(1, 0.95 * total)
        span = max(t1 - t0, self.interval)
        batch = [s for s in self.samples if t0 <= s[0] <= t1]
        batch_tps = ((batch[-1][2] - batch[0][2]) / (batch[-1][0] - batch[0][0])
                     if len(batch) > 1 and batch[-1][0] > batch[0][0] else None)
        return {"n": total, "seconds": round(span, 2), "overall": round(total / span, 2),
                "middle_90": round(0.9 * total / (m1 - m0), 2) if m1 and m0 and m1 > m0
                else None,
                "all_batch_calls_tps": round(batch_tps, 2) if batch_tps else None,
                "sample_interval": self.interval}


class SimTime:
    """Maps real epoch seconds to the fake's simulated epoch seconds:
    sim = sim_at_cal + (real - real_at_cal) * time_scale (the fake's clock is linear)."""

    def __init__(self, stats_fn: Callable[[], dict[str, Any]]) -> None:
        before = time.time()
        stats = stats_fn()
        after = time.time()
        self.real0 = (before + after) / 2
        self.sim0 = float(stats["sim_time"])
        self.scale = float(stats["time_scale"])
        self.error_sim = (after - before) / 2 * self.scale

    def sim(self, real: float) -> float:
        return self.sim0 + (real - self.real0) * self.scale
