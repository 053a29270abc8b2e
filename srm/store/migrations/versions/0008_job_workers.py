"""Jobs for other machines: ``training_jobs.launcher``, ``worker_tag`` and ``claimed_by``.

``launcher`` says who starts a job's process: ``local`` (the machine that created it launches
``srm train --job N`` itself; every existing row), ``worker`` (it waits, queued, for an
``srm worker`` on any machine that reaches the store to claim it) or ``command`` (a
user-configured command such as ``sbatch`` was handed the job). ``worker_tag`` restricts a
worker job to workers started with that tag (``gpu``); ``claimed_by`` names the worker that
claimed it (``host:pid``), so no two workers run it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("training_jobs") as batch:
        batch.add_column(
            sa.Column("launcher", sa.String(16), nullable=False, server_default="local")
        )
        batch.add_column(sa.Column("worker_tag", sa.String(64), nullable=True))
        batch.add_column(sa.Column("claimed_by", sa.String(255), nullable=True))
        batch.create_check_constraint(
            "ck_training_jobs_launcher", "launcher IN ('local', 'worker', 'command')"
        )


def downgrade() -> None:
    with op.batch_alter_table("training_jobs") as batch:
        batch.drop_constraint("ck_training_jobs_launcher", type_="check")
        for column in ("claimed_by", "worker_tag", "launcher"):
            batch.drop_column(column)
