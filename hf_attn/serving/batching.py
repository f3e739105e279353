"""Dynamic batching: concurrent requests with the same decoding options share one engine call.

A request waits at most ``max_wait`` seconds for others to join it, and a batch holds at
most ``max_batch`` texts, so one client pays little latency while many clients get the
throughput of batched decoding. The engine runs on one worker thread, one batch at a time
(neither engine is safe to call from two threads at once, and two calls would only contend
for the same cores).
"""

from __future__ import annotations

import asyncio
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
    future: asyncio.Future = field(repr=False)


class DynamicBatcher:
    """Queue translation requests; a background task groups them into engine calls."""

    def __init__(self, decode: Decode, executor: ThreadPoolExecutor, *, max_batch: int, max_wait: float) -> None:
        self._decode = decode
        self.executor = executor
        self.max_batch = max_batch
        self.max_wait = max_wait
        self._queue: asyncio.Queue[_Request] = asyncio.Queue()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def translate(self, texts: list[str], options: DecodingOptions) -> list[SourceTranslations]:
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Request(texts, options, future))
        return await future

    async def _collect(self) -> list[_Request]:
        """The first waiting request and those that arrive within ``max_wait``, up to ``max_batch`` texts."""
        loop = asyncio.get_running_loop()
        batch = [await self._queue.get()]
        count, deadline = len(batch[0].texts), loop.time() + self.max_wait
        while count < self.max_batch:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                request = await asyncio.wait_for(self._queue.get(), remaining)
            except asyncio.TimeoutError:
                break
            batch.append(request)
            count += len(request.texts)
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            groups: dict[DecodingOptions, list[_Request]] = {}
            for request in batch:
                groups.setdefault(request.options, []).append(request)
            for options, requests in groups.items():
                texts = [text for request in requests for text in request.texts]
                try:
                    results: Any = await loop.run_in_executor(self.executor, self._decode, texts, options)
                except Exception as error:  # each waiting request gets the engine's error
                    for request in requests:
                        if not request.future.done():
                            request.future.set_exception(error)
                    continue
                start = 0
                for request in requests:
                    if not request.future.done():
                        request.future.set_result(results[start : start + len(request.texts)])
                    start += len(request.texts)
