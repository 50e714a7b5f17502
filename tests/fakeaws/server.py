"""`FakeAWS`: one aiohttp server on 127.0.0.1 for Batch, S3 and CloudWatch Logs, plus `/_fake/`.

Routing: path `/_fake/...` -> control API; header `X-Amz-Target: Logs_20140328.<Op>` -> Logs;
path `/v1/<op>` -> Batch; anything else -> S3 (path style). Use it in-process::

    fake = FakeAWS({"time_scale": 600, "queues": [{"name": "default", "max_vcpus": 4}]})
    url = await fake.start()        # http://127.0.0.1:PORT, give it to aiobotocore as endpoint_url
    ...; fake.sim.jobs[job_id].status; fake.s3.exists_uri("s3://b/k"); fake.advance(3600)
    await fake.stop()
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import time
from typing import Any

from aiohttp import web

from .batch import OPERATIONS, BatchApi
from .clock import Scheduler, SimClock
from .config import FakeConfig
from .errors import ApiError
from .faults import Faults, Stats
from .jobs import Simulator
from .logs import LogsStore
from .s3 import S3Store, s3_read_op, s3_slow_down

_dumps = json.JSONEncoder(separators=(",", ":")).encode


class FakeAWS:
    def __init__(self, config: FakeConfig | dict[str, Any] | None = None,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        if config is None:
            config = FakeConfig()
        elif isinstance(config, dict):
            config = FakeConfig.from_dict(config)
        self.config, self.host, self.port = config, host, port
        self.clock = SimClock(config.time_scale)
        self.sched = Scheduler(self.clock)
        self.stats = Stats()
        self.faults = Faults(config)
        self.s3 = S3Store(self.clock, self.stats, config.auto_create_buckets)
        self.logs = LogsStore(self.clock, config.log_page_size)
        self.sim = Simulator(config, self.sched, self.stats, self.s3, self.logs)
        self.batch = BatchApi(self.sim, config)
        self._runner: web.AppRunner | None = None
        self._held: list[asyncio.Future] = []     # SubmitJob answers waiting for release()
        self.url = ""

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> str:
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]      # type: ignore[union-attr]
        self.url = f"http://{self.host}:{self.port}"
        self.sched.start()
        return self.url

    async def stop(self) -> None:
        self.sched.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeAWS:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    # -- direct control (also behind /_fake/) -----------------------------------------------
    def advance(self, sim_seconds: float = 0.0) -> int:
        """Jump simulated time forward and run every event that became due."""
        if sim_seconds:
            self.clock.skip(sim_seconds)
        ran = self.sched.advance()
        self.sched.rearm()
        return ran

    def reconfigure(self, changes: dict[str, Any]) -> None:
        changes = dict(changes)
        capacity = changes.pop("capacity", None) or {}
        self.config.update(changes)
        changed = set(changes)
        for name, vcpus in capacity.items():      # queue (shortcut CE) or CE name -> max vCPUs
            hit = False
            for q in self.config.queues:
                if q.name == name and not q.compute_environments:
                    q.max_vcpus, hit = int(vcpus), True
            for ce in self.config.compute_environments:
                if ce.name == name:
                    ce.max_vcpus, hit = int(vcpus), True
            if not hit:
                raise ValueError(f"capacity: no queue/compute environment {name!r}")
            changed.add("queues")
        if "time_scale" in changed:
            self.clock.set_scale(self.config.time_scale)
        self.faults.reconfigure(self.config, changed)
        if changed & {"queues", "compute_environments"}:
            self.sim.build_topology()
        self.logs.page_size = self.config.log_page_size
        self.s3.auto_create = self.config.auto_create_buckets
        self.sched.rearm()

    def release(self) -> int:
        """Send every held SubmitJob answer now (`hold_submit_names`); returns how many."""
        held, self._held = self._held, []
        for future in held:
            if not future.done():
                future.set_result(None)
        return len(held)

    def reset(self) -> None:
        """Forget all jobs, objects, log streams and counters (keeps the configuration)."""
        self.release()
        self.sched.clear()
        self.sim.reset()
        self.s3.reset()
        self.logs.reset()
        self.stats.reset()
        self.faults = Faults(self.config)
        self.batch = BatchApi(self.sim, self.config)

    def job_view(self, job) -> dict[str, Any]:
        d = self.batch.detail(job)
        d["_fake"] = {"forgotten": job.forgotten, "queued": job.queued,
                      "behaviour": job.plan.behaviour if job.plan else None,
                      "vcpus": job.vcpus, "memory": job.memory, "environment": job.environment}
        return d

    # -- HTTP ------------------------------------------------------------------------------
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path.startswith("/_fake/"):
            return await self._control(request, path[7:])
        self.sched.advance()
        target = request.headers.get("X-Amz-Target")
        if target:
            return await self._logs(request, target)
        if path.startswith("/v1/"):
            return await self._batch(request, path[4:])
        return await self._s3(request)

    async def _s3(self, request: web.Request) -> web.StreamResponse:
        op = s3_read_op(request) if self.config.s3_503_rate > 0 else None
        if op is not None and self.faults.s3_slow_down():
            self.stats.calls["S3." + op] += 1
            self.stats.s3_503[op] += 1
            return s3_slow_down(request.method)
        return await self.s3.handle(request)

    async def _batch(self, request: web.Request, name: str) -> web.StreamResponse:
        op = OPERATIONS.get(name.strip("/").lower())
        if op is None:
            return _json_error(404, "UnknownOperationException", f"fake batch: /v1/{name}")
        stats = self.stats
        stats.calls[op] += 1
        refused = self.faults.auth_error(op)
        if refused:      # before throttling: AWS authenticates a request before counting it
            stats.auth_refused[op] += 1
            return _json_error(403, *refused)
        if self.faults.throttle() or self.faults.random_throttle():
            stats.throttled[op] += 1
            return _json_error(429, "TooManyRequestsException", "Too Many Requests")
        status = self.faults.inject_5xx()
        if status:
            stats.errors_5xx[op] += 1
            return _json_error(status, "ServerException", "fake injected server error")
        body = await request.read()
        try:
            req = json.loads(body) if body else {}
            if op == "DescribeJobs":
                stats.described_ids += len(req.get("jobs") or ())
            elif op == "SubmitJob":     # when each name was last asked for (even if refused)
                name = str(req.get("jobName"))
                stats.last_submit_at[name] = time.time()
                refuse = self.config.throttle_submit_names
                if refuse and fnmatch.fnmatchcase(name, refuse):
                    stats.throttled[op] += 1
                    return _json_error(429, "TooManyRequestsException", "Too Many Requests")
            out = self.batch.handle(op, req, len(body))
        except ApiError as e:
            return _json_error(e.status, e.code, e.message)
        except (KeyError, ValueError, TypeError, AttributeError) as e:
            return _json_error(400, "ClientException", f"invalid request: {e!r}")
        if op == "SubmitJob" and self.faults.drop_submit():
            stats.dropped_submits += 1
            if self.config.drop_submit_mode == "close":
                if request.transport is not None:
                    request.transport.abort()       # the client sees the connection reset
            return web.Response(status=500)
        hold = self.config.hold_submit_names
        if op == "SubmitJob" and hold and fnmatch.fnmatchcase(out["jobName"], hold):
            await self._hold()
        return web.Response(body=_dumps(out).encode(), content_type="application/json",
                            headers={"x-amzn-RequestId": "fake"})

    async def _hold(self) -> None:
        """The job exists already; its creator waits for the answer (a slow SubmitJob)."""
        future = asyncio.get_running_loop().create_future()
        self._held.append(future)
        self.stats.held_submits += 1
        try:
            await asyncio.wait_for(future, self.config.hold_submit_seconds)
        except TimeoutError:
            pass
        finally:
            self.stats.held_submits -= 1
            if future in self._held:
                self._held.remove(future)

    async def _logs(self, request: web.Request, target: str) -> web.StreamResponse:
        prefix, _, op = target.partition(".")
        if prefix != "Logs_20140328":
            return _json_error(400, "UnknownOperationException", f"fake: {target}",
                               ctype="application/x-amz-json-1.1")
        self.stats.calls["Logs." + op] += 1
        if op == "GetLogEvents" and self.faults.logs_throttle():
            self.stats.logs_throttled[op] += 1       # CloudWatch Logs throttles with a 400
            return _json_error(400, "ThrottlingException", "Rate exceeded",
                               ctype="application/x-amz-json-1.1")
        body = await request.read()
        try:
            out = self.logs.handle(op, json.loads(body) if body else {})
        except ApiError as e:
            return _json_error(e.status, e.code, e.message, ctype="application/x-amz-json-1.1")
        except (KeyError, ValueError, TypeError) as e:
            return _json_error(400, "InvalidParameterException", repr(e),
                               ctype="application/x-amz-json-1.1")
        return web.Response(body=_dumps(out).encode(), content_type="application/x-amz-json-1.1")

    async def _control(self, request: web.Request, what: str) -> web.StreamResponse:
        self.sched.advance()
        q = request.query
        body = await request.json() if request.can_read_body else {}
        try:
            if what == "stats":
                out = self.stats.snapshot(include_names=q.get("names") == "1")
                out.update(sim_time=self.clock.now(), time_scale=self.clock.time_scale,
                           pending_events=len(self.sched),
                           used_vcpus={n: ce.used for n, ce in self.sim.ces.items()})
            elif what == "config":
                if request.method == "POST":
                    self.reconfigure(body)
                out = self.config.to_dict()
            elif what == "forget":
                out = {"forgotten": sum(self.sim.forget(i) for i in body.get("job_ids", []))}
            elif what == "release":
                out = {"released": self.release()}
            elif what == "reset":
                self.reset()
                out = {"ok": True}
            elif what == "advance":
                out = {"events": self.advance(float(body.get("seconds", 0))),
                       "sim_time": self.clock.now()}
            elif what == "jobs":
                out = {"jobs": [self.job_view(j) for j in self._find_jobs(q)]}
            elif what == "health":
                out = {"ok": True}
            else:
                return web.json_response({"error": f"unknown control endpoint {what}"}, status=404)
        except (ValueError, KeyError, TypeError) as e:
            return web.json_response({"error": repr(e)}, status=400)
        return web.json_response(out)

    def _find_jobs(self, q) -> list:
        limit = int(q.get("limit", "1000"))
        forgotten = q.get("include_forgotten") == "1"
        if "id" in q:
            job = (self.sim.jobs.get(q["id"])
                   or (self.sim.forgotten.get(q["id"]) if forgotten else None))
            return [job] if job else []
        if "name" in q:
            jobs = self.sim.jobs_named(q["name"])
            if forgotten:
                jobs += [j for j in self.sim.forgotten.values() if j.name == q["name"]]
            return jobs[:limit]
        if "status" in q:
            out = []
            for (queue, status), d in self.sim.by_queue_status.items():
                if status == q["status"] and q.get("queue", queue) == queue:
                    out.extend(d.values())
            return out[:limit]
        return list(self.sim.jobs.values())[:limit]


def _json_error(status: int, code: str, message: str,
                ctype: str = "application/json") -> web.Response:
    return web.Response(status=status, body=_dumps({"__type": code, "message": message}).encode(),
                        content_type=ctype, headers={"x-amzn-ErrorType": code,
                                                     "x-amzn-RequestId": "fake"})
