"""The models pages score with: the bundled default (registered and made active at app
start), the store's active model, the registry, and how well a model's sentence rewards find
the sentences annotators tagged bad. Pages reach these through ``services``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import streamlit as st

from srm import store
from webapp import auth
from webapp.pairs_service import queue_page
from webapp.rows import ModelInfo
from webapp.store_access import demo_mode, read_session, write

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
