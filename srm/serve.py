"""A reward server for RL trainers (``srm serve``): FastAPI on uvicorn.

Endpoints (:func:`create_app`):

- ``POST /get_reward``: OpenRLHF's remote reward model. OpenRLHF posts
  ``{"query": [prompt + response, ...], "prompts": [prompt, ...], "labels": [...]}`` and reads
  ``{"rewards": [float], "scores": [float], "extra_logs": {name: [float]}}``; this server adds,
  per query, ``sentence_rewards`` (the dense rewards a_j r_j, :mod:`srm.dense`) and
  ``sentence_spans`` (``[start, end]`` character offsets of each sentence *in the query*);
  with ``ServeConfig.dense_tokenizer``, ``token_rewards``: one per token of that tokenizer.
- ``POST /score``: ``{"prompt", "responses": [...], "dense"}`` gives the records ``srm score``
  writes for one side (:class:`~srm.records.ResponseScores` JSON, with ``"dense"`` on request).
- ``GET /health``; ``GET /openapi.json`` and ``/docs``, FastAPI's schema and its page.

Requests that arrive together are scored together (:class:`Batcher`): the first waits up to
``max_wait_ms`` for others, up to ``max_batch`` responses per forward pass, and the model runs
in one worker thread so the event loop keeps accepting requests. A bad request gets a 422 that
names the field (FastAPI's ``{"detail": [{"loc": [...], "msg": ...}]}``), an oversized one a 413
that names the limit and the option that sets it; a failure while scoring is a 500 for the
requests of that batch, and the server carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, HTTPException
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from srm import __version__
from srm.config import ServeConfig
from srm.dense import dense_rewards, token_offsets, token_rewards, with_dense
from srm.records import ResponseScores

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from srm.model import SentenceRewardModel

log = logging.getLogger(__name__)

BEARER = HTTPBearer(auto_error=False)
"""The token check's credentials (module level: FastAPI resolves the annotation here)."""


# -------------------------------------------------------------------------------- the batcher
@dataclass
class _Job:
    prompts: list[str]
    responses: list[str]
    future: asyncio.Future[list[ResponseScores]]


class Batcher:
    """Scores the responses of concurrent requests, several requests per forward pass.

    ``await batcher.score(prompts, responses)`` from any request; one task collects what is
    queued (the first job waits up to ``max_wait_ms`` for company, until ``max_batch``
    responses), and one worker thread runs the model (:func:`srm.score.score_responses`).
    """

    def __init__(self, model: SentenceRewardModel, config: ServeConfig) -> None:
        self.model = model
        self.config = config
        self.batches = 0
        """Forward-pass groups run so far (``/health`` reports it)."""
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="srm-score")
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._thread.shutdown(wait=True)

    async def score(self, prompts: list[str], responses: list[str]) -> list[ResponseScores]:
        job = _Job(prompts, responses, asyncio.get_running_loop().create_future())
        await self._queue.put(job)
        return await job.future

    async def _collect(self) -> list[_Job]:
        """The next group of jobs: the first in the queue and, with batching, those that join
        it within ``max_wait_ms`` while there is room for their responses."""
        jobs = [await self._queue.get()]
        if not self.config.batching:
            return jobs
        size = len(jobs[0].responses)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.max_wait_ms / 1000
        while size < self.config.max_batch:
            try:
                job = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), left)
                except TimeoutError:
                    break
            jobs.append(job)
            size += len(job.responses)
        return jobs

    async def _run(self) -> None:
        from srm.score import score_responses

        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._collect()
            prompts = [p for job in jobs for p in job.prompts]
            responses = [r for job in jobs for r in job.responses]
            try:
                records = await loop.run_in_executor(
                    self._thread,
                    functools.partial(
                        score_responses,
                        self.model,
                        prompts,
                        responses,
                        batch_size=self.config.max_batch,
                    ),
                )
            except Exception as err:  # one bad batch fails its requests, not the server
                log.exception("scoring a batch of %d responses failed", len(responses))
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(err)
                continue
            self.batches += 1
            start = 0
            for job in jobs:
                n = len(job.responses)
                if not job.future.done():  # done: the client went away
                    job.future.set_result(records[start : start + n])
                start += n


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
        "the query. The reward goes on the policy token holding the last character."
    )
    token_rewards: list[list[float]] | None = Field(
        default=None,
        description="With srm serve --dense-tokenizer only: per query, one dense reward per "
        "token of that tokenizer over the query (no special tokens added), zero but on the "
        "last token of each scored sentence.",
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
    app.add_middleware(BodyLimit, max_mb=config.max_body_mb)

    def authorised(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
    ) -> None:
        if token is None:
            return
        given = "" if credentials is None else credentials.credentials
        if not secrets.compare_digest(given.encode(), token.encode()):
            raise HTTPException(
                401,
                "a bearer token is required: send Authorization: Bearer TOKEN (srm serve --token)",
                headers={"WWW-Authenticate": "Bearer"},
            )

    async def scored(prompts: list[str], responses: list[str]) -> list[ResponseScores]:
        try:
            return await batcher.score(prompts, responses)
        except Exception as err:
            raise HTTPException(500, f"scoring failed ({type(err).__name__}: {err})") from err

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "model": name,
            "head": model.config.head,
            "max_length": model.score_length,
            "batching": config.batching,
            "max_batch": config.max_batch,
            "batches": batcher.batches,
        }

    @app.post("/get_reward", dependencies=[Depends(authorised)], response_model_exclude_none=True)
    async def get_reward(request: RewardRequest) -> RewardResponse:
        """OpenRLHF's remote reward model: one score per query, plus the dense rewards."""
        if len(request.prompts) != len(request.query):
            _invalid(
                ["body", "prompts"],
                f"{len(request.prompts)} prompts for {len(request.query)} queries; send one "
                "prompt per query",
            )
        _check_sizes(config, "query", request.query)
        _check_sizes(config, "prompts", request.prompts)
        starts, responses = [], []
        for i, (query, prompt) in enumerate(zip(request.query, request.prompts, strict=True)):
            start = _response_start(query, prompt, i)
            starts.append(start)
            responses.append(_strip(query[start:], config.strip))
        records = await scored(request.prompts, responses)
        rewards = [r.score for r in records]
        dense = [dense_rewards(r) for r in records]
        tokens = None
        if policy is not None:
            tokens = [
                token_rewards(record, token_offsets(policy, query), shift=start)
                for record, query, start in zip(records, request.query, starts, strict=True)
            ]
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
        )

    @app.post(
        "/score",
        dependencies=[Depends(authorised)],
        response_model=None,
        responses={200: {"model": ScoreResponse}},
    )
    async def score(request: ScoreRequest) -> JSONResponse:
        """Score responses to one prompt: the records srm score writes, one per response."""
        _check_sizes(config, "responses", request.responses)
        _check_sizes(config, "prompt", [request.prompt])
        records = await scored([request.prompt] * len(request.responses), request.responses)
        data = [r.to_json() for r in records]
        if request.dense:
            data = [with_dense(r, d) for r, d in zip(records, data, strict=True)]
        return JSONResponse(
            {"head": model.config.head, "max_length": model.score_length, "responses": data}
        )

    return app


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


def _response_start(query: str, prompt: str, i: int) -> int:
    """Where the response starts in ``query``: after ``prompt``, which the query starts with
    or (after a BOS text a decoder put in front) contains."""
    if query.startswith(prompt):
        return len(prompt)
    at = query.find(prompt)
    if at < 0:
        _invalid(
            ["body", "query", i],
            f"does not contain prompts[{i}]; each query is its prompt followed by the response",
        )
    return at + len(prompt)


def _strip(response: str, suffixes: Sequence[str]) -> str:
    """``response`` without any of ``suffixes`` at its end, repeatedly (``</s></s>``)."""
    changed = True
    while changed:
        changed = False
        for suffix in suffixes:
            if response.endswith(suffix):
                response = response[: -len(suffix)]
                changed = True
    return response


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
