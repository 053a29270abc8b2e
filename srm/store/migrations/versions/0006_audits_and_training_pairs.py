"""Out-of-fold label audits, and the pairs each model trained on.

``model_training_pairs`` records which pairs a model trained on (train jobs and audit folds
write it with the model), so comparisons can keep to pairs neither model saw. ``audits`` is
one audit of a dataset (folds, seed, recipe, run directory, status), ``audit_folds`` its
finished folds with their models, and ``audit_scores`` each pair's out-of-fold scores, one row
per (audit, pair). Nothing existing changes.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _created_at() -> sa.Column:
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False)


def _owned_by(column: str, target: str, *, key: bool = False) -> sa.Column:
    """A column naming a row of ``target`` whose deletion deletes this one: part of the
    primary key, or required."""
    owner = sa.ForeignKey(target, ondelete="CASCADE")
    if key:
        return sa.Column(column, sa.Integer(), owner, primary_key=True)
    return sa.Column(column, sa.Integer(), owner, nullable=False)


def upgrade() -> None:
    op.create_table(
        "model_training_pairs",
        _owned_by("model_id", "models.id", key=True),
        _owned_by("pair_id", "pairs.id", key=True),
    )
    op.create_table(
        "audits",
        sa.Column("id", sa.Integer(), primary_key=True),
        _owned_by("dataset_id", "datasets.id"),
        sa.Column("folds", sa.Integer(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("run_dir", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _created_at(),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('running', 'complete')", name="ck_audits_status"),
    )
    op.create_index("ix_audits_dataset", "audits", ["dataset_id", "status"])
    op.create_table(
        "audit_folds",
        sa.Column("id", sa.Integer(), primary_key=True),
        _owned_by("audit_id", "audits.id"),
        sa.Column("fold", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), sa.ForeignKey("models.id"), nullable=False),
        sa.Column("n_trained", sa.Integer(), nullable=False),
        sa.Column("n_held_out", sa.Integer(), nullable=False),
        _created_at(),
        sa.UniqueConstraint("audit_id", "fold", name="uq_audit_folds_audit_fold"),
    )
    op.create_table(
        "audit_scores",
        sa.Column("id", sa.Integer(), primary_key=True),
        _owned_by("audit_id", "audits.id"),
        _owned_by("pair_id", "pairs.id"),
        sa.Column("fold", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), sa.ForeignKey("models.id"), nullable=False),
        sa.Column("chosen_score", sa.Float(), nullable=False),
        sa.Column("rejected_score", sa.Float(), nullable=False),
        _created_at(),
        sa.UniqueConstraint("audit_id", "pair_id", name="uq_audit_scores_audit_pair"),
    )
    op.create_index(
        "ix_audit_scores_gap",
        "audit_scores",
        ["audit_id", "pair_id", "chosen_score", "rejected_score"],
    )


def downgrade() -> None:
    op.drop_index("ix_audit_scores_gap", table_name="audit_scores")
    op.drop_table("audit_scores")
    op.drop_table("audit_folds")
    op.drop_index("ix_audits_dataset", table_name="audits")
    op.drop_table("audits")
    op.drop_table("model_training_pairs")
