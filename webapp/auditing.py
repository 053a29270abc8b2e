"""Label audits from the app: the dataset's audits, how long a new one would take here, and
starting or resuming one as a job (:mod:`srm.jobs.auditing` does the work). Plain data out;
the rules live in :mod:`srm.audit`.
"""

from __future__ import annotations

from typing import Any

from srm import store
from webapp import auth
from webapp.store_access import read_session, write


def audits(url: str, dataset: str) -> list[store.AuditSummary]:
    """The dataset's audits, newest first."""
    with read_session(url) as session:
        return store.audit_summaries(session, dataset)


def audit_estimate(url: str, dataset: str, folds: int, config: dict[str, Any]) -> dict[str, Any]:
    """How long an audit with this recipe would take here, before it starts: from the store's
    finished runs of the same backbone, batch size and length when there are any (their
    seconds per step), else the per-backbone figures of :mod:`srm.audit`."""
    from srm.audit import describe_duration, estimate_seconds
    from srm.jobs import audit_recipe

    recipe = audit_recipe(config)
    cfg = _train_config(recipe)
    with read_session(url) as session:
        n_pairs = store.count_pairs(session, dataset)
        measured = [
            m.metrics["seconds"] / m.metrics["steps"]
            for m in store.list_models(session)
            if (m.config or {}).get("model", {}).get("backbone") == cfg.model.backbone
            and (m.config or {}).get("batch_size") == cfg.batch_size
            and (m.config or {}).get("model", {}).get("max_length") == cfg.model.max_length
            and (m.metrics or {}).get("steps")
            and (m.metrics or {}).get("seconds")
        ]
    per_step = sorted(measured)[len(measured) // 2] if measured else None
    seconds = estimate_seconds(n_pairs, cfg, folds, per_step)
    return {
        "seconds": seconds,
        "text": describe_duration(seconds),
        "pairs": n_pairs,
        "steps": cfg.max_steps,
        "backbone": cfg.model.backbone,
        "head": cfg.model.head,
        "measured": per_step is not None,
    }


def _train_config(recipe: dict[str, Any]) -> Any:
    from srm.config import TrainConfig

    return TrainConfig.from_dict(recipe | {"output_dir": "(per fold)"})


def start_audit_job(
    url: str,
    dataset: str,
    folds: int,
    config: dict[str, Any],
    resume: int | None = None,
) -> int:
    """Start an out-of-fold audit of the dataset (or continue audit ``resume``) as a job."""
    from srm import jobs as srm_jobs

    auth.require_admin("Auditing labels")
    with write(url) as session:
        if resume is not None:
            job_id = srm_jobs.create_audit_job(session, resume=resume).id
        else:
            job_id = srm_jobs.create_audit_job(
                session, dataset=dataset, folds=folds, config=config
            ).id
    srm_jobs.launch(url, job_id)
    return job_id
