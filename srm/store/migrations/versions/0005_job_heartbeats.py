"""Job heartbeats: ``training_jobs.heartbeat_at``.

A running job's process writes the time into its row every few seconds (and with each progress
report), so any reader on any machine can tell a live job from one whose process died: a
running job silent for longer than ``srm.jobs.HEARTBEAT_TIMEOUT`` is failed by whoever next
reaps (``srm jobs``, creating a job, the app's job list). Rows from before this revision have
no heartbeat and are judged as before, by their pid on their own host.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("training_jobs") as batch:
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("training_jobs") as batch:
        batch.drop_column("heartbeat_at")
