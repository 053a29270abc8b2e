"""Store benchmark at 100,000 pairs: bulk import, single label writes, a filtered queue page.

    nice -n 19 .venv/bin/python bench/store.py                     # SQLite (a temp file)
    SRM_BENCH_PG_URL=postgresql+psycopg://srm@127.0.0.1:54329/postgres \\
        nice -n 19 .venv/bin/python bench/store.py                 # ... and PostgreSQL

PostgreSQL runs when ``--pg-url``, ``$SRM_BENCH_PG_URL`` or ``$SRM_TEST_PG_URL`` names a server
whose role may CREATE DATABASE; the benchmark creates a fresh database there and drops it after.

Goals (issue 5): import <= 30 s, p95 of one label write <= 20 ms, a filtered and paginated
queue query at 100k pairs <= 100 ms. Before the queue queries, 10% of the pairs get label
events and one model's scores are stored for every pair, so the label and model filters have
real joins to do. A "label write" is one whole transaction, as the app runs it: BEGIN
(IMMEDIATE on SQLite), lock the pair, check the client's last-seen event, append, COMMIT.
A "queue query" is what one page of the queue costs: the page (50 rows at offset 1,000) plus
the count of all matches for the pager.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sqlite3
import statistics
import sys
import time

import sqlalchemy
from sqlalchemy import select
from stores import store_backends, timed

from srm.data import PreferencePair
from srm.records import PairScores
from srm.store import (
    Dataset,
    Pair,
    PairFilter,
    count_pairs,
    import_pairs,
    label_state,
    list_pairs,
    make_sessionmaker,
    open_store,
    record_label,
    register_model,
    save_scores,
)

WORDS = (
    "the model answer question because however response helpful harmless sentence reward "
    "people often think that this is a good idea but it depends on context and the details "
    "of what you want to do next so here are some steps first second finally"
).split()
SOURCES = ("hh-rlhf/helpful-base", "hh-rlhf/harmless-base", "pandalm", "ultrafeedback")
LABELS = ("keep", "swap", "tie", "discard")


def synthetic_pairs(n: int, seed: int = 0) -> list[PreferencePair]:
    """``n`` pairs with HH-like lengths: ~25-word prompts, ~60-140-word responses."""
    rng = random.Random(seed)

    def text(words: int) -> str:
        return " ".join(rng.choices(WORDS, k=words)).capitalize() + "."

    return [
        PreferencePair(
            id=f"syn-{i:06d}",
            prompt=text(rng.randint(10, 40)) + "?",
            chosen=text(rng.randint(60, 140)),
            rejected=text(rng.randint(60, 140)),
            source=SOURCES[i % len(SOURCES)],
            margin=round(rng.uniform(0, 3), 2) if i % 2 else None,
        )
        for i in range(n)
    ]


def unsegmented(score: float) -> dict:
    """One response's scores with nothing but the score (all the queries timed here read)."""
    return {
        "score": score,
        "prompt_reward": 0.0,
        "prompt_weight": 0.0,
        "truncated": False,
        "sentences": [],
    }


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def run(url: str, pairs: list[PreferencePair], n_writes: int, n_queries: int) -> dict[str, str]:
    engine = open_store(url)
    session_factory = make_sessionmaker(engine)
    rng = random.Random(1)
    results: dict[str, str] = {}

    def do_import() -> None:
        with session_factory.begin() as s:
            import_pairs(s, "bench", pairs)

    seconds = timed(do_import)
    results["import"] = f"{seconds:.1f} s ({len(pairs) / seconds:,.0f} pairs/s)"
    seconds = timed(do_import)
    results["re-import (no-op)"] = f"{seconds:.1f} s"

    with session_factory() as s:
        dataset_id = s.scalar(select(Dataset.id).where(Dataset.name == "bench"))
        pair_ids = list(
            s.scalars(select(Pair.id).where(Pair.dataset_id == dataset_id).order_by(Pair.id))
        )

    # Background for the queue: 10% of pairs labelled (through the API, so the pairs' current
    # label stays in step with the log), and one model's scores on every pair.
    labelled = rng.sample(pair_ids, len(pair_ids) // 10)
    with session_factory.begin() as s:
        for pid in labelled:
            record_label(s, pid, "seed", rng.choice(LABELS), expected_event_id=None)
    with session_factory.begin() as s:
        model_id = register_model(s, "bench", "/bench/model").id
        records = [
            PairScores.from_json(
                {
                    "id": pair.id,
                    "chosen": unsegmented(rng.gauss(0.5, 1)),
                    "rejected": unsegmented(rng.gauss(0, 1)),
                }
            )
            for pair in pairs
        ]
        save_scores(s, model_id, "bench", records)

    # Single label writes: each its own transaction, on random pairs, sequentially.
    already = set(labelled)
    fresh = [pid for pid in rng.sample(pair_ids, n_writes * 2) if pid not in already]
    write_ms = []
    for pid in fresh[:n_writes]:
        with session_factory() as s:
            seen = label_state(s, pid).event_id
        start = time.perf_counter()
        with session_factory.begin() as s:
            record_label(s, pid, "bench", rng.choice(LABELS), expected_event_id=seen)
        write_ms.append(1000 * (time.perf_counter() - start))
    results["label write p50 / p95"] = (
        f"{statistics.median(write_ms):.1f} / {percentile(write_ms, 95):.1f} ms "
        f"({len(write_ms)} writes)"
    )

    read_factory = make_sessionmaker(engine, read_only=True)
    queues = {
        "queue: unlabelled, one source, margin >= 1": PairFilter(
            source=SOURCES[1], label="unlabelled", min_margin=1.0
        ),
        "queue: model disagrees with the label": PairFilter(model_id=model_id, disagreeing=True),
        "queue: text search 'steps first'": None,
    }
    for name, where in queues.items():
        search = "steps first" if where is None else None
        times, total = [], 0
        for _ in range(n_queries):
            start = time.perf_counter()
            with read_factory() as s:
                page = list_pairs(s, "bench", search=search, where=where, limit=50, offset=1000)
                total = count_pairs(s, "bench", search=search, where=where)
            times.append(1000 * (time.perf_counter() - start))
            assert len(page) == 50, (name, len(page))
        results[name] = (
            f"{statistics.median(times):.0f} ms median, {percentile(times, 95):.0f} ms p95 "
            f"(page of 50 + count of {total:,})"
        )
    engine.dispose()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--writes", type=int, default=300, help="single label writes timed")
    parser.add_argument("--queries", type=int, default=10, help="repeats of each queue query")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("SRM_BENCH_PG_URL") or os.environ.get("SRM_TEST_PG_URL"),
        help="PostgreSQL server to benchmark too (a role that may CREATE DATABASE)",
    )
    args = parser.parse_args(argv)

    print(
        f"{args.pairs:,} synthetic pairs; Python {platform.python_version()}, SQLAlchemy "
        f"{sqlalchemy.__version__}, SQLite {sqlite3.sqlite_version}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    pairs = synthetic_pairs(args.pairs)
    for _, url in store_backends(args.pg_url, "srm_bench"):
        for name, value in run(url, pairs, args.writes, args.queries).items():
            print(f"  {name:<45} {value}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
