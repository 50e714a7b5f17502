"""Output existence checks for s3:// URIs (and local paths) in as few requests as possible.

A workflow's outputs are usually dense: `s3://bucket/proj/{sample}.json` for 10,000 samples,
or `s3://bucket/results/{sample}/{sample}.vcf.gz`. Checking them one HEAD each costs 10,000
requests; listing the prefix costs one ListObjectsV2 page per 1,000 keys. So:

1. URIs are grouped by bucket and "directory" (key up to the last `/`). A directory with at
   least `list_threshold` wanted keys is listed (Delimiter `/`, Prefix = the keys' longest
   common prefix, StartAfter just before the first key, stopping once past the last one),
   unless its last listing showed more than MAX_KEYS_PER_WANTED objects per wanted key.
2. The remaining keys are grouped one level up (`results/` for `results/S1/S1.vcf.gz`); a
   parent with at least `list_threshold` of them is listed without a delimiter, the same way.
3. Keys the caller grouped (one sample's outputs of two consecutive steps) and that share a
   directory get one small page under their common prefix (a probe); everything else a HEAD.
Pages are sized to the range expected (S3 cannot stop a page at the last wanted key). A
listing gives up once it has cost as many pages as keys are left, or parsed too many objects
per key answered (a prefix crowded with unrelated objects, or jobs finishing one by one in a
large prefix), and probes or HEADs the rest: the worst case stays one request per key.

Answers: True (exists), False (definitely absent: 404 / not in a complete listing / no such
bucket) or None (403, throttling, 5xx, network: "unknown, ask again later", never "missing").
Non-s3 URIs are local paths (`file://` allowed), checked with stat() in a worker thread.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from botocore import exceptions as bexc

from batchd.backends.base import OutputStore

__all__ = ["S3OutputStore", "check_local_paths", "split_s3_uri"]

MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchBucket"})
DENIED_CODES = frozenset({"403", "AccessDenied", "AllAccessDisabled", "AccessDeniedException"})


def split_s3_uri(uri: str) -> tuple[str, str] | None:
    if not uri.startswith("s3://"):
        return None
    rest = uri[5:]
    bucket, _, key = rest.partition("/")
    if not bucket:
        return None
    return bucket, key


def check_local_paths(paths: list[str]) -> dict[str, bool | None]:
    """stat() each path: missing -> False; unreadable (permission, I/O, stale NFS) -> None."""
    result: dict[str, bool | None] = {}
    for original in paths:
        path = original[7:] if original.startswith("file://") else original
        try:
            os.stat(path)
            result[original] = True
        except (FileNotFoundError, NotADirectoryError):
            result[original] = False
        except (OSError, ValueError):
            result[original] = None
    return result


def _group_index(groups: Sequence[Sequence[str]]) -> dict[tuple[str, str], int]:
    index: dict[tuple[str, str], int] = {}
    for number, group in enumerate(groups):
        for uri in group:
            parsed = split_s3_uri(uri)
            if parsed is not None:
                index.setdefault(parsed, number)
    return index


def _error_code(exc: bexc.ClientError) -> tuple[str, int | None]:
    code = str((exc.response.get("Error") or {}).get("Code") or "")
    status = (exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    return code, status


class S3OutputStore(OutputStore):
    def __init__(self, client: Any, *, concurrency: int = 32, list_threshold: int = 8,
                 log=None,
                 local_check: Callable[[list[str]], dict[str, bool | None]] = check_local_paths
                 ) -> None:
        self.client = client            # an aiobotocore S3 client (set by AwsBackend.start)
        self.concurrency = max(1, concurrency)
        self.list_threshold = max(1, list_threshold)
        self.log = log
        self.local_check = local_check
        self._sem: asyncio.Semaphore | None = None
        self.head_calls = 0
        self.list_calls = 0
        self.unknown_answers = 0
        # (bucket, directory) -> objects seen in its last range listing (see _worth_listing)
        self._range_sizes: dict[tuple[str, str], int] = {}
        # bucket -> when ListObjectsV2 gave 403 (only HEADs there for LIST_DENIED_SECONDS)
        self._list_denied: dict[str, float] = {}

    @property
    def counters(self) -> dict[str, int]:
        return {"head_calls": self.head_calls, "list_calls": self.list_calls,
                "unknown_answers": self.unknown_answers}

    def _semaphore(self) -> asyncio.Semaphore:
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.concurrency)
        return self._sem

    # S3 cannot end a page at the last wanted key: a first page of 1,000 keys for a few
    # wanted ones parsed hundreds of unrelated keys (the pipeline benchmark's biggest CPU
    # cost). The first page is sized to a few objects per wanted key, later ones to the
    # density seen so far.
    FIRST_PAGE_KEYS_PER_WANTED = 10
    MIN_PAGE_KEYS = 100
    # A range listing must not parse more than this many objects per key it answers: each
    # listed key costs CPU (~1/100 of a request's) and a LIST costs 12.5 HEADs in S3's price
    # list (so a full page pays off from ~13 keys answered). Sparse keys (jobs finishing one
    # by one in a 30,000-object prefix) are HEADed, or probed per group with one small page.
    MAX_KEYS_PER_WANTED = 50
    PROBE_KEYS_PER_WANTED = 4
    LIST_DENIED_SECONDS = 600.0     # a 403 may pass (a policy being fixed, a skewed clock)

    # ------------------------------------------------------------------ entry point
    async def exists_many(self, uris: list[str],
                          groups: Sequence[Sequence[str]] | None = None
                          ) -> dict[str, bool | None]:
        result: dict[str, bool | None] = {}
        local: list[str] = []
        by_bucket: dict[str, set[str]] = defaultdict(set)
        owners: dict[tuple[str, str], list[str]] = defaultdict(list)
        for uri in dict.fromkeys(uris):
            parsed = split_s3_uri(uri)
            if parsed is not None:
                by_bucket[parsed[0]].add(parsed[1])
                owners[parsed].append(uri)
            elif "://" in uri and not uri.startswith("file://"):
                result[uri] = None          # a scheme we cannot check (gs://, https://)
            else:
                local.append(uri)
        if local:
            result.update(await asyncio.to_thread(self.local_check, local))
        if by_bucket:
            answers: dict[tuple[str, str], bool | None]
            if self.client is None:
                answers = {(b, k): None for b, keys in by_bucket.items() for k in keys}
            else:
                answers = {}
                group_of = _group_index(groups or ())
                await asyncio.gather(*(self._check_bucket(bucket, sorted(keys), answers,
                                                          group_of)
                                       for bucket, keys in by_bucket.items()))
            for pair, answer in answers.items():
                for uri in owners[pair]:
                    result[uri] = answer
        ordered = {uri: result.get(uri) for uri in dict.fromkeys(uris)}
        self.unknown_answers += sum(1 for v in ordered.values() if v is None)
        return ordered

    # ------------------------------------------------------------------ planning
    async def _check_bucket(self, bucket: str, keys: list[str],
                            answers: dict[tuple[str, str], bool | None],
                            group_of: dict[tuple[str, str], int]) -> None:
        out: dict[str, bool | None] = {}
        groups = {k: group_of[(bucket, k)] for k in keys if (bucket, k) in group_of}
        jobs = []
        prefixes = [k for k in keys if k == "" or k.endswith("/")]
        for key in prefixes:
            jobs.append(self._prefix_exists(bucket, key, out))
        files = [k for k in keys if not (k == "" or k.endswith("/"))]
        by_dir: dict[str, list[str]] = defaultdict(list)
        for key in files:
            by_dir[key[:key.rfind("/") + 1]].append(key)
        sparse: list[str] = []      # too few in their directory: perhaps many one level up
        rest: list[str] = []
        for directory, group in by_dir.items():
            if len(group) < self.list_threshold:
                sparse.extend(group)
            elif self._worth_listing(bucket, directory, len(group)):
                jobs.append(self._list_range(bucket, sorted(group), "/", out, groups,
                                             scope=directory))
            else:
                rest.extend(group)
        by_parent: dict[str, list[str]] = defaultdict(list)
        for key in sparse:
            directory = key[:key.rfind("/")]            # without its trailing slash
            parent = directory[:directory.rfind("/") + 1] if "/" in key else None
            if parent is None:
                by_parent["\0single"].append(key)       # top-level keys: nothing above
            else:
                by_parent[parent].append(key)
        for parent, group in by_parent.items():
            if parent != "\0single" and self._worth_listing(bucket, parent, len(group)):
                jobs.append(self._list_range(bucket, sorted(group), None, out, groups,
                                             scope=parent))
            else:
                rest.extend(group)
        jobs.append(self._probe_or_head(bucket, rest, out, groups))
        await asyncio.gather(*jobs)
        for key in keys:
            answers[(bucket, key)] = out.get(key)

    def _worth_listing(self, bucket: str, scope: str, wanted: int) -> bool:
        """List a directory's range only for enough keys, and (once its size has been seen)
        only while it holds at most MAX_KEYS_PER_WANTED objects per wanted key."""
        if wanted < self.list_threshold or self._denied(bucket):
            return False
        seen = self._range_sizes.get((bucket, scope))
        return seen is None or seen <= wanted * self.MAX_KEYS_PER_WANTED

    def _denied(self, bucket: str) -> bool:
        since = self._list_denied.get(bucket)
        return since is not None and time.monotonic() - since < self.LIST_DENIED_SECONDS

    async def _probe_or_head(self, bucket: str, keys: list[str], out: dict[str, bool | None],
                             groups: dict[str, int]) -> None:
        """Keys of one group in one directory (a sample's outputs of two steps, side by side)
        are answered by one small page under their common prefix; the others by a HEAD."""
        clusters: dict[tuple[str, int], list[str]] = defaultdict(list)
        heads: list[str] = []
        for key in keys:
            group = groups.get(key)
            if group is None:
                heads.append(key)
            else:
                clusters[(key[:key.rfind("/") + 1], group)].append(key)
        jobs = []
        for cluster in clusters.values():
            if len(cluster) == 1 or self._denied(bucket):
                heads.extend(cluster)
            else:
                jobs.append(self._list_range(bucket, sorted(cluster), "/", out, None))
        jobs.extend(self._head(bucket, key, out) for key in heads)
        await asyncio.gather(*jobs)

    # ------------------------------------------------------------------ requests
    async def _head(self, bucket: str, key: str, out: dict[str, bool | None]) -> None:
        async with self._semaphore():
            self.head_calls += 1
            try:
                await self.client.head_object(Bucket=bucket, Key=key)
            except asyncio.CancelledError:
                raise
            except bexc.ClientError as exc:
                code, status = _error_code(exc)
                out[key] = False if (code in MISSING_CODES or status == 404) else None
                return
            except Exception:  # noqa: BLE001 - network, timeouts: unknown
                out[key] = None
                return
        out[key] = True

    async def _prefix_exists(self, bucket: str, prefix: str,
                             out: dict[str, bool | None]) -> None:
        """A "directory" output exists when any object lies under it."""
        async with self._semaphore():
            self.list_calls += 1
            try:
                params: dict[str, Any] = {"Bucket": bucket, "MaxKeys": 1}
                if prefix:
                    params["Prefix"] = prefix
                response = await self.client.list_objects_v2(**params)
            except asyncio.CancelledError:
                raise
            except bexc.ClientError as exc:
                code, status = _error_code(exc)
                out[prefix] = False if code == "NoSuchBucket" else None
                return
            except Exception:  # noqa: BLE001
                out[prefix] = None
                return
        out[prefix] = bool(response.get("KeyCount") or response.get("Contents"))

    async def _list_range(self, bucket: str, keys: list[str], delimiter: str | None,
                          out: dict[str, bool | None], groups: dict[str, int] | None,
                          *, scope: str | None = None) -> None:
        """List the key range [keys[0], keys[-1]] (sorted) and answer for every key, and
        remember how many objects the `scope` (the directory planned) holds. Without a scope
        it is a probe: one small page; keys it did not reach get a HEAD."""
        probe = scope is None
        prefix = os.path.commonprefix(keys)
        wanted = set(keys)
        last_wanted = keys[-1]
        position = ""           # every key <= position has been seen (listing is ordered)
        pages = listed = 0
        left_before = len(keys)
        # S3 cannot stop a page at the last wanted key: size pages to the expected range
        # (first guess: a few objects per wanted key, then the density seen so far).
        if probe:
            max_keys = min(1000, self.PROBE_KEYS_PER_WANTED * len(keys))
        else:
            max_keys = min(1000, max(self.MIN_PAGE_KEYS,
                                     self.FIRST_PAGE_KEYS_PER_WANTED * len(keys)))
        token: str | None = None
        while True:
            params: dict[str, Any] = {"Bucket": bucket, "MaxKeys": max_keys}
            if prefix:
                params["Prefix"] = prefix
            if delimiter:
                params["Delimiter"] = delimiter
            if token:
                params["ContinuationToken"] = token
            elif keys[0][:-1]:
                params["StartAfter"] = keys[0][:-1]    # a proper prefix: sorts just before it
            async with self._semaphore():
                self.list_calls += 1
                pages += 1
                try:
                    response = await self.client.list_objects_v2(**params)
                except asyncio.CancelledError:
                    raise
                except bexc.ClientError as exc:
                    code, status = _error_code(exc)
                    unanswered = [k for k in keys if k not in out]
                    if code == "NoSuchBucket":
                        out.update({k: False for k in unanswered})
                        return
                    if code in DENIED_CODES or status == 403:
                        self._list_denied[bucket] = time.monotonic()
                        probe = True                 # may still HEAD objects: fall back
                        break
                    out.update({k: None for k in unanswered})
                    return
                except Exception:  # noqa: BLE001
                    out.update({k: None for k in keys if k not in out})
                    return
            for item in response.get("Contents", []) or []:
                key = item.get("Key", "")
                if key in wanted:
                    out[key] = True
                position = max(position, key)
            for item in response.get("CommonPrefixes", []) or []:
                position = max(position, item.get("Prefix", ""))
            returned = len(response.get("Contents", []) or []) + \
                len(response.get("CommonPrefixes", []) or [])
            listed += returned
            token = response.get("NextContinuationToken") if response.get("IsTruncated") \
                else None
            if token is None or position >= last_wanted:
                # complete up to (at least) the last wanted key: the rest are absent
                out.update({k: False for k in keys if k not in out})
                if scope is not None and not probe:     # (not probe: scope is given)
                    self._range_sizes[(bucket, scope)] = listed
                return
            answered_before = len(keys) - left_before
            for k in keys:
                if k not in out and k <= position:
                    out[k] = False
            left = sum(1 for k in keys if k not in out)
            answered = (len(keys) - left) - answered_before
            left_before = left
            if probe or scope is None:                  # (not probe: scope is given)
                break
            # The range's size, extrapolated from the share of wanted keys answered so far.
            self._range_sizes[(bucket, scope)] = listed * len(keys) // max(1, len(keys) - left)
            if pages >= left or listed > 2 * self.MAX_KEYS_PER_WANTED * (len(keys) - left):
                break           # listing no longer cheaper than a request per key left
            density = returned / max(1, answered)
            max_keys = min(1000, max(self.MIN_PAGE_KEYS, int(density * left * 1.25) + 1))
        left_keys = [k for k in keys if k not in out]
        if probe or groups is None:
            await asyncio.gather(*(self._head(bucket, k, out) for k in left_keys))
        else:
            await self._probe_or_head(bucket, left_keys, out, groups)
