"""Glue between the pages and ``srm``: the one module pages import for store queries and
writes, returning plain data.

Pages call these functions (and those of ``scoring`` for what models say, ``importing`` for
files) and never touch SQL or torch themselves. The functions live by concern and are
re-exported here: datasets, pairs and the Annotate queue in ``pairs_service``, models in
``models_service``, jobs in ``jobs_service``, the store's URL and demo mode in
``store_access``, the plain rows in ``rows``. Every function takes the store URL, so a cache
never serves one store's rows for another. Reads are cached briefly (``ttl``) and the writes
clear the caches they make stale, function by function, so an annotator sees their own change
at once and other people's within seconds. A read never writes (see :func:`jobs`).
"""

from __future__ import annotations

from pathlib import Path

from srm.store import StaleWriteError, StoreError
from webapp.jobs_service import (
    RUN_ON,
    cancel_job,
    continuable,
    dataset_jobs,
    job_details,
    jobs,
    resumable,
    resume_job,
    run_on_choices,
    score_imported,
    start_score_job,
    start_train_job,
    trained_finetune,
)
from webapp.models_service import (
    LOADING_MODEL,
    active_model,
    bundled_model_path,
    credit_rows,
    list_models,
    register_default_model,
    scored_count,
    set_active_model,
    tag_credit,
)
from webapp.pairs_service import (
    Ranking,
    agreement,
    clear_pair_caches,
    dataset_summaries,
    disagreement,
    get_pair,
    label_summary,
    margin_range,
    pair_count,
    pair_filter,
    pair_page,
    queue_page,
    queue_ranking,
    sources,
    tagged_response_count,
)
from webapp.rows import JobRow, ModelInfo, PairRow
from webapp.store_access import demo_mode, display_url, engine, store_url

__all__ = [
    "LOADING_MODEL",
    "PROJECT_DIR",
    "RUN_ON",
    "JobRow",
    "ModelInfo",
    "PairRow",
    "Ranking",
    "StaleWriteError",
    "StoreError",
    "active_model",
    "agreement",
    "bundled_model_path",
    "cancel_job",
    "clear_pair_caches",
    "continuable",
    "credit_rows",
    "dataset_jobs",
    "dataset_summaries",
    "demo_mode",
    "disagreement",
    "display_url",
    "engine",
    "get_pair",
    "job_details",
    "jobs",
    "label_summary",
    "list_models",
    "margin_range",
    "pair_count",
    "pair_filter",
    "pair_page",
    "plural",
    "queue_page",
    "queue_ranking",
    "register_default_model",
    "resumable",
    "resume_job",
    "run_on_choices",
    "score_imported",
    "scored_count",
    "set_active_model",
    "sources",
    "start_score_job",
    "start_train_job",
    "store_url",
    "tag_credit",
    "tagged_response_count",
    "trained_finetune",
]

PROJECT_DIR = Path(__file__).resolve().parents[1]


def plural(n: int, word: str, many: str | None = None) -> str:
    """``plural(1, "pair") == "1 pair"``, ``plural(2, "pair") == "2 pairs"`` (with thousands
    separators)."""
    return f"{n:,} {word if n == 1 else many or word + 's'}"
