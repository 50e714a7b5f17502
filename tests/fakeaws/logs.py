"""CloudWatch Logs (JSON 1.1, `X-Amz-Target: Logs_20140328.<Op>`).

Every job attempt that reaches RUNNING gets the stream `<jobDefName>/default/<taskId>` in the
group `/aws/batch/job`. Its lines are generated on demand (not stored): `log_lines` lines
spread evenly over the planned run time, only those whose timestamp has passed are visible,
plus a last line describing the outcome. Tokens are `f/<index>` / `b/<index>`; at the end of
the stream GetLogEvents returns the nextForwardToken it was given (as AWS does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import ApiError

if TYPE_CHECKING:
    from .clock import SimClock
    from .jobs import Job
    from .outcomes import Plan

BATCH_GROUP = "/aws/batch/job"


class Stream:
    __slots__ = ("name", "created", "events", "job_name", "start", "step", "n", "stop", "tail",
                 "cache")

    def __init__(self, name: str, created_ms: int) -> None:
        self.name, self.created = name, created_ms
        self.events: list[tuple[int, str]] = []          # explicit PutLogEvents events
        self.job_name: str | None = None                 # set for generated (job) streams
        self.start = self.step = 0.0
        self.n = 0
        self.stop: float | None = None
        self.tail: list[str] = []
        self.cache: list[tuple[int, str]] | None = None

    def all_events(self, now: float) -> list[tuple[int, str]]:
        if self.job_name is None:
            return self.events
        if self.cache is not None:
            return self.cache
        limit = now if self.stop is None else self.stop
        out = []
        for i in range(self.n):
            ts = self.start + (i + 1) * self.step
            if ts > limit:
                break
            out.append((int(ts * 1000), f"{self.job_name}: working, step {i + 1} of {self.n}"))
        if self.stop is not None:
            stop_ms = int(self.stop * 1000)
            out.extend((stop_ms, line) for line in self.tail)
        if self.events:
            out = sorted(out + self.events)
        if self.stop is not None:
            self.cache = out
        return out


class LogsStore:
    def __init__(self, clock: SimClock, page_size: int = 100) -> None:
        self.clock = clock
        self.page_size = page_size
        self.groups: dict[str, dict[str, Stream]] = {}

    def reset(self) -> None:
        self.groups.clear()

    def stream(self, group: str, name: str) -> Stream | None:
        return self.groups.get(group, {}).get(name)

    # -- driven by the simulator -------------------------------------------------------------
    def job_stream_started(self, job: Job, now: float, plan: Plan) -> None:
        s = Stream(job.log_stream, int(now * 1000))
        s.job_name, s.start, s.n = job.name, now, plan.log_lines
        finite = plan.duration not in (float("inf"),) and plan.duration > 0
        s.step = plan.duration / (plan.log_lines + 1) if finite else 10.0
        self.groups.setdefault(BATCH_GROUP, {})[s.name] = s

    def job_stream_stopped(self, job: Job, now: float, reason: str, exit_code: int | None,
                           container_reason: str | None) -> None:
        s = self.stream(BATCH_GROUP, job.log_stream)
        if s is None:
            return
        s.stop = now
        if container_reason and container_reason.startswith("OutOfMemory"):
            s.tail = ["MemoryError: cannot allocate memory", "Killed"]
        elif exit_code == 0:
            s.tail = [f"{job.name}: finished OK"]
        elif exit_code is not None:
            s.tail = ["Traceback (most recent call last):", f"RuntimeError: {job.name} failed",
                      f"{job.name}: exiting with code {exit_code}"]
        s.cache = None

    # -- the API -------------------------------------------------------------------------------
    def handle(self, op: str, req: dict[str, Any]) -> dict[str, Any]:
        fn = getattr(self, "op_" + op, None)
        if fn is None:
            raise ApiError("UnknownOperationException", f"fake logs: {op} not supported")
        return fn(req)

    def op_CreateLogGroup(self, req: dict[str, Any]) -> dict[str, Any]:
        name = req["logGroupName"]
        if name in self.groups:
            raise ApiError("ResourceAlreadyExistsException",
                           "The specified log group already exists")
        self.groups[name] = {}
        return {}

    def op_CreateLogStream(self, req: dict[str, Any]) -> dict[str, Any]:
        group = self._group(req["logGroupName"])
        name = req["logStreamName"]
        if name in group:
            raise ApiError("ResourceAlreadyExistsException",
                           "The specified log stream already exists")
        group[name] = Stream(name, self.clock.now_ms())
        return {}

    def op_PutLogEvents(self, req: dict[str, Any]) -> dict[str, Any]:
        s = self._stream(req)
        s.events.extend((int(e["timestamp"]), e["message"]) for e in req.get("logEvents", []))
        s.events.sort()
        s.cache = None
        return {"nextSequenceToken": str(len(s.events))}

    def op_DescribeLogStreams(self, req: dict[str, Any]) -> dict[str, Any]:
        group = self._group(req.get("logGroupName") or req.get("logGroupIdentifier"))
        prefix = req.get("logStreamNamePrefix", "")
        names = sorted(n for n in group if n.startswith(prefix))
        start = int(req.get("nextToken") or 0)
        limit = int(req.get("limit") or 50)
        page = names[start:start + limit]
        out: dict[str, Any] = {"logStreams": [
            {"logStreamName": n, "creationTime": group[n].created,
             "arn": f"arn:aws:logs:us-east-1:123456789012:log-group:x:log-stream:{n}"}
            for n in page]}
        if start + limit < len(names):
            out["nextToken"] = str(start + limit)
        return out

    def op_GetLogEvents(self, req: dict[str, Any]) -> dict[str, Any]:
        s = self._stream(req)
        events = s.all_events(self.clock.now())
        if "startTime" in req or "endTime" in req:
            lo, hi = req.get("startTime", 0), req.get("endTime", 1 << 62)
            events = [e for e in events if lo <= e[0] < hi]
        limit = int(req.get("limit") or self.page_size)
        if not 1 <= limit <= 10000:
            raise ApiError("InvalidParameterException", "limit must be between 1 and 10000")
        token = req.get("nextToken")
        total = len(events)
        if token:
            try:
                kind, index = token[0], int(token[2:])
                assert kind in "fb" and token[1] == "/"
            except (AssertionError, ValueError, IndexError) as e:
                raise ApiError("InvalidParameterException",
                               "The specified nextToken is invalid.") from e
            index = min(max(0, index), total)
            if kind == "f":
                start, end = index, min(total, index + limit)
            else:
                start, end = max(0, index - limit), index
        elif req.get("startFromHead"):
            start, end = 0, min(total, limit)
        else:
            start, end = max(0, total - limit), total
        page = events[start:end]
        now_ms = self.clock.now_ms()
        return {"events": [{"timestamp": ts, "message": msg, "ingestionTime": min(ts + 200, now_ms)}
                           for ts, msg in page],
                "nextForwardToken": f"f/{end:056d}", "nextBackwardToken": f"b/{start:056d}"}

    def _group(self, name: str | None) -> dict[str, Stream]:
        group = self.groups.get(name or "")
        if group is None:
            raise ApiError("ResourceNotFoundException", "The specified log group does not exist.")
        return group

    def _stream(self, req: dict[str, Any]) -> Stream:
        group = self._group(req.get("logGroupName") or req.get("logGroupIdentifier"))
        s = group.get(req.get("logStreamName", ""))
        if s is None:
            raise ApiError("ResourceNotFoundException", "The specified log stream does not exist.")
        return s
