"""Glue between the pages and ``srm``: cached queries and writes, returning plain data.

Pages call these functions (and those of ``scoring`` for what models say, ``importing`` for
files) and never touch SQL or torch themselves. Every function takes the store URL, so a cache
never serves one store's rows for another. Reads are cached briefly (``ttl``) and the writes
here clear the caches they make stale, function by function, so an annotator sees their own
change at once and other people's within seconds. A read never writes (see :func:`jobs`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from srm import store
from srm.store import StaleWriteError, StoreError
from webapp import auth
from webapp.jobs_service import (
    RUN_ON,
    cancel_job,
    continuable,
    job_details,
    jobs,
    resumable,
    resume_job,
    run_on_choices,
    start_score_job,
    start_train_job,
    trained_finetune,
)
from webapp.rows import JobRow, ModelInfo, PairRow
from webapp.store_access import demo_mode, display_url, engine, read_session, store_url, write

# Re-exported: the pages reach the store's settings and errors, the plain rows and the jobs
# (jobs_service) through services.
__all__ = [
    "RUN_ON",
    "JobRow",
    "ModelInfo",
    "PairRow",
    "StaleWriteError",
    "StoreError",
    "cancel_job",
    "continuable",
    "demo_mode",
    "display_url",
    "engine",
    "job_details",
    "jobs",
    "resumable",
    "resume_job",
    "run_on_choices",
    "start_score_job",
    "start_train_job",
    "store_url",
    "trained_finetune",
]

PROJECT_DIR = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------- plain rows
def _pair_row(pair: store.Pair) -> PairRow:
    return PairRow(
        pair.id,
        pair.external_id,
        pair.dataset.name,
        pair.source,
        pair.prompt,
        pair.chosen,
        pair.rejected,
        pair.margin,
        pair.label,
        pair.last_event_id,
        pair.subset,
    )


def plural(n: int, word: str, many: str | None = None) -> str:
    """``plural(1, "pair") == "1 pair"``, ``plural(2, "pair") == "2 pairs"`` (with thousands
    separators)."""
    return f"{n:,} {word if n == 1 else many or word + 's'}"


def clear_pair_caches() -> None:
    """Forget the cached pair reads: after an import or a label write."""
    for cached in (pair_count, pair_page, label_summary, queue_page, dataset_summaries, agreement):
        cached.clear()


# ------------------------------------------------------------------------------- datasets
@st.cache_data(ttl=10, show_spinner=False)
def dataset_summaries(url: str) -> list[dict]:
    with read_session(url) as session:
        return [asdict(s) for s in store.list_datasets(session)]


@st.cache_data(ttl=60, show_spinner=False)
def sources(url: str, dataset: str | None) -> list[str]:
    with read_session(url) as session:
        return store.list_sources(session, dataset)


@st.cache_data(ttl=10, show_spinner=False)
def label_summary(url: str, dataset: str | None) -> dict[str, int]:
    with read_session(url) as session:
        return store.label_summary(session, dataset)


def pair_filter(
    source: str | None = None,
    label: str | None = None,
    margin: tuple[float, float] | None = None,
    disagreeing_model: int | None = None,
    assigned_to: str | None = None,
    unvoted_by: str | None = None,
    voted_by: str | None = None,
) -> dict[str, Any]:
    """The filter fields as a plain dict (hashable by the cache); see ``store.PairFilter``."""
    fields = {
        "source": source,
        "label": label,
        "min_margin": margin[0] if margin else None,
        "max_margin": margin[1] if margin else None,
        "model_id": disagreeing_model,
        "disagreeing": disagreeing_model is not None,
    }
    team = {"assigned_to": assigned_to, "unvoted_by": unvoted_by, "voted_by": voted_by}
    return fields | {k: v for k, v in team.items() if v is not None}


def _where(filters: Mapping[str, Any] | None) -> store.PairFilter | None:
    return store.PairFilter(**filters) if filters else None


def _page(
    search: str | None, filters: Mapping[str, Any] | None, page: int, page_size: int
) -> dict[str, Any]:
    """The keyword arguments of one page of a pair listing (the Data page's or the queue's)."""
    return {
        "search": search or None,
        "where": _where(filters),
        "limit": page_size,
        "offset": page * page_size,
    }


@st.cache_data(ttl=10, show_spinner=False)
def pair_count(
    url: str, dataset: str | None, search: str, filters: Mapping[str, Any] | None = None
) -> int:
    with read_session(url) as session:
        return store.count_pairs(session, dataset, search=search or None, where=_where(filters))


@st.cache_data(ttl=10, show_spinner=False)
def pair_page(
    url: str,
    dataset: str | None,
    search: str,
    page: int,
    page_size: int,
    filters: Mapping[str, Any] | None = None,
) -> list[PairRow]:
    with read_session(url) as session:
        pairs = store.list_pairs(session, dataset, **_page(search, filters, page, page_size))
        return [_pair_row(p) for p in pairs]


def get_pair(url: str, dataset: str, external_id: str) -> PairRow:
    """One pair, read fresh (its label may have just changed)."""
    with read_session(url) as session:
        return _pair_row(store.get_pair(session, dataset, external_id))


def margin_range(url: str, dataset: str | None) -> tuple[float, float] | None:
    """The smallest and largest imported margin, or ``None`` when no pair has one."""
    with read_session(url) as session:
        return store.margin_bounds(session, dataset)


# ------------------------------------------------------------------------------- models
LOADING_MODEL = "Loading the model (first time only)…"
"""What the app shows while torch and the reward model load, once per server process: the
entry script's first run imports torch (to read the bundled model), and the first page that
scores loads the model (:func:`scoring.loaded_model`)."""


def _model_info(model: store.Model) -> ModelInfo:
    config = model.config or {}
    model_cfg = config.get("model", config)
    return ModelInfo(
        model.id,
        model.name,
        model.checkpoint_dir,
        str(model_cfg.get("head", "?")),
        str(model_cfg.get("backbone", "?")),
        bool(config.get("causal", True)),
        f"{model.created_at:%Y-%m-%d %H:%M}",
        dict(model.metrics or {}),
    )


def _info_for_path(path: str, model_id: int | None = None, name: str | None = None) -> ModelInfo:
    from srm.checkpoint import read_info

    info = read_info(path)
    return ModelInfo(
        model_id,
        name or Path(path).name,
        str(path),
        info.model.head,
        info.model.backbone,
        info.causal,
    )


def bundled_model_path() -> str | None:
    """``$SRM_MODEL`` or the bundled default model, if present."""
    from srm.checkpoint import CONFIG_FILE, default_model_dir, model_dir

    path = default_model_dir()
    found = path is not None and (model_dir(path) / CONFIG_FILE).is_file()
    return str(path.resolve()) if found else None


def active_model(url: str) -> ModelInfo | None:
    """The model pages score with: the store's active model (:func:`register_default_model`
    makes the bundled default active at app start). A read: it never writes, so in demo mode,
    where nothing is registered, the bundled model is used as it is."""
    with read_session(url) as session:
        model = store.get_active_model(session)
        if model is not None:
            return _model_info(model)
    path = bundled_model_path() if demo_mode() else None
    return _info_for_path(path) if path is not None else None


def register_default_model(url: str) -> None:
    """Register the bundled default model (``$SRM_MODEL``, else the one shipped) and make it
    active when the store has no active model yet. The app's entry script calls this on each
    run: a read when there is nothing to do, a write the first time only; demo mode writes
    nothing."""
    path = bundled_model_path()
    if path is None or demo_mode():
        return
    with read_session(url) as session:
        if store.get_active_model(session) is not None:
            return
    info = _info_for_path(path)
    config = {"model": {"head": info.head, "backbone": info.backbone}, "causal": info.causal}
    with write(url) as session:
        row = store.register_model(session, Path(path).name, path, config=config)
        if store.get_active_model(session) is None:  # not set by someone else meanwhile
            store.set_active_model(session, row.id)


def list_models(url: str, *, audit_folds: bool = True) -> list[ModelInfo]:
    """The registered models, newest first; without an audit's fold models when
    ``audit_folds`` is false (they exist to judge their held-out fold, not to compare)."""
    with read_session(url) as session:
        hidden = set() if audit_folds else store.audit_model_ids(session)
        return [_model_info(m) for m in store.list_models(session) if m.id not in hidden]


def set_active_model(url: str, model_id: int) -> None:
    auth.require_admin("Choosing the active model")
    with write(url) as session:
        store.set_active_model(session, model_id)
    queue_page.clear()


def scored_count(url: str, dataset: str, model_id: int) -> int:
    """How many pairs of ``dataset`` the model has scored."""
    with read_session(url) as session:
        return len(store.scored_pairs(session, dataset, model_id))


# ------------------------------------------------------------------------------- annotation
@st.cache_data(ttl=10, show_spinner=False)
def queue_page(
    url: str,
    dataset: str | None,
    model_id: int | None,
    search: str,
    filters: Mapping[str, Any] | None,
    page: int,
    page_size: int,
    audit_id: int | None = None,
    blind: bool = False,
) -> list[tuple[PairRow, float | None]]:
    """A page of the Annotate queue (``store.annotation_queue``); ``blind`` orders it against
    the imported verdict, so that the order says nothing of the votes."""
    with read_session(url) as session:
        rows = store.annotation_queue(
            session,
            dataset,
            model_id,
            audit_id=audit_id,
            blind=blind,
            **_page(search, filters, page, page_size),
        )
        return [(_pair_row(p), d) for p, d in rows]


@dataclass(frozen=True)
class Ranking:
    """What orders the Annotate queue: the newest complete audit of the dataset (out of
    fold), else the active model's scores (in sample: it may have trained on these labels),
    else import order."""

    kind: str
    """``audit``, ``model`` or ``none``."""
    audit_id: int | None
    model_id: int | None
    text: str
    """One line for the page saying which ranking is in force and what it is worth."""


def queue_ranking(url: str, dataset: str, model: ModelInfo | None) -> Ranking:
    with read_session(url) as session:
        audit_id = store.latest_audit(session, dataset)
        summary = next(
            (a for a in store.audit_summaries(session, dataset) if a.id == audit_id), None
        )
    if summary is not None:
        return Ranking(
            "audit",
            summary.id,
            None,
            f"Ordered by {summary.label}: each pair judged by a model that never trained on it "
            "(out of fold), the most confident disagreement with the current label first.",
        )
    if model is not None and model.id is not None:
        return Ranking(
            "model",
            None,
            model.id,
            f"Ordered by the active model, {model.label}, in sample: it may have trained on "
            "these labels, and a model that fitted a wrong label agrees with it. Audit the "
            "labels for an out-of-fold ranking.",
        )
    return Ranking("none", None, None, "In import order: there is no model to rank with.")


def disagreement(
    url: str, pair: PairRow, model: ModelInfo | None, audit_id: int | None = None
) -> float | None:
    """How far the ranking (an audit, else the model) prefers the response the pair's label
    rejects, as the queue orders by it (:func:`srm.store.disagreement`); ``None`` until the
    pair has such a score."""
    model_id = model.id if model is not None else None
    if model_id is None and audit_id is None:
        return None
    with read_session(url) as session:
        return store.pair_disagreement(session, pair.db_id, model_id, audit_id=audit_id)


def score_imported(url: str, dataset: str) -> int | None:
    """Score a freshly imported dataset with the active model, as a job, so the Annotate queue
    is ordered the first time someone opens it. Part of the import (an annotator may import an
    upload), so no admin check; ``None`` when there is no model or in demo mode."""
    from srm import jobs as srm_jobs

    model = active_model(url)
    if model is None or model.id is None or demo_mode():
        return None
    with write(url) as session:
        job_id = srm_jobs.create_score_job(session, dataset=dataset, model_id=model.id).id
    srm_jobs.launch(url, job_id)
    return job_id


def dataset_jobs(url: str, dataset: str) -> list[JobRow]:
    """The dataset's unfinished jobs (scoring after an import, an audit), newest first."""
    return [j for j in jobs(url) if j.dataset == dataset and not j.finished]


@st.cache_data(ttl=10, show_spinner=False)
def agreement(url: str, dataset: str | None) -> dict[str, Any]:
    with read_session(url) as session:
        report = store.agreement(session, dataset)
    return {
        "annotators": [asdict(a) for a in report.annotators],
        "pairwise": [
            {
                "annotators": f"{p.a} · {p.b}",
                "shared pairs": p.n,
                "agreement": p.percent / 100,
                "Cohen's kappa": p.kappa,
            }
            for p in report.pairwise
        ],
    }


@st.cache_data(ttl=10, show_spinner=False)
def tagged_response_count(url: str, dataset: str) -> int:
    """How many responses of ``dataset`` annotators tagged sentences of (good or bad): what a
    train job "also learning from the sentence tags" learns from
    (:func:`srm.store.tagged_sentences`)."""
    with read_session(url) as session:
        return len(store.tagged_sentences(session, dataset))


# ------------------------------------------------------------------------------- credit
@st.cache_data(ttl=10, show_spinner=False)
def tag_credit(url: str, dataset: str, model_id: int, head: str) -> dict[str, Any]:
    """How well a model's stored sentence rewards find the sentences annotators tagged bad
    (:func:`srm.evaluate.credit_report` on :func:`srm.store.tagged_credit`), with counts.
    ``report`` is None when no tagged response has been scored by the model."""
    from srm.evaluate import credit_report

    with read_session(url) as session:
        found = store.tagged_credit(session, dataset, model_id)
    report = credit_report(found.items, head=head) if found.items else None
    return {"report": report, "tagged": found.tagged_responses, "unscored": found.unscored}


def credit_rows(reports: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One table row per ranking (the model's, then the baselines), a column pair per model:
    ``{"ranking", "A AUROC", "A pointing", ...}`` from ``{"A": report, ...}``."""
    rows: dict[str, dict[str, Any]] = {}
    for name, report in reports.items():
        for method, label in report["methods"].items():
            metrics = report["overall"]["metrics"][method]
            row = rows.setdefault(method, {"ranking": label})
            if row["ranking"] != label:  # heads differ: name the model's own row per model
                row["ranking"] = f"{row['ranking']} / {label}"
            row[f"{name} AUROC"] = metrics["auroc"]
            row[f"{name} pointing"] = metrics["pointing"]
    return list(rows.values())
