"""The batcher: requests that arrive together are scored together, in one worker thread
(:class:`Batcher`), so that nothing heavy runs on the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from srm.config import ServeConfig
from srm.records import ResponseScores

if TYPE_CHECKING:
    from srm.collate import Encoded
    from srm.model import SentenceRewardModel

log = logging.getLogger(__name__)


class _Abandoned(Exception):
    """Every request of the work under way has gone (its deadline, its client, a shutdown)."""


class QueueFull(Exception):
    """``max_queue`` requests are under way: answer 503 with Retry-After."""


@dataclass
class _Job:
    encoded: list[Encoded]
    future: asyncio.Future[list[ResponseScores]]
    abandoned: threading.Event
    """Set when the request gives up: what is left of its work is skipped."""


class Batcher:
    """Scores the responses of concurrent requests, several requests per forward pass.

    ``await batcher.score(prompts, responses)`` from any request: the responses are segmented
    and tokenized in a thread of the loop's executor (the cost that grows with the text, kept
    off the event loop and off the model's thread, so one huge request does not hold up the
    rest), then queued; one task collects what is queued (the first job waits up to
    ``max_wait_ms`` for company, until ``max_batch`` responses), and one worker thread runs
    the forward passes (:func:`srm.score.score_encoded`). A cancelled ``score`` stops its
    segmenting at the next response, and a batch whose every request was cancelled stops at
    its next forward pass.
    """

    def __init__(self, model: SentenceRewardModel, config: ServeConfig) -> None:
        self.model = model
        self.config = config
        self.batches = 0
        """Forward-pass groups run so far (``/health`` reports it)."""
        self.in_flight = 0
        """Requests being prepared, queued or scored now (``/health`` reports it)."""
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="srm-score")
        # A fast tokenizer must not be called from two threads at once ("Already borrowed").
        self._tokenizer_lock = threading.Lock()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop now: queued requests are dropped, and the forward pass under way is the last
        (its thread is not waited for: a shutdown must not wait for a huge batch)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while not self._queue.empty():
            job = self._queue.get_nowait()
            job.abandoned.set()
            job.future.cancel()
        self._thread.shutdown(wait=False, cancel_futures=True)

    async def score(self, prompts: list[str], responses: list[str]) -> list[ResponseScores]:
        """The records of ``responses``; :class:`QueueFull` at once when ``max_queue``
        requests are already under way."""
        if self.in_flight >= self.config.max_queue:
            raise QueueFull(self.config.max_queue)
        loop = asyncio.get_running_loop()
        abandoned = threading.Event()
        self.in_flight += 1
        try:
            encoded = await loop.run_in_executor(
                None, self._prepare, list(prompts), list(responses), abandoned
            )
            job = _Job(encoded, loop.create_future(), abandoned)
            self._queue.put_nowait(job)
            return await job.future
        except asyncio.CancelledError:
            abandoned.set()
            raise
        finally:
            self.in_flight -= 1

    def _prepare(
        self, prompts: list[str], responses: list[str], abandoned: threading.Event
    ) -> list[Encoded]:
        """Segment (one response at a time, so a request that gives up stops soon), then
        tokenize: what :func:`srm.score.encode_responses` does, in a worker thread."""
        from srm.score import encode_responses
        from srm.segment import segment

        spans = []
        for response in responses:
            if abandoned.is_set():
                raise _Abandoned
            spans.append(segment(response, max_chars=self.model.config.max_sentence_chars))
        with self._tokenizer_lock:
            return encode_responses(self.model, prompts, responses, spans=spans)

    async def _next(self, wait: float | None = None) -> _Job | None:
        """The next queued job nobody abandoned; ``None`` when ``wait`` seconds pass first."""
        while True:
            if wait is None:
                job = await self._queue.get()
            else:
                try:
                    job = await asyncio.wait_for(self._queue.get(), max(wait, 0))
                except asyncio.TimeoutError:
                    return None
            if not job.abandoned.is_set():
                return job

    async def _collect(self) -> list[_Job]:
        """The next group of jobs: the first in the queue and, with batching, those that join
        it within ``max_wait_ms`` while there is room for their responses."""
        first = await self._next()
        assert first is not None
        jobs = [first]
        if not self.config.batching:
            return jobs
        size = len(first.encoded)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.max_wait_ms / 1000
        while size < self.config.max_batch:
            job = await self._next(deadline - loop.time())
            if job is None:
                break
            jobs.append(job)
            size += len(job.encoded)
        return jobs

    async def _run(self) -> None:
        from srm import score as scoring  # looked up per batch: tests stand in for it

        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._collect()
            encoded = [e for job in jobs for e in job.encoded]
            try:
                records = await loop.run_in_executor(
                    self._thread,
                    functools.partial(
                        scoring.score_encoded,
                        self.model,
                        encoded,
                        batch_size=self.config.max_batch,
                        progress=functools.partial(_stop_when_abandoned, jobs),
                    ),
                )
            except _Abandoned:
                continue
            except Exception as err:  # one bad batch fails its requests, not the server
                log.exception("scoring a batch of %d responses failed", len(encoded))
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(err)
                continue
            self.batches += 1
            start = 0
            for job in jobs:
                n = len(job.encoded)
                if not job.future.done():  # done: the request went away
                    job.future.set_result(records[start : start + n])
                start += n


def _stop_when_abandoned(jobs: list[_Job], done: int, total: int) -> None:
    """Between forward passes: stop a batch whose every request has gone."""
    if all(job.abandoned.is_set() for job in jobs):
        raise _Abandoned
