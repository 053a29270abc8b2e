"""Throughput and latency of ``srm serve``: a bounded load test on loopback only.

Starts ``srm serve`` (this tree's, on the default model unless ``--model``) on a free
127.0.0.1 port, once per server configuration (with batching and ``--no-batching``, and at
each ``--workers`` count), and at 1, 8 and 32 concurrent clients sends a fixed number of
OpenRLHF-shaped ``POST /get_reward`` requests of one query each (what OpenRLHF's single-turn
executor sends), prompts and chosen responses from the held-out HH pairs. Reports requests/s
over the level's wall time and the p50/p95 latency of a request, after a few warm-up requests
per server:

    .venv/bin/python bench/serve.py                         # 1, 8, 32 clients; 64 requests each
    .venv/bin/python bench/serve.py --requests 32 --concurrency 1,8
    .venv/bin/python bench/serve.py --batching on --max-batch 4     # smaller forward passes
    .venv/bin/python bench/serve.py --batching off --workers 1,2 --max-queue 8

A client answered 503 (``--max-queue`` requests under way) waits ``Retry-After`` and sends the
request again, as a client would: the 503s are counted apart, and a request's latency runs
from its first try to its answer. Each request carries an id (an extra key the server
ignores); every level checks that each id was answered exactly once, with one reward per
query, and the same reward as the first answer to that id (any server, any level): a request
lost, answered twice or given another's answer is counted, and the benchmark exits 1.
``--connections new`` opens a connection per request, as OpenRLHF's client does
(``requests.post``); ``kept`` (the default) keeps one per client.

Nothing leaves the machine: the server binds 127.0.0.1 and the clients connect there.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from srm.data import load_pairs

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "heldout_hh_rlhf.jsonl"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(
    model: str | None,
    batching: bool,
    max_batch: int,
    workers: int,
    max_queue: int | None,
    port: int,
    log: Path,
) -> subprocess.Popen:
    command = [sys.executable, "-m", "srm.cli", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--batching" if batching else "--no-batching"]
    command += ["--max-batch", str(max_batch), "--workers", str(workers)]
    if max_queue is not None:
        command += ["--max-queue", str(max_queue)]
    if model is not None:
        command += ["--model", model]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("SRM_SERVE_TOKEN", None)
    with log.open("w") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_until_up(url: str, process: subprocess.Popen, log: Path, workers: int) -> None:
    """Until every worker answers /health (each loads the model; a new connection may reach
    any of them)."""
    pids: set[int] = set()
    for _ in range(1200):  # about two minutes at most: the model loads first
        if process.poll() is not None:
            raise SystemExit(f"srm serve exited:\n{log.read_text()}")
        try:
            pids.add(httpx.get(f"{url}/health", timeout=120).json()["pid"])
            if len(pids) == workers:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"srm serve did not come up:\n{log.read_text()}")


@dataclass
class Level:
    """One level's outcome: wall seconds, each request's latency (first try to answer),
    the 503s retried, the other failures, and each id's answers (their rewards)."""

    wall: float = 0.0
    latencies: list[float] = field(default_factory=list)
    retried: int = 0
    failures: int = 0
    answers: dict[int, list[list[float]]] = field(default_factory=dict)


async def load(url: str, bodies: list[dict], clients: int, connections: str) -> Level:
    """Send every body once, ``clients`` at a time, a 503 again after its Retry-After."""
    queue: asyncio.Queue[dict] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    level = Level(answers={body["id"]: [] for body in bodies})

    async def client(http: httpx.AsyncClient) -> None:
        while True:
            try:
                body = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            start = time.perf_counter()
            while (answer := await http.post(f"{url}/get_reward", json=body)).status_code == 503:
                level.retried += 1
                await asyncio.sleep(float(answer.headers.get("retry-after", 1)))
            level.latencies.append(time.perf_counter() - start)
            if answer.status_code == 200:
                level.answers[body["id"]].append(answer.json()["rewards"])
            else:
                level.failures += 1

    kept = None if connections == "kept" else 0  # 0: a connection per request
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=kept)
    async with httpx.AsyncClient(timeout=600, limits=limits) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        level.wall = time.perf_counter() - start
    return level


def check_answers(
    level: Level, bodies: list[dict], first: dict[int, list[float]]
) -> tuple[int, int, int]:
    """Requests lost (no answer), answered more than once, and answered wrongly (not one reward
    per query, or not the reward the first answer to the id had); ``first`` is filled in."""
    lost = twice = wrong = 0
    for body in bodies:
        answers = level.answers[body["id"]]
        lost += not answers
        twice += len(answers) > 1
        for rewards in answers:
            expected = first.setdefault(body["id"], rewards)
            wrong += len(rewards) != len(body["query"]) or not all(
                math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-5)
                for a, b in zip(rewards, expected, strict=True)
            )
    return lost, twice, wrong


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="Checkpoint (default: the default model).")
    parser.add_argument("--concurrency", default="1,8,32", help="Client counts, comma-separated.")
    parser.add_argument("--requests", type=int, default=64, help="Requests per level.")
    parser.add_argument("--warmup", type=int, default=4, help="Warm-up requests per server.")
    parser.add_argument("--max-batch", type=int, default=16, help="srm serve --max-batch.")
    parser.add_argument(
        "--batching", default="on,off", help="Server modes in this order: on, off or both."
    )
    parser.add_argument("--workers", default="1", help="srm serve --workers counts, in order.")
    parser.add_argument(
        "--max-queue", type=int, default=None, help="srm serve --max-queue (unset: its default)."
    )
    parser.add_argument(
        "--connections",
        choices=["kept", "new"],
        default="kept",
        help="kept: one connection per client; new: one per request (OpenRLHF).",
    )
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]

    pairs = load_pairs(DATA)
    bodies = [
        {"id": i, "query": [p.prompt + p.chosen], "prompts": [p.prompt], "labels": [None]}
        for i, p in enumerate(pairs[: args.requests])
    ]
    chars = statistics.median(len(p.chosen) for p in pairs[: args.requests])
    first: dict[int, list[float]] = {}
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for batching in [mode == "on" for mode in args.batching.split(",")]:
            for workers in [int(w) for w in args.workers.split(",")]:
                port = free_port()
                log = Path(folder) / f"serve-{batching}-{workers}.log"
                process = start_server(
                    args.model, batching, args.max_batch, workers, args.max_queue, port, log
                )
                url = f"http://127.0.0.1:{port}"
                try:
                    wait_until_up(url, process, log, workers)
                    health = httpx.get(f"{url}/health").json()
                    asyncio.run(load(url, bodies[: args.warmup], 1, args.connections))
                    for clients in levels:
                        level = asyncio.run(load(url, bodies, clients, args.connections))
                        rows.append(
                            (
                                "on" if batching else "off",
                                workers,
                                clients,
                                len(level.latencies) / level.wall,
                                percentile(level.latencies, 50),
                                percentile(level.latencies, 95),
                                level.retried,
                                level.failures,
                                *check_answers(level, bodies, first),
                            )
                        )
                        print(rows[-1], file=sys.stderr, flush=True)
                finally:
                    process.terminate()
                    process.wait(timeout=60)
    print(
        f"model {health['model']} ({health['head']} head, scoring length {health['max_length']}); "
        f"{args.requests} requests per level, one query each (median response {chars:.0f} "
        f"characters); batching: up to {health['max_batch']} responses, 5 ms wait; "
        f"--max-queue {health['max_queue']} per worker; connections: {args.connections}"
    )
    print(
        "| batching | workers | clients | requests/s | p50 latency (s) | p95 latency (s) "
        "| 503s retried | failed | lost | answered twice | wrong answer |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for mode, workers, clients, rate, p50, p95, retried, failures, *checks in rows:
        print(
            f"| {mode} | {workers} | {clients} | {rate:.2f} | {p50:.3f} | {p95:.3f} | {retried} "
            f"| {failures} | {' | '.join(map(str, checks))} |"
        )
    return 1 if any(sum(row[-3:]) or row[-4] for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
