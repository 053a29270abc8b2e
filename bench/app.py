"""App page times through Streamlit's AppTest: Inspect on a scored pair, Annotate at 100k pairs.

    .venv/bin/python bench/app.py                                  # SQLite
    .venv/bin/python bench/app.py --pg-url postgresql+psycopg://srm@127.0.0.1:54329/postgres

PostgreSQL runs too when ``--pg-url``, ``$SRM_BENCH_PG_URL`` or ``$SRM_TEST_PG_URL`` names a
server whose role may CREATE DATABASE (a fresh database is made there and dropped after).

What is timed is the wall time of ``AppTest.run()``: the whole script run of the router and the
page in this process (queries, scoring, building every element and chart) up to the last
message, which is the server's share of a page view; the browser's rendering is not in it.
Every timed run is a rerun of one AppTest session, as when a person clicks on the page.

- **Inspect** (goal: median <= 0.4 s): a SQLite store with the 50 sample pairs (dataset
  ``sample``) and the default model (``--model``, else ``$SRM_MODEL``, else the bundled
  ``data/models/default``). The first run on the first pair is the cold view: it imports torch,
  loads the model, scores the pair and stores the scores. Then ``--runs`` reruns of the same pair
  read the scores back from the store (the model stays loaded, ``st.cache_resource``).
- **Annotate** (goal: median <= 1 s with the query caches cleared): a store with ``--pairs``
  synthetic pairs (2-5 sentences per response), one model with a stored score for every pair
  (per-sentence detail included) set active, and 5% of the pairs labelled by one annotator, a
  fifth of those again by a second (so the agreement panel has work). The page runs with the
  annotator set and its default queue (unlabelled pairs, ordered by the model's disagreement).
  "Warm" reruns may hit the page's ``st.cache_data`` queries (ttl 10 s); "cold cache" reruns
  clear those functions' caches first, so every query runs: the goal is judged on those. The
  page's costlier store reads are timed on their own too: ``annotation_queue`` (a page of 50),
  ``list_datasets``, ``label_summary``, and ``agreement``. On
  PostgreSQL the store gets a VACUUM ANALYZE after it is filled (see ``fill_store``).

A goal is met when the median is within it; the table says so when the p95 is not.
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from stores import sqlite_store, store_backends, timed
from streamlit.logger import set_log_level
from streamlit.testing.v1 import AppTest

from srm.data import PreferencePair, load_pairs
from srm.records import PairScores
from srm.store import (
    Dataset,
    Pair,
    PairFilter,
    agreement,
    annotation_queue,
    import_pairs,
    label_summary,
    list_datasets,
    make_sessionmaker,
    open_store,
    record_label,
    register_model,
    save_scores,
    set_active_model,
)

ROOT = Path(__file__).resolve().parents[1]
WEBAPP = ROOT / "webapp"
APP = str(WEBAPP / "streamlit_app.py")
SAMPLE = ROOT / "data" / "sample_50.jsonl"

set_log_level("error")  # not a "no runtime found" warning for every cached function
from webapp import services  # noqa: E402  (after the log level above)

INSPECT_GOAL_S = 0.4
ANNOTATE_GOAL_S = 1.0
WORDS = (
    "the model answer question because however response helpful harmless sentence reward "
    "people often think that this is a good idea but it depends on context and the details "
    "of what you want to do next so here are some steps first second finally"
).split()
SOURCES = ("hh-rlhf/helpful-base", "hh-rlhf/harmless-base", "pandalm", "ultrafeedback")
LABELS = ("keep", "swap", "tie", "discard")
DATASET = "bench"


@dataclass(frozen=True)
class Row:
    """One line of the results table; ``goal`` is ``None`` for figures shown for information."""

    measurement: str
    backend: str
    times: list[float]
    goal: float | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def p95(self) -> float | None:
        if len(self.times) < 2:
            return None
        return statistics.quantiles(self.times, n=100, method="inclusive")[94]

    @property
    def verdict(self) -> str:
        if self.goal is None:
            return ""
        if self.median > self.goal:
            return "MISSED"
        return "met" if (self.p95 or 0) <= self.goal else "met (p95 over)"


def seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def print_table(rows: list[Row]) -> None:
    header = ("measurement", "backend", "n", "median", "p95", "goal", "verdict")
    lines = [
        (
            r.measurement,
            r.backend,
            str(len(r.times)),
            seconds(r.median),
            seconds(r.p95),
            f"<= {seconds(r.goal)}" if r.goal is not None else "",
            r.verdict,
        )
        for r in rows
    ]
    widths = [max(len(x) for x in column) for column in zip(header, *lines, strict=True)]
    for line in (header, tuple("-" * w for w in widths), *lines):
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


def load_note() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


def run_page(at: AppTest) -> float:
    """Run the script once; fail on any exception it raised (a broken page is not fast)."""
    elapsed = timed(at.run)
    if at.exception:
        raise RuntimeError(f"the page raised: {[e.value for e in at.exception]}")
    return elapsed


def page_test(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=600)
    at.switch_page(f"app_pages/{page}.py")
    return at


# ------------------------------------------------------------------------------- Inspect
def bench_inspect(runs: int) -> list[Row]:
    with sqlite_store() as url:
        engine = open_store(url)
        with make_sessionmaker(engine).begin() as s:
            import_pairs(s, "sample", load_pairs(SAMPLE))
        engine.dispose()
        os.environ["SRM_DB_URL"] = url
        print(f"Inspect: model {services.bundled_model_path()}", flush=True)

        at = page_test("inspect")
        cold = run_page(at)  # imports torch, loads the model, scores the pair, stores it
        first = at.session_state["inspect.pair_id"]
        warm = [run_page(at) for _ in range(runs)]
        assert at.session_state["inspect.pair_id"] == first, "the page moved to another pair"

        # Another pair nobody has viewed: the model is loaded, the pair is scored and stored.
        ids = [p.id for p in load_pairs(SAMPLE)]
        at.selectbox(key="inspect.pair_id").set_value(ids[1] if ids[0] == first else ids[0])
        new_pair = run_page(at)
    return [
        Row(
            "Inspect, first view in the process (torch import, model load, scoring)",
            "SQLite",
            [cold],
        ),
        Row("Inspect, first view of another pair (model loaded, scoring)", "SQLite", [new_pair]),
        Row("Inspect, scored pair, rerun", "SQLite", warm, INSPECT_GOAL_S),
    ]


# ------------------------------------------------------------------------------- Annotate
@dataclass(frozen=True)
class SyntheticPair:
    pair: PreferencePair
    spans: dict[str, list[tuple[int, int]]]  # side -> sentence (start, end) offsets


def synthetic_pairs(n: int, seed: int = 0) -> list[SyntheticPair]:
    """``n`` pairs with HH-like lengths (prompts of 10-40 words, responses of 2-5 sentences of
    6-30 words), each with its responses' sentence offsets for the synthetic score detail."""
    rng = random.Random(seed)

    def sentence(words: int) -> str:
        return " ".join(rng.choices(WORDS, k=words)).capitalize() + "."

    def response() -> tuple[str, list[tuple[int, int]]]:
        sentences = [sentence(rng.randint(6, 30)) for _ in range(rng.randint(2, 5))]
        spans, start = [], 0
        for text in sentences:
            spans.append((start, start + len(text)))
            start += len(text) + 1
        return " ".join(sentences), spans

    out = []
    for i in range(n):
        chosen, chosen_spans = response()
        rejected, rejected_spans = response()
        pair = PreferencePair(
            id=f"syn-{i:06d}",
            prompt=sentence(rng.randint(10, 40))[:-1] + "?",
            chosen=chosen,
            rejected=rejected,
            source=SOURCES[i % len(SOURCES)],
            margin=round(rng.uniform(0, 3), 2) if i % 2 else None,
        )
        out.append(SyntheticPair(pair, {"chosen": chosen_spans, "rejected": rejected_spans}))
    return out


def score_record(item: SyntheticPair, rng: random.Random) -> PairScores:
    """A record like :func:`srm.score.score_pairs`' output, with random numbers."""

    def side(name: str, mean: float) -> dict:
        text = getattr(item.pair, name)
        cuts = item.spans[name]
        weights = [rng.random() for _ in range(len(cuts) + 1)]
        total = sum(weights)
        return {
            "score": rng.gauss(mean, 1),
            "prompt_reward": rng.gauss(0, 0.3),
            "prompt_weight": weights[0] / total,
            "truncated": False,
            "sentences": [
                {
                    "text": text[a:b],
                    "start": a,
                    "end": b,
                    "reward": rng.gauss(mean / len(cuts), 0.5),
                    "weight": w / total,
                }
                for (a, b), w in zip(cuts, weights[1:], strict=True)
            ],
        }

    return PairScores.from_json(
        {"id": item.pair.id, "chosen": side("chosen", 0.3), "rejected": side("rejected", 0.0)}
    )


def fill_store(engine: Engine, items: list[SyntheticPair], model_dir: str) -> int:
    """Pairs, one active model with a score on every pair, and some labels; returns its id.

    On PostgreSQL a VACUUM ANALYZE follows: autovacuum gets there within a minute or so of a
    bulk load, and it is not left to start in the middle of the timings.
    """
    factory = make_sessionmaker(engine)
    rng = random.Random(1)
    start = time.perf_counter()
    with factory.begin() as s:
        import_pairs(s, DATASET, [item.pair for item in items])
    print(f"  imported {len(items):,} pairs in {time.perf_counter() - start:.1f} s", flush=True)

    start = time.perf_counter()
    with factory.begin() as s:
        model_id = register_model(s, "bench (synthetic scores)", model_dir).id
        save_scores(s, model_id, DATASET, [score_record(item, rng) for item in items])
        set_active_model(s, model_id)
    print(f"  stored {len(items):,} scores in {time.perf_counter() - start:.1f} s", flush=True)

    start = time.perf_counter()
    with factory() as s:
        dataset_id = s.scalar(select(Dataset.id).where(Dataset.name == DATASET))
        pair_ids = list(s.scalars(select(Pair.id).where(Pair.dataset_id == dataset_id)))
    first = rng.sample(pair_ids, len(pair_ids) // 20)
    second = first[: len(first) // 5]
    with factory.begin() as s:
        for pid in first:
            record_label(s, pid, "ana", rng.choice(LABELS), expected_event_id=None)
        for pid in second:  # ben relabels pairs ana labelled: the latest event he saw is hers
            seen = s.scalar(select(Pair.last_event_id).where(Pair.id == pid))
            record_label(s, pid, "ben", rng.choice(LABELS), expected_event_id=seen)
    print(
        f"  labelled {len(first):,} pairs (ana), {len(second):,} of them again (ben) in "
        f"{time.perf_counter() - start:.1f} s",
        flush=True,
    )
    if engine.dialect.name == "postgresql":
        start = time.perf_counter()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
        print(f"  VACUUM ANALYZE in {time.perf_counter() - start:.1f} s", flush=True)
    return model_id


def time_query(
    factory: Callable[[], Session], runs: int, query: Callable[[Session], object]
) -> list[float]:
    """Seconds per call of ``query``, each in its own read-only session, as the app reads."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        with factory() as s:
            query(s)
        times.append(time.perf_counter() - start)
    return times


def clear_query_caches() -> None:
    """Forget the Annotate page's cached reads (``st.cache_data``), function by function; the
    engine and models (``st.cache_resource``) stay, as they do in a running app."""
    for cached in (
        services.dataset_summaries,
        services.sources,
        services.label_summary,
        services.queue_page,
        services.agreement,
    ):
        cached.clear()


def bench_annotate(
    backend: str, url: str, items: list[SyntheticPair], runs: int, model_dir: str
) -> list[Row]:
    engine = open_store(url)
    model_id = fill_store(engine, items, model_dir)
    factory = make_sessionmaker(engine, read_only=True)

    def queue(where: PairFilter | None) -> Callable[[Session], object]:
        def run(s: Session) -> None:
            page = annotation_queue(s, DATASET, model_id, where=where, limit=50)
            assert len(page) == 50 and page[0][1] is not None, "a short or unordered queue"

        return run

    unlabelled = PairFilter(label="unlabelled")
    one_source = PairFilter(source=SOURCES[1], label="unlabelled")
    # The page's reads that cost more than about 10 ms, each alone (the others read one pair,
    # one setting, one model or the distinct sources).
    queries: dict[str, Callable[[Session], object]] = {
        "annotation_queue, page 1 of all pairs": queue(None),
        "annotation_queue, page 1 of unlabelled (the page's default)": queue(unlabelled),
        "annotation_queue, page 1 of one source, unlabelled": queue(one_source),
        "list_datasets (cached)": list_datasets,
        "label_summary (cached)": lambda s: label_summary(s, DATASET),
        "agreement (cached)": lambda s: agreement(s, DATASET),
    }
    rows = [Row(name, backend, time_query(factory, runs, q)) for name, q in queries.items()]
    engine.dispose()

    os.environ["SRM_DB_URL"] = url
    at = page_test("annotate")
    at.session_state["annotate.annotator"] = "bench"
    clear_query_caches()
    first = run_page(at)
    assert at.session_state["annotate.current"] is not None, "the queue came back empty"
    assert any(m.label == "Model disagrees by" for m in at.metric), "no model on the page"
    warm = [run_page(at) for _ in range(runs)]
    cold = []
    for _ in range(runs):
        clear_query_caches()
        cold.append(run_page(at))
    return [
        Row("Annotate, first run in the process (engine opened)", backend, [first]),
        Row("Annotate, rerun, query caches warm", backend, warm),
        Row("Annotate, rerun, query caches cleared", backend, cold, ANNOTATE_GOAL_S),
        *rows,
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=100_000, help="pairs in the Annotate store")
    parser.add_argument("--runs", type=int, default=20, help="timed reruns of each measurement")
    parser.add_argument(
        "--model", help="checkpoint for the Inspect page (default: $SRM_MODEL, else the bundled)"
    )
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("SRM_BENCH_PG_URL") or os.environ.get("SRM_TEST_PG_URL"),
        help="PostgreSQL server to benchmark Annotate on too (a role that may CREATE DATABASE)",
    )
    args = parser.parse_args(argv)
    if args.model:
        os.environ["SRM_MODEL"] = str(Path(args.model).resolve())
    os.environ.pop("SRM_DEMO", None)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import streamlit

    print(
        f"Python {platform.python_version()}, Streamlit {streamlit.__version__}, SQLAlchemy "
        f"{sqlalchemy.__version__}, SQLite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs; "
        f"{load_note()}",
        flush=True,
    )
    started = time.perf_counter()
    rows = bench_inspect(args.runs)
    print(f"  ({load_note()})", flush=True)

    model_dir = services.bundled_model_path() or "/bench/no-model"
    print(f"\nAnnotate: {args.pairs:,} synthetic pairs", flush=True)
    items = synthetic_pairs(args.pairs)
    for backend, url in store_backends(args.pg_url, "srm_bench_app"):
        rows += bench_annotate(backend, url, items, args.runs, model_dir)
        print(f"  ({load_note()})", flush=True)

    print(f"\nTimes are wall clock of AppTest.run() or of the call; {args.runs} runs each.")
    print_table(rows)
    print(f"\nWhole run: {time.perf_counter() - started:.0f} s; {load_note()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
