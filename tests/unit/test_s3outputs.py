"""S3OutputStore's planning and error policy against a small in-memory S3 stand-in (the real
HTTP path is covered by tests/e2e/test_aws_moto.py)."""

from __future__ import annotations

import bisect

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from batchd.backends.aws.s3outputs import S3OutputStore, check_local_paths


def _error(status: int, code: str, op: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, op)


class StubS3:
    def __init__(self, keys, *, head_error=None, list_error=None):
        self.keys = sorted(keys)
        self.head_error, self.list_error = head_error, list_error
        self.lists: list[dict] = []

    async def head_object(self, Bucket, Key):
        if self.head_error:
            raise self.head_error
        if Key not in self.keys:
            raise _error(404, "404", "HeadObject")
        return {}

    async def list_objects_v2(self, Bucket, MaxKeys=1000, Prefix="", Delimiter=None,
                              StartAfter=None, ContinuationToken=None):
        self.lists.append({"Prefix": Prefix, "StartAfter": StartAfter, "MaxKeys": MaxKeys})
        if self.list_error:
            raise self.list_error
        after = ContinuationToken or StartAfter or ""
        i = bisect.bisect_right(self.keys, after)
        contents, prefixes, last = [], [], None
        while i < len(self.keys) and len(contents) + len(prefixes) < MaxKeys:
            key = self.keys[i]
            i += 1
            if not key.startswith(Prefix):
                if key > Prefix:
                    break
                continue
            rest = key[len(Prefix):]
            if Delimiter and Delimiter in rest:
                cp = Prefix + rest[:rest.index(Delimiter) + 1]
                if not prefixes or prefixes[-1] != cp:
                    prefixes.append(cp)
                last = key
                continue
            contents.append({"Key": key})
            last = key
        truncated = i < len(self.keys) and self.keys[i].startswith(Prefix)
        self.returned = getattr(self, "returned", 0) + len(contents) + len(prefixes)
        out = {"Contents": contents, "CommonPrefixes": [{"Prefix": p} for p in prefixes],
               "KeyCount": len(contents) + len(prefixes), "IsTruncated": truncated}
        if truncated:
            out["NextContinuationToken"] = last
        return out


async def test_dense_directory_uses_list_pages():
    keys = [f"proj/s{i:05d}.json" for i in range(10_000)]
    store = S3OutputStore(StubS3(keys[::2]))
    result = await store.exists_many([f"s3://b/{k}" for k in keys])
    assert store.list_calls == 5 and store.head_calls == 0       # 5,000 keys: 5 pages
    assert sum(result.values()) == 5000
    assert all(result[f"s3://b/{k}"] is (i % 2 == 0) for i, k in enumerate(keys))


async def test_crowded_directory_falls_back_to_head():
    noise = [f"proj/a{i:06d}" for i in range(50_000)]       # sorts inside the wanted range
    wanted = [f"proj/a{i:06d}.json" for i in range(0, 50_000, 5000)]   # 10 keys spread out
    store = S3OutputStore(StubS3(noise + wanted[:5]))
    result = await store.exists_many([f"s3://b/{k}" for k in wanted])
    assert [result[f"s3://b/{k}"] for k in wanted] == [True] * 5 + [False] * 5
    assert store.list_calls + store.head_calls <= 2 * len(wanted)


async def test_sparse_outputs_cost_at_most_two_requests_each():
    """10 outputs spread over a 30,000-object prefix (a pipeline's checks as jobs finish):
    listing gives up for HEADs once pages stop paying off."""
    keys = [f"proj/wf/s{i:05d}.step{k}.json" for i in range(10_000) for k in range(3)]
    wanted = [f"proj/wf/s{i:05d}.step1.json" for i in range(0, 10_000, 1000)]
    store = S3OutputStore(StubS3(keys))
    result = await store.exists_many([f"s3://b/{k}" for k in wanted])
    assert all(result.values()) and len(result) == 10
    assert store.list_calls + store.head_calls <= 2 * len(wanted)


async def test_dense_outputs_size_pages_to_the_range():
    """Outputs of consecutive samples, interleaved with the other steps' objects: pages are
    sized to the range seen (not 1,000 keys past the last wanted one)."""
    keys = [f"proj/wf/s{i:05d}.step{k}.json" for i in range(10_000) for k in range(3)]
    wanted = [f"proj/wf/s{i:05d}.step2.json" for i in range(4990, 5040)]  # prefix s0
    stub = StubS3(keys)
    store = S3OutputStore(stub)
    result = await store.exists_many([f"s3://b/{k}" for k in wanted])
    assert all(result.values()) and len(result) == 50
    assert store.head_calls == 0 and store.list_calls <= 2
    assert stub.returned <= 600          # a 1,000-key page parsed 1,000


def _pipeline_prefix():
    return [f"proj/wf/s{i:05d}.step{k}.json" for i in range(10_000) for k in range(3)]


async def test_grouped_keys_of_one_sample_cost_one_small_page():
    """Jobs finishing one by one in a 30,000-object prefix: each sample's output of the step
    that ran and the next step's (checked together) are answered by one probe of a few keys,
    and once the prefix is known to be large it is not range-listed again."""
    keys = [k for k in _pipeline_prefix() if not k.endswith("step2.json")]
    samples = range(0, 10_000, 333)                      # 31 samples, spread out
    groups = [[f"s3://b/proj/wf/s{i:05d}.step0.json", f"s3://b/proj/wf/s{i:05d}.step1.json"]
              for i in samples]
    last = {u[len("s3://b/"):] for u in groups[-1]}
    stub = StubS3([k for k in keys if k not in last])   # the last sample's: not written yet
    store = S3OutputStore(stub)
    uris = [u for g in groups for u in g]
    first = await store.exists_many(uris, groups)
    assert [first[u] for u in uris[:-2]] == [True] * (len(uris) - 2)
    assert first[uris[-2]] is False and first[uris[-1]] is False
    # one exploratory range page at most, then one probe per sample
    assert store.head_calls == 0 and store.list_calls <= len(groups) + 1
    stub.returned, stub.lists = 0, []
    again = await store.exists_many(uris, groups)
    assert again == first
    assert len(stub.lists) == len(groups)
    assert stub.returned <= 2 * len(uris)          # no page of unrelated keys parsed
    assert all(call["MaxKeys"] <= 8 and call["Prefix"].endswith(".step")
               for call in stub.lists)


async def test_ungrouped_sparse_keys_are_heads_once_the_prefix_is_known_large():
    keys = _pipeline_prefix()
    wanted = [f"s3://b/proj/wf/s{i:05d}.step2.json" for i in range(0, 10_000, 400)]
    stub = StubS3(keys)
    store = S3OutputStore(stub)
    assert all((await store.exists_many(wanted)).values())
    stub.returned = 0
    store.list_calls = store.head_calls = 0
    assert all((await store.exists_many(wanted)).values())
    assert store.list_calls == 0 and store.head_calls == len(wanted)


async def test_a_prefix_that_shrank_is_listed_again():
    """The size remembered for a prefix only decides between listing and HEADs: a dense
    set of wanted keys in a prefix once seen large is still answered correctly."""
    keys = _pipeline_prefix()
    stub = StubS3(keys)
    store = S3OutputStore(stub)
    sparse = [f"s3://b/proj/wf/s{i:05d}.step2.json" for i in range(0, 10_000, 400)]
    await store.exists_many(sparse)
    store.head_calls = 0
    dense = [f"s3://b/proj/wf/s{i:05d}.step{k}.json" for i in range(10_000) for k in range(3)]
    result = await store.exists_many(dense)
    assert all(result.values()) and store.head_calls == 0


async def test_errors_are_unknown_never_missing():
    uris = [f"s3://b/proj/s{i}.json" for i in range(3)]
    for error in (_error(403, "403", "HeadObject"), _error(503, "SlowDown", "HeadObject"),
                  _error(500, "InternalError", "HeadObject"),
                  EndpointConnectionError(endpoint_url="x")):
        store = S3OutputStore(StubS3([], head_error=error))
        assert set((await store.exists_many(uris)).values()) == {None}
    store = S3OutputStore(StubS3([], list_error=_error(503, "SlowDown", "ListObjectsV2")))
    many = [f"s3://b/proj/s{i}.json" for i in range(20)]
    assert set((await store.exists_many(many)).values()) == {None}
    assert store.unknown_answers == 20


async def test_list_denied_falls_back_to_head():
    keys = [f"proj/s{i}.json" for i in range(20)]
    store = S3OutputStore(StubS3(keys[:10], list_error=_error(403, "AccessDenied",
                                                              "ListObjectsV2")))
    result = await store.exists_many([f"s3://b/{k}" for k in keys])
    assert store.list_calls == 1 and store.head_calls == 20
    assert list(result.values()) == [True] * 10 + [False] * 10


async def test_list_denied_is_remembered_for_probes():
    keys = [f"proj/s{i}.{k}.json" for i in range(20) for k in range(2)]
    store = S3OutputStore(StubS3(keys, list_error=_error(403, "AccessDenied",
                                                         "ListObjectsV2")))
    groups = [[f"s3://b/proj/s{i}.0.json", f"s3://b/proj/s{i}.1.json"] for i in range(20)]
    result = await store.exists_many([u for g in groups for u in g], groups)
    assert all(result.values())
    assert store.list_calls == 1 and store.head_calls == 40
    store.LIST_DENIED_SECONDS = 0            # a 403 is not remembered forever
    await store.exists_many([u for g in groups for u in g], groups)
    assert store.list_calls > 1


async def test_no_client_and_foreign_schemes_are_unknown(tmp_path):
    (tmp_path / "here.txt").write_text("x")
    store = S3OutputStore(None)
    result = await store.exists_many(["s3://b/k", "gs://b/k", str(tmp_path / "here.txt"),
                                      f"file://{tmp_path}/here.txt", str(tmp_path / "nope")])
    assert list(result.values()) == [None, None, True, True, False]


def test_local_unreadable_is_unknown(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "f").write_text("x")
    locked.chmod(0)
    try:
        import os
        if os.geteuid() == 0:
            pytest.skip("root reads everything")
        assert check_local_paths([str(locked / "f")]) == {str(locked / "f"): None}
    finally:
        locked.chmod(0o700)
