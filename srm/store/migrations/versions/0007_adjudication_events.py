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

from srm.store.migration_ops import set_label_actions

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Frozen here on purpose: a migration must not change when srm.store.models does.
BEFORE = ("keep", "swap", "tie", "discard", "undo")
AFTER = (*BEFORE, "adjudicate")


def upgrade() -> None:
    set_label_actions(AFTER)


def downgrade() -> None:
    count = op.get_bind().scalar(
        sa.text("SELECT COUNT(*) FROM label_events WHERE action = 'adjudicate'")
    )
    if count:
        raise RuntimeError(
            f"label_events holds {count} adjudicate events, which revision 0006 cannot store; "
            "the label log is append-only, so this store cannot be downgraded past 0007"
        )
    set_label_actions(BEFORE)
