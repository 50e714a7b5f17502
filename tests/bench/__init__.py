"""Benchmarks (`make bench`, `python -m tests.bench`): the fake AWS with compressed time, a real
batchd process pointed at it through the standard AWS endpoint variables, driven only through
batchctl and the control socket. See `__main__.py` for the command line, `scenarios.py` for
what each scenario runs, `report.py` for the targets and the report's fields."""
