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
``srm serve --workers N`` runs N such processes on one port (:func:`serve_workers`).

The modules, one concern each: :mod:`srm.serve.batching` (the batcher),
:mod:`srm.serve.messages` (the requests and answers), :mod:`srm.serve.app` (the app),
:mod:`srm.serve.limits` (the body limit, numbers JSON does not have, the deadline),
:mod:`srm.serve.server` (uvicorn, its sockets and connection limits) and
:mod:`srm.serve.workers` (several processes on one port). Their names are all here too.
"""

from __future__ import annotations

from srm.config import ServeConfig
from srm.serve.app import BEARER, create_app
from srm.serve.batching import Batcher, QueueFull
from srm.serve.limits import BodyLimit, Deadline, FiniteJSONRoute
from srm.serve.messages import RewardRequest, RewardResponse, ScoreRequest, ScoreResponse
from srm.serve.server import (
    BACKLOG,
    HEADER_BYTES,
    RESERVED_DESCRIPTORS,
    SHUTDOWN_S,
    check_token,
    connection_cap,
    descriptor_limit,
    listen_socket,
    serve,
)
from srm.serve.workers import (
    WORKER_STOP_S,
    WorkerPlan,
    listen_sockets,
    serve_workers,
    threads_per_worker,
)

__all__ = [
    "BACKLOG",
    "BEARER",
    "HEADER_BYTES",
    "RESERVED_DESCRIPTORS",
    "SHUTDOWN_S",
    "WORKER_STOP_S",
    "Batcher",
    "BodyLimit",
    "Deadline",
    "FiniteJSONRoute",
    "QueueFull",
    "RewardRequest",
    "RewardResponse",
    "ScoreRequest",
    "ScoreResponse",
    "ServeConfig",
    "WorkerPlan",
    "check_token",
    "connection_cap",
    "create_app",
    "descriptor_limit",
    "listen_socket",
    "listen_sockets",
    "serve",
    "serve_workers",
    "threads_per_worker",
]
