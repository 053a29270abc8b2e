"""Train jobs: train on a store dataset's corrected pairs, register the model with the pairs it
trained on and, with ``score_after``, score the dataset with it (:func:`run_train`); under
``accelerate launch`` or ``torchrun`` the other processes train beside the main one
(:func:`follow_train_job`). A job is created by :func:`create_train_job` (its config checked by
:func:`check_train_job`), and a stopped one continues as a new job (:func:`resume_train_job`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from srm.config import ConfigError, merge_train_config
from srm.jobs.creating import check_launcher, create_job, queue_job
from srm.jobs.kinds import JobKind, register_job_kind
from srm.jobs.run import JobRun
from srm.jobs.scoring import score_run
from srm.jobs.watching import get_job
from srm.store import (
    Model,
    StoreError,
    TrainingJob,
    effective_pairs,
    record_training_pairs,
    register_model,
    tagged_sentences,
)

if TYPE_CHECKING:
    from srm.sigterm import StopRequest

log = logging.getLogger(__name__)

#: Share of a train job's progress bar spent training when it scores the dataset afterwards.
TRAIN_SHARE = 0.9
#: Keys of a train job's config that are not TrainConfig fields (``resume_from`` and
#: ``resumes_job``: a job that continues a stopped one, :func:`resume_train_job`).
JOB_KEYS = ("parent_model_id", "score_after", "sentence_tags", "resume_from", "resumes_job")
#: The statuses of a train job that can be resumed, given a resumable checkpoint.
RESUMABLE_STATUSES = ("cancelled", "failed")


def create_train_job(
    session: Session,
    *,
    dataset: str,
    config: dict[str, Any],
    parent_model_id: int | None = None,
    score_after: bool = True,
    launcher: str = "local",
    worker_tag: str | None = None,
    sentence_tags: bool = False,
    continue_parent: bool = False,
) -> TrainingJob:
    """Queue a training run on ``dataset`` (its corrected pairs, read when the job starts;
    with ``sentence_tags``, also its annotators' good/bad sentence tags as step labels,
    weighted by the config's ``step_weight``: :func:`srm.store.tagged_sentences`).

    ``config`` holds :class:`~srm.config.TrainConfig` fields, model fields nested under
    ``"model"`` (as ``TrainConfig.to_dict()`` gives them), without ``output_dir``: the job's
    run directory is ``runs_dir(url)/job-<id>``. It is checked here, field by field, types
    included (:func:`check_train_job`: the job runs later, in another process), and a bad
    value raises :class:`~srm.config.ConfigError` naming the field before anything is written.
    The stored config is the full one, defaults filled in, so the job reproduces itself.

    ``launcher`` says who starts the job's process once it is created (:func:`srm.jobs.start`):
    ``"local"`` (this machine), ``"worker"`` (an ``srm worker`` claims it; with ``worker_tag``,
    only a worker holding that tag) or ``"command"`` (the configured submit command).

    With ``continue_parent``, the run starts from the weights of model ``parent_model_id``
    (``init_from`` its checkpoint) and takes its architecture (backbone, head, sizes) from
    that checkpoint; only the input settings (lengths) and the training recipe come from
    ``config``. Retraining then continues the model the app calls the new one's parent.

    >>> create_train_job(s, dataset="sample", config={"max_steps": 100, "model": {"head": "token"}})
    """
    check_launcher(launcher, worker_tag)
    if continue_parent:
        config = _continuing(session, config, parent_model_id)
    job_keys = {
        "parent_model_id": parent_model_id,
        "score_after": bool(score_after),
        "sentence_tags": bool(sentence_tags),
    }
    return create_job(
        session,
        "train",
        dataset=dataset,
        config=config | job_keys,
        launcher=launcher,
        worker_tag=worker_tag,
    )


def check_train_job(session: Session, job: TrainingJob) -> None:
    """The train kind's check (:attr:`srm.jobs.kinds.JobKind.check`): the config's
    :class:`~srm.config.TrainConfig` fields checked field by field, types included
    (:func:`srm.config.merge_train_config`), defaults filled in, and :data:`JOB_KEYS`'
    ``parent_model_id`` (a model of the store), ``score_after`` (default true) and
    ``sentence_tags`` (needs a ``step_weight``) beside them; ``output_dir`` is the job's own."""
    config = job.config
    if "output_dir" in config:
        raise ConfigError(
            "output_dir: a job writes to its own run directory (runs/job-<id>); leave it out"
        )
    cfg = merge_train_config({k: v for k, v in config.items() if k not in JOB_KEYS})
    sentence_tags = bool(config.get("sentence_tags", False))
    if sentence_tags and not cfg.step_weight:
        raise ConfigError(
            "step_weight: learning from the sentence tags needs a step_weight above 0 "
            "(1 is the default)"
        )
    parent_model_id = config.get("parent_model_id")
    if parent_model_id is not None and session.get(Model, parent_model_id) is None:
        raise StoreError(f"no model with id {parent_model_id} in the store (parent_model_id)")
    job.config = cfg.to_dict() | {
        "parent_model_id": parent_model_id,
        "score_after": bool(config.get("score_after", True)),
        "sentence_tags": sentence_tags,
    }


def _continuing(
    session: Session, config: dict[str, Any], parent_model_id: int | None
) -> dict[str, Any]:
    """``config`` starting from model ``parent_model_id``'s weights and architecture."""
    from srm.checkpoint import CheckpointError, read_info
    from srm.train import INPUT_FIELDS

    parent = session.get(Model, parent_model_id) if parent_model_id is not None else None
    if parent is None:
        raise StoreError(
            "continue_parent: name the model to continue (parent_model_id), or train from the "
            "backbone"
        )
    try:
        architecture = read_info(Path(parent.checkpoint_dir)).model.to_dict()
    except CheckpointError as err:
        raise StoreError(f"continue_parent: model {parent.id}: {err}") from err
    given = dict(config.get("model") or {})
    inputs = {k: given[k] for k in INPUT_FIELDS if k in given}
    return config | {"init_from": parent.checkpoint_dir, "model": architecture | inputs}


def resume_point(session: Session, job: TrainingJob) -> Path | str:
    """Where a new job would resume train job ``job`` from: its run directory's newest
    resumable checkpoint (``checkpoints/step-N``, which a cancel, SIGTERM or ``save_every``
    writes); else, as a string, why it cannot be resumed."""
    from srm.audit import latest_checkpoint

    if job.kind != "train":
        return f"job {job.id} is a {job.kind} job; only a train job resumes"
    if job.status not in RESUMABLE_STATUSES:
        return f"job {job.id} is {job.status}; only a cancelled or failed train job resumes"
    if job.model_id is not None:
        return f"job {job.id} trained its model (model {job.model_id}); score it again instead"
    later = session.scalars(
        select(TrainingJob).where(TrainingJob.kind == "train", TrainingJob.id > job.id)
    )
    resumed_by = next((j.id for j in later if (j.config or {}).get("resumes_job") == job.id), None)
    if resumed_by is not None:
        return f"job {job.id} was resumed by job {resumed_by}; resume that one instead"
    found = latest_checkpoint(Path((job.config or {}).get("output_dir", "")))
    if found is None:
        return f"job {job.id} stopped before its first checkpoint; start a new job instead"
    return found


def resume_train_job(session: Session, job_id: int) -> TrainingJob:
    """Queue a new train job that continues stopped train job ``job_id`` where its newest
    resumable checkpoint left it (:func:`resume_point`): the same config, run directory,
    dataset, launcher and worker tag, with ``resume_from`` that checkpoint and ``resumes_job``
    the stopped job. The stopped job stays as it was: the list shows both, and a job is
    resumed once (resume the newer job after that). Refusals raise :class:`StoreError`
    saying why.

    A new job rather than the same one run again: a job runs once
    (``queued -> running -> finished``), and its row keeps what happened to it. Its metrics
    keep the stopped run's lines up to the checkpoint's step (one run directory).

    >>> resume_train_job(s, 7).config["resume_from"]    # '.../job-7/checkpoints/step-000040'
    """
    job = session.get(TrainingJob, job_id)
    if job is None:
        raise StoreError(f"no job with id {job_id} in the store")
    point = resume_point(session, job)
    if isinstance(point, str):
        raise StoreError(point)
    resumed = TrainingJob(
        kind="train",
        status="queued",
        launcher=job.launcher,
        worker_tag=job.worker_tag,
        dataset_id=job.dataset_id,
        config=dict(job.config) | {"resume_from": str(point), "resumes_job": job.id},
    )
    # The stopped job's run directory: its checkpoints, its metrics.
    return queue_job(session, resumed, run_dir_key=None)


def run_train(run: JobRun) -> tuple[str, str]:
    """Train on the dataset's corrected pairs (:func:`srm.store.effective_pairs`), register the
    model with the pairs it trained on and, with ``score_after`` (default), score the dataset
    with it. A cancel or SIGTERM stops training with a resumable checkpoint."""
    from srm.train import metrics_text, train

    sessions, dataset, config, report = run.sessions, run.dataset, run.config, run.report

    cfg = merge_train_config({k: v for k, v in config.items() if k not in JOB_KEYS})
    score_after = bool(config.get("score_after", True))
    share = TRAIN_SHARE if score_after else 1.0
    if report(0, 0, 0.0, "loading the dataset", force=True):
        _share_with_followers(None)
        return "cancelled", "cancelled before training started"
    with sessions() as session:
        pairs = effective_pairs(session, dataset)
        # "Also learn from the sentence tags": annotators' good/bad tags as step labels.
        steps = tagged_sentences(session, dataset) if config.get("sentence_tags") else []
    log.info("dataset %r: %s", dataset, pairs.counts.summary())
    if steps:
        log.info("and %d tagged responses (sentence labels)", len(steps))
    resume_from = config.get("resume_from")  # a job that continues a stopped one
    _share_with_followers((cfg.to_dict(), pairs.pairs, steps, resume_from))

    def progress(step: int, total: int, metrics: dict[str, float]) -> None:
        message = f"step {step}/{total}"
        if "loss" in metrics:
            message += f" · {metrics_text(metrics)}"
        if report(step, total, share * step / total, message):
            raise KeyboardInterrupt  # train() writes a resumable checkpoint and returns

    result = train(
        cfg,
        pairs.pairs,
        progress=progress,
        resume_from=resume_from,
        show_progress=True,
        stop=run.sigterm,
        train_steps=steps,
    )
    if result.interrupted:
        return "cancelled", (
            f"{run.stopped_by()} at step {result.steps}/{result.total_steps}; "
            f"resumable checkpoint: {result.checkpoint}"
        )
    metrics: dict[str, Any] = {
        **result.train_metrics,
        "steps": result.steps,
        "pairs": len(result.pair_ids),
        "tagged_responses": len(steps),
        "seconds": round(result.seconds, 2),
    }
    if result.eval_metrics:
        metrics["eval"] = result.eval_metrics
    with sessions.begin() as session:
        model = register_model(
            session,
            f"job {run.job_id}: {cfg.model.head} on {cfg.model.backbone}",
            str(Path(result.output_dir).resolve()),
            config=cfg.to_dict(),
            parent_id=config.get("parent_model_id"),
            metrics=metrics,
        )
        model_id = model.id
        # The pairs it saw, so comparisons can keep to pairs it did not (srm.compare).
        record_training_pairs(session, model_id, dataset, result.pair_ids)
        get_job(session, run.job_id).model_id = model_id
    summary = f"model {model_id}: {result.steps} steps on {len(result.pair_ids)} pairs"
    if steps:
        summary += f" and {len(steps)} tagged responses"
    if "loss" in result.train_metrics:
        summary += f" · {metrics_text(result.train_metrics)}"
    report(result.steps, result.total_steps, share, summary, force=True)
    if not score_after:
        return "succeeded", summary
    status, scored = score_run(run, model_id, device=cfg.device, start=share)
    return status, f"{summary}; {scored}"


def follow_train_job(sigterm: StopRequest | None = None) -> str:
    """Train as one of several processes of a train job (``accelerate launch`` or ``torchrun``
    running ``srm jobs run N``), not the main one: with the config and pairs the main
    process sends (:func:`_share_with_followers`), writing nothing. The main process owns the
    job's row, the run directory and the scoring afterwards. Returns ``succeeded`` or
    ``cancelled``, as the main process's :func:`~srm.jobs.run_job` does; train() stops all
    processes together on a cancel or SIGTERM."""
    from accelerate.utils import broadcast_object_list

    from srm.config import TrainConfig
    from srm.train import train

    shared: list[Any] = [None]
    broadcast_object_list(shared)
    if shared[0] is None:
        return "cancelled"
    config, pairs, steps, resume_from = shared[0]
    result = train(
        TrainConfig.from_dict(config),
        pairs,
        resume_from=resume_from,
        show_progress=False,
        stop=sigterm,
        train_steps=steps,
    )
    return "cancelled" if result.interrupted else "succeeded"


def _share_with_followers(
    work: tuple[dict[str, Any], list[Any], list[Any], str | None] | None,
) -> None:
    """Send the other processes of a multi-process train job (:func:`follow_train_job`) the
    config, pairs, tagged responses and checkpoint to resume from (if any) to train on, or None
    when the job stopped before training: all train on what the main process read, even while
    labels change."""
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    if PartialState().num_processes > 1:
        broadcast_object_list([work])


register_job_kind(
    JobKind(
        "train", run_train, follow=follow_train_job, check=check_train_job, run_dir_key="output_dir"
    )
)
