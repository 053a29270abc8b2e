"""Throughput and latency of ``srm serve``: a bounded load test on loopback only.

Starts ``srm serve`` (this tree's, on the default model unless ``--model``) on a free
127.0.0.1 port, once with batching and once with ``--no-batching``, and at 1, 8 and 32
concurrent clients sends a fixed number of OpenRLHF-shaped ``POST /get_reward`` requests of
one query each (what OpenRLHF's single-turn executor sends), prompts and chosen responses from
the held-out HH pairs. Reports requests/s over the level's wall time and the p50/p95 latency
of a request, after a few warm-up requests per server:

    .venv/bin/python bench/serve.py                         # 1, 8, 32 clients; 64 requests each
    .venv/bin/python bench/serve.py --requests 32 --concurrency 1,8
    .venv/bin/python bench/serve.py --batching on --max-batch 4     # smaller forward passes

Nothing leaves the machine: the server binds 127.0.0.1 and the clients connect there.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
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
    model: str | None, batching: bool, max_batch: int, port: int, log: Path
) -> subprocess.Popen:
    command = [sys.executable, "-m", "srm.cli", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--batching" if batching else "--no-batching"]
    command += ["--max-batch", str(max_batch)]
    if model is not None:
        command += ["--model", model]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("SRM_SERVE_TOKEN", None)
    with log.open("w") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_until_up(url: str, process: subprocess.Popen, log: Path) -> None:
    for _ in range(1200):  # about two minutes at most: the model loads first
        if process.poll() is not None:
            raise SystemExit(f"srm serve exited:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"srm serve did not come up:\n{log.read_text()}")


async def load(url: str, bodies: list[dict], clients: int) -> tuple[float, list[float], int]:
    """Send every body once, ``clients`` at a time; wall seconds, latencies, failures."""
    queue: asyncio.Queue[dict] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    latencies: list[float] = []
    failures = 0

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal failures
        while True:
            try:
                body = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            start = time.perf_counter()
            answer = await http.post(f"{url}/get_reward", json=body)
            latencies.append(time.perf_counter() - start)
            failures += answer.status_code != 200

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(timeout=600, limits=limits) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        return time.perf_counter() - start, latencies, failures


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
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]

    pairs = load_pairs(DATA)
    bodies = [
        {"query": [p.prompt + p.chosen], "prompts": [p.prompt], "labels": [None]}
        for p in pairs[: args.requests]
    ]
    chars = statistics.median(len(p.chosen) for p in pairs[: args.requests])
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for batching in [mode == "on" for mode in args.batching.split(",")]:
            port = free_port()
            log = Path(folder) / f"serve-{batching}.log"
            process = start_server(args.model, batching, args.max_batch, port, log)
            url = f"http://127.0.0.1:{port}"
            try:
                wait_until_up(url, process, log)
                health = httpx.get(f"{url}/health").json()
                asyncio.run(load(url, bodies[: args.warmup], 1))
                for clients in levels:
                    wall, latencies, failures = asyncio.run(load(url, bodies, clients))
                    rows.append(
                        (
                            "on" if batching else "off",
                            clients,
                            len(latencies) / wall,
                            percentile(latencies, 50),
                            percentile(latencies, 95),
                            failures,
                        )
                    )
                    print(rows[-1], file=sys.stderr, flush=True)
            finally:
                process.terminate()
                process.wait(timeout=30)
    print(
        f"model {health['model']} ({health['head']} head, scoring length {health['max_length']}); "
        f"{args.requests} requests per level, one query each (median response {chars:.0f} "
        f"characters); batching: up to {health['max_batch']} responses, 5 ms wait"
    )
    print("| batching | clients | requests/s | p50 latency (s) | p95 latency (s) | failed |")
    print("|---|---|---|---|---|---|")
    for mode, clients, rate, p50, p95, failures in rows:
        print(f"| {mode} | {clients} | {rate:.2f} | {p50:.3f} | {p95:.3f} | {failures} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
