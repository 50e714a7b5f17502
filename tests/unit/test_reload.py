"""Reloader without a daemon: what is applied, what waits for a restart, what is rejected."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest

import batchd.config.reload
from batchd.backends.aws.ratelimit import RateBudget
from batchd.config.reload import Reloader
from batchd.config.settings import Settings, replace
from batchd.errors import InvalidInput
from batchd.logs import configure_logging, get_logger
from batchd.wakeups import Wakeups


class Holder:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings


class Backend:
    def __init__(self) -> None:
        self.budget = RateBudget(40.0)


@pytest.fixture
def log_stream(monkeypatch):
    """JSON log lines of the reload module (its logger is rebound to the configured stream:
    module loggers keep the stream they were created with)."""
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)
    monkeypatch.setattr(batchd.config.reload, "log", get_logger(component="reload"))
    yield stream
    configure_logging("info", "json", stream=io.StringIO())


def make(new, notify=None):
    old = Settings(socket=Path("/tmp/a.sock"), state_dir=Path("/tmp/a"), log_level="info")
    holders = [Holder(old), Holder(old)]
    loader = new if callable(new) else (lambda flags: new)
    reloader = Reloader(old, {"backend": "local"}, holders=holders, backend=Backend(),
                        wake=Wakeups(), notify=notify, load=loader)
    return old, holders, reloader


def test_applies_live_settings_and_keeps_restart_only_ones(log_stream):
    stream = log_stream
    base = Settings(socket=Path("/tmp/a.sock"), state_dir=Path("/tmp/a"))
    new = replace(base, rate_limit=10.0, max_in_flight=5, log_level="debug",
                  socket=Path("/tmp/b.sock"), queue_caps={"q": 2})
    messages = []
    old, holders, reloader = make(new, notify=messages.append)
    batchd.config.reload.log.debug("probe_before_reload")
    assert reloader.reload()
    for holder in holders:
        assert holder.settings.max_in_flight == 5 and holder.settings.queue_caps == {"q": 2}
        assert holder.settings.socket == Path("/tmp/a.sock")   # restart-only: kept
    assert reloader.backend.budget.ceiling == 10.0
    assert messages[0].startswith("RELOADING=1") and messages[-1] == "READY=1"
    assert all(e.is_set() for e in (reloader.wake.submitter, reloader.wake.poller))
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    done = next(e for e in events if e["event"] == "config_reloaded")
    assert done["changed"]["rate_limit"] == [40.0, 10.0]
    assert done["ignored_until_restart"] == ["socket"]
    # The new level (debug) is in force for loggers that already exist.
    batchd.config.reload.log.debug("probe_after_reload")
    assert "probe_after_reload" in stream.getvalue()
    assert "probe_before_reload" not in stream.getvalue()


def test_a_bad_file_changes_nothing(log_stream):
    stream = log_stream

    def broken(flags):
        raise InvalidInput("batchd.toml: unknown setting 'pol_interval'")

    old, holders, reloader = make(broken)
    assert not reloader.reload()
    assert all(h.settings is old for h in holders) and reloader.settings is old
    failed = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert failed[-1]["event"] == "config_reload_failed"
    assert "pol_interval" in failed[-1]["error"]


def test_signal_handler_only_sets_an_event():
    old, holders, reloader = make(lambda flags: replace(old, max_in_flight=9))

    async def scenario():
        task = asyncio.create_task(reloader.run())
        reloader.request()
        assert holders[0].settings is old      # nothing happens inside the handler
        for _ in range(10):
            await asyncio.sleep(0)
        task.cancel()
        return holders[0].settings.max_in_flight

    assert asyncio.run(scenario()) == 9
