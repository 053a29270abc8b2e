"""The SQL store: preference pairs, annotators' label corrections and sentence tags, models,
training jobs and scores.

>>> engine = open_store("sqlite:///srm.db")      # creates or upgrades the schema
>>> Session = make_sessionmaker(engine)
>>> with Session.begin() as session:
...     import_pairs(session, "sample", pairs)
>>> with Session.begin() as session:
...     pair = get_pair(session, "sample", "p1")
...     state = label_state(session, pair.id)
...     record_label(session, pair.id, "ana", "swap", expected_event_id=state.event_id)
>>> with Session() as session:
...     training_pairs = effective_pairs(session, "sample").pairs

Every query and write function takes a session and never commits: the caller owns the unit of
work. See ``labels.py`` for how label writes stay safe under concurrent annotators.
"""

from __future__ import annotations

from sqlalchemy import Engine

from srm.store.audits import (
    AuditSummary,
    audit_model_ids,
    audit_summaries,
    create_audit,
    finished_folds,
    get_audit,
    latest_audit,
    model_saw,
    record_training_pairs,
    save_audit_fold,
    training_pair_ids,
)
from srm.store.engine import default_url, make_engine, make_sessionmaker
from srm.store.errors import StaleWriteError, StoreError
from srm.store.export import (
    EffectivePairs,
    LabelCounts,
    PrmExport,
    TaggedCredit,
    dataset_id,
    effective_pairs,
    imported_pairs,
    labelled_pairs,
    prm_records,
    tagged_credit,
)
from srm.store.labels import (
    AgreementReport,
    AnnotatorStats,
    LabelState,
    PairwiseAgreement,
    agreement,
    current_tags,
    get_or_create_annotator,
    label_history,
    label_state,
    record_label,
    tag_sentence,
    undo_label,
    verify_label_log,
)
from srm.store.migrate import upgrade
from srm.store.models import (
    ACTIONS,
    AUDIT_STATUSES,
    FINISHED_STATUSES,
    JOB_KINDS,
    JOB_LAUNCHERS,
    JOB_STATUSES,
    LABELS,
    SIDES,
    TAGS,
    Annotator,
    Audit,
    AuditFold,
    AuditScore,
    Base,
    Dataset,
    LabelEvent,
    Model,
    ModelTrainingPair,
    Pair,
    Score,
    SentenceTag,
    Setting,
    TrainingJob,
    preferred_side,
)
from srm.store.queries import (
    ACTIVE_MODEL,
    GUIDELINES,
    LABEL_FILTERS,
    DatasetSummary,
    ImportResult,
    PairFilter,
    ScoredPair,
    annotation_queue,
    count_pairs,
    get_active_model,
    get_pair,
    get_score,
    get_setting,
    import_pairs,
    label_summary,
    list_datasets,
    list_models,
    list_pairs,
    list_sources,
    margin_bounds,
    pair_disagreement,
    register_model,
    save_scores,
    scored_pairs,
    set_active_model,
    set_setting,
)
from srm.store.workers import beat_claimed, claim_job, has_claimable_job


def open_store(url: str | None = None) -> Engine:
    """An engine for ``url`` (default :func:`default_url`) whose schema is up to date."""
    engine = make_engine(url)
    upgrade(engine)
    return engine


__all__ = [
    "ACTIONS",
    "AUDIT_STATUSES",
    "Audit",
    "AuditFold",
    "AuditScore",
    "AuditSummary",
    "ModelTrainingPair",
    "audit_model_ids",
    "audit_summaries",
    "beat_claimed",
    "claim_job",
    "has_claimable_job",
    "create_audit",
    "finished_folds",
    "get_audit",
    "labelled_pairs",
    "latest_audit",
    "model_saw",
    "record_training_pairs",
    "save_audit_fold",
    "training_pair_ids",
    "ACTIVE_MODEL",
    "FINISHED_STATUSES",
    "GUIDELINES",
    "JOB_KINDS",
    "JOB_LAUNCHERS",
    "JOB_STATUSES",
    "LABELS",
    "LABEL_FILTERS",
    "SIDES",
    "TAGS",
    "AgreementReport",
    "Annotator",
    "AnnotatorStats",
    "Base",
    "Dataset",
    "DatasetSummary",
    "EffectivePairs",
    "ImportResult",
    "LabelCounts",
    "LabelEvent",
    "LabelState",
    "Model",
    "Pair",
    "PairFilter",
    "PairwiseAgreement",
    "PrmExport",
    "ScoredPair",
    "Score",
    "TaggedCredit",
    "SentenceTag",
    "Setting",
    "StaleWriteError",
    "StoreError",
    "TrainingJob",
    "agreement",
    "annotation_queue",
    "count_pairs",
    "current_tags",
    "dataset_id",
    "default_url",
    "effective_pairs",
    "get_active_model",
    "get_or_create_annotator",
    "get_pair",
    "get_score",
    "get_setting",
    "import_pairs",
    "imported_pairs",
    "label_history",
    "label_summary",
    "label_state",
    "list_datasets",
    "list_models",
    "list_pairs",
    "list_sources",
    "margin_bounds",
    "make_engine",
    "make_sessionmaker",
    "open_store",
    "pair_disagreement",
    "preferred_side",
    "prm_records",
    "tagged_credit",
    "record_label",
    "register_model",
    "save_scores",
    "scored_pairs",
    "set_active_model",
    "set_setting",
    "tag_sentence",
    "undo_label",
    "upgrade",
    "verify_label_log",
]
