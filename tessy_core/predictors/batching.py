"""Micro-batching: concurrent callers' items run through one batched call on a worker thread."""

from __future__ import annotations

import asyncio
from typing import Callable, Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class MicroBatcher(Generic[Item, Result]):
    """Collects items submitted by concurrent coroutines and runs them in batches.

    While one batch runs on the worker thread, new items queue up and form the next batch, so the
    batch size adapts to load with no fixed waiting time.
    """

    def __init__(self, run_batch: Callable[[list[Item]], list[Result]], max_batch: int):
        self._run_batch = run_batch
        self._max_batch = max_batch
        # Simulations on a virtual clock (`bench/gpu_projection.py`) run batches on the event loop's
        # thread, each taking `inline_delay_s` of (virtual) time, so the clock never runs ahead of
        # a batch computing on another thread.
        self.inline = False
        self.inline_delay_s = 0.0
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._worker: asyncio.Task | None = None
        self.batches = 0
        self.items = 0

    async def submit(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # let the other ready coroutines enqueue first
        while self._pending:
            batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
            try:
                if self.inline:
                    results = self._run_batch([item for item, _ in batch])
                    await asyncio.sleep(self.inline_delay_s)
                else:
                    results = await asyncio.to_thread(self._run_batch, [item for item, _ in batch])
            except Exception as error:  # every waiter learns why, none hangs
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            self.batches += 1
            self.items += len(batch)
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    @property
    def mean_batch_size(self) -> float:
        return self.items / self.batches if self.batches else 0.0
