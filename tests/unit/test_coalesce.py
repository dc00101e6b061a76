"""The Coalescer: concurrent items in one statement, each with its own result or error."""

from __future__ import annotations

import asyncio

import pytest

from tasks.worker.coalesce import Coalescer


class Recorder:
    """run_many / run_one that record their calls; items named "bad" fail, and a batch holding
    one fails as a whole (as a statement would)."""

    def __init__(self, pause: float = 0.0):
        self.many: list[list[str]] = []
        self.one: list[str] = []
        self.finished: list[str] = []  # run_one calls that came to their end
        self.pause = pause

    async def run_many(self, items: list[str]) -> list[str]:
        self.many.append(list(items))
        await asyncio.sleep(self.pause)
        if any(item.startswith("bad") for item in items):
            raise ValueError("the batch failed")
        return [item.upper() for item in items]

    async def run_one(self, item: str) -> str:
        self.one.append(item)
        await asyncio.sleep(self.pause)
        self.finished.append(item)
        if item.startswith("bad"):
            raise ValueError(f"{item} is bad")
        return item.upper()


def _coalescer(recorder: Recorder, **kwargs) -> Coalescer[str, str]:
    return Coalescer(
        recorder.run_many, key=lambda item: item[:1], run_one=recorder.run_one, **kwargs
    )


async def test_items_of_the_same_moment_go_in_one_call_each_with_its_result():
    rec = Recorder()
    coalescer = _coalescer(rec)
    results = await asyncio.gather(*(coalescer(item) for item in ("a1", "b1", "c1")))
    assert results == ["A1", "B1", "C1"]
    assert rec.many == [["a1", "b1", "c1"]]
    assert rec.one == []
    assert (coalescer.statements, coalescer.items) == (1, 3)


async def test_a_lone_item_goes_alone_through_run_one():
    rec = Recorder()
    coalescer = _coalescer(rec)
    assert await coalescer("a1") == "A1"
    assert (rec.many, rec.one) == ([], ["a1"])


async def test_items_with_the_same_key_never_share_a_statement():
    rec = Recorder()
    coalescer = _coalescer(rec)
    results = await asyncio.gather(*(coalescer(item) for item in ("a1", "b1", "a2", "a3", "c1")))
    assert results == ["A1", "B1", "A2", "A3", "C1"]
    # a2 and a3 wait for the next statements, in the order they came
    assert rec.many == [["a1", "b1", "c1"]]
    assert rec.one == ["a2", "a3"]


async def test_items_arriving_while_a_statement_runs_go_together_in_the_next():
    rec = Recorder(pause=0.05)
    coalescer = _coalescer(rec)
    first = asyncio.ensure_future(coalescer("a1"))
    await asyncio.sleep(0.01)  # a1's statement is running
    later = [asyncio.ensure_future(coalescer(item)) for item in ("b1", "c1", "d1")]
    assert await first == "A1"
    assert [await f for f in later] == ["B1", "C1", "D1"]
    assert rec.one == ["a1"]
    assert rec.many == [["b1", "c1", "d1"]]


async def test_a_failed_batch_runs_its_items_one_by_one_and_only_the_bad_one_fails():
    rec = Recorder()
    coalescer = _coalescer(rec)
    results = await asyncio.gather(
        *(coalescer(item) for item in ("a1", "bad", "c1")), return_exceptions=True
    )
    assert results[0] == "A1" and results[2] == "C1"
    assert isinstance(results[1], ValueError) and str(results[1]) == "bad is bad"
    assert rec.many == [["a1", "bad", "c1"]]
    assert sorted(rec.one) == ["a1", "bad", "c1"]


async def test_batches_hold_at_most_max_batch_items():
    rec = Recorder()
    coalescer = _coalescer(rec, max_batch=2)
    results = await asyncio.gather(*(coalescer(item) for item in ("a1", "b1", "c1", "d1", "e1")))
    assert results == ["A1", "B1", "C1", "D1", "E1"]
    assert rec.many == [["a1", "b1"], ["c1", "d1"]]
    assert rec.one == ["e1"]


async def test_an_item_whose_caller_was_cancelled_before_sending_is_not_sent():
    rec = Recorder(pause=0.05)
    coalescer = _coalescer(rec)
    first = asyncio.ensure_future(coalescer("a1"))
    await asyncio.sleep(0.01)
    dropped = asyncio.ensure_future(coalescer("b1"))
    kept = asyncio.ensure_future(coalescer("c1"))
    await asyncio.sleep(0)
    dropped.cancel()
    assert await first == "A1"
    assert await kept == "C1"
    with pytest.raises(asyncio.CancelledError):
        await dropped
    assert rec.one == ["a1", "c1"]
    assert rec.many == []


async def test_a_caller_cancelled_while_its_statement_runs_stops_only_after_it():
    """The job's next statement (recording why it stopped) comes after the one already sent, as
    it would after a statement of its own."""
    rec = Recorder(pause=0.05)
    coalescer = _coalescer(rec)
    events: list[str] = []

    async def job():
        try:
            await coalescer("a1")
        except asyncio.CancelledError:
            events.append(f"cancelled after {len(rec.finished)} statement(s) ran")
            raise

    task = asyncio.ensure_future(job())
    await asyncio.sleep(0.01)  # a1's statement is running
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert rec.finished == ["a1"]
    assert events == ["cancelled after 1 statement(s) ran"]
    assert coalescer._sent == set()


async def test_without_run_one_a_lone_item_and_a_failed_batch_go_through_run_many_alone():
    rec = Recorder()
    coalescer = Coalescer(rec.run_many, key=lambda item: item[:1])
    assert await coalescer("a1") == "A1"
    results = await asyncio.gather(
        *(coalescer(item) for item in ("c1", "bad", "d1")), return_exceptions=True
    )
    assert results[0] == "C1" and results[2] == "D1"
    assert isinstance(results[1], ValueError) and str(results[1]) == "the batch failed"
    assert rec.many == [["a1"], ["c1", "bad", "d1"], ["c1"], ["bad"], ["d1"]]
    assert rec.one == []
