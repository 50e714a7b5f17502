"""The project's own fake AWS (Batch + S3 + CloudWatch Logs) for e2e tests and benchmarks.

In-process: `FakeAWS(config)` (`await start()` -> URL, `await stop()`); standalone:
`python -m tests.fakeaws --port 0 --time-scale 60` prints `FAKEAWS_URL=http://127.0.0.1:PORT`.
See README.md in this directory for behaviours, knobs and the `/_fake/` control API.
"""

from .config import ComputeEnvConfig, FakeConfig, QueueConfig
from .server import FakeAWS

__all__ = ["FakeAWS", "FakeConfig", "QueueConfig", "ComputeEnvConfig"]
