"""`python -m tests.bench` (also `make bench BENCH_ARGS="..."`): run the benchmark scenarios
against the fake AWS and a real batchd process, print a table, write a JSON report.

examples:
  python -m tests.bench --smoke                          # every scenario, tiny (CI-sized)
  python -m tests.bench --scenario throughput            # 20,000 jobs at 45 TPS
  python -m tests.bench --scenario pipeline --scale 0.2  # 2,000 samples x 3 steps
  python -m tests.bench --scenario scale --jobs 10000 --report scale.json
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from .report import finish, table, write_json
from .runner import machine, run_all
from .scenarios import SCENARIOS, build


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", default="all", choices=(*SCENARIOS, "all"))
    p.add_argument("--only", metavar="NAME", action="append",
                   help="only runs with this name (e.g. throughput-45); repeatable")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--scale", type=float, default=1.0,
                      help="multiply the default sizes (default 1.0 = the issue's sizes)")
    size.add_argument("--jobs", type=int, help="jobs per run (samples = jobs / steps)")
    p.add_argument("--smoke", action="store_true",
                   help="tiny sizes and a fast clock: proves the harness works (CI)")
    p.add_argument("--time-scale", type=float, help="override every run's time scale")
    p.add_argument("--latency-calls", type=int, help="status/dashboard calls per run")
    p.add_argument("--report", default="bench-report.json", help="JSON report path")
    p.add_argument("--keep", action="store_true", help="keep each run's daemon directory")
    return p.parse_args(argv)


def scenarios_for(args: argparse.Namespace):
    kinds = SCENARIOS if args.scenario == "all" else (args.scenario,)
    runs = [s for kind in kinds
            for s in build(kind, scale=args.scale, jobs=args.jobs, smoke=args.smoke)]
    if args.only:
        runs = [s for s in runs if s.name in args.only]
    changes = {}
    if args.time_scale:
        changes["time_scale"] = args.time_scale
    if args.latency_calls:
        changes["latency_calls"] = args.latency_calls
    elif args.smoke:
        changes["latency_calls"] = 5
    return [dataclasses.replace(s, **changes) for s in runs]


def compile_bytecode() -> None:
    """Compile batchd's and batchctl's bytecode, as `pip install` does: a source checkout
    under PYTHONDONTWRITEBYTECODE (or with stale .pyc files) would recompile batchctl at every
    call, ~20 ms of each `status` measured."""
    import compileall
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for package in ("batchd", "batchctl"):
        compileall.compile_dir(str(root / package), quiet=1)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    runs = scenarios_for(args)
    if not runs:
        print("no scenario selected", file=sys.stderr)
        return 2
    compile_bytecode()
    entries = run_all(runs, keep=args.keep)
    report = finish(entries, machine(), {k: v for k, v in vars(args).items()})
    write_json(report, args.report)
    print(table(report))
    print(f"\nreport: {args.report}")
    return 1 if any(e.get("error") for e in entries) else 0


if __name__ == "__main__":
    sys.exit(main())
