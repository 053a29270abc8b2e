"""The limits every request meets, as ASGI middleware and a route class: the body limit
(:class:`BodyLimit`, a 413), no numbers JSON does not have (:class:`FiniteJSONRoute`, a 422) and
the deadline (:class:`Deadline`, a 503)."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send


def invalid(loc: Sequence[str | int], message: str) -> None:
    """Refuse a request with FastAPI's 422 body, naming the field at ``loc``."""
    raise RequestValidationError([{"type": "value_error", "loc": tuple(loc), "msg": message}])


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
                    invalid(
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
    scoring included) gets a 503, and its work is cancelled (:class:`srm.serve.batching.Batcher`
    then drops what is left of it), so a huge request or a slow body cannot hold a worker for
    long. A request the server cancels because it is stopping (SIGTERM) gets a 503 too, saying
    so."""

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
