"""Scoring a store dataset with a model into the store's scores, a chunk of pairs per
transaction: what score jobs (:func:`run_score`), a train job's scoring afterwards and
``srm score --dataset`` run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from srm.jobs.run import JobRun
from srm.store import (
    Model,
    StoreError,
    dataset_id,
    imported_pairs,
    register_model,
    save_scores,
)

if TYPE_CHECKING:
    from srm.model import SentenceRewardModel


#: Pairs scored and saved per transaction: a killed job leaves whole chunks, never half of one.
SCORE_CHUNK = 64
#: Pairs per forward pass when scoring (inference needs far less memory than training).
SCORE_BATCH_SIZE = 16


def score_dataset(
    sessions: sessionmaker[Session],
    dataset: str,
    model_id: int,
    model: SentenceRewardModel,
    *,
    batch_size: int = SCORE_BATCH_SIZE,
    progress: Callable[[int, int], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> tuple[int, int]:
    """Score every pair of ``dataset`` (as imported) with ``model`` into the store as model
    ``model_id``, :data:`SCORE_CHUNK` pairs per transaction, so a process killed halfway leaves
    whole chunks saved. ``progress(done, total)`` follows every batch; ``stop()`` is asked
    before each chunk. Returns (pairs scored and saved, pairs in the dataset).
    """
    from srm.score import score_pairs

    with sessions() as session:
        pairs = imported_pairs(session, dataset)
    total, done = len(pairs), 0
    for start in range(0, total, SCORE_CHUNK):
        if stop is not None and stop():
            break
        chunk = pairs[start : start + SCORE_CHUNK]

        def chunk_progress(n: int, _total: int, before: int = done) -> None:
            if progress is not None:
                progress(before + n, total)

        records = score_pairs(model, chunk, batch_size=batch_size, progress=chunk_progress)
        with sessions.begin() as session:
            save_scores(session, model_id, dataset, records)
        done += len(chunk)
    return done, total


@dataclass(frozen=True)
class CheckpointScores:
    """What :func:`score_checkpoint` did: the checkpoint's model id in the store, and how many
    of the dataset's pairs it scored."""

    model_id: int
    checkpoint_dir: Path
    done: int
    total: int


def score_checkpoint(
    sessions: sessionmaker[Session],
    dataset: str,
    checkpoint_dir: str | Path,
    *,
    device: str = "auto",
    batch_size: int = SCORE_BATCH_SIZE,
    progress: Callable[[int, int], None] | None = None,
) -> CheckpointScores:
    """Register the checkpoint at ``checkpoint_dir`` as a model of the store (with the config
    it was trained with) and score every pair of ``dataset`` with it (:func:`score_dataset`):
    what ``srm score --dataset NAME --model DIR`` does.

    An unknown dataset (:class:`~srm.store.StoreError`, naming the known ones) and a bad
    checkpoint (:class:`~srm.checkpoint.CheckpointError`) are refused before anything is
    written or a model is loaded to no end.
    """
    from srm.checkpoint import load, read_info
    from srm.devices import resolve_device

    with sessions() as session:
        dataset_id(session, dataset)
    path = Path(checkpoint_dir).resolve()
    info = read_info(path)
    model = load(path, device=resolve_device(device))
    with sessions.begin() as session:
        registered = register_model(
            session,
            path.name,
            str(path),
            config=(info.training or {}).get("config") or {"model": info.model.to_dict()},
        )
        model_id = registered.id
    done, total = score_dataset(
        sessions, dataset, model_id, model, batch_size=batch_size, progress=progress
    )
    return CheckpointScores(model_id, path, done, total)


def run_score(run: JobRun) -> tuple[str, str]:
    """A score job: score every pair of the job's dataset, as imported, with the job's model,
    :data:`SCORE_CHUNK` pairs per transaction."""
    return score_run(
        run,
        run.model_id,
        device=str(run.config.get("device", "auto")),
        batch_size=int(run.config.get("batch_size", SCORE_BATCH_SIZE)),
    )


def score_run(
    run: JobRun,
    model_id: int | None,
    *,
    device: str = "auto",
    batch_size: int = SCORE_BATCH_SIZE,
    start: float = 0.0,
) -> tuple[str, str]:
    """Score job ``run``'s dataset with model ``model_id``, its progress running from
    ``start`` to 1 (a train job scores after training). A cancel or SIGTERM stops it after the
    chunk under way."""
    from srm.checkpoint import load
    from srm.devices import resolve_device

    sessions, report = run.sessions, run.report

    if report(0, 0, start, "loading the model", force=True):
        return "cancelled", "cancelled before scoring started"
    with sessions() as session:
        model_row = session.get(Model, model_id) if model_id is not None else None
        if model_row is None:
            raise StoreError(f"model {model_id} is not in the store; create a new job")
        checkpoint_dir = model_row.checkpoint_dir
    model = load(checkpoint_dir, device=resolve_device(device))

    def progress(done: int, total: int) -> None:
        report(done, total, start + (1 - start) * done / total, f"scored {done}/{total} pairs")

    done, total = score_dataset(
        sessions,
        run.dataset,
        model_id,
        model,
        batch_size=batch_size,
        progress=progress,
        stop=run.stop,
    )
    if done < total:
        return "cancelled", f"{run.stopped_by()} after scoring {done}/{total} pairs (saved)"
    report(done, total, 1.0, f"scored {done}/{total} pairs", force=True)
    return "succeeded", f"scored {done} pairs with model {model_id}"
