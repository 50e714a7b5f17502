from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.daemon_harness import REPO, Daemon, new_daemon


@pytest.fixture
def daemon_factory():
    """Create (not start) daemons; every one is stopped and its directory removed after."""
    made: list[Daemon] = []

    def make(*args: str, env: dict[str, str] | None = None) -> Daemon:
        daemon = new_daemon(*args, env=env)
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        daemon.cleanup()


@pytest.fixture
def local_daemon(daemon_factory) -> Daemon:
    """A started daemon on the local backend with fast polling."""
    return daemon_factory("--backend", "local", "--poll-interval", "0.2", "--local-vcpus", "4",
                          "--local-memory", "4096").start()


@pytest.fixture
def demo_copy(local_daemon) -> Path:
    """The README's example workflow copied next to the daemon (its outputs land there)."""
    target = local_daemon.root / "demo"
    shutil.copytree(REPO / "examples" / "demo", target)
    return target
