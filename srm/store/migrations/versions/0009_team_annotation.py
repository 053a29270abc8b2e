"""Team annotation: accounts, assignments, sign-in attempts, per-dataset aggregation, and the
reviewer's ``accept`` and ``reject`` events.

- ``annotators`` gains ``role`` (annotator, reviewer, admin; ``NULL``: a name without an
  account), ``password_hash`` (argon2), ``password_set_at`` and ``disabled``.
- ``datasets`` gains ``overlap`` (annotators per pair, set by ``srm assign``), ``blind`` (``NULL``:
  on when overlap > 1) and ``aggregation`` (``majority`` or ``dawid-skene``).
- ``assignments`` (a pair in an annotator's queue) and ``login_attempts`` (the log failed
  sign-ins are counted on) are new.
- ``label_events.action`` admits ``accept`` and ``reject``.
- The label a pair has is now the majority of its annotators' votes (a tie: none, until a
  reviewer settles it), no longer the latest vote: the derived ``label`` columns of
  ``label_events`` and ``pairs`` are recomputed from the log under that rule. Who did what and
  when (``action``, ``annotator_id``, ``undoes_event_id``, ``created_at``) is untouched.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from collections import Counter

import sqlalchemy as sa
from alembic import op

from srm.store.migration_ops import set_label_actions

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# Frozen here on purpose: a migration must not change when srm.store.models does.
BEFORE = ("keep", "swap", "tie", "discard", "undo", "adjudicate")
AFTER = (*BEFORE, "accept", "reject")
LABELS = ("keep", "swap", "tie", "discard")
SETTLING = ("adjudicate", "accept", "reject")


def _replay(log: list) -> str | None:
    """The pair's label after ``log`` (rows: id, annotator_id, action, label, undoes_event_id)."""
    undone = {row.undoes_event_id for row in log if row.action == "undo"}
    standing = [row for row in log if row.action != "undo" and row.id not in undone]
    if standing and standing[-1].action in SETTLING:
        return standing[-1].label
    votes = {row.annotator_id: row.action for row in standing if row.action in LABELS}
    ranked = Counter(votes.values()).most_common(2)
    if not ranked or (len(ranked) == 2 and ranked[0][1] == ranked[1][1]):
        return None
    return ranked[0][0]


def _recompute_labels() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT id, pair_id, annotator_id, action, label, undoes_event_id FROM label_events "
            "ORDER BY pair_id, seq"
        )
    ).all()
    logs: dict[int, list] = {}
    for row in rows:
        logs.setdefault(row.pair_id, []).append(row)
    for pair_id, log in logs.items():
        for i, row in enumerate(log):
            label = _replay(log[: i + 1])
            if label != row.label:
                bind.execute(
                    sa.text("UPDATE label_events SET label = :label WHERE id = :id"),
                    {"label": label, "id": row.id},
                )
        bind.execute(
            sa.text("UPDATE pairs SET label = :label WHERE id = :id"),
            {"label": _replay(log), "id": pair_id},
        )


def upgrade() -> None:
    # Plain ADD COLUMN with the check inline, never batch mode: on SQLite batch mode copies and
    # drops the table, and dropping ``datasets`` under foreign_keys=ON deletes every pair
    # (ON DELETE CASCADE), dropping ``annotators`` is refused by the label log's references.
    op.add_column(
        "annotators",
        sa.Column(
            "role",
            sa.String(16),
            sa.CheckConstraint(
                "role IS NULL OR role IN ('annotator', 'reviewer', 'admin')",
                name="ck_annotators_role",
            ),
            nullable=True,
        ),
    )
    op.add_column("annotators", sa.Column("password_hash", sa.Text(), nullable=True))
    op.add_column(
        "annotators", sa.Column("password_set_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "annotators", sa.Column("disabled", sa.Boolean(), nullable=False, server_default="0")
    )
    op.add_column("datasets", sa.Column("overlap", sa.Integer(), nullable=True))
    op.add_column("datasets", sa.Column("blind", sa.Boolean(), nullable=True))
    op.add_column(
        "datasets",
        sa.Column(
            "aggregation",
            sa.String(16),
            sa.CheckConstraint(
                "aggregation IN ('majority', 'dawid-skene')", name="ck_datasets_aggregation"
            ),
            nullable=False,
            server_default="majority",
        ),
    )
    op.create_table(
        "assignments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "pair_id", sa.Integer(), sa.ForeignKey("pairs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("annotator_id", sa.Integer(), sa.ForeignKey("annotators.id"), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("pair_id", "annotator_id", name="uq_assignments_pair_annotator"),
    )
    op.create_index("ix_assignments_annotator", "assignments", ["annotator_id", "pair_id"])
    op.create_table(
        "login_attempts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_login_attempts_name_at", "login_attempts", ["name", "at"])
    set_label_actions(AFTER)
    _recompute_labels()


def downgrade() -> None:
    count = op.get_bind().scalar(
        sa.text("SELECT COUNT(*) FROM label_events WHERE action IN ('accept', 'reject')")
    )
    if count:
        raise RuntimeError(
            f"label_events holds {count} accept or reject events, which revision 0008 cannot "
            "store; the label log is append-only, so this store cannot be downgraded past 0009"
        )
    set_label_actions(BEFORE)
    op.drop_index("ix_login_attempts_name_at", table_name="login_attempts")
    op.drop_table("login_attempts")
    op.drop_index("ix_assignments_annotator", table_name="assignments")
    op.drop_table("assignments")
    # Not batch mode, for the reason upgrade gives; SQLite before 3.35 cannot drop columns.
    for column in ("aggregation", "blind", "overlap"):
        op.drop_column("datasets", column)
    for column in ("disabled", "password_set_at", "password_hash", "role"):
        op.drop_column("annotators", column)
