"""Names: the rules for project and workflow names, and deterministic AWS Batch job names.

Job names are how batchd reconciles a SubmitJob whose response was lost (it looks the job up
by name before ever resubmitting), so a name must be a pure function of the job's identity
and two different jobs must never share one. AWS allows only 128 characters from
[A-Za-z0-9_-], so readable parts are sanitised and truncated and a hash of the exact identity
keeps the result collision-free.
"""

from __future__ import annotations

import hashlib
import json
import re

from batchd.errors import InvalidInput
from batchd.text import clip

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
NAME_RULES = ("1-64 characters: letters, digits, '.', '_' and '-', starting with a letter "
              "or digit, and no '..'")

JOB_NAME_MAX = 128
JOB_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_HASH_LEN = 10
# Caps on the readable project and workflow parts, so the sample name (the part people
# search for in the AWS console) keeps most of the room.
_PROJECT_MAX = 24
_WORKFLOW_MAX = 24


def validate_name(kind: str, name: str) -> None:
    """Reject a project or workflow name that cannot be used in paths, job names and URLs."""
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"the {kind} name is empty; give a name of {NAME_RULES}", kind=kind)
    # '..' is refused because names become directory and S3 path components.
    if len(name) > 64:
        raise InvalidInput(f"invalid {kind} name {clip(name)} (it is {len(name):,} "
                           f"characters long); a {kind} name must be {NAME_RULES}", kind=kind)
    if not NAME_RE.fullmatch(name) or ".." in name:
        bad = sorted({c for c in name if not re.fullmatch(r"[A-Za-z0-9._-]", c)})
        why = ""
        if len(name) > 64:
            why = f" (it is {len(name)} characters long)"
        elif bad:
            why = f" (it contains {', '.join(repr(c) for c in bad)})"
        elif ".." in name:
            why = " (it contains '..')"
        elif not name[0].isalnum():
            why = f" (it starts with {name[0]!r})"
        raise InvalidInput(f"invalid {kind} name {name!r}{why}; a {kind} name must be "
                           f"{NAME_RULES}", kind=kind, name=name)


def _readable(text: str, limit: int) -> str:
    return _UNSAFE.sub("_", text)[:limit].strip("_-") or "x"


def job_name(project: str, workflow: str, sample: str, step: int, attempt: int) -> str:
    """The AWS Batch job name for one attempt of one job: deterministic and injective."""
    # JSON gives an unambiguous encoding of the exact tuple: ('a-b', 'c') and ('a', 'b-c')
    # hash differently even though their readable forms look alike.
    identity = json.dumps([project, workflow, sample, step, attempt], ensure_ascii=False)
    digest = hashlib.sha256(identity.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_LEN]
    suffix = f"-s{step}-a{attempt}-{digest}"
    room = JOB_NAME_MAX - len(suffix)
    head = f"{_readable(project, _PROJECT_MAX)}-{_readable(workflow, _WORKFLOW_MAX)}"
    sample_room = room - len(head) - 1
    if sample_room >= 1:
        head = f"{head}-{_readable(sample, sample_room)}"
    name = (head[:max(room, 1)].rstrip("_-") or "x") + suffix
    if not name[0].isalnum():
        name = "j" + name[1:]
    return _UNSAFE.sub("_", name)[:JOB_NAME_MAX]
