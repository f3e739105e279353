"""Dynamic batching: concurrent requests with the same decoding options share one engine call.

A request waits at most ``max_wait`` seconds (from its arrival) for others to join it, and a
batch holds at most ``max_batch`` texts, so one client pays little latency while many clients
get the throughput of batched decoding. A batch is collected only once an engine worker is
free: while the engine works, requests pile up and the next batch takes them all at once
(they have waited longer than ``max_wait`` already, so it does not wait again). ``workers``
engine calls run at once: 1 for torch (a model is not called from two threads at once);
CTranslate2 runs as many batches in parallel as its ``inter_threads``. With several workers
free, a batch takes only its share of the waiting texts and leaves the rest to the next free
worker: otherwise closed-loop clients (answered together, back together) all land in one batch
on one core while the other workers idle.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..decoding import DecodingOptions, SourceTranslations

Decode = Callable[[list[str], DecodingOptions], list[SourceTranslations]]


@dataclass
class _Request:
    texts: list[str]
    options: DecodingOptions
    arrived: float
    future: asyncio.Future = field(repr=False)


@dataclass
class BatchingStats:
    """What the batcher did since the server started: the numbers to read when tuning ``max_batch`` and threads."""

    started: float = field(default_factory=time.monotonic)
    batches: int = 0
    texts: int = 0
    largest_batch: int = 0
    engine_seconds: float = 0.0

    def record(self, texts: int, seconds: float) -> None:
        self.batches += 1
        self.texts += texts
        self.largest_batch = max(self.largest_batch, texts)
        self.engine_seconds += seconds

    def to_json(self, workers: int) -> dict[str, Any]:
        """``engine_busy`` is the share of the workers' time spent in engine calls (1.0: always decoding)."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return {
            "batches": self.batches,
            "texts": self.texts,
            "mean_batch": round(self.texts / self.batches, 2) if self.batches else 0.0,
            "largest_batch": self.largest_batch,
            "engine_seconds": round(self.engine_seconds, 3),
            "engine_busy": round(self.engine_seconds / (elapsed * workers), 3),
            "workers": workers,
        }


class DynamicBatcher:
    """Queue translation requests; a background task groups them into engine calls on ``workers`` threads."""

    def __init__(self, decode: Decode, *, max_batch: int, max_wait: float, workers: int = 1, name: str = "") -> None:
        self._decode = decode
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"decode-{name}")
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.workers = workers
        self.stats = BatchingStats()
        self._queue: asyncio.Queue[_Request] = asyncio.Queue()
        self._left_over: deque[_Request] = deque()  # collected, then left to the next free worker; served first
        self._idle_workers = workers
        self._task: asyncio.Task | None = None
        self._in_flight: set[asyncio.Task] = set()

    def start(self) -> None:
        self.stats = BatchingStats()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop collecting; the batches already handed to the engine are answered first."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.gather(*self._in_flight, return_exceptions=True)
        self.executor.shutdown(wait=True)

    async def translate(self, texts: list[str], options: DecodingOptions) -> list[SourceTranslations]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        await self._queue.put(_Request(texts, options, loop.time(), future))
        return await future

    async def _collect(self) -> list[_Request]:
        """The first waiting request and those that arrive by its ``max_wait`` deadline, up to ``max_batch`` texts.

        Requests already queued join at once; the batch waits for more only while its first
        request is younger than ``max_wait``.
        """
        loop = asyncio.get_running_loop()
        batch = [self._left_over.popleft() if self._left_over else await self._queue.get()]
        count, deadline = len(batch[0].texts), batch[0].arrived + self.max_wait
        while count < self.max_batch:
            if self._left_over:
                request = self._left_over.popleft()
            elif self._queue.empty():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    request = await asyncio.wait_for(self._queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
            else:
                request = self._queue.get_nowait()
            batch.append(request)
            count += len(request.texts)
        return batch

    def _keep_share(self, batch: list[_Request], ways: int) -> list[_Request]:
        """The first ``1/ways`` of ``batch``'s texts (at least one request); the rest wait, in order, for a worker."""
        share = math.ceil(sum(len(request.texts) for request in batch) / ways)
        kept, count = [], 0
        for request in batch:
            if kept and count + len(request.texts) > share:
                break
            kept.append(request)
            count += len(request.texts)
        self._left_over.extendleft(reversed(batch[len(kept) :]))
        return kept

    def _release_worker(self, free_workers: asyncio.Semaphore) -> None:
        self._idle_workers += 1
        free_workers.release()

    async def _run(self) -> None:
        free_workers = asyncio.Semaphore(self.workers)
        while True:
            await free_workers.acquire()  # collect only when a worker can take the batch: meanwhile requests pile up
            self._idle_workers -= 1
            try:
                batch = await self._collect()
            except BaseException:
                self._release_worker(free_workers)
                raise
            batch = self._keep_share(batch, ways=1 + self._idle_workers)
            task = asyncio.get_running_loop().create_task(self._answer(batch))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
            task.add_done_callback(lambda _: self._release_worker(free_workers))

    def _timed_decode(self, texts: list[str], options: DecodingOptions) -> tuple[list[SourceTranslations], float]:
        began = time.perf_counter()
        return self._decode(texts, options), time.perf_counter() - began

    async def _answer(self, batch: list[_Request]) -> None:
        """One engine call per set of decoding options in ``batch``; each request gets its own slice (or the error)."""
        loop = asyncio.get_running_loop()
        groups: dict[DecodingOptions, list[_Request]] = {}
        for request in batch:
            groups.setdefault(request.options, []).append(request)
        for options, requests in groups.items():
            texts = [text for request in requests for text in request.texts]
            try:
                results, seconds = await loop.run_in_executor(self.executor, self._timed_decode, texts, options)
            except Exception as error:  # each waiting request gets the engine's error
                for request in requests:
                    if not request.future.done():
                        request.future.set_exception(error)
                continue
            self.stats.record(len(texts), seconds)  # on the event loop: parallel workers never race on the counts
            start = 0
            for request in requests:
                if not request.future.done():
                    request.future.set_result(results[start : start + len(request.texts)])
                start += len(request.texts)
