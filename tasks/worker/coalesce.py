"""Statements that a worker's concurrent jobs issue at the same moment, sent as one.

A busy worker has hundreds of jobs in flight, and their answers arrive together: each would send
its own small statement (mark started, store the answer, finish the job), one round trip and one
commit apiece. A Coalescer gathers the items submitted while its previous statement is running
(or within the same turn of the event loop) and sends them in one statement. An idle worker's
item goes at once, so nothing waits that did not already have to.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from tasks.logs import get_logger

log = get_logger("llmjobs.worker")

Item = TypeVar("Item")
Result = TypeVar("Result")

DEFAULT_MAX_BATCH = 100


class Coalescer(Generic[Item, Result]):
    """`await coalescer(item)` runs `run_many(items)` once for the items gathered with it and
    returns this item's result (run_many returns one result per item, in order).

    Items with the same key never share a statement (a later one waits for the next), so a
    batch changes each row once, as the single statements did. A lone item, and each item of a
    batch statement that failed, go alone through `run_one` (by default run_many of that item),
    so one bad item fails alone, with its own error.
    """

    def __init__(
        self,
        run_many: Callable[[list[Item]], Awaitable[list[Result]]],
        *,
        key: Callable[[Item], Hashable],
        run_one: Callable[[Item], Awaitable[Result]] | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
    ):
        self._run_many = run_many
        self._run_one = run_one or self._one_of_many
        self._key = key
        self._max_batch = max_batch
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._sending: asyncio.Task[None] | None = None
        self._sent: set[asyncio.Future[Result]] = set()  # their statement is running
        self.statements = 0  # statements sent, and the items they carried
        self.items = 0

    async def __call__(self, item: Item) -> Result:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._waiting.append((item, future))
        if self._sending is None:
            # Sent on the loop's next turn, with whatever the other jobs add until then.
            self._sending = loop.create_task(self._send_all())
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if future in self._sent:
                # Its statement is running: the caller's next statement (recording why it
                # stopped, say) must come after it, as it would after a statement of its own.
                await asyncio.wait([future])
                if not future.cancelled():
                    future.exception()  # seen: the cancellation is what the caller gets
            future.cancel()  # not sent yet: it never will be
            raise

    async def _send_all(self) -> None:
        try:
            await asyncio.sleep(0)
            while self._waiting:
                await self._send(self._next_batch())
        except asyncio.CancelledError:  # the loop is going away: nobody will send these
            for _, future in self._waiting:
                future.cancel()
            self._waiting = []
            raise
        finally:
            self._sending = None

    def _next_batch(self) -> list[tuple[Item, asyncio.Future[Result]]]:
        batch: list[tuple[Item, asyncio.Future[Result]]] = []
        later: list[tuple[Item, asyncio.Future[Result]]] = []
        keys: set[Hashable] = set()
        for entry in self._waiting:
            item, future = entry
            if future.done():  # its job was cancelled before the statement went
                continue
            key = self._key(item)
            if len(batch) >= self._max_batch or key in keys:
                later.append(entry)
            else:
                keys.add(key)
                batch.append(entry)
        self._waiting = later
        return batch

    async def _one_of_many(self, item: Item) -> Result:
        [result] = await self._run_many([item])
        return result

    async def _send(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        if not batch:
            return
        items = [item for item, _ in batch]
        self.statements += 1
        self.items += len(items)
        self._sent.update(future for _, future in batch)
        try:
            await self._outcomes(batch, items)
        finally:
            self._sent.difference_update(future for _, future in batch)

    async def _outcomes(
        self, batch: list[tuple[Item, asyncio.Future[Result]]], items: list[Item]
    ) -> None:
        try:
            if len(items) == 1:
                outcomes: list[Result | BaseException] = [await self._run_one(items[0])]
            else:
                outcomes = list(await self._run_many(items))
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:
            if len(items) == 1:
                outcomes = [exc]
            else:
                log.warning("batched statement failed; its items go one by one", error=str(exc))
                outcomes = await asyncio.gather(
                    *(self._run_one(item) for item in items), return_exceptions=True
                )
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
