"""Operations that more than one migration performs, shared so that each is written once.

A migration calls these with its own frozen values (the actions it allows), never with
constants of :mod:`srm.store.models`, so that a migration does not change when the models do.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


def set_label_actions(actions: tuple[str, ...]) -> None:
    """Make ``label_events.action``'s check constraint allow exactly ``actions``, every row
    kept.

    On SQLite, batch mode copies the table to change a constraint, and dropping the old table
    would break the copy's self-references (``undoes_event_id``) under ``foreign_keys=ON``: the
    links are set aside in a temporary table for the copy and restored on the new table, all
    in the migration's one transaction.
    """
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        op.execute(
            "CREATE TEMP TABLE srm_undo_links AS SELECT id, undoes_event_id FROM label_events "
            "WHERE undoes_event_id IS NOT NULL"
        )
        op.execute("UPDATE label_events SET undoes_event_id = NULL")
    quoted = ", ".join(f"'{a}'" for a in actions)
    with op.batch_alter_table("label_events") as batch:
        batch.drop_constraint("ck_label_events_action", type_="check")
        batch.create_check_constraint("ck_label_events_action", sa.text(f"action IN ({quoted})"))
    if sqlite:
        op.execute(
            "UPDATE label_events SET undoes_event_id = (SELECT l.undoes_event_id FROM "
            "srm_undo_links AS l WHERE l.id = label_events.id) "
            "WHERE id IN (SELECT id FROM srm_undo_links)"
        )
        op.execute("DROP TABLE srm_undo_links")
