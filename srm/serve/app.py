"""The server's ASGI app (:func:`create_app`): /get_reward, /score and /health, the token
check, and the checks on each request's texts."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import secrets
import threading
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

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
from srm.serve.batching import Batcher, QueueFull
from srm.serve.limits import BodyLimit, Deadline, FiniteJSONRoute, invalid
from srm.serve.messages import RewardRequest, RewardResponse, ScoreRequest, ScoreResponse

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from srm.model import SentenceRewardModel

BEARER = HTTPBearer(auto_error=False)
"""The token check's credentials (module level: FastAPI resolves the annotation here)."""


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
            invalid(
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
                        invalid(["body", "response_offsets", i], str(err))
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
            invalid(loc, f"a lone surrogate at character {err.start + 1}: not valid Unicode")


def _check_policy_tokens(request: RewardRequest, has_policy: bool) -> None:
    """One list of ids or offsets per query; ids only with the policy's tokenizer."""
    for name in ("response_ids", "response_offsets"):
        given = getattr(request, name)
        if given is not None and len(given) != len(request.query):
            invalid(
                ["body", name],
                f"{len(given)} lists for {len(request.query)} queries; send one per query",
            )
    if request.response_ids is not None and request.response_offsets is not None:
        invalid(["body", "response_offsets"], "send response_ids or response_offsets, not both")
    if request.response_ids is not None and not has_policy:
        invalid(
            ["body", "response_ids"],
            "the server has no policy tokenizer to read ids with: start srm serve with "
            "--dense-tokenizer (the policy's), or send response_offsets",
        )


def _read_ids(policy: PreTrainedTokenizerBase, ids: list[int], i: int) -> PolicyTokens:
    try:
        return policy_tokens(policy, ids)
    except ValueError as err:
        invalid(["body", "response_ids", i], str(err))
        raise  # not reached: invalid raises


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
