"""The out-of-fold label audit: which labels does a model that never saw them disagree with?

A model trained on a flipped label has fitted it, and then agrees with it: that is why every
label-noise method (confident learning, Northcutt et al., arXiv 1911.00068) judges a label
with *out-of-sample* predictions. The audit splits a dataset into ``folds`` by prompt (pairs
that share a prompt stay together, so a near-copy in the training folds cannot vouch for a
pair), trains one model per fold on the other folds with :func:`srm.train.train`, and scores
the held-out fold with :func:`srm.score.score_pairs`. Every pair then has one margin from a
model that did not train on it.

    >>> folds = assign_folds([p.prompt for p in pairs], folds=5, seed=0)
    >>> result = audit_pairs(pairs, recipe, folds=5, run_dir=Path("runs/audit"))
    >>> result.margins["pair-17"]          # chosen minus rejected, out of fold

This module knows no store: the audit job (:mod:`srm.jobs.auditing`) passes ``on_fold`` to
save each finished fold in one transaction, and ``bench/noise.py`` calls it on a file.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from srm.config import CHECKPOINTS_DIR, TrainConfig
from srm.data import PreferencePair
from srm.records import PairScores

log = logging.getLogger(__name__)

#: Folds when none are asked for: 5, as cross-validated confident learning uses.
DEFAULT_FOLDS = 5
#: The project's default recipe (the bundled model's); when it is missing (an installed
#: package without the repository), TrainConfig's defaults.
DEFAULT_RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "default.toml"
#: Seconds per optimizer step of ``batch_size`` pairs at ``max_length`` tokens on a 2-core CPU,
#: per named backbone, for the estimate shown before an audit starts when the store has no
#: finished run to measure by: the default recipe (MiniLM fully fine-tuned) took 1,979 s for
#: 800 steps on two shared cores, about 2.5 s a step; LoRA on idle cores about 1.4 s.
SECONDS_PER_STEP = {"minilm": 2.0, "smollm2": 8.0, "tiny": 0.02}
#: Seconds to score one pair, per backbone, for the same estimate (whole responses, 512 tokens).
SECONDS_PER_SCORED_PAIR = {"minilm": 0.15, "smollm2": 1.0, "tiny": 0.002}

#: ``progress(fold, step, total_steps, message)``: fold counts from 0.
AuditProgress = Callable[[int, int, int, str], None]


class AuditError(ValueError):
    """The audit cannot run as asked; the message says what to change."""


def default_recipe() -> TrainConfig:
    """The recipe an audit trains each fold with unless told otherwise."""
    return TrainConfig.from_toml(DEFAULT_RECIPE) if DEFAULT_RECIPE.is_file() else TrainConfig()


def assign_folds(prompts: Sequence[str], folds: int, seed: int = 0) -> list[int]:
    """The fold (``0 .. folds-1``) of each item, from its prompt: items with the same prompt
    share a fold. Deterministic by ``seed`` and independent of the items' order: prompts are
    ordered by a hash of (seed, prompt) and each goes, with all its items, to the fold that
    has fewest items so far, so folds differ in size by at most one prompt's items.

    >>> assign_folds(["a", "b", "a", "c"], folds=2)
    [0, 1, 0, 1]
    """
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise AuditError(f"folds: got {folds!r}; use 2 or more")
    groups: dict[str, list[int]] = {}
    for i, prompt in enumerate(prompts):
        groups.setdefault(prompt, []).append(i)
    if len(groups) < folds:
        raise AuditError(
            f"folds: {folds} folds need at least {folds} distinct prompts, and the data has "
            f"{len(groups)}; use fewer folds or more pairs"
        )

    def key(prompt: str) -> str:
        return hashlib.sha256(f"{seed}\x00{prompt}".encode()).hexdigest()

    sizes = [0] * folds
    assigned = [0] * len(prompts)
    for prompt in sorted(groups, key=key):
        fold = min(range(folds), key=lambda f: (sizes[f], f))
        for i in groups[prompt]:
            assigned[i] = fold
        sizes[fold] += len(groups[prompt])
    return assigned


@dataclass(frozen=True)
class FoldResult:
    """One finished fold: the model trained without it, what it trained on, its scores."""

    fold: int
    model_dir: Path
    config: TrainConfig
    trained_on: list[str]
    """Ids of the pairs the fold's model trained on (every other fold's labelled pairs)."""
    scores: list[PairScores]
    """The held-out fold's pairs as imported, scored by that model."""
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class AuditResult:
    """What :func:`audit_pairs` did: the folds it finished now, whether it stopped early."""

    folds: int
    fold_of: dict[str, int]
    finished: list[FoldResult] = field(default_factory=list)
    interrupted: bool = False

    @property
    def margins(self) -> dict[str, float]:
        """Out-of-fold margin (chosen minus rejected, as imported) of every pair scored now."""
        return {r.id: r.chosen.score - r.rejected.score for f in self.finished for r in f.scores}


def fold_config(recipe: TrainConfig, run_dir: Path, fold: int) -> TrainConfig:
    """The recipe a fold trains with: the same, writing to ``run_dir/fold-N``. A fold saves
    a resumable checkpoint every 50 steps unless the recipe says otherwise, so a killed audit
    loses at most that much of the fold under way."""
    save_every = recipe.save_every or 50
    return recipe.replace(output_dir=str(run_dir / f"fold-{fold}"), save_every=save_every)


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The newest resumable checkpoint of a run directory, if any."""
    found = sorted((output_dir / CHECKPOINTS_DIR).glob("step-*"))
    return found[-1] if found else None


def audit_pairs(
    imported: Sequence[PreferencePair],
    recipe: TrainConfig,
    *,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
    run_dir: str | os.PathLike[str],
    training: Sequence[PreferencePair | None] | None = None,
    skip: Collection[int] = (),
    on_fold: Callable[[FoldResult], None] | None = None,
    progress: AuditProgress | None = None,
    stop: Callable[[], bool] | None = None,
    batch_size: int = 16,
    device: str = "cpu",
    show_progress: bool = False,
) -> AuditResult:
    """Audit ``imported`` pairs: fold by prompt, train a model per fold on the others, score
    the held-out fold. ``training[i]`` is pair ``i`` as training should see it (swapped, or
    ``None`` to leave it out: a tie or a discard); default: as imported.

    Folds in ``skip`` (finished by an earlier run of the same audit) are not run again. A fold
    whose run directory holds a resumable checkpoint continues from it. ``on_fold`` gets each
    fold as it finishes, before the next starts (the job saves it then); ``stop()`` is asked
    between micro-batches, and a stop leaves the fold under way resumable.
    """
    from srm.checkpoint import load
    from srm.score import score_pairs
    from srm.train import train

    if training is None:
        training = list(imported)
    if len(training) != len(imported):
        raise AuditError(f"training: {len(training)} pairs for {len(imported)} imported")
    ids = [p.id for p in imported]
    if len(set(ids)) != len(ids):
        raise AuditError("pairs: ids repeat; give every pair its own id")
    assigned = assign_folds([p.prompt for p in imported], folds, seed)
    result = AuditResult(folds, dict(zip(ids, assigned, strict=True)))
    run_path = Path(run_dir)
    for fold in range(folds):
        if fold in skip:
            continue
        cfg = fold_config(recipe, run_path, fold)
        train_pairs = [
            t for t, f in zip(training, assigned, strict=True) if f != fold and t is not None
        ]
        held_out = [p for p, f in zip(imported, assigned, strict=True) if f == fold]
        if not train_pairs:
            raise AuditError(f"fold {fold}: no labelled pair outside it to train on")
        resume = latest_checkpoint(Path(cfg.output_dir))
        log.info(
            "audit fold %d/%d: training on %d pairs, %d held out%s",
            fold + 1,
            folds,
            len(train_pairs),
            len(held_out),
            f" (resuming from {resume})" if resume else "",
        )

        def on_step(step: int, total: int, metrics: dict[str, float], fold: int = fold) -> None:
            if progress is not None:
                progress(fold, step, total, f"fold {fold + 1}/{folds}: step {step}/{total}")

        trained = train(
            cfg,
            train_pairs,
            progress=on_step,
            resume_from=resume,
            show_progress=show_progress,
            stop=stop,
        )
        if trained.interrupted:
            result.interrupted = True
            return result
        if progress is not None:
            progress(fold, trained.steps, trained.total_steps, f"fold {fold + 1}/{folds}: scoring")
        model = load(trained.output_dir, device=device)
        scores = score_pairs(model, held_out, batch_size=batch_size)
        del model
        done = FoldResult(
            fold=fold,
            model_dir=Path(trained.output_dir),
            config=cfg,
            trained_on=[p.id for p in train_pairs],
            scores=scores,
            metrics={**trained.train_metrics, "steps": trained.steps, "seconds": trained.seconds},
        )
        if on_fold is not None:
            on_fold(done)
        result.finished.append(done)
        if stop is not None and stop():
            result.interrupted = fold < folds - 1
            return result
    return result


def estimate_seconds(
    n_pairs: int,
    recipe: TrainConfig,
    folds: int,
    seconds_per_step: float | None = None,
) -> float:
    """Roughly how long an audit takes: ``folds`` trainings of the recipe's steps, and every
    pair scored once. ``seconds_per_step`` is a measured figure (a finished run's seconds per
    step in the store); without one, :data:`SECONDS_PER_STEP` for a named backbone, scaled by
    batch size and length from the default recipe's 8 pairs of 128 tokens."""
    backbone = recipe.model.backbone
    if seconds_per_step is None:
        base = SECONDS_PER_STEP.get(backbone, SECONDS_PER_STEP["minilm"] * 4)
        seconds_per_step = base * recipe.batch_size / 8 * recipe.model.max_length / 128
    steps = recipe.max_steps or max(
        1, int(recipe.epochs * n_pairs * (folds - 1) / folds / recipe.batch_size)
    )
    per_pair = SECONDS_PER_SCORED_PAIR.get(backbone, SECONDS_PER_SCORED_PAIR["minilm"] * 4)
    return folds * steps * seconds_per_step * recipe.grad_accum + n_pairs * per_pair


def describe_duration(seconds: float) -> str:
    """``"about 1 h 20 min"``, ``"about 3 min"``, ``"under a minute"``."""
    minutes = round(seconds / 60)
    if minutes < 1:
        return "under a minute"
    if minutes < 60:
        return f"about {minutes} min"
    return f"about {minutes // 60} h {minutes % 60:02d} min"
