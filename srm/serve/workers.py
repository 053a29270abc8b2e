"""Several server processes on one port (``srm serve --workers N``): :func:`serve_workers`
spawns one worker per socket of :func:`listen_sockets`, each loading the model and serving as
:func:`srm.serve.server.serve` does, and stops them all on SIGTERM."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from srm.config import ServeConfig
from srm.serve.app import create_app
from srm.serve.server import SHUTDOWN_S, listen_socket, serve

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.context import SpawnContext, SpawnProcess

log = logging.getLogger(__name__)


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
