"""Audit jobs: the out-of-fold label audit (:mod:`srm.audit`) of a store dataset, as a job.

An audit job works on an :class:`~srm.store.Audit` row, not on its own: the audit holds the
provenance (folds, seed, recipe, run directory) and its finished folds, the job one run of
it. Each finished fold is saved in one transaction (its model, the pairs that model trained
on, the held-out pairs' scores), so an audit killed mid-way keeps its finished folds; a new
job on the same audit (``create_audit_job(..., resume=ID)``, ``srm audit --resume ID``, the
app's Resume button) skips them and continues the fold under way from its checkpoint.

    >>> with Session.begin() as s:
    ...     job = create_audit_job(s, dataset="hh", folds=5, config={"max_steps": 200})
    >>> launch(url, job.id)                   # srm jobs run N
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from srm.audit import DEFAULT_FOLDS, AuditError, FoldResult, assign_folds, default_recipe
from srm.config import ConfigError, merge_train_config
from srm.jobs.creating import check_launcher, create_job, runs_dir, session_url
from srm.jobs.kinds import JobKind, register_job_kind
from srm.jobs.run import JobRun
from srm.jobs.scoring import SCORE_BATCH_SIZE
from srm.store import (
    StoreError,
    TrainingJob,
    create_audit,
    dataset_id,
    finished_folds,
    get_audit,
    labelled_pairs,
    register_model,
    save_audit_fold,
)
from srm.store.export import training_pair

log = logging.getLogger(__name__)


def audit_recipe(
    config: dict[str, Any] | None = None, base: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The full recipe an audit's folds train with: ``base`` (a recipe as
    ``TrainConfig.to_dict()`` or a TOML file gives it; default: the project's default recipe,
    :func:`srm.audit.default_recipe`) with ``config``'s fields over it (model fields flat or
    under ``"model"``), every value checked (:func:`srm.config.merge_train_config`). Each
    fold writes to its own directory in the audit's run directory, so ``output_dir`` is not
    the recipe's to set."""
    config = dict(config or {})
    if "output_dir" in config:
        raise ConfigError("output_dir: an audit writes to its own run directory; leave it out")
    base = dict(base) if base is not None else default_recipe().to_dict()
    base.pop("output_dir", None)
    overrides = {**dict(config.pop("model", None) or {}), **config}
    recipe = merge_train_config(base, overrides).to_dict()
    del recipe["output_dir"]  # each fold's: run_dir/fold-N
    return recipe


def create_audit_job(
    session: Session,
    *,
    dataset: str | None = None,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
    config: dict[str, Any] | None = None,
    base: dict[str, Any] | None = None,
    resume: int | None = None,
    launcher: str = "local",
    worker_tag: str | None = None,
) -> TrainingJob:
    """Queue an audit job: a new audit of ``dataset`` (``folds`` by prompt, ``seed``, the
    recipe ``base`` or the default one with ``config`` over it: :func:`audit_recipe`), or,
    with ``resume``, the next run of audit ``resume`` (its folds, seed and recipe; leave
    ``dataset`` and ``config`` out). Everything is checked before anything is written: the
    recipe, and that the dataset has enough distinct prompts for the folds. ``launcher`` and
    ``worker_tag`` say who runs it (:func:`srm.jobs.check_launcher`)."""
    check_launcher(launcher, worker_tag)
    if resume is not None:
        if dataset is not None or config:
            raise StoreError("resume: an audit resumes with its own dataset and recipe")
        audit = get_audit(session, resume)
        dataset = audit.dataset.name
    else:
        if dataset is None:
            raise StoreError("dataset: name the dataset to audit")
        recipe = audit_recipe(config, base)
        dataset_id(session, dataset)
        try:
            assign_folds([p.prompt for p, _ in labelled_pairs(session, dataset)], folds, seed)
        except AuditError as err:
            raise ConfigError(f"dataset {dataset!r}: {err}") from err
        audit = create_audit(
            session, dataset, folds=folds, seed=seed, config=recipe, run_dir="(pending)"
        )
        audit.run_dir = str(runs_dir(session_url(session)) / f"audit-{audit.id}")
    return create_job(
        session,
        "audit",
        dataset=dataset,
        config={"audit_id": audit.id},
        launcher=launcher,
        worker_tag=worker_tag,
    )


def check_audit_job(session: Session, job: TrainingJob) -> None:
    """The audit kind's check (:attr:`srm.jobs.kinds.JobKind.check`): the config names an
    audit of the job's dataset that is not complete (``audit_id``), and the job runs in the
    audit's run directory, scoring :data:`~srm.jobs.scoring.SCORE_BATCH_SIZE` pairs a batch."""
    unknown = sorted(set(job.config) - {"audit_id"})
    if unknown:
        raise ConfigError(f"{unknown[0]}: an audit job's config holds audit_id only")
    audit_id = job.config.get("audit_id")
    if isinstance(audit_id, bool) or not isinstance(audit_id, int):
        raise ConfigError(f"audit_id: got {audit_id!r}; name the audit (create_audit_job)")
    audit = get_audit(session, audit_id)
    if audit.status == "complete":
        raise StoreError(f"audit {audit_id} is complete; start a new audit instead")
    if audit.dataset_id != job.dataset_id:
        raise StoreError(f"audit {audit_id} audits dataset {audit.dataset.name!r}, not this one")
    job.config = {"audit_id": audit_id, "run_dir": audit.run_dir, "batch_size": SCORE_BATCH_SIZE}


def run_audit(run: JobRun) -> tuple[str, str]:
    """Run (or continue) the audit ``run.config["audit_id"]`` as job ``run.job_id``."""
    from srm.audit import audit_pairs
    from srm.config import TrainConfig

    sessions, dataset, config, report = run.sessions, run.dataset, run.config, run.report

    audit_id = int(config["audit_id"])
    if report(0, 0, 0.0, "loading the dataset", force=True):
        return "cancelled", "cancelled before the audit started"
    with sessions() as session:
        audit = get_audit(session, audit_id)
        folds, seed, run_dir = audit.folds, audit.seed, Path(audit.run_dir)
        # A worker's --device, written into the job when it claimed it, beats the recipe's.
        device = {"device": config["device"]} if "device" in config else {}
        recipe = TrainConfig.from_dict(dict(audit.config) | {"output_dir": str(run_dir)} | device)
        done = finished_folds(session, audit_id)
        rows = labelled_pairs(session, dataset)
    imported = [pair for pair, _ in rows]
    training = [training_pair(pair, label) for pair, label in rows]
    finished = len(done)
    log.info("audit %d of %r: %d folds, %d done already", audit_id, dataset, folds, finished)

    def progress(fold: int, step: int, total: int, message: str) -> None:
        share = (finished + (step / total if total else 0.0)) / folds
        report(step, total, share, f"audit {audit_id}: {message}")  # a cancel: via stop()

    def save(result: FoldResult) -> None:
        nonlocal finished
        with sessions.begin() as session:
            model = register_model(
                session,
                f"audit {audit_id} fold {result.fold + 1}/{folds}",
                str(result.model_dir.resolve()),
                config=result.config.to_dict() | {"audit": {"id": audit_id, "fold": result.fold}},
                metrics=result.metrics | {"pairs": len(result.trained_on)},
            )
            save_audit_fold(
                session,
                audit_id,
                result.fold,
                model.id,
                trained_on=result.trained_on,
                scores=result.scores,
            )
        finished += 1
        report(0, 0, finished / folds, f"audit {audit_id}: {finished}/{folds} folds", force=True)

    result = audit_pairs(
        imported,
        recipe,
        folds=folds,
        seed=seed,
        run_dir=run_dir,
        training=training,
        skip=done,
        on_fold=save,
        progress=progress,
        stop=run.stop,
        batch_size=int(config.get("batch_size", SCORE_BATCH_SIZE)),
        device=_device(recipe.device),
        show_progress=True,
    )
    if result.interrupted or finished < folds:
        return "cancelled", (
            f"audit {audit_id} {run.stopped_by()} with {finished}/{folds} folds saved; "
            f"resume it with srm audit --resume {audit_id} (or Resume on the Annotate page)"
        )
    return "succeeded", f"audit {audit_id}: {folds}/{folds} folds, {len(imported)} pairs scored"


def _device(name: str) -> str:
    from srm.devices import resolve_device

    return resolve_device(name)


register_job_kind(JobKind("audit", run_audit, check=check_audit_job, run_dir_key=None))
