"""Annotators as writers: created on first use, or, once accounts exist (:mod:`srm.store.team`),
only enabled accounts with the role a write needs.

Every function takes a session and never commits; the caller owns the unit of work.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from srm.store.engine import insert_unless_present
from srm.store.errors import StoreError
from srm.store.models import ROLES, Annotator, utcnow


def get_or_create_annotator(session: Session, name: str, *, role: str | None = None) -> Annotator:
    """The annotator called ``name`` (surrounding spaces ignored), created on first use, as a
    writer: when accounts exist (``srm users add``), only an enabled account may write, and
    ``role`` (``reviewer``, ``admin``) is the least role the write needs.

    Two writers creating the same new annotator at once both succeed: the insert ignores a
    duplicate name instead of failing the second transaction.
    """
    name = name.strip()
    if not name:
        raise StoreError("annotator: give a non-empty name (who made this correction?)")
    annotator = session.scalar(select(Annotator).where(Annotator.name == name))
    if accounts_exist(session):
        if annotator is None or annotator.role is None:
            raise StoreError(
                f"annotator {name!r} has no account, and this store has accounts: only they "
                f"may write (add one with `srm users add {name} --role annotator`)"
            )
        if annotator.disabled:
            raise StoreError(f"the account {name!r} is disabled; nothing was written")
        if role is not None and ROLES.index(annotator.role) < ROLES.index(role):
            raise StoreError(
                f"{name!r} is an {annotator.role}; this needs the {role} role or above"
            )
        return annotator
    if annotator is None:
        insert_unless_present(session, Annotator, {"name": name, "created_at": utcnow()})
        annotator = session.scalars(select(Annotator).where(Annotator.name == name)).one()
    return annotator


def accounts_exist(session: Session) -> bool:
    """Whether any annotator has an account (a role): then only accounts may write, and the
    app signs people in by name and password."""
    return (
        session.scalar(select(Annotator.id).where(Annotator.role.is_not(None)).limit(1)) is not None
    )
