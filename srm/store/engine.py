"""Engine and session set-up for the store.

SQLite is the embedded default; any SQLAlchemy URL (``postgresql+psycopg://...``) works unchanged.
For SQLite the connection is put into WAL mode (readers never block the writer), foreign keys are
enforced, and a busy timeout makes concurrent writers wait instead of failing at once.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, insert, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

SQLITE_BUSY_TIMEOUT_MS = 30_000
#: Rows per executemany of a bulk insert: well under SQLite's bound-parameter limit.
INSERT_CHUNK = 2_000
#: Bulk writes at least this big refresh the query planner's statistics
#: (:func:`refresh_statistics`).
ANALYZE_AFTER = 1_000


def default_url() -> str:
    """The store used when no ``--db`` is given: ``$SRM_DB_URL``, else a per-user SQLite file.

    The file is ``$XDG_DATA_HOME/srm-studio/srm.db`` (``~/.local/share/srm-studio/srm.db`` when
    ``XDG_DATA_HOME`` is unset), so the CLI and the app find the same store from any directory.
    """
    url = os.environ.get("SRM_DB_URL")
    if url:
        return url
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return f"sqlite:///{data_home / 'srm-studio' / 'srm.db'}"


def make_engine(url: str | None = None) -> Engine:
    """Create an engine for ``url`` (default: :func:`default_url`).

    SQLite files get their parent directory created, WAL journalling, ``foreign_keys=ON`` and a
    busy timeout. pysqlite's own transaction handling is switched off so that SQLAlchemy's
    ``BEGIN`` really starts a transaction (pysqlite otherwise defers it to the first write,
    which makes DDL non-transactional and read-then-write sequences racy). A connection whose
    execution options carry ``sqlite_begin="IMMEDIATE"`` takes the write lock up front.
    """
    url = url or default_url()
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)

    database = parsed.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # DBAPI connection: untyped
        dbapi_connection.isolation_level = None  # let SQLAlchemy emit BEGIN itself
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def make_sessionmaker(engine: Engine, *, read_only: bool = False) -> sessionmaker[Session]:
    """The session factory; callers own the unit of work: ``with Session.begin() as s: ...``.

    On SQLite, sessions that may write start with ``BEGIN IMMEDIATE``: a deferred transaction
    that reads and then writes fails at once with "database is locked" when another process
    wrote in between (WAL cannot upgrade a stale snapshot), whereas IMMEDIATE queues behind the
    other writer for up to the busy timeout. Pages that only read pass ``read_only=True`` and
    never wait on writers.
    """
    if not read_only and engine.dialect.name == "sqlite":
        engine = engine.execution_options(sqlite_begin="IMMEDIATE")
    return sessionmaker(engine, expire_on_commit=False)


def insert_unless_present(session: Session, entity: type, row: Mapping[str, Any]) -> None:
    """Insert ``row`` unless it would break a unique constraint (``ON CONFLICT DO NOTHING``).

    For get-or-create of named rows: two transactions creating the same name at once both
    succeed on PostgreSQL, where a plain INSERT would fail the second one. (SQLite writers are
    serialised anyway; other databases get a plain INSERT.)
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(postgresql.insert(entity).values(row).on_conflict_do_nothing())
    elif dialect == "sqlite":
        session.execute(sqlite.insert(entity).values(row).on_conflict_do_nothing())
    else:
        session.execute(insert(entity).values(row))


@contextlib.contextmanager
def scratch_postgres_database(admin_url: str, prefix: str = "srm_scratch") -> Iterator[str]:
    """A new, empty database on the server of ``admin_url`` (whose role may CREATE DATABASE);
    yields its URL and drops it afterwards. For tests and benchmarks."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            # FORCE: engines the caller left open still hold pooled connections.
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def refresh_statistics(session: Session, table: str, written: int) -> None:
    """Refresh the planner's statistics after a bulk write of ``written`` rows (from
    :data:`ANALYZE_AFTER` on), inside the caller's transaction.

    SQLite keeps none until ANALYZE runs, and without them it walks an index to find every row
    of a dataset (random reads) where a plain scan is faster, as for a text search; PostgreSQL's
    autovacuum would get there, but only after the first queries ran on a blind plan.
    (~50 ms on SQLite at 100k pairs; PostgreSQL samples a fixed number of rows.)
    """
    if written >= ANALYZE_AFTER:
        session.execute(text(f"ANALYZE {table}"))
