"""The out-of-fold label audit: folds by prompt (srm.audit), its store records
(srm.store.audits, on SQLite and PostgreSQL), the audit job with cancel and resume
(srm.jobs.auditing), and ``srm audit``."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, update

import srm.jobs.auditing
from srm.audit import AuditError, assign_folds, estimate_seconds
from srm.cli import main
from srm.config import ConfigError, TrainConfig
from srm.data import PreferencePair, load_pairs
from srm.jobs import create_audit_job, run_job
from srm.store import (
    Audit,
    AuditFold,
    AuditScore,
    ModelTrainingPair,
    Pair,
    StoreError,
    TrainingJob,
    annotation_queue,
    audit_summaries,
    create_audit,
    get_pair,
    import_pairs,
    latest_audit,
    make_sessionmaker,
    open_store,
    record_label,
    register_model,
    save_audit_fold,
    save_scores,
)
from tests.conftest import scores_of

#: Each fold trains in about a second on a CPU.
TINY = {
    "model": {"backbone": "tiny", "d": 16, "max_length": 64, "score_max_length": 64},
    "max_steps": 2,
    "batch_size": 2,
    "finetune": "heads",
    "device": "cpu",
    "log_every": 1,
}
N_PAIRS = 12


# ------------------------------------------------------------------------------ folds
def test_pairs_sharing_a_prompt_share_a_fold() -> None:
    prompts = [f"prompt {i % 7}" for i in range(40)]
    folds = assign_folds(prompts, folds=3, seed=1)
    by_prompt: dict[str, set[int]] = {}
    for prompt, fold in zip(prompts, folds, strict=True):
        by_prompt.setdefault(prompt, set()).add(fold)
    assert all(len(f) == 1 for f in by_prompt.values())
    assert set(folds) == {0, 1, 2}


def test_folds_are_deterministic_by_seed_and_independent_of_order() -> None:
    prompts = [f"question {i}" for i in range(50)]
    first = assign_folds(prompts, folds=5, seed=7)
    assert assign_folds(prompts, folds=5, seed=7) == first
    shuffled = prompts[:]
    random.Random(0).shuffle(shuffled)
    again = dict(zip(shuffled, assign_folds(shuffled, folds=5, seed=7), strict=True))
    assert [again[p] for p in prompts] == first
    assert assign_folds(prompts, folds=5, seed=8) != first
    sizes = [first.count(f) for f in range(5)]
    assert max(sizes) - min(sizes) <= 1


def test_fold_errors_say_what_to_change() -> None:
    with pytest.raises(AuditError, match="folds: got 1; use 2 or more"):
        assign_folds(["a", "b"], folds=1)
    with pytest.raises(AuditError, match="at least 3 distinct prompts, and the data has 2"):
        assign_folds(["a", "b", "a"], folds=3)


def test_estimate_grows_with_folds_and_steps() -> None:
    recipe = TrainConfig(max_steps=100)
    assert estimate_seconds(1000, recipe, 5) > estimate_seconds(1000, recipe, 3)
    assert estimate_seconds(1000, recipe, 5, seconds_per_step=2.0) == pytest.approx(
        5 * 100 * 2.0 + 1000 * 0.15
    )


# ------------------------------------------------------------------------------ the store
@pytest.fixture
def two_models(session_factory, make_store) -> tuple[dict[str, int], int, int]:
    ids = make_store(6)
    with session_factory.begin() as s:
        a = register_model(s, "fold a", "/runs/a").id
        b = register_model(s, "fold b", "/runs/b").id
    return ids, a, b


def new_audit(session_factory, folds: int = 2) -> int:
    with session_factory.begin() as s:
        return create_audit(s, "d", folds=folds, seed=0, config={}, run_dir="/runs/audit").id


def test_saving_a_fold_twice_leaves_one_row_per_pair(session_factory, two_models) -> None:
    _, a, _ = two_models
    audit_id = new_audit(session_factory)
    scores = [scores_of("p0", 0.0, 1.0), scores_of("p1", 2.0, 0.0)]
    for _ in range(2):
        with session_factory.begin() as s:
            save_audit_fold(s, audit_id, 0, a, trained_on=["p2", "p3"], scores=scores)
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(AuditScore)) == 2
        assert s.scalar(select(func.count()).select_from(AuditFold)) == 1
        assert s.scalar(select(func.count()).select_from(ModelTrainingPair)) == 2
        assert s.get(Audit, audit_id).status == "running"
        assert latest_audit(s, "d") is None  # not complete: the queue does not use it


def test_a_second_audit_never_mixes_with_the_first(session_factory, two_models) -> None:
    ids, a, b = two_models
    first, second = new_audit(session_factory), new_audit(session_factory)
    with session_factory.begin() as s:
        save_audit_fold(s, first, 0, a, trained_on=["p2"], scores=[scores_of("p0", 5.0, 0.0)])
        save_audit_fold(s, first, 1, b, trained_on=["p0"], scores=[scores_of("p2", 0.0, 5.0)])
        save_audit_fold(s, second, 0, a, trained_on=["p2"], scores=[scores_of("p0", 0.0, 1.0)])
    with session_factory() as s:
        assert latest_audit(s, "d") == first  # the second is not complete
        rows = s.execute(select(AuditScore.audit_id, AuditScore.pair_id, AuditScore.chosen_score))
        assert sorted(rows) == sorted(
            [(first, ids["p0"], 5.0), (first, ids["p2"], 0.0), (second, ids["p0"], 0.0)]
        )
        queue = annotation_queue(s, "d", None, audit_id=first, limit=3)
        assert [(p.external_id, d) for p, d in queue] == [("p2", 5.0), ("p0", -5.0), ("p1", None)]
        summaries = {a.id: a for a in audit_summaries(s, "d")}
        assert (summaries[first].folds_done, summaries[first].status) == (2, "complete")
        assert (summaries[second].folds_done, summaries[second].scored) == (1, 1)


def test_a_fold_cannot_judge_a_pair_its_model_trained_on(session_factory, two_models) -> None:
    _, a, _ = two_models
    audit_id = new_audit(session_factory)
    with pytest.raises(StoreError, match="trained on 1 of the pairs it would judge"):
        with session_factory.begin() as s:
            save_audit_fold(
                s, audit_id, 0, a, trained_on=["p0", "p1"], scores=[scores_of("p0", 1.0, 0.0)]
            )
    with session_factory() as s:  # nothing half-written
        assert s.scalar(select(func.count()).select_from(AuditScore)) == 0
        assert s.scalar(select(func.count()).select_from(ModelTrainingPair)) == 0


def test_the_queue_switches_from_model_scores_to_audit_margins(session_factory, two_models) -> None:
    ids, a, b = two_models
    names = [f"p{i}" for i in range(6)]
    with session_factory.begin() as s:
        # The in-sample model disagrees most with p0..., the audit most with p5...
        save_scores(s, a, "d", [scores_of(n, -float(6 - i), 0.0) for i, n in enumerate(names)])
        record_label(s, ids["p3"], "ana", "swap", expected_event_id=None)
    with session_factory() as s:
        by_model = [p.external_id for p, _ in annotation_queue(s, "d", a, limit=6)]
    assert by_model[:3] == ["p0", "p1", "p2"]
    audit_id = new_audit(session_factory)
    with session_factory.begin() as s:
        first, second = names[:3], names[3:]
        save_audit_fold(
            s, audit_id, 0, a, trained_on=second, scores=[scores_of(n, 0.0, 0.0) for n in first]
        )
        save_audit_fold(
            s,
            audit_id,
            1,
            b,
            trained_on=first,
            scores=[scores_of(n, -float(i), 0.0) for i, n in enumerate(second, start=3)],
        )
    with session_factory() as s:
        assert latest_audit(s, "d") == audit_id
        queue = annotation_queue(s, "d", a, audit_id=audit_id, limit=6)
    # p5 and p4 (labels as imported) disagree by 5 and 4; p3 was swapped, so its -3 margin
    # now agrees with the label by 3; the first fold's zero margins sit between.
    assert [(p.external_id, d) for p, d in queue] == [
        ("p5", 5.0),
        ("p4", 4.0),
        ("p0", 0.0),
        ("p1", 0.0),
        ("p2", 0.0),
        ("p3", -3.0),
    ]


# ------------------------------------------------------------------------------ the job
@pytest.fixture(autouse=True)
def _runs_in_tmp_path(runs_in_tmp_path) -> None:
    """Every job test keeps its run directories in tmp_path."""


@pytest.fixture
def pairs(sample_path: Path) -> list[PreferencePair]:
    sample = load_pairs(sample_path)[:N_PAIRS]
    # Two pairs sharing a prompt: they must land in one fold.
    return [*sample, PreferencePair("twin", sample[0].prompt, "Sure.", "No.")]


@pytest.fixture
def sessions(db_url: str, pairs: list[PreferencePair]):
    factory = make_sessionmaker(open_store(db_url))
    with factory.begin() as s:
        import_pairs(s, "sample", pairs)
        record_label(
            s, get_pair(s, "sample", pairs[1].id).id, "ana", "discard", expected_event_id=None
        )
    return factory


def new_audit_job(sessions, **kwargs) -> tuple[int, int]:
    with sessions.begin() as s:
        job = create_audit_job(s, **({"dataset": "sample", "folds": 2, "config": TINY} | kwargs))
        return job.id, job.config["audit_id"]


def provenance_violations(sessions, audit_id: int) -> int:
    """Audit scores whose model is recorded to have trained on the pair it scored."""
    with sessions() as s:
        return s.scalar(
            select(func.count())
            .select_from(AuditScore)
            .join(
                ModelTrainingPair,
                (ModelTrainingPair.model_id == AuditScore.model_id)
                & (ModelTrainingPair.pair_id == AuditScore.pair_id),
            )
            .where(AuditScore.audit_id == audit_id)
        )


def test_an_audit_scores_every_pair_out_of_fold(sessions, db_url: str, pairs) -> None:
    job_id, audit_id = new_audit_job(sessions)
    assert run_job(db_url, job_id) == "succeeded"
    with sessions() as s:
        audit = s.get(Audit, audit_id)
        assert audit.status == "complete" and audit.config["max_steps"] == 2
        assert "output_dir" not in audit.config
        scores = s.execute(select(AuditScore.pair_id, AuditScore.fold, AuditScore.model_id)).all()
        folds = {f.fold: f for f in s.scalars(select(AuditFold))}
        twin = get_pair(s, "sample", "twin").id
        first = get_pair(s, "sample", pairs[0].id).id
        discarded = get_pair(s, "sample", pairs[1].id).id
        trained = {
            m: set(
                s.scalars(select(ModelTrainingPair.pair_id).where(ModelTrainingPair.model_id == m))
            )
            for m in (folds[0].model_id, folds[1].model_id)
        }
        job = s.get(TrainingJob, job_id)
    assert job.status == "succeeded" and job.progress == 1.0
    assert len(scores) == len(pairs) and len({p for p, _, _ in scores}) == len(pairs)
    fold_of = {p: f for p, f, _ in scores}
    assert fold_of[twin] == fold_of[first]
    assert all(folds[f].model_id == m for _, f, m in scores)
    assert provenance_violations(sessions, audit_id) == 0
    # Each fold's model trained on the other fold's pairs, except the discarded one.
    for fold, model_id in ((0, folds[0].model_id), (1, folds[1].model_id)):
        others = {p for p, f, _ in scores if f != fold and p != discarded}
        assert trained[model_id] == others
        assert folds[fold].n_held_out == sum(f == fold for _, f, _ in scores)


def test_a_cancelled_audit_keeps_its_folds_and_resumes(sessions, db_url: str, monkeypatch) -> None:
    job_id, audit_id = new_audit_job(sessions)
    original = srm.jobs.auditing.save_audit_fold

    def save_then_cancel(session, *args, **kwargs) -> None:
        original(session, *args, **kwargs)
        # What `srm jobs cancel` writes; here in the fold's own transaction (SQLite has one
        # writer at a time).
        session.execute(
            update(TrainingJob).where(TrainingJob.id == job_id).values(cancel_requested=True)
        )

    monkeypatch.setattr(srm.jobs.auditing, "save_audit_fold", save_then_cancel)
    monkeypatch.setattr(srm.jobs.run, "PROGRESS_INTERVAL", 0.0)
    assert run_job(db_url, job_id) == "cancelled"
    with sessions() as s:
        assert s.get(Audit, audit_id).status == "running"
        kept = {f.fold: f.model_id for f in s.scalars(select(AuditFold))}
        assert "resume it with srm audit --resume" in s.get(TrainingJob, job_id).message
    assert list(kept) == [0]

    monkeypatch.setattr(srm.jobs.auditing, "save_audit_fold", original)
    with pytest.raises(StoreError, match="resumes with its own dataset"):
        with sessions.begin() as s:
            create_audit_job(s, dataset="sample", resume=audit_id)
    with sessions.begin() as s:
        resumed = create_audit_job(s, resume=audit_id)
        assert resumed.config["audit_id"] == audit_id
        resumed_id = resumed.id
    assert run_job(db_url, resumed_id) == "succeeded"
    with sessions() as s:
        folds = {f.fold: f.model_id for f in s.scalars(select(AuditFold))}
        assert s.get(Audit, audit_id).status == "complete"
        n_scores = s.scalar(select(func.count()).select_from(AuditScore))
        n_pairs = s.scalar(select(func.count()).select_from(Pair))
    assert folds[0] == kept[0]  # the finished fold was not trained again
    assert n_scores == n_pairs
    assert provenance_violations(sessions, audit_id) == 0
    with pytest.raises(StoreError, match="is complete; start a new audit"):
        with sessions.begin() as s:
            create_audit_job(s, resume=audit_id)


def test_an_audit_job_refuses_bad_settings_before_writing(sessions) -> None:
    with pytest.raises(ConfigError, match="output_dir"):
        new_audit_job(sessions, config={"output_dir": "x"})
    with pytest.raises(ConfigError, match="lr"):
        new_audit_job(sessions, config={"lr": -1.0})
    with pytest.raises(ConfigError, match="distinct prompts"):
        new_audit_job(sessions, folds=40)
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Audit)) == 0
        assert s.scalar(select(func.count()).select_from(TrainingJob)) == 0


def test_srm_audit_runs_lists_and_prints_the_top(sessions, db_url: str) -> None:
    args = ["audit", "--db", db_url, "--dataset", "sample", "--folds", "2", "--backbone"]
    args += ["tiny", "--max-steps", "2", "--batch-size", "2", "--device", "cpu"]
    args += ["--max-length", "64", "--score-max-length", "64", "--top", "3"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "Audit 1 of 'sample' runs as job 1" in result.output
    assert "succeeded: audit 1: 2/2 folds" in result.output
    assert "top 3" in result.output
    listed = CliRunner().invoke(main, ["audit", "--db", db_url, "--list"])
    assert listed.exit_code == 0, listed.output
    assert "1  sample  complete  2/2 folds" in listed.output
    both = CliRunner().invoke(main, ["audit", "--db", db_url, "--dataset", "x", "--resume", "1"])
    assert both.exit_code == 2 and "not both" in both.output
