"""Job and workflow states, and how a workflow's overall status follows from its job counts:
the one definition, used by batchd's store, loops and API and by batchctl's renderer."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # batchctl imports this module: no import at run time that costs start-up
    from collections.abc import Mapping

# batchd's own job states, in lifecycle order (see docs/design.md).
WAITING = "WAITING"          # an earlier step of the same sample is not complete yet
READY = "READY"              # outputs must be checked before deciding to submit
QUEUED = "QUEUED"            # outputs absent: waiting for a submit slot
SUBMITTING = "SUBMITTING"    # attempt recorded with its job name, backend id not known yet
CHECKING = "CHECKING"        # backend said SUCCEEDED: outputs are being checked
COMPLETED = "COMPLETED"
FAILED = "FAILED"            # given up (a new attempt only through `batchctl resubmit`)
CANCELLED = "CANCELLED"

BACKEND_ACTIVE = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")
JOB_STATES = (WAITING, READY, QUEUED, SUBMITTING, *BACKEND_ACTIVE, CHECKING, COMPLETED, FAILED,
              CANCELLED)
IN_FLIGHT = (SUBMITTING, *BACKEND_ACTIVE)          # count against a queue's max_in_flight
ACTIVE = (READY, QUEUED, *IN_FLIGHT, CHECKING)      # batchd still has work to do for these
FINISHED = (COMPLETED, FAILED, CANCELLED)


def workflow_status(counts: Mapping[str, int], submitted: bool) -> str:
    """CREATED before submit; RUNNING while anything can still move; then the outcome."""
    total = sum(counts.values())
    if not submitted:
        return "CREATED"
    if total and counts.get(COMPLETED, 0) == total:
        return "COMPLETED"
    if any(counts.get(state, 0) for state in ACTIVE):
        return "RUNNING"
    if counts.get(FAILED, 0):
        return "FAILED"
    if counts.get(CANCELLED, 0):
        return "CANCELLED"
    # Only WAITING jobs left behind a failed/cancelled step cannot happen; an empty workflow can.
    return "COMPLETED" if total == 0 else "RUNNING"
