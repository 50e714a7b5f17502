"""SIGHUP: re-read the configuration and apply what can change without a restart.

The signal handler only sets an event; `Reloader.run` (a daemon service task) does the work on
the event loop, between the loops' transactions, so nothing is torn mid-batch and no work is
dropped. Settings are frozen: a reload builds a new `Settings` from the same layers as at
start-up (TOML file < BATCHD_* environment < the command-line flags given at start-up, which
keep winning) and hands the new object to every holder.

Applied live: poll interval, check retry interval, rate-budget ceiling, per-queue caps and
max_in_flight, submit order, retry defaults, stuck detection, admin group, log level.
Everything that was used to build something at start-up (socket, state dir, backend, AWS
region/profile, local capacity, concurrency semaphores, log format, request size limit) keeps
its old value and is named in a `config_reload_restart_needed` warning. A file that does not
parse or validate is rejected as a whole (`config_reload_failed`) and the old settings stay in
force.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

# RESTART_ONLY: built into long-lived objects at start-up, so changing them needs a restart;
# the field table in settings.py says which.
from batchd.config.settings import RESTART_ONLY, Settings, load_settings, log_ignored
from batchd.errors import BatchdError
from batchd.logs import get_logger, set_level

log = get_logger(component="reload")


def diff(old: Settings, new: Settings) -> dict[str, tuple[Any, Any]]:
    changed = {}
    for f in dataclasses.fields(Settings):
        if f.name == "ignored":          # not a setting: removed ones named, see log_ignored
            continue
        a, b = getattr(old, f.name), getattr(new, f.name)
        if a != b:
            changed[f.name] = (a, b)
    return changed


def _plain(value: Any) -> Any:
    """Log-friendly values (Paths, dataclasses, mappings)."""
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)  # type: ignore[arg-type]  # instances only, never classes
    if isinstance(value, Mapping):
        return dict(value)
    if value is None or isinstance(value, (int, float, str, bool)):
        return value
    return str(value)


class Reloader:
    def __init__(self, settings: Settings, flags: Mapping[str, Any], *,
                 holders: Iterable[Any], backend: Any, wake: Any,
                 on_applied: Callable[[Settings], None] | None = None,
                 notify: Callable[[str], None] | None = None,
                 counters: Any = None,
                 load: Callable[[Mapping[str, Any]], Settings] = load_settings) -> None:
        self.settings = settings
        self.flags = dict(flags)
        self.holders = list(holders)      # objects with a `.settings` attribute to swap
        self.backend, self.wake = backend, wake
        self.on_applied, self.notify, self.counters = on_applied, notify, counters
        self._load = load
        self.requested = asyncio.Event()

    def request(self) -> None:
        """The SIGHUP handler: only sets the event (safe in a signal context)."""
        self.requested.set()

    async def run(self) -> None:
        while True:
            await self.requested.wait()
            self.requested.clear()
            self.reload()

    def reload(self) -> bool:
        if self.notify:
            # systemd shows "reloading" until READY=1 comes back (sd_notify(3)).
            self.notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")
        try:
            return self._reload()
        finally:
            if self.notify:
                self.notify("READY=1")

    def _reload(self) -> bool:
        old = self.settings
        try:
            new = self._load(self.flags)
        except BatchdError as exc:
            return self._failed(exc.message)
        except Exception as exc:  # noqa: BLE001 - a reload must never take the daemon down
            return self._failed(f"{type(exc).__name__}: {exc}")
        log_ignored(new, log)
        changed = diff(old, new)
        frozen = {k: v for k, v in changed.items() if k in RESTART_ONLY}
        if frozen:
            new = dataclasses.replace(new, **{k: getattr(old, k) for k in frozen})
            log.warning("config_reload_restart_needed", settings=sorted(frozen),
                        hint="these settings take effect when batchd restarts")
        applied = {k: v for k, v in changed.items() if k not in RESTART_ONLY}
        budget = getattr(self.backend, "budget", None)
        try:
            if budget is not None and new.rate_limit != old.rate_limit:
                budget.set_ceiling(new.rate_limit)
        except ValueError as exc:
            return self._failed(f"rate_limit: {exc}")
        for holder in self.holders:
            holder.settings = new
        set_level(new.log_level)
        if self.on_applied:
            self.on_applied(new)
        self.settings = new
        if self.counters is not None:
            self.counters.reloads += 1
            self.counters.last_reload = time.time()
        # Caps may have grown and intervals shrunk: act on them now, not after a tick.
        for event in (self.wake.submitter, self.wake.poller, self.wake.checker):
            event.set()
        log.info("config_reloaded", config_file=_plain(new.config_file),
                 changed={k: [_plain(a), _plain(b)] for k, (a, b) in applied.items()},
                 ignored_until_restart=sorted(frozen))
        return True

    def _failed(self, error: str) -> bool:
        if self.counters is not None:
            self.counters.reload_failures += 1
        log.error("config_reload_failed", error=error,
                  hint="the previous settings stay in force; fix the file and reload again")
        return False
