"""Glue between the pages and ``srm``: cached resources, queries and writes, returning plain data.

Pages call these functions and never touch SQL or torch themselves. Every function takes the
store URL, so a cache never serves one store's rows for another. Reads are cached briefly
(``ttl``) and the writes here clear the caches they make stale, function by function, so an
annotator sees their own change at once and other people's within seconds.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import streamlit as st
from sqlalchemy import Engine
from sqlalchemy.orm import Session

import auth
from srm import store
from srm.compare import Comparison, verdict
from srm.records import NO_CLEAR_PREFERENCE, PairScores, margin_split
from srm.store import StaleWriteError, StoreError

if TYPE_CHECKING:  # torch loads on first use, not when a page imports services
    from srm.model import SentenceRewardModel
    from srm.segment import Span

__all__ = ["NO_CLEAR_PREFERENCE", "StaleWriteError", "StoreError", "verdict"]

#: Label actions with their keyboard shortcuts, in the order the Annotate page shows them.
LABEL_SHORTCUTS = {"keep": "k", "swap": "s", "tie": "t", "discard": "d"}
UNDO_SHORTCUT = "u"
DEMO_ENV = "SRM_DEMO"
PROJECT_DIR = Path(__file__).resolve().parents[1]
GUIDELINES_FILE = PROJECT_DIR / "docs" / "guidelines.md"
#: Folders the app may import from by path (os.pathsep-separated); see import_roots().
IMPORT_ROOTS_ENV = "SRM_IMPORT_ROOTS"


# ------------------------------------------------------------------------------- plain rows
@dataclass(frozen=True)
class PairRow:
    """A pair as pages show it: ``db_id`` is the store's key, ``id`` the imported one."""

    db_id: int
    id: str
    dataset: str
    source: str
    prompt: str
    chosen: str
    rejected: str
    margin: float | None
    label: str | None = None
    event_id: int | None = None
    subset: str | None = None


@dataclass(frozen=True)
class ModelInfo:
    """A model the pages can score with; ``id`` is ``None`` for one not in the store."""

    id: int | None
    name: str
    path: str
    head: str
    backbone: str
    causal: bool
    created: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        prefix = f"#{self.id} " if self.id is not None else ""
        return f"{prefix}{self.name} ({self.head} head on {self.backbone})"


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


# ------------------------------------------------------------------------------- store access
def store_url() -> str:
    """The store the app shows: ``$SRM_DB_URL`` or the per-user default."""
    return store.default_url()


def display_url(url: str) -> str:
    """The store URL as shown on screen: a password in it is masked."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def demo_mode() -> bool:
    """Read-only presentation mode (``srm app --demo`` sets ``SRM_DEMO=1``)."""
    return os.environ.get(DEMO_ENV, "").strip().lower() in ("1", "true", "yes", "on")


@st.cache_resource(show_spinner=False)
def engine(url: str) -> Engine:
    """The store engine, migrated to the current schema once per process."""
    return store.open_store(url)


def _read_session(url: str) -> Session:
    return store.make_sessionmaker(engine(url), read_only=True)()


def _write(url: str) -> AbstractContextManager[Session]:
    """A write transaction: ``with _write(url) as session`` commits on success."""
    if demo_mode():
        raise StoreError("the app runs in demo mode, which is read-only")
    return store.make_sessionmaker(engine(url)).begin()


def _clear_pair_caches() -> None:
    for cached in (pair_count, pair_page, label_summary, queue_page, dataset_summaries, agreement):
        cached.clear()


# ------------------------------------------------------------------------------- datasets
@st.cache_data(ttl=10, show_spinner=False)
def dataset_summaries(url: str) -> list[dict]:
    with _read_session(url) as session:
        return [asdict(s) for s in store.list_datasets(session)]


@st.cache_data(ttl=60, show_spinner=False)
def sources(url: str, dataset: str | None) -> list[str]:
    with _read_session(url) as session:
        return store.list_sources(session, dataset)


@st.cache_data(ttl=10, show_spinner=False)
def label_summary(url: str, dataset: str | None) -> dict[str, int]:
    with _read_session(url) as session:
        return store.label_summary(session, dataset)


def pair_filter(
    source: str | None = None,
    label: str | None = None,
    margin: tuple[float, float] | None = None,
    disagreeing_model: int | None = None,
) -> dict[str, Any]:
    """The filter fields as a plain dict (hashable by the cache); see ``store.PairFilter``."""
    return {
        "source": source,
        "label": label,
        "min_margin": margin[0] if margin else None,
        "max_margin": margin[1] if margin else None,
        "model_id": disagreeing_model,
        "disagreeing": disagreeing_model is not None,
    }


def _where(filters: Mapping[str, Any] | None) -> store.PairFilter | None:
    return store.PairFilter(**filters) if filters else None


@st.cache_data(ttl=10, show_spinner=False)
def pair_count(
    url: str, dataset: str | None, search: str, filters: Mapping[str, Any] | None = None
) -> int:
    with _read_session(url) as session:
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
    with _read_session(url) as session:
        pairs = store.list_pairs(
            session,
            dataset,
            search=search or None,
            where=_where(filters),
            limit=page_size,
            offset=page * page_size,
        )
        return [_pair_row(p) for p in pairs]


def get_pair(url: str, dataset: str, external_id: str) -> PairRow:
    """One pair, read fresh (its label may have just changed)."""
    with _read_session(url) as session:
        return _pair_row(store.get_pair(session, dataset, external_id))


def margin_range(url: str, dataset: str | None) -> tuple[float, float] | None:
    """The smallest and largest imported margin, or ``None`` when no pair has one."""
    with _read_session(url) as session:
        return store.margin_bounds(session, dataset)


def import_roots() -> list[Path]:
    """The folders a path typed in the app may point into: ``$SRM_IMPORT_ROOTS`` (separated
    by ``os.pathsep``; relative ones start at the project directory; empty: none), else the
    project's ``data/`` and ``$XDG_DATA_HOME/srm-studio/uploads``. A visitor must not be able to
    read (or learn of) any other file on the server through an import."""
    configured = os.environ.get(IMPORT_ROOTS_ENV)
    if configured is None:
        data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
        folders = [PROJECT_DIR / "data", data_home / "srm-studio" / "uploads"]
    else:
        folders = [PROJECT_DIR / Path(p).expanduser() for p in configured.split(os.pathsep) if p]
    return [folder.resolve() for folder in folders]


def import_path(typed: str) -> Path:
    """The file a path typed in the app names, if it is under an import root (symbolic links
    and ``..`` resolved first); else ``StoreError``, with the same words whether or not the
    path exists, so the message says nothing about the rest of the server."""
    roots = import_roots()
    if not roots:
        raise StoreError(
            f"importing by path is switched off ({IMPORT_ROOTS_ENV} is empty): upload the file"
        )
    path = (PROJECT_DIR / Path(typed).expanduser()).resolve()
    if not any(path.is_relative_to(root) for root in roots):
        raise StoreError(
            f"{typed}: the app imports only from {', '.join(map(str, roots))}; copy the file "
            f"into one of them, or set {IMPORT_ROOTS_ENV} (see the README)"
        )
    if not path.exists():
        raise StoreError(f"{typed}: no such file or directory")
    return path


def import_file(url: str, path: str, dataset: str | None = None) -> store.ImportResult:
    """Validate and import a file on the server, which must be under an import root (admins
    only); raises ``DataError`` (every problem) or ``StoreError``."""
    auth.require_admin("Importing a path on the server")
    found = import_path(path)
    return _import(
        url, found, (dataset or "").strip() or (found.name if found.is_dir() else found.stem)
    )


def import_upload(
    url: str, file_name: str, data: bytes, dataset: str | None = None
) -> store.ImportResult:
    """Import an uploaded file; problems name the file as uploaded, not where the server kept
    it."""
    from srm.data import DataError

    safe_name = Path(file_name).name or "upload.jsonl"
    with tempfile.TemporaryDirectory(prefix="srm-upload-") as tmp:
        path = Path(tmp) / safe_name
        path.write_bytes(data)
        name = (dataset or "").strip() or Path(safe_name).stem
        try:
            return _import(url, path, name)
        except DataError as err:
            raise DataError(
                [replace(p, file=p.file.replace(str(path), safe_name)) for p in err.problems]
            ) from None


def _import(url: str, path: Path, name: str) -> store.ImportResult:
    from srm.data import load_pairs

    pairs = load_pairs(path)
    with _write(url) as session:
        result = store.import_pairs(session, name, pairs, source_file=str(path))
    _clear_pair_caches()
    sources.clear()
    return result


def export_jsonl(url: str, dataset: str) -> tuple[bytes, str]:
    """The dataset with corrections applied, as TRL-style JSON Lines, and the count summary."""
    with _read_session(url) as session:
        result = store.effective_pairs(session, dataset)
    lines = [json.dumps(p.to_dict(), ensure_ascii=False) for p in result.pairs]
    return ("\n".join(lines) + "\n").encode() if lines else b"", result.counts.summary()


# ------------------------------------------------------------------------------- models
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
    with _read_session(url) as session:
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
    with _read_session(url) as session:
        if store.get_active_model(session) is not None:
            return
    info = _info_for_path(path)
    config = {"model": {"head": info.head, "backbone": info.backbone}, "causal": info.causal}
    with _write(url) as session:
        row = store.register_model(session, Path(path).name, path, config=config)
        if store.get_active_model(session) is None:  # not set by someone else meanwhile
            store.set_active_model(session, row.id)


def list_models(url: str) -> list[ModelInfo]:
    with _read_session(url) as session:
        return [_model_info(m) for m in store.list_models(session)]


def set_active_model(url: str, model_id: int) -> None:
    auth.require_admin("Choosing the active model")
    with _write(url) as session:
        store.set_active_model(session, model_id)
    queue_page.clear()


@st.cache_resource(show_spinner="Loading the reward model…", max_entries=2)
def _model(path: str, mtime: float) -> SentenceRewardModel:
    from srm.checkpoint import load

    return load(path)


def model_mtime(path: str) -> float:
    """Changes when the checkpoint is rewritten, so caches keyed on it refresh."""
    from srm.checkpoint import WEIGHTS_FILE, model_dir

    return (model_dir(path) / WEIGHTS_FILE).stat().st_mtime


# ------------------------------------------------------------------------------- scores
def cached_scores(url: str, pair: PairRow, model: ModelInfo) -> PairScores | None:
    """The model's stored scores of the pair, or ``None`` if it has not scored it yet."""
    if model.id is None:
        return None
    with _read_session(url) as session:
        row = store.get_score(session, pair.db_id, model.id)
        if row is None:
            return None
        return PairScores(
            id=pair.id,
            source=pair.source,
            margin=pair.margin,
            head=model.head,
            prefix_rewards=model.causal,
            chosen=row.response("chosen"),
            rejected=row.response("rejected"),
        )


def scores(url: str, pair: PairRow, model: ModelInfo) -> PairScores:
    """Per-sentence rewards and weights of a pair: computed once per (pair, model) and kept
    in the store, so every later view (and every other user) reads them back."""
    found = cached_scores(url, pair, model)
    if found is not None:
        return found
    record = _compute(model.path, model_mtime(model.path), pair)
    if model.id is not None and not demo_mode():
        with _write(url) as session:
            store.save_scores(session, model.id, pair.dataset, [record])
        queue_page.clear()
    return record


@st.cache_data(show_spinner="Scoring…", max_entries=256)
def _compute(path: str, mtime: float, pair: PairRow) -> PairScores:
    from srm.data import PreferencePair
    from srm.score import score_pairs

    item = PreferencePair(pair.id, pair.prompt, pair.chosen, pair.rejected, pair.source)
    return score_pairs(_model(path, mtime), [item])[0]


def rescore_with_spans(
    pair: PairRow, model: ModelInfo, spans: Mapping[str, Sequence[tuple[int, int]]]
) -> PairScores:
    """Score the pair with hand-edited sentence boundaries (``{"chosen": [(start, end), ...]}``);
    kept in memory only, since they are not the model's own segmentation."""
    return _compute_with_spans(
        model.path,
        model_mtime(model.path),
        pair,
        tuple(sorted((side, tuple(map(tuple, cuts))) for side, cuts in spans.items())),
    )


@st.cache_data(show_spinner="Rescoring…", max_entries=64)
def _compute_with_spans(
    path: str, mtime: float, pair: PairRow, spans: tuple[tuple[str, tuple], ...]
) -> PairScores:
    from srm.data import PreferencePair
    from srm.score import score_pairs

    item = PreferencePair(pair.id, pair.prompt, pair.chosen, pair.rejected, pair.source)
    given = {side: _spans(getattr(pair, side), cuts) for side, cuts in spans}
    return score_pairs(_model(path, mtime), [item], spans=[given])[0]


def _spans(text: str, cuts: Sequence[tuple[int, int]]) -> list[Span]:
    from srm.segment import Span

    return [Span(start, end, text[start:end]) for start, end in cuts]


def sentences(text: str) -> list[Span]:
    """The text's sentences as the model segments it (:func:`srm.segment.segment`)."""
    from srm.segment import segment

    return segment(text)


def segment_spans(text: str) -> list[tuple[int, int]]:
    return [(s.start, s.end) for s in sentences(text)]


def merge_sentences(
    text: str, cuts: Sequence[tuple[int, int]], index: int
) -> list[tuple[int, int]]:
    """Remove the boundary after sentence ``index`` (0-based); raises ``ValueError``."""
    from srm.segment import merge_spans

    return [(s.start, s.end) for s in merge_spans(_spans(text, cuts), index)]


def split_sentence(
    text: str, cuts: Sequence[tuple[int, int]], index: int, at: int
) -> list[tuple[int, int]]:
    """Add a boundary ``at`` characters into sentence ``index``; raises ``ValueError``."""
    from srm.segment import split_span

    return [(s.start, s.end) for s in split_span(_spans(text, cuts), index, at)]


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
) -> list[tuple[PairRow, float | None]]:
    with _read_session(url) as session:
        rows = store.annotation_queue(
            session,
            dataset,
            model_id,
            search=search or None,
            where=_where(filters),
            limit=page_size,
            offset=page * page_size,
        )
        return [(_pair_row(p), d) for p, d in rows]


def disagreement(url: str, pair: PairRow, model: ModelInfo) -> float | None:
    """How far the model prefers the response the pair's label rejects, as the queue orders
    by it (:func:`srm.store.disagreement`); ``None`` until the model has scored the pair."""
    if model.id is None:
        return None
    with _read_session(url) as session:
        return store.pair_disagreement(session, pair.db_id, model.id)


def label_state(url: str, pair: PairRow) -> tuple[str | None, int | None]:
    """The pair's current label and latest event id, read fresh."""
    with _read_session(url) as session:
        state = store.label_state(session, pair.db_id)
        return state.label, state.event_id


def record_label(
    url: str, pair: PairRow, annotator: str, label: str, expected_event_id: int | None, note: str
) -> int:
    """Append a label; raises ``StaleWriteError`` when someone changed the pair meanwhile."""
    with _write(url) as session:
        event = store.record_label(
            session, pair.db_id, annotator, label, expected_event_id=expected_event_id, note=note
        )
        event_id = event.id
    _clear_pair_caches()
    return event_id


def undo_label(url: str, pair: PairRow, annotator: str, expected_event_id: int | None) -> int:
    with _write(url) as session:
        event = store.undo_label(
            session, pair.db_id, annotator, expected_event_id=expected_event_id
        )
        event_id = event.id
    _clear_pair_caches()
    return event_id


def history(url: str, pair: PairRow) -> list[dict[str, Any]]:
    """The pair's audit trail, oldest first."""
    with _read_session(url) as session:
        return [
            {
                "#": e.seq,
                "when (UTC)": f"{e.created_at:%Y-%m-%d %H:%M:%S}",
                "annotator": e.annotator.name,
                "action": e.action,
                "label after": e.label or "unlabelled",
                "note": e.note or "",
            }
            for e in store.label_history(session, pair.db_id)
        ]


def tag_sentence(
    url: str, pair: PairRow, annotator: str, side: str, span: tuple[int, int], tag: str
) -> None:
    with _write(url) as session:
        store.tag_sentence(session, pair.db_id, annotator, side, span, tag)
    tag_credit.clear()


def tags(url: str, pair: PairRow, annotator: str | None = None) -> dict[tuple[str, int, int], str]:
    """Current sentence tags of the pair: ``(side, start, end) -> tag`` (the latest wins)."""
    with _read_session(url) as session:
        rows = store.current_tags(session, [pair.db_id])
        return {
            (t.side, t.span_start, t.span_end): t.tag
            for t in rows
            if annotator is None or t.annotator.name == annotator
        }


@st.cache_data(ttl=10, show_spinner=False)
def agreement(url: str, dataset: str | None) -> dict[str, Any]:
    with _read_session(url) as session:
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


def guidelines(url: str) -> str:
    """Annotation guidelines: the store's ``guidelines`` setting, else docs/guidelines.md."""
    with _read_session(url) as session:
        text = store.get_setting(session, store.GUIDELINES)
    if text:
        return str(text)
    return GUIDELINES_FILE.read_text(encoding="utf-8") if GUIDELINES_FILE.is_file() else ""


def save_guidelines(url: str, text: str) -> None:
    auth.require_admin("Editing the guidelines")
    with _write(url) as session:
        store.set_setting(session, store.GUIDELINES, text)


# ------------------------------------------------------------------------------- jobs
@dataclass(frozen=True)
class JobRow:
    id: int
    kind: str
    status: str
    dataset: str | None
    progress: float
    step: int
    total: int
    message: str
    error: str
    model_id: int | None
    config: dict[str, Any]
    created: str
    finished: bool


def _job_row(job: store.TrainingJob) -> JobRow:
    return JobRow(
        job.id,
        job.kind,
        job.status,
        job.dataset.name if job.dataset is not None else None,
        job.progress,
        job.step,
        job.total,
        job.message or "",
        job.error or "",
        job.model_id,
        dict(job.config or {}),
        f"{job.created_at:%Y-%m-%d %H:%M:%S}",
        job.status in store.FINISHED_STATUSES,
    )


def jobs(url: str, limit: int = 50) -> list[JobRow]:
    """Recent jobs, newest first. The Train page polls this every few seconds from every open
    tab, so it reads only: dead jobs (no heartbeat, or a process gone) are failed where jobs
    are created, and here only when a listed job is unfinished, at most every
    ``srm.jobs.REAP_INTERVAL`` seconds per app process."""
    from srm import jobs as srm_jobs

    def read() -> list[JobRow]:
        with _read_session(url) as session:
            return [_job_row(j) for j in srm_jobs.list_jobs(session, limit)]

    rows = read()
    unfinished = any(not row.finished for row in rows)
    if not unfinished or demo_mode() or not srm_jobs.reap_due(url, srm_jobs.REAP_INTERVAL):
        return rows
    with _write(url) as session:
        reaped = srm_jobs.reap_dead_jobs(session)
    return read() if reaped else rows


def start_train_job(url: str, dataset: str, config: dict[str, Any]) -> int:
    """Create a training job on the dataset's effective labels and launch its process."""
    from srm import jobs as srm_jobs

    auth.require_admin("Training")
    config = dict(config)
    score_after = bool(config.pop("score_after", True))
    active = active_model(url)
    with _write(url) as session:
        created = srm_jobs.create_train_job(
            session,
            dataset=dataset,
            config=config,
            parent_model_id=active.id if active else None,
            score_after=score_after,
        )
        job_id = created.id
    srm_jobs.launch(url, job_id)
    return job_id


def start_score_job(url: str, dataset: str, model_id: int) -> int:
    """Score every pair of the dataset with the model, as a job (progress in the store)."""
    from srm import jobs as srm_jobs

    auth.require_admin("Scoring a dataset")
    with _write(url) as session:
        job_id = srm_jobs.create_score_job(session, dataset=dataset, model_id=model_id).id
    srm_jobs.launch(url, job_id)
    return job_id


def cancel_job(url: str, job_id: int) -> None:
    from srm import jobs as srm_jobs

    auth.require_admin("Cancelling a job")
    with _write(url) as session:
        srm_jobs.request_cancel(session, job_id)


def job_details(url: str, job_id: int) -> tuple[list[dict], str]:
    """The job's metrics rows (training curves) and the tail of its log."""
    from srm import jobs as srm_jobs

    with _read_session(url) as session:
        row = session.get(store.TrainingJob, job_id)
        if row is None:
            return [], ""
        return srm_jobs.job_metrics(row), srm_jobs.log_tail(row)


# ------------------------------------------------------------------------------- comparison
def scored_count(url: str, dataset: str, model_id: int) -> int:
    with _read_session(url) as session:
        return len(store.scored_pairs(session, dataset, model_id))


def compare_models(url: str, dataset: str, a: int, b: int) -> Comparison:
    """Model A against model B on the pairs of ``dataset`` both have scored, judged by the
    current labels (:func:`srm.compare.compare_models`)."""
    from srm.compare import compare_models as compare

    with _read_session(url) as session:
        return compare(session, dataset, a, b)


def flipped_rows(comparison: Comparison) -> list[dict[str, Any]]:
    """The flipped pairs as the Models page's table shows them, the largest move first."""
    return [
        {
            "id": p.id,
            "source": p.source,
            "label": p.label or "unlabelled",
            "A margin for the label": p.a,
            "B margin for the label": p.b,
            "B is now": "right" if p.b > 0 else "wrong",
        }
        for p in comparison.flipped
    ]


@st.cache_data(ttl=10, show_spinner=False)
def tag_credit(url: str, dataset: str, model_id: int, head: str) -> dict[str, Any]:
    """How well a model's stored sentence rewards find the sentences annotators tagged bad
    (:func:`srm.evaluate.credit_report` on :func:`srm.store.tagged_credit`), with counts.
    ``report`` is None when no tagged response has been scored by the model."""
    from srm.evaluate import credit_report

    with _read_session(url) as session:
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


# ------------------------------------------------------------------------------- demo
DEMO_PAIRS = "demo_pairs"


def demo_pairs(url: str, model: ModelInfo | None, limit: int = 8) -> list[tuple[str, str]]:
    """The curated pairs demo mode shows: the store's ``demo_pairs`` setting (a list of
    ``[dataset, id]``, chosen on the Inspect page), else the pairs the model is surest about."""
    with _read_session(url) as session:
        chosen = store.get_setting(session, DEMO_PAIRS) or []
        if chosen:
            return [(d, i) for d, i in chosen][:limit]
        # Else the largest dataset's pairs the model is surest about (one dataset, so a small
        # scratch or test dataset in the store does not turn up in a demo).
        datasets = sorted(store.list_datasets(session), key=lambda d: -d.n_pairs)
        if not datasets:
            return []
        dataset = datasets[0].name
        if model is not None and model.id is not None:
            ranked = store.annotation_queue(session, dataset, model.id, limit=400)
            scored = [(p, d) for p, d in ranked if d is not None]
            scored.sort(key=lambda item: item[1])  # most confident agreement first
            if scored:
                # A demo of sentence credit shows pairs whose margin the sentences carry, not
                # the prompt term; those first, each group surest first.
                candidates = [p for p, _ in scored[: 5 * limit]]
                candidates.sort(key=lambda p: _prompt_carries(session, p, model.id))
                return [(p.dataset.name, p.external_id) for p in candidates[:limit]]
        return [(dataset, p.external_id) for p in store.list_pairs(session, dataset, limit=limit)]


def _prompt_carries(session: Session, pair: store.Pair, model_id: int) -> bool:
    row = store.get_score(session, pair.id, model_id)
    chosen, rejected = row.response("chosen"), row.response("rejected")
    record = PairScores(id=pair.external_id, chosen=chosen, rejected=rejected)
    return margin_split(record).prompt_dominates


def toggle_demo_pair(url: str, pair: PairRow) -> bool:
    """Add the pair to the demo's curated list, or take it out; return whether it is in."""
    auth.require_admin("Choosing the demo's pairs")
    key = [pair.dataset, pair.id]
    with _write(url) as session:
        chosen = [list(x) for x in store.get_setting(session, DEMO_PAIRS) or []]
        now_in = key not in chosen
        chosen = [*chosen, key] if now_in else [x for x in chosen if x != key]
        store.set_setting(session, DEMO_PAIRS, chosen)
    return now_in


def is_demo_pair(url: str, pair: PairRow) -> bool:
    with _read_session(url) as session:
        return [pair.dataset, pair.id] in [
            list(x) for x in store.get_setting(session, DEMO_PAIRS) or []
        ]
