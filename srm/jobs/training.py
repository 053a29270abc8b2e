"""Train jobs: train on a store dataset's corrected pairs, register the model with the pairs it
trained on and, with ``score_after``, score the dataset with it (:func:`run_train`); under
``accelerate launch`` or ``torchrun`` the other processes train beside the main one
(:func:`follow_train_job`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from srm.config import merge_train_config
from srm.jobs.creating import JOB_KEYS
from srm.jobs.run import JobRun
from srm.jobs.scoring import score_run
from srm.jobs.watching import get_job
from srm.store import effective_pairs, record_training_pairs, register_model, tagged_sentences

if TYPE_CHECKING:
    from srm.sigterm import StopRequest

log = logging.getLogger(__name__)

#: Share of a train job's progress bar spent training when it scores the dataset afterwards.
TRAIN_SHARE = 0.9


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
