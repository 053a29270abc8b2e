"""The jobs the pages start and watch (training, scoring): where a job can run, starting,
resuming and cancelling one (and scoring a dataset just imported), and reading recent jobs,
a dataset's unfinished ones and a job's details, as plain :class:`rows.JobRow` values. The
pages reach these through ``services``, which re-exports them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from srm import store
from webapp import auth
from webapp.models_service import active_model
from webapp.rows import JobRow, ModelInfo
from webapp.store_access import demo_mode, read_session, write

#: Where the Train page can run a job: its choices, and the launcher each one means.
RUN_ON = {"this machine": "local", "any worker": "worker", "the submit command": "command"}


def run_on_choices() -> list[str]:
    """The Train page's "Run on" choices: the submit command only when one is configured."""
    from srm.jobs import submit_command

    return [c for c, launcher in RUN_ON.items() if launcher != "command" or submit_command()]


def _job_row(job: store.TrainingJob) -> JobRow:
    from srm.jobs import job_place

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
        job_place(job),
    )


def jobs(url: str, limit: int = 50) -> list[JobRow]:
    """Recent jobs, newest first. The Train page polls this every few seconds from every open
    tab, so it reads only: dead jobs (no heartbeat, or a process gone) are failed where jobs
    are created, and here only when a listed job is unfinished, at most every
    ``srm.jobs.REAP_INTERVAL`` seconds per app process."""
    from srm import jobs as srm_jobs

    def read() -> list[JobRow]:
        with read_session(url) as session:
            return [_job_row(j) for j in srm_jobs.list_jobs(session, limit)]

    rows = read()
    unfinished = any(not row.finished for row in rows)
    if not unfinished or demo_mode() or not srm_jobs.reap_due(url, srm_jobs.REAP_INTERVAL):
        return rows
    with write(url) as session:
        reaped = srm_jobs.reap_dead_jobs(session)
    return read() if reaped else rows


def start_train_job(
    url: str,
    dataset: str,
    config: dict[str, Any],
    run_on: str = "this machine",
    worker_tag: str | None = None,
    *,
    sentence_tags: bool = False,
    continue_active: bool = False,
) -> int:
    """Create a training job on the dataset's effective labels (with ``sentence_tags``, also
    on its annotators' sentence tags, weighted by the config's ``step_weight``) and start it
    where ``run_on`` (a :data:`RUN_ON` choice) says: a process here, a queued job for a worker
    (tagged ``worker_tag``, if given), or the submit command. The active model is the new
    one's parent; with ``continue_active`` the run starts from its weights and architecture
    (:func:`srm.jobs.create_train_job`'s ``continue_parent``), else from the backbone."""
    from srm import jobs as srm_jobs

    auth.require_admin("Training")
    config = dict(config)
    score_after = bool(config.pop("score_after", True))
    with write(url) as session:
        active = store.get_active_model(session)
        created = srm_jobs.create_train_job(
            session,
            dataset=dataset,
            config=config,
            parent_model_id=active.id if active else None,
            score_after=score_after,
            launcher=RUN_ON[run_on],
            worker_tag=(worker_tag or "").strip() or None,
            sentence_tags=sentence_tags,
            continue_parent=continue_active,
        )
        job_id, launcher = created.id, created.launcher
    return _start(url, job_id, launcher)


def continuable(model: ModelInfo | None) -> bool:
    """Whether a run can start from ``model``'s weights: a registered model whose checkpoint
    is there to read."""
    from srm.checkpoint import CONFIG_FILE, model_dir

    return (
        model is not None
        and model.id is not None
        and (model_dir(Path(model.path)) / CONFIG_FILE).is_file()
    )


def trained_finetune(model: ModelInfo) -> str | None:
    """How ``model`` was fine-tuned (``lora``, ``full`` or ``heads``, from its checkpoint),
    the recipe a run continuing it starts with; ``None`` when its checkpoint does not say."""
    from srm.checkpoint import CheckpointError, read_info

    try:
        training = read_info(model.path).training or {}
    except CheckpointError:
        return None
    return (training.get("config") or {}).get("finetune")


def resume_job(url: str, job_id: int) -> int:
    """Resume stopped train job ``job_id`` as a new job from its newest checkpoint
    (:func:`srm.jobs.resume_train_job`), started where the stopped one ran; the new job's id."""
    from srm import jobs as srm_jobs

    auth.require_admin("Resuming a job")
    with write(url) as session:
        created = srm_jobs.resume_train_job(session, job_id)
        new_id, launcher = created.id, created.launcher
    return _start(url, new_id, launcher)


def resumable(url: str, job: JobRow) -> bool:
    """Whether ``job`` can be resumed (:func:`srm.jobs.resume_point`): a read."""
    from srm import jobs as srm_jobs

    if job.kind != "train" or job.status not in srm_jobs.RESUMABLE_STATUSES:
        return False
    with read_session(url) as session:
        row = session.get(store.TrainingJob, job.id)
        return row is not None and not isinstance(srm_jobs.resume_point(session, row), str)


def start_score_job(
    url: str,
    dataset: str,
    model_id: int,
    run_on: str = "this machine",
    worker_tag: str | None = None,
) -> int:
    """Score every pair of the dataset with the model, as a job (progress in the store),
    started where ``run_on`` says, as :func:`start_train_job` does."""
    from srm import jobs as srm_jobs

    auth.require_admin("Scoring a dataset")
    with write(url) as session:
        created = srm_jobs.create_score_job(
            session,
            dataset=dataset,
            model_id=model_id,
            launcher=RUN_ON[run_on],
            worker_tag=(worker_tag or "").strip() or None,
        )
        job_id, launcher = created.id, created.launcher
    return _start(url, job_id, launcher)


def _start(url: str, job_id: int, launcher: str) -> int:
    """Start a job just created: a process here, or hand it on (a worker claims it, or the
    submit command is run)."""
    from srm import jobs as srm_jobs

    if launcher == "local":
        srm_jobs.launch(url, job_id)
    else:
        srm_jobs.start(url, job_id)
    return job_id


def cancel_job(url: str, job_id: int) -> None:
    from srm import jobs as srm_jobs

    auth.require_admin("Cancelling a job")
    with write(url) as session:
        srm_jobs.request_cancel(session, job_id)


def job_details(url: str, job_id: int) -> tuple[list[dict], str]:
    """The job's metrics rows (training curves) and the tail of its log."""
    from srm import jobs as srm_jobs

    with read_session(url) as session:
        row = session.get(store.TrainingJob, job_id)
        if row is None:
            return [], ""
        return srm_jobs.job_metrics(row), srm_jobs.log_tail(row)


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
