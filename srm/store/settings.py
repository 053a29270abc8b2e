"""Store-wide settings (any JSON value by key): the active model, the annotation guidelines.

Every function takes a session and never commits.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from srm.store.engine import insert_unless_present
from srm.store.errors import StoreError
from srm.store.models import Model, Setting, utcnow

#: The setting that names the model pages score with (a ``Model.id``).
ACTIVE_MODEL = "active_model_id"
#: The setting holding the annotation guidelines (markdown).
GUIDELINES = "guidelines"
#: The setting that locks the guidelines against edits from the app (``srm guidelines --lock``).
GUIDELINES_LOCKED = "guidelines_locked"


def get_setting(session: Session, key: str, default: Any = None) -> Any:
    row = session.get(Setting, key)
    return default if row is None else row.value


def set_setting(session: Session, key: str, value: Any) -> None:
    """Create or replace the store-wide setting ``key`` (any JSON value)."""
    insert_unless_present(session, Setting, {"key": key, "value": value, "updated_at": utcnow()})
    row = session.scalars(
        select(Setting)
        .where(Setting.key == key)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    row.value = value
    row.updated_at = utcnow()
    session.flush()


def get_active_model(session: Session) -> Model | None:
    """The model set active (:func:`set_active_model`), or ``None`` when none is."""
    model_id = get_setting(session, ACTIVE_MODEL)
    return session.get(Model, model_id) if model_id is not None else None


def set_active_model(session: Session, model_id: int) -> Model:
    model = session.get(Model, model_id)
    if model is None:
        raise StoreError(f"no model with id {model_id} in the store; see the Models page")
    set_setting(session, ACTIVE_MODEL, model_id)
    return model
