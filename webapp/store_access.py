"""The store the app shows and the one way the service modules reach it: a read session, or a
short write transaction (refused in demo mode). Pages do not use these: they call services."""

from __future__ import annotations

import os
from contextlib import AbstractContextManager

import streamlit as st
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from srm import store
from srm.store import StoreError

DEMO_ENV = "SRM_DEMO"


def store_url() -> str:
    """The store the app shows: ``$SRM_DB_URL`` or the per-user default."""
    return store.default_url()


def display_url(url: str) -> str:
    """The store URL as shown on screen: a password in it is masked."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def demo_mode() -> bool:
    """Read-only presentation mode (``srm app --demo`` sets ``SRM_DEMO=1``)."""
    return os.environ.get(DEMO_ENV, "").strip().lower() in ("1", "true", "yes", "on")


@st.cache_resource(show_spinner=False)
def engine(url: str) -> Engine:
    """The store engine, migrated to the current schema once per process."""
    return store.open_store(url)


def read_session(url: str) -> Session:
    """A session for reading only (on SQLite it never waits for a writer):
    ``with read_session(url) as session``."""
    return store.make_sessionmaker(engine(url), read_only=True)()


def write(url: str) -> AbstractContextManager[Session]:
    """A write transaction: ``with write(url) as session`` commits on success; refused in
    demo mode."""
    if demo_mode():
        raise StoreError("the app runs in demo mode, which is read-only")
    return store.make_sessionmaker(engine(url)).begin()
