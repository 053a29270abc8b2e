"""Forget scores computed before one prompt encoding per pair and whole-response scoring.

Before this revision the two responses of a pair could see different prompt tokens,
and scores were computed at the training length, so most of a long response was never scored.
``scores`` is a cache of what a model says about a pair (recomputed on the next view or by
``srm score --dataset``), so the stale rows are deleted rather than shown.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM scores")


def downgrade() -> None:
    pass  # the deleted rows were a cache; there is nothing to restore
