"""The store's tables as typed SQLAlchemy 2.0 ORM classes.

Schema changes go through Alembic migrations in ``srm/store/migrations`` (see ``migrate.py``);
``Base.metadata`` is what the migrations are checked against in the tests.

Labels are an append-only log: an event is never updated or deleted. Each :class:`LabelEvent`
records who did what and when, and carries the label the pair has *after* it, so the current
label of a pair is the ``label`` of its latest event (highest ``seq``). ``Pair.label`` and
``Pair.last_event_id`` repeat that latest event, written in the same transaction as the event,
so queues filter on an indexed column instead of a "latest row per group" subquery;
:func:`srm.store.verify_label_log` replays every log and checks them.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from srm.records import ResponseScores

#: What an annotator can decide about a pair. ``keep``: the imported ``chosen`` is right;
#: ``swap``: ``rejected`` is the better response; ``tie``: neither is better; ``discard``: the
#: pair is unusable (broken prompt, both responses wrong, duplicate...).
LABELS = ("keep", "swap", "tie", "discard")
#: Events that settle a pair, whatever the votes say, while they are its newest standing event:
#: ``adjudicate`` (a reviewer settles a pair the annotators disagree on), ``accept`` (a reviewer
#: confirms the pair's label) and ``reject`` (a reviewer replaces it with their own).
SETTLING = ("adjudicate", "accept", "reject")
#: Actions in the label log: a vote (one of :data:`LABELS`), ``undo`` (takes back one of the
#: writer's own events that still stands), or a settling event.
ACTIONS = (*LABELS, "undo", *SETTLING)
#: Account roles, each allowed what the one before it may do and more: an ``annotator`` votes
#: and tags; a ``reviewer`` also settles and reviews labels and sees the team's agreement; an
#: ``admin`` also assigns pairs, runs jobs and edits the guidelines.
ROLES = ("annotator", "reviewer", "admin")
#: How a dataset's votes become the label training, export and evaluation use: ``majority``
#: (ties wait for adjudication) or ``dawid-skene`` (each annotator weighted by their estimated
#: reliability; crowd-kit's DawidSkene). A settling event overrides either.
AGGREGATIONS = ("majority", "dawid-skene")
SIDES = ("chosen", "rejected")
TAGS = ("good", "bad", "unsure")
JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
#: An audit is ``running`` (or stopped: resumable) until every fold is saved, then ``complete``.
AUDIT_STATUSES = ("running", "complete")
#: Jobs in these states are over; the others may still have a process behind them.
FINISHED_STATUSES = ("succeeded", "failed", "cancelled")
#: Who starts a job's process: the machine that created it (``local``), an ``srm worker`` on
#: any machine that reaches the store (``worker``), or a configured command such as ``sbatch``
#: (``command``); see :mod:`srm.jobs`.
JOB_LAUNCHERS = ("local", "worker", "command")


def preferred_side(label: str | None) -> str | None:
    """The response a pair's current label prefers: ``"chosen"`` for a pair nobody labelled
    (the imported verdict stands) or one kept, ``"rejected"`` for a swap, and ``None`` for a
    tie or a discard, which prefer neither.

    >>> preferred_side("swap"), preferred_side(None), preferred_side("tie")
    ('rejected', 'chosen', None)
    """
    if label is None or label == "keep":
        return "chosen"
    if label == "swap":
        return "rejected"
    if label in LABELS:
        return None
    raise ValueError(f"label: got {label!r}; use one of {', '.join(LABELS)} (or None: unlabelled)")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _one_of(column: str, values: tuple[str, ...], name: str) -> CheckConstraint:
    quoted = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({quoted})", name=name)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON}


class Dataset(Base):
    """A named collection of pairs, usually one imported file."""

    __tablename__ = "datasets"
    __table_args__ = (_one_of("aggregation", AGGREGATIONS, "ck_datasets_aggregation"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    source_file: Mapped[str | None] = mapped_column(Text)
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: How many annotators each pair is assigned to (``srm assign``); ``None``: never assigned.
    overlap: Mapped[int | None] = mapped_column(Integer)
    #: Whether annotators see nothing of others' votes before their own; ``None``: on when
    #: ``overlap`` > 1 (:func:`srm.store.team.is_blind`).
    blind: Mapped[bool | None] = mapped_column(Boolean)
    #: One of :data:`AGGREGATIONS`.
    # server_default only: an insert leaves the column out, so code that imports into a store
    # at an older revision (the migration tests) still works.
    aggregation: Mapped[str] = mapped_column(String(16), server_default="majority")

    pairs: Mapped[list[Pair]] = relationship(back_populates="dataset")


class Pair(Base):
    """One preference pair as imported: ``chosen`` is the response the original label preferred.

    The original label is therefore not a column: every importer normalises a record so that
    ``chosen`` is the preferred response, and a pair without label events keeps that verdict.
    Corrections live in :class:`LabelEvent`; the imported text is never edited. ``label`` is
    the current correction (``None``: unlabelled) and ``last_event_id`` the event it comes from,
    both copied from the label log (see the module docstring); only the label functions in
    :mod:`srm.store.labels` write them.
    """

    __tablename__ = "pairs"
    __table_args__ = (
        UniqueConstraint("dataset_id", "external_id", name="uq_pairs_dataset_external_id"),
        Index("ix_pairs_dataset_source", "dataset_id", "source"),
        # The annotation queue's filters, in the order queues narrow by them; covering, so a
        # page count at 100k pairs never reads the (wide) rows.
        Index("ix_pairs_queue", "dataset_id", "label", "source", "margin"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(300))
    prompt: Mapped[str] = mapped_column(Text)
    chosen: Mapped[str] = mapped_column(Text)
    rejected: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(200), default="")
    margin: Mapped[float | None] = mapped_column(Float)
    subset: Mapped[str | None] = mapped_column(String(200))
    label: Mapped[str | None] = mapped_column(String(16))
    # No foreign key: pairs and label_events would reference each other.
    last_event_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    dataset: Mapped[Dataset] = relationship(back_populates="pairs")
    label_events: Mapped[list[LabelEvent]] = relationship(
        back_populates="pair", order_by="LabelEvent.seq"
    )


#: The columns of a pair that make a :class:`srm.data.PreferencePair`, in its field order:
#: ``PreferencePair(*row)`` for a row of ``select(*PREFERENCE_COLUMNS)``.
PREFERENCE_COLUMNS = (
    Pair.external_id,
    Pair.prompt,
    Pair.chosen,
    Pair.rejected,
    Pair.source,
    Pair.margin,
    Pair.subset,
)


class Annotator(Base):
    """A person (or script) who labels pairs: created on first use by name, or as an account
    by ``srm users add`` (then ``role`` and ``password_hash`` are set, and the app signs them
    in by name and password; :mod:`srm.store.team`)."""

    __tablename__ = "annotators"
    __table_args__ = (
        CheckConstraint(
            "role IS NULL OR role IN ({})".format(", ".join(f"'{r}'" for r in ROLES)),
            name="ck_annotators_role",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: One of :data:`ROLES` for an account; ``None`` for a name without one.
    role: Mapped[str | None] = mapped_column(String(16))
    #: An argon2 hash (``argon2-cffi``); never the password.
    password_hash: Mapped[str | None] = mapped_column(Text)
    #: When the password was last set: app sessions signed in before it end.
    password_set_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: A disabled account cannot sign in or write; its votes stay in the log.
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")


class Assignment(Base):
    """A pair in an annotator's queue (``srm assign``): one row per (pair, annotator)."""

    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("pair_id", "annotator_id", name="uq_assignments_pair_annotator"),
        Index("ix_assignments_annotator", "annotator_id", "pair_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pair_id: Mapped[int] = mapped_column(ForeignKey("pairs.id", ondelete="CASCADE"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"))
    assigned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    annotator: Mapped[Annotator] = relationship()


class LoginAttempt(Base):
    """One sign-in attempt to the app: the log that failed logins are counted (and limited) on."""

    __tablename__ = "login_attempts"
    __table_args__ = (Index("ix_login_attempts_name_at", "name", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    ok: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LabelEvent(Base):
    """One entry in a pair's append-only label log.

    The pair foreign key has no ``ON DELETE CASCADE`` (unlike scores): deleting a pair or a
    dataset that has labels fails instead of silently taking the annotators' work with it.
    ``seq`` numbers a pair's events 1, 2, 3...; the unique (pair, seq) constraint means two
    writers that both saw event ``n`` cannot both append event ``n + 1``. ``label`` is the
    pair's label after this event: the action itself for keep/swap/tie/discard, and for
    ``undo`` the label before the undone event (``None``: back to the imported verdict).
    """

    __tablename__ = "label_events"
    __table_args__ = (
        UniqueConstraint("pair_id", "seq", name="uq_label_events_pair_seq"),
        Index("ix_label_events_annotator", "annotator_id"),
        _one_of("action", ACTIONS, "ck_label_events_action"),
        _one_of("label", LABELS, "ck_label_events_label"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pair_id: Mapped[int] = mapped_column(ForeignKey("pairs.id"))
    seq: Mapped[int] = mapped_column(Integer)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"))
    action: Mapped[str] = mapped_column(String(16))
    label: Mapped[str | None] = mapped_column(String(16))
    undoes_event_id: Mapped[int | None] = mapped_column(ForeignKey("label_events.id"))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    pair: Mapped[Pair] = relationship(back_populates="label_events")
    annotator: Mapped[Annotator] = relationship()


class SentenceTag(Base):
    """An annotator's verdict on one character span (a sentence) of a pair's response.

    Append-only like labels: tagging the same span again adds a row, and the latest row for a
    span is its current tag. ``side`` names the stored column (``chosen`` or ``rejected`` as
    imported), so a later swap does not move the tag to the other text.
    """

    __tablename__ = "sentence_tags"
    __table_args__ = (
        Index("ix_sentence_tags_pair", "pair_id"),
        _one_of("side", SIDES, "ck_sentence_tags_side"),
        _one_of("tag", TAGS, "ck_sentence_tags_tag"),
        CheckConstraint("span_start >= 0 AND span_start < span_end", name="ck_sentence_tags_span"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pair_id: Mapped[int] = mapped_column(ForeignKey("pairs.id"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"))
    side: Mapped[str] = mapped_column(String(16))
    span_start: Mapped[int] = mapped_column(Integer)
    span_end: Mapped[int] = mapped_column(Integer)
    tag: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    annotator: Mapped[Annotator] = relationship()


class Model(Base):
    """A trained (or initial) checkpoint the store knows about."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    checkpoint_dir: Mapped[str] = mapped_column(Text, unique=True)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("models.id"))
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    parent: Mapped[Model | None] = relationship(remote_side="Model.id")


class TrainingJob(Base):
    """Long work run as a subprocess (training, scoring a dataset, auditing its labels); it
    writes its own progress here and stops itself when ``cancel_requested`` is set (see
    :mod:`srm.jobs`)."""

    __tablename__ = "training_jobs"
    __table_args__ = (
        _one_of("status", JOB_STATUSES, "ck_training_jobs_status"),
        _one_of("launcher", JOB_LAUNCHERS, "ck_training_jobs_launcher"),
        Index("ix_training_jobs_status", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: What the job does: a kind registered with :mod:`srm.jobs` (``train``, ``score``,
    #: ``audit``, ...). The store does not list the kinds; a job's is checked when it is created.
    kind: Mapped[str] = mapped_column(String(16), default="train", server_default="train")
    status: Mapped[str] = mapped_column(String(16), default="queued")
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    pid: Mapped[int | None] = mapped_column(Integer)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    log_path: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id"))
    host: Mapped[str | None] = mapped_column(String(255))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    step: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    total: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: Written by the running job's process every few seconds: how any reader tells it is alive.
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: One of :data:`JOB_LAUNCHERS`.
    launcher: Mapped[str] = mapped_column(String(16), default="local", server_default="local")
    #: A ``worker`` job waits for a worker started with this tag (``None``: any worker).
    worker_tag: Mapped[str | None] = mapped_column(String(64))
    #: The worker (``host:pid``) that claimed the job, so that no other one runs it.
    claimed_by: Mapped[str | None] = mapped_column(String(255))

    dataset: Mapped[Dataset | None] = relationship()
    model: Mapped[Model | None] = relationship()


class ScoreGap:
    """The ``gap`` of a row holding a pair's two scores: chosen minus rejected (as imported),
    as a number on a row and as SQL on the class (``select(Score.gap)``); positive when the
    model prefers the imported chosen response."""

    @hybrid_property
    def gap(self) -> float:
        return self.chosen_score - self.rejected_score


class Score(ScoreGap, Base):
    """One model's verdict on one pair: both responses' scores and per-sentence detail.

    ``chosen_detail``/``rejected_detail`` hold each response's
    :class:`~srm.records.ResponseScores` as JSON (sentences with spans, rewards and weights;
    :meth:`response` reads it back); the two scores are columns so queries can filter and sort
    on them.
    """

    __tablename__ = "scores"
    __table_args__ = (
        UniqueConstraint("pair_id", "model_id", name="uq_scores_pair_model"),
        # Covering for score filters: the JSON detail can be kilobytes per row.
        Index("ix_scores_model_gap", "model_id", "pair_id", "chosen_score", "rejected_score"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pair_id: Mapped[int] = mapped_column(ForeignKey("pairs.id", ondelete="CASCADE"))
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    chosen_score: Mapped[float] = mapped_column(Float)
    rejected_score: Mapped[float] = mapped_column(Float)
    chosen_detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    rejected_detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    def response(self, side: str) -> ResponseScores:
        """The scores of one response (``"chosen"`` or ``"rejected"``), typed; rows written
        before a field of the record existed are read too."""
        if side not in SIDES:
            raise ValueError(f"side: got {side!r}; use chosen or rejected")
        return ResponseScores.from_json(
            self.chosen_detail if side == "chosen" else self.rejected_detail
        )


class Setting(Base):
    """A store-wide value by name: ``active_model_id``, ``guidelines`` (markdown)..."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class ModelTrainingPair(Base):
    """One pair a model trained on (as the store knew it: with the label it had then).

    Written with the model's registration, in the same transaction, by train jobs and audits:
    what lets a comparison keep to the pairs neither model saw, and an audit prove that no
    score came from a model that trained on the pair. A model without rows (the bundled one,
    a checkpoint trained from a file) is one whose training pairs the store does not know.
    """

    __tablename__ = "model_training_pairs"

    model_id: Mapped[int] = mapped_column(
        ForeignKey("models.id", ondelete="CASCADE"), primary_key=True
    )
    pair_id: Mapped[int] = mapped_column(
        ForeignKey("pairs.id", ondelete="CASCADE"), primary_key=True
    )


class Audit(Base):
    """An out-of-fold label audit of one dataset (:mod:`srm.audit`): its provenance (folds,
    seed, the recipe each fold trained with, the run directory) and its state. Its folds and
    scores hang off it, so a second audit of the dataset never mixes with the first."""

    __tablename__ = "audits"
    __table_args__ = (
        _one_of("status", AUDIT_STATUSES, "ck_audits_status"),
        Index("ix_audits_dataset", "dataset_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    folds: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(Integer, default=0)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """The recipe (``TrainConfig.to_dict()``) every fold trains with."""
    run_dir: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="running")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    dataset: Mapped[Dataset] = relationship()
    fold_rows: Mapped[list[AuditFold]] = relationship(
        back_populates="audit", order_by="AuditFold.fold"
    )


class AuditFold(Base):
    """One finished fold of an audit: the model trained without it (its training pairs are in
    :class:`ModelTrainingPair`) and how many pairs it trained on and judged."""

    __tablename__ = "audit_folds"
    __table_args__ = (UniqueConstraint("audit_id", "fold", name="uq_audit_folds_audit_fold"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    audit_id: Mapped[int] = mapped_column(ForeignKey("audits.id", ondelete="CASCADE"))
    fold: Mapped[int] = mapped_column(Integer)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    n_trained: Mapped[int] = mapped_column(Integer)
    n_held_out: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    audit: Mapped[Audit] = relationship(back_populates="fold_rows")
    model: Mapped[Model] = relationship()


class AuditScore(ScoreGap, Base):
    """A pair's out-of-fold verdict in one audit: the two scores (as imported) from the model
    of the pair's fold, which did not train on it. One row per (audit, pair)."""

    __tablename__ = "audit_scores"
    __table_args__ = (
        UniqueConstraint("audit_id", "pair_id", name="uq_audit_scores_audit_pair"),
        # Covering for the queue's join and order, as ix_scores_model_gap is for scores.
        Index("ix_audit_scores_gap", "audit_id", "pair_id", "chosen_score", "rejected_score"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    audit_id: Mapped[int] = mapped_column(ForeignKey("audits.id", ondelete="CASCADE"))
    pair_id: Mapped[int] = mapped_column(ForeignKey("pairs.id", ondelete="CASCADE"))
    fold: Mapped[int] = mapped_column(Integer)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    chosen_score: Mapped[float] = mapped_column(Float)
    rejected_score: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
