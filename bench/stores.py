"""What the store benchmarks share: timing, and the stores they run against.

    for backend, url in store_backends(args.pg_url, "srm_bench"):
        ...                      # "SQLite", then "PostgreSQL" when a server URL is given

Each store is created empty for the benchmark and removed after it (a temporary SQLite file, a
scratch PostgreSQL database), so a run never touches a real store.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from srm.store.engine import scratch_postgres_database


def timed(fn: Callable[[], object]) -> float:
    """Wall-clock seconds of one call."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@contextlib.contextmanager
def sqlite_store() -> Iterator[str]:
    """The URL of a new SQLite file in a temporary directory, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="srm-bench-") as tmp:
        yield f"sqlite:///{Path(tmp) / 'bench.db'}"


def store_backends(pg_url: str | None, database: str) -> Iterator[tuple[str, str]]:
    """``(backend, url)``: an empty SQLite store, then (with ``pg_url``, a role that may
    CREATE DATABASE) a scratch PostgreSQL database ``database``; each is gone once the loop
    moves on. Prints which backend (and server version) comes next."""
    with sqlite_store() as url:
        print("\nSQLite", flush=True)
        yield "SQLite", url
    if not pg_url:
        print("\nPostgreSQL: skipped (no --pg-url, SRM_BENCH_PG_URL or SRM_TEST_PG_URL)")
        return
    with scratch_postgres_database(pg_url, database) as url:
        with create_engine(url, poolclass=NullPool).connect() as conn:
            version = conn.exec_driver_sql("SHOW server_version").scalar()
        print(f"\nPostgreSQL {version}", flush=True)
        yield "PostgreSQL", url
