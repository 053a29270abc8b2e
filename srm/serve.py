"""A reward server for RL trainers (``srm serve``): FastAPI on uvicorn.

Endpoints (:func:`create_app`):

- ``POST /get_reward``: OpenRLHF's remote reward model. OpenRLHF posts
  ``{"query": [prompt + response, ...], "prompts": [prompt, ...], "labels": [...]}`` and reads
  ``{"rewards": [float], "scores": [float], "extra_logs": {name: [float]}}``; this server adds,
  per query, ``sentence_rewards`` (the dense rewards a_j r_j, :mod:`srm.dense`) and
  ``sentence_spans`` (``[start, end]`` character offsets of each sentence *in the query*);
  ``token_rewards``: one per token of the policy, exact when the request sends the policy's
  ``response_ids`` (read with ``ServeConfig.dense_tokenizer``) or ``response_offsets`` (bytes),
  else, with ``ServeConfig.dense_tokenizer``, per token of the query re-tokenised
  (approximate); ``token_positions`` says which.
- ``POST /score``: ``{"prompt", "responses": [...], "dense"}`` gives the records ``srm score``
  writes for one side (:class:`~srm.records.ResponseScores` JSON, with ``"dense"`` on request).
- ``GET /health``; ``GET /openapi.json`` and ``/docs``, FastAPI's schema and its page.

Requests that arrive together are scored together (:class:`Batcher`): the first waits up to
``max_wait_ms`` for others, up to ``max_batch`` responses per forward pass. Nothing heavy runs
on the event loop, so ``/health`` answers while a request is scored: each request's responses
are segmented and tokenized in a thread of their own, and the model runs in one worker thread.
A request that takes longer than ``timeout_s`` gets a 503, and the work it left stops. A bad
request gets a 422 that names the field (FastAPI's ``{"detail": [{"loc": [...], "msg": ...}]}``;
NaN and Infinity, which JSON does not have, are bad requests too), an oversized one a 413 that
names the limit and the option that sets it; a failure while scoring is a 500 for the requests
of that batch, and the server carries on.

:func:`serve` runs the app on uvicorn with limits for slow and numerous clients: a deadline for
each request's headers, a cap on open connections below the process's descriptor limit, and no
tracebacks when descriptors run out anyway; on SIGTERM it stops within a few seconds.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import functools
import ipaddress
import json
import logging
import math
import multiprocessing
import os
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import h11
import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from uvicorn.protocols.http.h11_impl import H11Protocol

from srm import __version__
from srm.chat_markup import END_TEXTS, split_query, untemplate
from srm.config import ServeConfig
from srm.data.pairs import transcript
from srm.dense import (
    PolicyTokens,
    dense_rewards,
    policy_token_rewards,
    policy_tokens,
    token_offsets,
    token_rewards,
    with_dense,
)
from srm.records import ResponseScores

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.context import SpawnContext, SpawnProcess

    from starlette.types import ASGIApp, Message, Receive, Scope, Send
    from transformers import PreTrainedTokenizerBase

    from srm.collate import Encoded
    from srm.model import SentenceRewardModel

log = logging.getLogger(__name__)

BEARER = HTTPBearer(auto_error=False)
"""The token check's credentials (module level: FastAPI resolves the annotation here)."""


# -------------------------------------------------------------------------------- the batcher
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


# ------------------------------------------------------------------------------ the messages
class RewardRequest(BaseModel):
    """OpenRLHF's remote reward model request (other keys, which forks add, are ignored)."""

    model_config = ConfigDict(extra="allow")

    query: list[str] = Field(
        description="Prompt + response as the policy produced them (OpenRLHF: the decoded "
        "sequence); each must contain its prompt, the response is the text after it."
    )
    prompts: list[str] = Field(description="The prompt of each query, as OpenRLHF sends it.")
    labels: list[Any] | None = Field(default=None, description="Accepted and not used.")
    response_ids: list[list[int]] | None = Field(
        default=None,
        description="The policy's token ids of each response, as sampled (needs srm serve "
        "--dense-tokenizer, the policy's tokenizer): the response is read off them, not off "
        "the query, and token_rewards has one reward per id. Special tokens hold no text.",
    )
    response_offsets: list[list[tuple[int, int]]] | None = Field(
        default=None,
        description="Instead of response_ids: each response token's [start, end) in the UTF-8 "
        "bytes of the response (the query after its prompt); token_rewards has one reward per "
        "token.",
    )


class RewardResponse(BaseModel):
    """OpenRLHF's keys (rewards, scores, extra_logs) and the sentence-level view."""

    rewards: list[float] = Field(description="The model's score S of each query.")
    scores: list[float] = Field(description="The same as rewards (OpenRLHF logs them).")
    extra_logs: dict[str, list[float]] = Field(
        description="Per query: prompt_term (a_0 r_0), sentences (scored), truncated (0 or 1)."
    )
    sentence_rewards: list[list[float]] = Field(
        description="Per query, the dense reward a_j r_j of each scored sentence; they add up "
        "to the reward less the prompt term."
    )
    sentence_spans: list[list[tuple[int, int]]] = Field(
        description="Per query, [start, end] of each scored sentence: character offsets into "
        "the query (with response_ids or response_offsets: into the response they spell). The "
        "reward goes on the policy token holding the last character."
    )
    token_rewards: list[list[float]] | None = Field(
        default=None,
        description="Per query, one dense reward per token, zero but on the token ending each "
        "scored sentence: per id of response_ids or token of response_offsets when sent (exact), "
        "else, with srm serve --dense-tokenizer, per token of that tokenizer over the query "
        "re-tokenised (no special tokens added; approximate: a policy samples ids that "
        "re-tokenising its text does not give).",
    )
    prompt_match: list[str] = Field(
        default_factory=list,
        description="Per query, how the response was found in it: 'prompt' (the prompt is in "
        "the query), 'template_header' (after the last assistant header of a known chat "
        "template), 'prompt_suffix' / 'prompt_prefix' (the longest end or beginning of the "
        "prompt the query holds: a prompt cut or tidied), 'none' (the whole query scored).",
    )
    token_positions: list[str] | None = Field(
        default=None,
        description="Per query, what token_rewards index: 'response_ids', 'response_offsets' "
        "(the policy's own tokens) or 'query_retokenised' (approximate).",
    )


class ScoreRequest(BaseModel):
    """Score responses to one prompt, as ``srm score`` does."""

    prompt: str
    responses: list[str] = Field(min_length=1)
    dense: bool = Field(default=False, description="Add each sentence's dense reward.")


class ScoreResponse(BaseModel):
    head: str
    max_length: int
    responses: list[dict[str, Any]] = Field(
        description="One srm score record per response: score, prompt_reward, prompt_weight, "
        "truncated, n_sentences, n_scored, sentences [{text, start, end, reward, weight}, "
        "plus likelihood, the sentence's mean token log-prob, for a backbone with an LM head] "
        "(and dense [{start, end, dense_reward}] when asked)."
    )


# --------------------------------------------------------------------------------- the app
def create_app(
    model: SentenceRewardModel,
    config: ServeConfig | None = None,
    *,
    token: str | None = None,
    name: str = "model",
) -> FastAPI:
    """The server's ASGI app for ``model``; with ``token``, /get_reward and /score need
    ``Authorization: Bearer TOKEN`` (/health and the schema do not)."""
    config = config or ServeConfig()
    batcher = Batcher(model, config)
    policy = None
    policy_lock = threading.Lock()  # one call at a time into a fast tokenizer
    if config.dense_tokenizer is not None:
        from srm.backbones import load_tokenizer

        policy = load_tokenizer(config.dense_tokenizer)  # BackboneError: the CLI says why

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(
        title="SRM Studio reward server",
        version=__version__,
        description="Sentence-level rewards for RL: OpenRLHF's /get_reward, and /score.",
        lifespan=lifespan,
    )
    app.router.route_class = FiniteJSONRoute
    app.add_middleware(Deadline, seconds=config.timeout_s)
    app.add_middleware(BodyLimit, max_mb=config.max_body_mb)

    allowed = [ipaddress.ip_network(n, strict=False) for n in config.allow_clients or []]

    def listed(request: Request) -> bool:
        host = request.client.host if request.client else None
        try:
            address = ipaddress.ip_address(host or "")
        except ValueError:  # not an IP address (a test client): never listed
            return False
        return any(address in network for network in allowed)

    def authorised(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
    ) -> None:
        if token is None:
            if allowed and not listed(request):
                raise HTTPException(
                    403, "this client's address is not in srm serve --allow-clients"
                )
            return
        if listed(request):
            return
        # OpenRLHF sends no headers: the token may come in the URL, .../get_reward?token=T
        given = request.query_params.get("token") or (
            "" if credentials is None else credentials.credentials
        )
        if not secrets.compare_digest(given.encode(), token.encode()):
            raise HTTPException(
                401,
                "a token is required: send Authorization: Bearer TOKEN, or ?token=TOKEN in the "
                "URL (srm serve --token)",
                headers={"WWW-Authenticate": "Bearer"},
            )

    strip = list(END_TEXTS) if config.strip is None else config.strip
    if config.strip is None and policy is not None:
        strip += [t for t in (policy.eos_token, policy.pad_token) if t and t not in strip]

    def scored_prompt(prompt: str) -> str:
        """The prompt as the model reads it: a templated one as the training transcript."""
        turns = untemplate(prompt) if config.render_prompts else None
        return transcript(turns) if turns else prompt

    async def scored(
        prompts: list[str], responses: list[str], request: Request | None = None
    ) -> list[ResponseScores]:
        work = asyncio.ensure_future(batcher.score(prompts, responses))
        watch = asyncio.ensure_future(_until_disconnected(request)) if request else None
        try:
            if watch is not None:
                await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
                if not work.done():  # the client has gone: its work is dropped, not scored
                    work.cancel()
                    raise HTTPException(499, "the client closed the connection")
            return await work
        except QueueFull as err:
            raise HTTPException(
                503,
                f"{err} requests are under way, the limit (srm serve --max-queue): retry",
                headers={"Retry-After": "1"},
            ) from err
        except (HTTPException, asyncio.CancelledError):
            raise
        except Exception as err:
            raise HTTPException(500, f"scoring failed ({type(err).__name__}: {err})") from err
        finally:
            for task in (work, watch):
                if task is not None and not task.done():
                    task.cancel()

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "model": name,
            "pid": os.getpid(),  # which worker answered (srm serve --workers)
            "head": model.config.head,
            "max_length": model.score_length,
            "batching": config.batching,
            "max_batch": config.max_batch,
            "batches": batcher.batches,
            "in_flight": batcher.in_flight,
            "max_queue": config.max_queue,
        }

    @app.post("/get_reward", dependencies=[Depends(authorised)], response_model_exclude_none=True)
    async def get_reward(request: RewardRequest, http: Request) -> RewardResponse:
        """OpenRLHF's remote reward model: one score per query, plus the dense rewards."""
        if len(request.prompts) != len(request.query):
            _invalid(
                ["body", "prompts"],
                f"{len(request.prompts)} prompts for {len(request.query)} queries; send one "
                "prompt per query",
            )
        _check_sizes(config, "query", request.query)
        _check_sizes(config, "prompts", request.prompts)
        _check_policy_tokens(request, policy is not None)

        def read_responses() -> tuple[list[int], list[str], list[PolicyTokens | None]]:
            """Where each response starts in its query, its text, and the policy's tokens of
            it when the request sends them (ids are read with the policy's tokenizer)."""
            starts, texts, tokens = [], [], []
            for i, (query, prompt) in enumerate(zip(request.query, request.prompts, strict=True)):
                split = split_query(query, prompt)
                start = split.start
                found.append(split.how)
                own = None
                if request.response_ids is not None:
                    with policy_lock:
                        own = _read_ids(policy, request.response_ids[i], i)
                elif request.response_offsets is not None:
                    try:
                        own = PolicyTokens.from_byte_offsets(
                            query[start:], request.response_offsets[i]
                        )
                    except ValueError as err:
                        _invalid(["body", "response_offsets", i], str(err))
                starts.append(start)
                texts.append(_strip(own.text if own else query[start:], strip))
                tokens.append(own)
            return starts, texts, tokens

        found: list[str] = []
        loop = asyncio.get_running_loop()
        starts, responses, own_tokens = await loop.run_in_executor(None, read_responses)
        prompts = [scored_prompt(p) for p in request.prompts]
        records = await scored(prompts, responses, http)
        rewards = [r.score for r in records]
        dense = [dense_rewards(r) for r in records]
        tokens, positions = None, None
        if request.response_ids is not None or request.response_offsets is not None:
            tokens = [
                policy_token_rewards(record, own)  # type: ignore[arg-type]
                for record, own in zip(records, own_tokens, strict=True)
            ]
            kind = "response_ids" if request.response_ids is not None else "response_offsets"
            positions = [kind] * len(records)
            starts = [0] * len(records)  # the spans index the response the tokens spell
        elif policy is not None:

            def place_on_tokens() -> list[list[float]]:
                with policy_lock:
                    offsets = [token_offsets(policy, query) for query in request.query]
                return [
                    token_rewards(record, spans, shift=start)
                    for record, spans, start in zip(records, offsets, starts, strict=True)
                ]

            tokens = await loop.run_in_executor(None, place_on_tokens)
            positions = ["query_retokenised"] * len(records)
        return RewardResponse(
            rewards=rewards,
            scores=rewards,
            extra_logs={
                "prompt_term": [r.prompt_term for r in records],
                "sentences": [float(r.n_scored) for r in records],
                "truncated": [float(r.truncated) for r in records],
            },
            sentence_rewards=[[d.dense_reward for d in ds] for ds in dense],
            sentence_spans=[
                [(start + d.start, start + d.end) for d in ds]
                for start, ds in zip(starts, dense, strict=True)
            ],
            token_rewards=tokens,
            token_positions=positions,
            prompt_match=found,
        )

    @app.post(
        "/score",
        dependencies=[Depends(authorised)],
        response_model=None,
        responses={200: {"model": ScoreResponse}},
    )
    async def score(request: ScoreRequest, http: Request) -> JSONResponse:
        """Score responses to one prompt: the records srm score writes, one per response."""
        _check_sizes(config, "responses", request.responses)
        _check_sizes(config, "prompt", [request.prompt])
        records = await scored([request.prompt] * len(request.responses), request.responses, http)
        data = [r.to_json() for r in records]
        if request.dense:
            data = [with_dense(r, d) for r, d in zip(records, data, strict=True)]
        return JSONResponse(
            {"head": model.config.head, "max_length": model.score_length, "responses": data}
        )

    return app


async def _until_disconnected(request: Request, every_s: float = 0.05) -> None:
    """Returns once the client of ``request`` has closed its connection (its body is read
    by then, so what arrives next is the disconnect)."""
    while not await request.is_disconnected():
        await asyncio.sleep(every_s)


def _invalid(loc: Sequence[str | int], message: str) -> None:
    """Refuse a request with FastAPI's 422 body, naming the field at ``loc``."""
    raise RequestValidationError([{"type": "value_error", "loc": tuple(loc), "msg": message}])


def _too_large(loc: Sequence[str | int], message: str) -> None:
    raise HTTPException(413, [{"type": "too_large", "loc": list(loc), "msg": message}])


def _check_sizes(config: ServeConfig, name: str, texts: Sequence[str]) -> None:
    """Refuse more than ``max_items`` texts or a text over ``max_chars`` (413), and text that
    has no UTF-8 form (a lone surrogate: no tokenizer takes it; 422)."""
    if len(texts) > config.max_items and name != "prompt":
        _too_large(
            ["body", name],
            f"{len(texts)} items; the limit is {config.max_items} per request "
            "(srm serve --max-items): split the request",
        )
    for i, text in enumerate(texts):
        loc = ["body", name] if name == "prompt" else ["body", name, i]
        if len(text) > config.max_chars:
            _too_large(
                loc,
                f"{len(text)} characters; the limit is {config.max_chars} (srm serve --max-chars)",
            )
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            _invalid(loc, f"a lone surrogate at character {err.start + 1}: not valid Unicode")


def _check_policy_tokens(request: RewardRequest, has_policy: bool) -> None:
    """One list of ids or offsets per query; ids only with the policy's tokenizer."""
    for name in ("response_ids", "response_offsets"):
        given = getattr(request, name)
        if given is not None and len(given) != len(request.query):
            _invalid(
                ["body", name],
                f"{len(given)} lists for {len(request.query)} queries; send one per query",
            )
    if request.response_ids is not None and request.response_offsets is not None:
        _invalid(["body", "response_offsets"], "send response_ids or response_offsets, not both")
    if request.response_ids is not None and not has_policy:
        _invalid(
            ["body", "response_ids"],
            "the server has no policy tokenizer to read ids with: start srm serve with "
            "--dense-tokenizer (the policy's), or send response_offsets",
        )


def _read_ids(policy: PreTrainedTokenizerBase, ids: list[int], i: int) -> PolicyTokens:
    try:
        return policy_tokens(policy, ids)
    except ValueError as err:
        _invalid(["body", "response_ids", i], str(err))
        raise  # not reached: _invalid raises


def _strip(response: str, suffixes: Sequence[str]) -> str:
    """``response`` without any of ``suffixes`` at its end, repeatedly (``</s></s>``); one
    copy at the end, however many there are."""
    end = len(response)
    changed = True
    while changed:
        changed = False
        for suffix in suffixes:
            if response.endswith(suffix, 0, end):
                end -= len(suffix)
                changed = True
    return response[:end]


# ------------------------------------------------------------------------- the body limit
class BodyLimit:
    """ASGI middleware: refuse a request body over ``max_bytes`` with a 413, by its
    Content-Length when it has one, else as it streams in, so a huge body is never held."""

    def __init__(self, app: ASGIApp, max_mb: float) -> None:
        self.app = app
        self.max_mb = max_mb
        self.max_bytes = int(max_mb * 1024 * 1024)

    def _error(self) -> HTTPException:
        limit = f"{self.max_mb:g} MB ({self.max_bytes} bytes)"
        return HTTPException(
            413,
            [
                {
                    "type": "too_large",
                    "loc": ["body"],
                    "msg": f"the body is over {limit}, the limit (srm serve --max-body-mb): "
                    "split the request",
                }
            ],
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            error = self._error()
            response = JSONResponse({"detail": error.detail}, status_code=error.status_code)
            await response(scope, receive, send)
            return
        seen = 0

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise self._error()  # FastAPI answers it as it reads the body
            return message

        await self.app(scope, counted_receive, send)


# ------------------------------------------------------------------ numbers JSON does not have
def _refuse_constant(name: str) -> float:
    raise _NotFinite(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as inf
        raise _NotFinite(text)
    return value


class _NotFinite(ValueError):
    """A number JSON does not have: NaN, Infinity, -Infinity, or one too large for a float."""


class FiniteJSONRoute(APIRoute):
    """A route whose JSON body may not hold NaN, Infinity or a number beyond a float (Python's
    ``json`` reads them; FastAPI's 422 then echoes them, cannot be rendered, and the client gets
    a 500). Refused with a 422 before the body is validated."""

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            body = await request.body()
            if body:
                try:
                    parsed = json.loads(
                        body, parse_constant=_refuse_constant, parse_float=_finite_float
                    )
                except _NotFinite as err:
                    _invalid(
                        ["body"],
                        f"{err} is not a finite number: JSON has no NaN or Infinity, send a "
                        "finite number or null",
                    )
                except ValueError:
                    pass  # not JSON: FastAPI says so, with the position
                else:
                    request._json = parsed  # Starlette's cache: the body is parsed once
            return await handler(request)

        return checked


# ---------------------------------------------------------------------------- the deadline
class Deadline:
    """ASGI middleware: a request not answered within ``seconds`` (its body read and its
    scoring included) gets a 503, and its work is cancelled (:class:`Batcher` then drops what
    is left of it), so a huge request or a slow body cannot hold a worker for long. A request
    the server cancels because it is stopping (SIGTERM) gets a 503 too, saying so."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await asyncio.wait_for(self.app(scope, receive, tracked_send), self.seconds)
        except asyncio.TimeoutError:
            if started:
                raise
            await _unavailable(
                scope,
                receive,
                send,
                f"the request took over {self.seconds:g} s, the limit (srm serve --timeout-s): "
                "send fewer or shorter texts, or raise the limit",
            )
        except asyncio.CancelledError:
            if started:
                raise
            # uvicorn cancels what is still under way once told to stop: answering ends the
            # request cleanly (a cancelled one is logged as a traceback) and tells the client
            # to send it again.
            await _unavailable(
                scope, receive, send, "the server is stopping: send the request again later"
            )


async def _unavailable(scope: Scope, receive: Receive, send: Send, message: str) -> None:
    response = JSONResponse(
        {"detail": [{"type": "unavailable", "loc": ["body"], "msg": message}]},
        status_code=503,
    )
    await response(scope, receive, send)


# ------------------------------------------------------------------------------ the server
BACKLOG = 64
"""Connections the kernel queues for accept, and the most the event loop accepts in one turn;
a connection is counted a turn after it is accepted and its descriptor freed a turn after it
is closed, so three turns' worth are kept free of the cap (a flood of 1,100 connections at
ulimit -n 1024 ran out with one turn's worth kept)."""
RESERVED_DESCRIPTORS = 64
"""Descriptors kept for what is not a connection: the model's files, logs, pipes."""
HEADER_BYTES = 16 * 1024
"""The longest request line and headers h11 reads before refusing the request (a 400)."""
SHUTDOWN_S = 3.0
"""Seconds requests under way get to finish after SIGTERM; then they are cancelled."""


def check_token(token: str) -> str:
    """``token`` if clients can send it as ``Authorization: Bearer TOKEN``; else ``ValueError``
    saying why. A blank token would be accepted and then match no client (HTTP strips the
    spaces around a header's value)."""
    if not token.strip():
        raise ValueError(
            "the token is blank: give a token (for example "
            "python -c 'import secrets; print(secrets.token_urlsafe(24))'), or leave "
            "--token and $SRM_SERVE_TOKEN unset"
        )
    if token != token.strip() or not all(" " <= ch <= "~" for ch in token):
        raise ValueError(
            "the token has spaces at its ends or characters other than printable ASCII, so "
            "no client could send it in an Authorization header: choose another"
        )
    return token


def listen_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A socket bound to ``host`` (an IPv6 address with or without brackets, ``[::1]``) and
    ``port``, made before the model loads so that an address that cannot be served is refused
    at once; ``OSError`` when it cannot be bound. ``reuse_port``: SO_REUSEPORT, so that
    several sockets of this user share the port (:func:`listen_sockets`)."""
    address = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((address, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def descriptor_limit() -> int | None:
    """The process's soft limit on open files (``ulimit -n``); ``None`` when unlimited or
    unknown (no ``resource`` module off Unix)."""
    try:
        import resource
    except ImportError:  # pragma: no cover
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def connection_cap(requested: int | None, limit: int | None) -> int:
    """How many connections may be open at once: ``requested`` (unset: as many as fit), and
    never so many that accepting one more could run out of descriptors (``limit``). Raises
    ``ValueError`` when the limit leaves too few."""
    if limit is None:
        return requested or 4096
    kept = 3 * BACKLOG + RESERVED_DESCRIPTORS
    room = limit - kept
    if room < 8:
        raise ValueError(
            f"the process may open {limit} files (ulimit -n), too few to serve: raise it to "
            f"{kept + 64} or more"
        )
    return room if requested is None else min(requested, room)


def _guarded_protocol(header_timeout_s: float, max_connections: int) -> type[H11Protocol]:
    """uvicorn's h11 protocol with two limits of its own, for one server.

    - A deadline for each request's headers: ``header_timeout_s`` after a connection opens, or
      after the previous answer on it, a connection still without a whole request line and
      headers is answered 408 and closed (uvicorn has a keep-alive timeout, but none for a
      client that sends part of its headers and stops).
    - At most ``max_connections`` open connections: one more replaces the connection that has
      waited longest without sending a request (so slow clients cannot lock out a new
      ``/health``), else is answered 503 and closed. uvicorn's ``limit_concurrency`` answers
      503 only once a request's headers are in, so it does not bound half-open connections.
    """
    waiting: collections.OrderedDict[GuardedH11Protocol, None] = collections.OrderedDict()
    """Connections without a request under way, the longest waiting first."""

    class GuardedH11Protocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
            super().connection_made(transport)  # type: ignore[arg-type]
            if len(self.connections) > max_connections and not self._make_room():
                self._close(
                    b"503 Service Unavailable",
                    f"{max_connections} connections are open, the limit "
                    "(srm serve --max-connections); try again",
                )
                return
            self._await_headers()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:  # its headers are in (or it was refused)
                self._stop_waiting()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
                self._await_headers()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_waiting()
            super().connection_lost(exc)

        def _await_headers(self) -> None:
            self._stop_waiting()
            waiting[self] = None
            self._header_timer = self.loop.call_later(header_timeout_s, self._headers_too_slow)

        def _stop_waiting(self) -> None:
            waiting.pop(self, None)
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if self.conn.their_state is h11.IDLE:
                self._close(
                    b"408 Request Timeout",
                    f"no request within {header_timeout_s:g} s (srm serve --header-timeout-s)",
                )

        def _make_room(self) -> bool:
            for other in waiting:  # the longest waiting first
                other._close(
                    b"503 Service Unavailable",
                    "closed to make room for a new connection: send the request sooner",
                )
                return True
            return False

        def _close(self, status: bytes, message: str) -> None:
            """Answer with ``status`` outside h11 (no request may have been read) and close."""
            self._stop_waiting()
            if self.transport.is_closing():
                return
            body = message.encode()
            head = b"HTTP/1.1 %s\r\ncontent-type: text/plain; charset=utf-8\r\n" % status
            head += b"connection: close\r\ncontent-length: %d\r\n\r\n" % len(body)
            self.transport.write(head + body)
            self.transport.close()

    return GuardedH11Protocol


class _DescriptorsRunOut:
    """The event loop's exception handler: when accept() finds no descriptor left (EMFILE and
    kin) asyncio logs a traceback for each connection it tries, many per second; log one line
    a minute instead, and everything else as asyncio would."""

    def __init__(self) -> None:
        self.last = -math.inf

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        out_of = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
        if isinstance(error, OSError) and error.errno in out_of:
            now = time.monotonic()
            if now - self.last >= 60:
                self.last = now
                log.warning(
                    "out of file descriptors (%s): new connections wait until some close; "
                    "lower --max-connections or raise ulimit -n",
                    error.strerror,
                )
            return
        loop.default_exception_handler(context)


class _RewardServer(uvicorn.Server):
    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        asyncio.get_running_loop().set_exception_handler(_DescriptorsRunOut())
        await super().startup(sockets=sockets)


def serve(app: FastAPI, sock: socket.socket, config: ServeConfig, max_connections: int) -> None:
    """Run ``app`` on uvicorn on the bound ``sock`` until SIGTERM or Ctrl-C: h11 with the
    header deadline and connection cap of :func:`_guarded_protocol`, ``keep_alive_s`` for idle
    connections, and at most :data:`SHUTDOWN_S` for requests under way once told to stop."""
    server_config = uvicorn.Config(
        app,
        http=_guarded_protocol(config.header_timeout_s, max_connections),
        ws="none",
        log_level="warning",
        backlog=BACKLOG,
        timeout_keep_alive=config.keep_alive_s,  # type: ignore[arg-type]
        timeout_graceful_shutdown=SHUTDOWN_S,  # type: ignore[arg-type]
        h11_max_incomplete_event_size=HEADER_BYTES,
    )
    _RewardServer(server_config).run(sockets=[sock])


# ------------------------------------------------------------- several processes, one port
WORKER_STOP_S = SHUTDOWN_S + 10
"""Seconds a worker gets to stop after SIGTERM (its requests' :data:`SHUTDOWN_S` and its
shutdown) before it is killed."""


def listen_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """Sockets for ``count`` worker processes on ``host`` and ``port``, bound before any model
    loads; ``OSError`` when the address cannot be served.

    On Linux each worker gets a socket of its own with SO_REUSEPORT, and the kernel spreads new
    connections across them (one shared socket would go to whichever worker wakes first: all
    of a burst of connections to one worker). Elsewhere the workers share one socket. The
    port is first bound without SO_REUSEPORT, so that a server already on it (even another
    ``srm serve --workers`` of this user) is refused rather than joined."""
    first = listen_socket(host, port)
    if count == 1 or not sys.platform.startswith("linux"):
        return [first] * count
    port = first.getsockname()[1]  # port 0: the one the system chose
    first.close()
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sockets.append(listen_socket(host, port, reuse_port=True))
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def threads_per_worker(workers: int) -> int | None:
    """torch threads for each of ``workers`` CPU worker processes: the cores this process may
    use, shared out (each process would otherwise start a thread per core, and they would
    fight over the cores); ``None`` for one worker, or when ``OMP_NUM_THREADS`` says."""
    if workers == 1 or "OMP_NUM_THREADS" in os.environ:
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // workers)


@dataclass(frozen=True)
class WorkerPlan:
    """What a worker process needs to load its model and serve (it crosses to a spawned
    process, so it is plain data)."""

    model_path: Path
    device: str
    config: ServeConfig
    token: str | None
    max_connections: int
    """Per worker: each process has its own descriptors."""
    torch_threads: int | None = None
    """:func:`threads_per_worker`; ``None`` leaves torch's default."""


@dataclass
class _Worker:
    process: SpawnProcess
    ready: Connection
    """Receives the worker's pid once its model is loaded and it serves."""
    serving: bool = False

    @classmethod
    def start(cls, context: SpawnContext, plan: WorkerPlan, sock: socket.socket) -> _Worker:
        ready, tell_ready = context.Pipe(duplex=False)
        process = context.Process(
            target=_run_worker, args=(plan, sock, tell_ready, os.getpid()), name="srm-serve"
        )
        process.start()
        tell_ready.close()  # the worker holds its own copy
        return cls(process, ready)

    def poll(self) -> bool:
        """Whether it serves now (its model loaded); reads its word once."""
        if not self.serving and self.ready.poll():
            with contextlib.suppress(EOFError):
                self.ready.recv()
                self.serving = True
        return self.serving


def serve_workers(
    plan: WorkerPlan,
    sockets: list[socket.socket],
    on_serving: Callable[[list[int]], None] | None = None,
) -> int:
    """Run one worker process per socket of :func:`listen_sockets`, each loading the model and
    serving as :func:`serve` does, until SIGTERM or Ctrl-C; then stop them all (each gets
    :data:`WORKER_STOP_S`) and return 0. ``on_serving`` gets the workers' pids once every one
    serves. A worker that exits after it served is replaced; one that fails before (a model
    that cannot be loaded) stops them all, and the return is 1.

    The workers are spawned, not forked: a fork of a process with torch's threads can hang,
    and each worker loads the model itself (N workers hold N copies). A worker stops itself
    when this process dies without stopping it."""
    context = multiprocessing.get_context("spawn")
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    workers: list[_Worker] = []
    try:
        workers = [_Worker.start(context, plan, sock) for sock in sockets]
        announced = False
        while not stop.wait(0.2):
            for i, worker in enumerate(workers):
                if worker.process.is_alive():
                    continue
                if not worker.poll():
                    log.error(
                        "a worker process (pid %s) exited before it served (exit code %s): "
                        "stopping the others",
                        worker.process.pid,
                        worker.process.exitcode,
                    )
                    return 1
                log.warning(
                    "worker pid %s exited (exit code %s); starting another",
                    worker.process.pid,
                    worker.process.exitcode,
                )
                workers[i] = _Worker.start(context, plan, sockets[i])
            if not announced and all(worker.poll() for worker in workers):
                announced = True
                if on_serving is not None:
                    on_serving([worker.process.pid for worker in workers])  # type: ignore[misc]
        return 0
    finally:
        _stop_workers(workers)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stop_workers(workers: list[_Worker]) -> None:
    """SIGTERM to every worker at once, then wait; kill those still running after
    :data:`WORKER_STOP_S`."""
    for worker in workers:
        if worker.process.is_alive():
            worker.process.terminate()
    deadline = time.monotonic() + WORKER_STOP_S
    for worker in workers:
        worker.process.join(max(0.0, deadline - time.monotonic()))
        if worker.process.is_alive():
            log.warning("worker pid %s did not stop: killed", worker.process.pid)
            worker.process.kill()
            worker.process.join()
        worker.ready.close()


def _run_worker(plan: WorkerPlan, sock: socket.socket, ready: Connection, parent: int) -> None:
    """A worker process: load the model, say so, serve on ``sock`` until SIGTERM."""
    threading.Thread(target=_stop_when_orphaned, args=(parent,), daemon=True).start()
    if plan.torch_threads is not None:
        import torch

        torch.set_num_threads(plan.torch_threads)
    from srm.checkpoint import CheckpointError, load

    try:
        model = load(plan.model_path, device=plan.device)
        app = create_app(model, plan.config, token=plan.token, name=plan.model_path.name)
    except (CheckpointError, ValueError) as err:
        log.error("worker pid %d cannot serve: %s", os.getpid(), err)
        raise SystemExit(2) from None
    ready.send(os.getpid())
    ready.close()
    serve(app, sock, plan.config, plan.max_connections)


def _stop_when_orphaned(parent: int, every_s: float = 1.0) -> None:
    """Stop this worker (SIGTERM, as its parent would) once ``parent`` has died: a killed
    parent must not leave workers holding the port."""
    while os.getppid() == parent:
        time.sleep(every_s)
    os.kill(os.getpid(), signal.SIGTERM)
