"""The daemon's lifecycle: claim the state dir and socket, run the loops, stop cleanly.

Shutdown has one path, whoever asks for it (SIGTERM, SIGINT, `POST /v1/shutdown`, a crashed
loop): the `stop` event is set, the socket stops taking requests, each loop finishes the batch
(transaction) it is in and returns, and whatever has not returned by the deadline is cancelled.
Signal handlers only set the event. A loop that raises takes the daemon down with exit code 1
(systemd restarts it) instead of dying silently while the rest pretends all is well.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import socket
import stat
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, cast

from aiohttp import web

from batchd import __version__, crashpoints
from batchd.api import access, observe
from batchd.api.app import Context, build_app
from batchd.backends.base import Backend
from batchd.config import preflight
from batchd.config.reload import Reloader
from batchd.config.settings import Settings, log_ignored
from batchd.errors import BatchdError, InvalidInput, PermanentBackendError, Unavailable
from batchd.logs import get_logger
from batchd.loops.checker import Checker
from batchd.loops.poller import Poller
from batchd.loops.stuck import StuckWatcher
from batchd.loops.submitter import SETTLE_SECONDS, Submitter
from batchd.store import Store
from batchd.wakeups import Wakeups, pause

log = get_logger(component="daemon")


class AlreadyRunning(BatchdError):
    code = "already_running"


def make_backend(settings: Settings) -> Backend:
    if settings.backend == "aws":
        from batchd.backends.aws.backend import AwsBackend
        from batchd.backends.aws.ratelimit import RateBudget
        return AwsBackend(budget=RateBudget(settings.rate_limit), region=settings.aws_region,
                          profile=settings.aws_profile, log=get_logger(component="aws"))
    from batchd.backends.local.backend import LocalBackend
    return LocalBackend(settings.state_dir, vcpus=settings.local_vcpus,
                        memory=settings.local_memory, log=get_logger(component="local"))


def _unusable(name: str, path: Path, exc: OSError) -> InvalidInput:
    """An OSError while creating the socket or state directory: a bad setting, exit 2."""
    return preflight.fail(name, f"cannot use {path}: {exc.strerror or exc}",
                          f"fix its permissions or type, or choose another {name}")


def lock_state_dir(state_dir: Path, undo: preflight.Undo | None = None) -> int:
    """One daemon per state directory: two would both submit the same jobs."""
    try:
        if undo is not None:
            undo.mkdir(state_dir, 0o750)
        else:
            state_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
        fd = os.open(state_dir / "batchd.lock", os.O_RDWR | os.O_CREAT, 0o640)
    except OSError as exc:
        raise _unusable("state_dir", state_dir, exc) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise AlreadyRunning(f"another batchd (pid {holder}) is already using the state "
                             f"directory {state_dir}; stop it first or use another "
                             "--state-dir") from exc
    if undo is not None:
        undo.locked = True
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def claim_socket(path: Path, undo: preflight.Undo | None = None) -> None:
    """Replace a stale socket left by a crashed daemon; refuse to steal a live one."""
    try:
        if undo is not None:
            undo.mkdir(path.parent, 0o750)
        else:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    except OSError as exc:
        raise _unusable("socket", path.parent, exc) from None
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise AlreadyRunning(f"{path} exists and is not a socket; remove it or choose "
                             "another --socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2.0)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        log.info("stale_socket_removed", socket=str(path))
        path.unlink(missing_ok=True)
        return
    finally:
        probe.close()
    if undo is not None:
        undo.contested = True
    raise AlreadyRunning(f"another batchd is already answering on {path}; stop it first "
                         "(`batchctl daemon stop`) or use another --socket")


async def supervise(loops: dict[str, Callable[[], Coroutine[Any, Any, None]]],
                    services: dict[str, Callable[[], Coroutine[Any, Any, None]]],
                    stop: asyncio.Event, deadline: float) -> list[str]:
    """Run `loops` (which return by themselves once `stop` is set) and `services` (which run
    until cancelled). Returns the names of the tasks that crashed."""
    tasks = {asyncio.create_task(fn(), name=name): name for name, fn in loops.items()}
    background = {asyncio.create_task(fn(), name=name): name for name, fn in services.items()}
    stopper = asyncio.create_task(stop.wait())
    crashed: list[str] = []
    watch: set[asyncio.Task[Any]] = set(tasks) | set(background) | {stopper}
    while not stop.is_set():
        done, watch = await asyncio.wait(watch, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is stopper:
                continue
            name = cast(str, tasks.get(task) or background.get(task))
            exc = task.exception() if not task.cancelled() else None
            if exc is None and (task in background or stop.is_set()):
                # A service with nothing to do in the background (e.g. aws), or a loop that
                # saw the stop request before this wait noticed it: both are normal.
                continue
            if exc is not None:
                log.error("loop_crashed", loop=name, error=repr(exc), exc_info=exc)
            else:
                log.error("loop_crashed", loop=name, error="returned before shutdown")
            crashed.append(name)
            stop.set()
    log.info("daemon_stopping")
    pending = [t for t in tasks if not t.done()]
    if pending:
        _, late = await asyncio.wait(pending, timeout=deadline)
        for task in late:
            log.warning("loop_cancelled_at_deadline", loop=tasks[task])
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
    for task in background:
        task.cancel()
    await asyncio.gather(*background, return_exceptions=True)
    stopper.cancel()
    for task, name in tasks.items():
        if task.done() and not task.cancelled() and task.exception() and name not in crashed:
            log.error("loop_crashed", loop=name, error=repr(task.exception()))
            crashed.append(name)
    return crashed


def survive_full_disk(name: str, run: Callable[[], Coroutine[Any, Any, None]], stop: asyncio.Event,
                      retry: float = 10.0) -> Callable[[], Coroutine[Any, Any, None]]:
    """A loop whose transaction hit a full disk or read-only state dir is restarted after a
    pause instead of taking the daemon down: its transaction was rolled back (nothing recorded
    is lost), the jobs it tracks keep running in the backend, and it resumes once an
    administrator frees space. Restarting `run()` is safe: every loop keeps its state in the
    database, not in memory. Any other exception still crashes the daemon."""

    async def guarded() -> None:
        while not stop.is_set():
            try:
                await run()
                return
            except Unavailable as exc:
                log.error("loop_paused_state_unwritable", loop=name, error=exc.message,
                          retry_in=retry)
                await pause(asyncio.Event(), stop, retry)

    return guarded


class StartupRecovery:
    """The writes a start makes before any loop may run: attempts a crash left mid-SubmitJob
    become "unknown" (looked up by name, never resent blindly), undecided failed attempts are
    decided. On a full disk or read-only state directory they cannot be made, and exiting
    would be wrong: the exit status (2) stops systemd from restarting batchd, which then stays
    down after space is freed. So the daemon comes up and answers (`/healthz` says why it
    refuses work), the loops wait, and the writes are retried until they succeed."""

    RETRY = 2.0

    def __init__(self, store: Store) -> None:
        self.store = store
        self.poller: Poller | None = None
        self.unknown: int | None = None          # attempts marked unknown (None: not yet)
        self.pending: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self.done = asyncio.Event()
        self.done.set()

    async def mark_unknown(self) -> None:
        self.unknown = await self.store.mark_all_submitting_unknown(time.time() + SETTLE_SECONDS)

    async def repair(self) -> None:
        assert self.poller is not None
        await self.poller.repair_undecided()

    async def attempt(self, step: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run `step` now, or, once a step could not write, queue it (order is kept)."""
        if not self.pending:
            try:
                await step()
                return
            except Unavailable as exc:
                log.error("startup_paused_state_unwritable", error=exc.message,
                          retry_in=self.RETRY)
                self.done.clear()
        self.pending.append(step)

    async def run(self, stop: asyncio.Event) -> None:
        while self.pending and not stop.is_set():
            await pause(asyncio.Event(), stop, self.RETRY)
            try:
                while self.pending and not stop.is_set():
                    await self.pending[0]()
                    self.pending.pop(0)
            except Unavailable:
                continue
            log.info("startup_resumed", submits_to_reconcile=self.unknown)
            self.done.set()

    def gate(self, run: Callable[[], Coroutine[Any, Any, None]],
             stop: asyncio.Event) -> Callable[[], Coroutine[Any, Any, None]]:
        """`run`, once the start-up writes are made (returns at once on a stop request)."""

        async def gated() -> None:
            if not self.done.is_set():      # not pause(): it clears the event it waits for
                waiters = [asyncio.ensure_future(self.done.wait()),
                           asyncio.ensure_future(stop.wait())]
                try:
                    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiter in waiters:
                        waiter.cancel()
            if not stop.is_set():
                await run()

        return gated


async def _announce_stopping(stop: asyncio.Event, notify: Callable[[str], None] | None,
                             sent: list[bool]) -> None:
    """STOPPING=1 as soon as a stop is requested (systemd then shows "deactivating" while the
    loops finish their batches), whoever requested it."""
    await stop.wait()
    if notify and not sent:
        sent.append(True)
        notify("STOPPING=1")
    await asyncio.Event().wait()  # a service: runs until cancelled


async def serve(settings: Settings, *, notify: Callable[[str], None] | None = None,
                flags: dict | None = None) -> int:
    loop = asyncio.get_running_loop()
    # SIGHUP's default action kills the process: catch it before anything else can take time
    # (a `systemctl reload` racing start-up must not look like a crash).
    hup = asyncio.Event()
    loop.add_signal_handler(signal.SIGHUP, hup.set)
    preflight.check(settings)   # a bad setting must stop us before anything is created
    undo = preflight.Undo(settings)
    lock_fd: int | None = None
    store: Store | None = None
    backend: Backend | None = None
    runner: web.AppRunner | None = None
    socket_ours = ready = False
    try:
        lock_fd = lock_state_dir(settings.state_dir, undo)
        claim_socket(settings.socket, undo)
        socket_ours = True   # absent or stale: whatever is at that path now is this start's
        try:
            store = await Store.open(settings.database)
        except Unavailable as exc:   # read-only, full, or not a database file
            raise InvalidInput(f"state_dir: {exc.message}") from None
        backend = make_backend(settings)
        auth = backend.auth     # refused credentials' back-off starts at the
        if auth is not None:    # poll interval (backends/auth.py)
            auth.base = settings.effective_poll_interval
        crashpoints.install(store, backend)  # TEST-ONLY; no-op unless BATCHD_CRASH_AT/_LOG set
        try:
            await backend.start()
        except PermanentBackendError as exc:   # e.g. no region: configuration, not a crash
            raise InvalidInput(f"backend {settings.backend}: {exc.message}") from None
        except OSError as exc:   # the local backend's directories inside the state dir
            raise _unusable("state_dir", Path(exc.filename or settings.state_dir),
                            exc) from None
        recovery = StartupRecovery(store)
        await recovery.attempt(recovery.mark_unknown)
        stop, wake = asyncio.Event(), Wakeups()
        ctx = Context(store=store, backend=backend, settings=settings, wake=wake, stop=stop)
        app = build_app(ctx)
        monitor, counters = observe.LagMonitor(), observe.Counters()
        observe.install(app, monitor, counters)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.UnixSite(runner, str(settings.socket))
        try:
            await site.start()
        except OSError as exc:
            raise _unusable("socket", settings.socket, exc) from None
        os.chmod(settings.socket, 0o660)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        submitter = Submitter(store, backend, settings, wake, stop)
        poller = Poller(store, backend, settings, wake, stop)
        checker = Checker(store, backend, settings, wake, stop)
        stuck = StuckWatcher(store, backend, settings, stop, interval=settings.stuck_interval)
        recovery.poller = poller
        await recovery.attempt(recovery.repair)   # before the loops: a crash may have left some

        def follow(new: Settings) -> None:  # holders not covered by `.settings = new`
            app[access.POLICY].admin_group = new.admin_group
            stuck.interval = new.stuck_interval
            if auth is not None:
                auth.base = new.effective_poll_interval

        reloader = Reloader(settings, flags or {},
                            holders=(submitter, poller, checker, stuck, ctx), backend=backend,
                            wake=wake, on_applied=follow, notify=notify, counters=counters)
        reloader.requested = hup  # a SIGHUP that arrived during start-up is not lost
        log_ignored(settings, log)
        log.info("daemon_started", version=__version__, backend=backend.name,
                 socket=str(settings.socket), state_dir=str(settings.state_dir),
                 pid=os.getpid(), submits_to_reconcile=recovery.unknown)
        if notify:
            notify("READY=1")
        ready = True
        stopping_sent: list[bool] = []
        crashed = await supervise(
            {name: survive_full_disk(name, recovery.gate(fn, stop), stop) for name, fn in
             (("submitter", submitter.run), ("poller", poller.run), ("checker", checker.run),
              ("stuck", stuck.run))},
            {"backend": backend.run, "loop_lag": monitor.run, "reload": reloader.run,
             "recovery": lambda: recovery.run(stop),
             "stopping": lambda: _announce_stopping(stop, notify, stopping_sent)},
            stop, settings.shutdown_timeout)
        if notify and not stopping_sent:
            notify("STOPPING=1")
        return 1 if crashed else 0
    finally:
        started = time.monotonic()
        if runner is not None:
            await runner.cleanup()
        if socket_ours:   # never another daemon's live socket
            with contextlib.suppress(FileNotFoundError):
                settings.socket.unlink()
        if backend is not None:
            await backend.close()
        if store is not None:
            await store.close()
        if not ready:
            undo.run()   # while the lock is still ours
        if lock_fd is not None:
            os.close(lock_fd)
        if ready:
            log.info("daemon_stopped", seconds=round(time.monotonic() - started, 3))
