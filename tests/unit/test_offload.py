"""HeavyWork (offload.py) with real threads, and the chunked sample read on a real SQLite file:
errors come back unchanged, a cancelled request keeps its slot until its thread is done, the
switch interval is lowered only while heavy work runs."""

from __future__ import annotations

import asyncio
import sys
import threading

import pytest

from batchd.api import operations
from batchd.api.offload import SWITCH_INTERVAL, HeavyWork
from batchd.errors import InvalidInput
from batchd.inputs.metadata import parse_metadata

BAD = "sample_name,file_name\na,a.fq\nb b,b.fq\n"


async def test_an_error_in_the_thread_is_raised_as_parse_metadata_raises_it():
    with pytest.raises(InvalidInput) as direct:
        parse_metadata(BAD, filename="m.csv")
    with pytest.raises(InvalidInput) as offloaded:
        await HeavyWork().run("import", lambda: parse_metadata(BAD, filename="m.csv"))
    assert offloaded.value.message == direct.value.message
    assert offloaded.value.to_json() == direct.value.to_json()


async def test_the_work_runs_in_another_thread_than_the_loop():
    assert await HeavyWork().run("x", threading.get_ident) != threading.get_ident()


async def test_a_cancelled_request_keeps_its_slot_until_its_thread_is_done():
    heavy = HeavyWork(slots=1)
    release = threading.Event()
    order: list[str] = []

    def first() -> None:
        release.wait(60)
        order.append("first done")

    def second() -> str:
        order.append("second started")
        return "second"

    held = asyncio.ensure_future(heavy.run("first", first))
    while heavy.running == 0:
        await asyncio.sleep(0)
    held.cancel()           # the client went away; its thread cannot be stopped
    with pytest.raises(asyncio.CancelledError):
        await held
    queued = asyncio.ensure_future(heavy.run("second", second))
    await asyncio.sleep(0.05)   # room for a wrong implementation to start it now
    assert heavy.waiting == 1 and heavy.running == 1
    release.set()
    assert await queued == "second"
    assert order == ["first done", "second started"]
    assert heavy.running == 0 and heavy.waiting == 0


async def test_the_switch_interval_is_short_only_while_heavy_work_runs():
    before = sys.getswitchinterval()
    heavy = HeavyWork()
    during = await heavy.run("x", sys.getswitchinterval)
    assert during == min(SWITCH_INTERVAL, before)
    assert sys.getswitchinterval() == before
    with pytest.raises(ZeroDivisionError):
        await heavy.run("x", lambda: 1 / 0)
    assert sys.getswitchinterval() == before


async def test_samples_read_in_chunks_are_every_sample_of_the_project_in_order(store):
    ids = {}
    for name, n in (("a", 7), ("b", 5), ("c", 0)):
        ids[name] = await store.create_project(
            name=name, columns=["sample_name", "file_name"], sample_col="sample_name",
            file_col="file_name", metadata_filename="m.csv",
            samples=[(f"{name}{i}", f"{i}.fq", i + 2, {"sample_name": f"{name}{i}"})
                     for i in range(n)])
    for chunk in (1, 2, 5, 1000):
        rows = await store.samples(ids["a"], chunk=chunk)
        assert [r["name"] for r in rows] == [f"a{i}" for i in range(7)]
        assert [r["name"] for r in await store.samples(ids["b"], chunk=chunk)] == [
            f"b{i}" for i in range(5)]
        assert await store.samples(ids["c"], chunk=chunk) == []


async def test_a_create_failing_at_the_last_sample_leaves_no_workflow(store):
    await operations.import_project(
        store, {"name": "p", "metadata": "sample_name,file_name,g\na,a.fq,x\nb,b.fq,\n"},
        heavy=HeavyWork())
    body = {"definition": '{"workflow_name": "w", "analyses": [{"job_definition": "jd", '
                          '"queue": "q", "outputs": ["/o/{g}"]}, {"job_definition": "jd", '
                          '"queue": "q", "outputs": ["{g}"]}]}', "base_dir": "/tmp/o"}
    with pytest.raises(InvalidInput, match=r"sample 'b': analyses\[1\]\.outputs\[0\]"):
        await operations.create_workflow(store, "p", body, heavy=HeavyWork())
    assert await store.read("SELECT * FROM workflows") == []
    assert await store.read("SELECT * FROM jobs") == []
