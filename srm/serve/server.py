"""The server: :func:`serve` runs the app on uvicorn with limits for slow and numerous
clients (a deadline for each request's headers, a cap on open connections below the process's
descriptor limit, no tracebacks when descriptors run out anyway), and the sockets it listens
on, bound before the model loads."""

from __future__ import annotations

import asyncio
import collections
import errno
import logging
import math
import socket
import time
from typing import Any

import h11
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from srm.config import ServeConfig

log = logging.getLogger(__name__)


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
    several sockets of this user share the port (:func:`srm.serve.workers.listen_sockets`)."""
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
