"""`python -m tests.bench.cpuprofile OUT.prof batchd-args...`: batchd under cProfile, timed by
the event loop thread's CPU clock (BENCH_PROFILE uses it).

`python -m cProfile` times functions by the wall clock, so the event loop's waits in
`select()` (and, on this 2-core machine, the time the thread waits for a core) read as its
biggest cost. With `time.thread_time` only the CPU the loop thread spends is attributed, which
is what "daemon CPU per 1,000 jobs" measures. SQLite's work runs in the store's database threads and
is not seen here (`BENCH_PYSPY` samples those).
"""

from __future__ import annotations

import cProfile
import sys
import time


def main() -> None:
    out, args = sys.argv[1], sys.argv[2:]
    sys.argv = ["batchd", *args]
    from batchd.cli import main as batchd_main

    profiler = cProfile.Profile(timer=time.thread_time)
    try:
        profiler.runcall(batchd_main)
    except SystemExit:
        pass
    finally:
        profiler.dump_stats(out)


if __name__ == "__main__":
    main()
