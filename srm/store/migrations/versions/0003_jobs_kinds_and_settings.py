"""Jobs of two kinds and store-wide settings.

``training_jobs`` also runs batch scoring now: ``kind`` says which (existing rows are training
jobs). A job records the ``host`` its process runs on (so a dead process can be told from one
running elsewhere), ``cancel_requested`` (the job stops itself at its next step), the current
``step``/``total`` and a one-line ``message``. ``settings`` holds store-wide values such as the
active model and the annotation guidelines.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("training_jobs") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="train"))
        batch.add_column(sa.Column("host", sa.String(255), nullable=True))
        batch.add_column(
            sa.Column("cancel_requested", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("step", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("total", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("message", sa.Text(), nullable=True))
    op.create_index("ix_training_jobs_status", "training_jobs", ["status"])
    op.create_table(
        "settings",
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("value", sa.JSON(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("settings")
    op.drop_index("ix_training_jobs_status", table_name="training_jobs")
    with op.batch_alter_table("training_jobs") as batch:
        for column in ("message", "total", "step", "cancel_requested", "host", "kind"):
            batch.drop_column(column)
