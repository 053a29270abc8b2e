"""Adjudication: the label log gains an event of its own kind, ``adjudicate``.

When annotators disagree on a pair, a reviewer settles it with an ``adjudicate`` event whose
``label`` becomes the pair's label, as any label event's does; the annotators' own events stay
as they were. Only the check constraint on ``label_events.action`` changes; every row stays.

On SQLite, batch mode copies the table to change a constraint, and dropping the old table
would break the copy's self-references (``undoes_event_id``) under ``foreign_keys=ON``: the
links are set aside in a temporary table for the copy and restored on the new table, all in
the upgrade's one transaction.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Frozen here on purpose: a migration must not change when srm.store.models does.
BEFORE = ("keep", "swap", "tie", "discard", "undo")
AFTER = (*BEFORE, "adjudicate")


def _set_actions(actions: tuple[str, ...]) -> None:
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


def upgrade() -> None:
    _set_actions(AFTER)


def downgrade() -> None:
    count = op.get_bind().scalar(
        sa.text("SELECT COUNT(*) FROM label_events WHERE action = 'adjudicate'")
    )
    if count:
        raise RuntimeError(
            f"label_events holds {count} adjudicate events, which revision 0006 cannot store; "
            "the label log is append-only, so this store cannot be downgraded past 0007"
        )
    _set_actions(BEFORE)
