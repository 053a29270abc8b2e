"""The store's schema, migrations, import and pair queries, on SQLite and PostgreSQL."""

from __future__ import annotations

import multiprocessing as mp
from dataclasses import replace
from datetime import datetime, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, inspect, select, text

from srm.data import PreferencePair
from srm.records import SentenceScore
from srm.store import (
    LABELS,
    Annotator,
    Base,
    LabelEvent,
    Model,
    PairFilter,
    Score,
    SentenceTag,
    StoreError,
    TrainingJob,
    annotation_queue,
    count_pairs,
    effective_pairs,
    get_active_model,
    get_pair,
    get_setting,
    import_pairs,
    label_state,
    label_summary,
    list_datasets,
    list_models,
    list_pairs,
    list_sources,
    make_engine,
    make_sessionmaker,
    margin_bounds,
    open_store,
    pair_disagreement,
    preferred_side,
    record_label,
    register_model,
    save_scores,
    scored_pairs,
    set_active_model,
    set_setting,
    undo_label,
    upgrade,
)
from srm.store.migrate import current_revision, head_revision
from tests.conftest import scores_of

ALL_TABLES = {
    "alembic_version",
    "datasets",
    "pairs",
    "annotators",
    "assignments",
    "login_attempts",
    "label_events",
    "sentence_tags",
    "models",
    "training_jobs",
    "scores",
    "settings",
    "model_training_pairs",
    "audits",
    "audit_folds",
    "audit_scores",
}


# ---------------------------------------------------------------------------- schema, migrations
def test_open_store_creates_schema_at_head(store_url: str) -> None:
    engine = open_store(store_url)
    assert current_revision(engine) == head_revision()
    assert set(inspect(engine).get_table_names()) == ALL_TABLES


def test_sqlite_pragmas(db_url: str) -> None:
    with make_engine(db_url).connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000


def test_migrations_match_the_orm_models(store_url: str) -> None:
    engine = open_store(store_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_reopening_is_a_no_op_and_keeps_rows(store_url: str, session_factory, make_pairs) -> None:
    with session_factory.begin() as s:
        import_pairs(s, "d", make_pairs(3))
    engine = open_store(store_url)
    with make_sessionmaker(engine)() as s:
        assert count_pairs(s) == 3


def test_a_store_made_by_the_first_migration_upgrades_with_its_rows(store_url: str) -> None:
    engine = make_engine(store_url)
    upgrade(engine, "0001")
    assert current_revision(engine) == "0001"
    assert set(inspect(engine).get_table_names()) == {"alembic_version", "datasets", "pairs"}
    created = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO datasets (id, name, source_file, imported_at) "
                "VALUES (1, 'old', '/data/old.jsonl', :t)"
            ),
            {"t": created},
        )
        conn.execute(
            text(
                "INSERT INTO pairs (dataset_id, external_id, prompt, chosen, rejected, source, "
                "margin, created_at) VALUES (1, :id, :p, :c, :r, :s, :m, :t)"
            ),
            [
                {"id": "a", "p": "Q?", "c": "Yes.", "r": "No.", "s": "hh", "m": 1.5, "t": created},
                {"id": "b", "p": "Q2?", "c": "Up.", "r": "Down.", "s": "", "m": None, "t": created},
            ],
        )

    engine = open_store(store_url)

    assert current_revision(engine) == head_revision()
    assert set(inspect(engine).get_table_names()) == ALL_TABLES
    session_factory = make_sessionmaker(engine)
    with session_factory() as s:
        assert [(d.name, d.source_file, d.n_pairs) for d in list_datasets(s)] == [
            ("old", "/data/old.jsonl", 2)
        ]
        rows = list_pairs(s, "old")
        assert [
            (p.external_id, p.prompt, p.chosen, p.rejected, p.source, p.margin, p.subset)
            for p in rows
        ] == [
            ("a", "Q?", "Yes.", "No.", "hh", 1.5, None),
            ("b", "Q2?", "Up.", "Down.", "", None, None),
        ]
        assert rows[0].created_at.replace(tzinfo=timezone.utc) == created
        assert [(p.label, p.last_event_id) for p in rows] == [(None, None), (None, None)]
    # The old rows take part in everything new: labels, and re-importing the same file.
    with session_factory.begin() as s:
        record_label(s, get_pair(s, "old", "b").id, "ana", "swap", expected_event_id=None)
        same = [
            PreferencePair("a", "Q?", "Yes.", "No.", "hh", 1.5, subset="chat"),
            PreferencePair("b", "Q2?", "Up.", "Down.", "", None),
        ]
        assert import_pairs(s, "old", same).added == 0
    with session_factory() as s:
        assert [p.chosen for p in effective_pairs(s, "old").pairs] == ["Yes.", "Down."]


def test_scores_from_before_one_prompt_per_pair_are_dropped_on_upgrade(store_url: str) -> None:
    """Migration 0004: scores made when the two sides could see different prompt tokens (and
    only the training length) are a stale cache; they go, the pairs and models stay. The rows
    are written in SQL, as revision 0003 had them (today's ORM classes have later columns)."""
    engine = make_engine(store_url)
    upgrade(engine, "0003")
    now = datetime(2026, 1, 2, tzinfo=timezone.utc)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO datasets (id, name, imported_at) VALUES (1, 'd', :t)"), {"t": now}
        )
        conn.execute(
            text(
                "INSERT INTO pairs (id, dataset_id, external_id, prompt, chosen, rejected, "
                "source, created_at) VALUES (:i, 1, :e, 'Q?', 'Yes.', 'No.', '', :t)"
            ),
            [{"i": i, "e": f"p{i}", "t": now} for i in (1, 2)],
        )
        conn.execute(
            text(
                "INSERT INTO models (id, name, checkpoint_dir, config, metrics, created_at) "
                "VALUES (1, 'm', '/runs/m', '{}', '{}', :t)"
            ),
            {"t": now},
        )
        conn.execute(
            text(
                "INSERT INTO scores (pair_id, model_id, chosen_score, rejected_score, "
                "chosen_detail, rejected_detail, created_at) VALUES (:p, 1, 1.0, 0.0, '{}', "
                "'{}', :t)"
            ),
            [{"p": p, "t": now} for p in (1, 2)],
        )
    engine = open_store(store_url)
    assert current_revision(engine) == head_revision()
    with make_sessionmaker(engine)() as s:
        assert s.scalar(select(func.count(Score.id))) == 0
        assert count_pairs(s) == 2 and [m.name for m in list_models(s)] == ["m"]


# ---------------------------------------------------------------------------- every table
def test_every_table_round_trips(session_factory, make_store) -> None:
    ids = make_store(2)
    with session_factory.begin() as s:
        event = record_label(s, ids["p0"], "ana", "swap", expected_event_id=None, note="wrong")
        s.add(
            SentenceTag(
                pair_id=ids["p0"],
                annotator_id=event.annotator_id,
                side="rejected",
                span_start=0,
                span_end=5,
                tag="bad",
                note="typo",
            )
        )
        base = register_model(s, "base", "/runs/base", config={"head": "sentence"})
        child = register_model(
            s, "child", "/runs/child", parent_id=base.id, metrics={"accuracy": 0.75}
        )
        s.add(
            TrainingJob(
                status="succeeded",
                dataset_id=get_pair(s, "d", "p0").dataset_id,
                config={"max_steps": 3},
                pid=4242,
                progress=1.0,
                log_path="/runs/child/train.log",
                error=None,
                model_id=child.id,
            )
        )
        sentence = SentenceScore(text="Yes", start=0, end=3, reward=0.5, weight=1.0)
        record = scores_of("p1", 0.5, -1.25)
        record = replace(record, chosen=replace(record.chosen, sentences=(sentence,)))
        assert save_scores(s, child.id, "d", [record]) == 1

    with session_factory() as s:
        (annotator,) = s.scalars(select(Annotator)).all()
        assert annotator.name == "ana"
        (event,) = s.scalars(select(LabelEvent)).all()
        assert (event.pair_id, event.seq, event.annotator.name, event.action, event.label) == (
            ids["p0"],
            1,
            "ana",
            "swap",
            "swap",
        )
        assert (event.note, event.undoes_event_id) == ("wrong", None)
        assert isinstance(event.created_at, datetime)
        (tag,) = s.scalars(select(SentenceTag)).all()
        assert (tag.pair_id, tag.annotator.name, tag.side, tag.span_start, tag.span_end) == (
            ids["p0"],
            "ana",
            "rejected",
            0,
            5,
        )
        assert (tag.tag, tag.note) == ("bad", "typo")
        models = s.scalars(select(Model).order_by(Model.id)).all()
        assert [(m.name, m.checkpoint_dir, m.config, m.metrics) for m in models] == [
            ("base", "/runs/base", {"head": "sentence"}, {}),
            ("child", "/runs/child", {}, {"accuracy": 0.75}),
        ]
        assert models[1].parent is models[0]
        (job,) = s.scalars(select(TrainingJob)).all()
        assert (job.status, job.dataset.name, job.config, job.pid, job.progress) == (
            "succeeded",
            "d",
            {"max_steps": 3},
            4242,
            1.0,
        )
        assert (job.log_path, job.error, job.model.name) == ("/runs/child/train.log", None, "child")
        (score,) = s.scalars(select(Score)).all()
        assert (score.pair_id, score.model_id, score.chosen_score, score.rejected_score) == (
            ids["p1"],
            models[1].id,
            0.5,
            -1.25,
        )
        assert (score.chosen_detail, score.rejected_detail) == (
            record.chosen.to_json(),
            record.rejected.to_json(),
        )


def test_registering_a_checkpoint_again_returns_the_same_model(session_factory) -> None:
    with session_factory.begin() as s:
        first = register_model(s, "a", "/runs/a").id
    with session_factory.begin() as s:
        assert register_model(s, "renamed", "/runs/a").id == first
        assert s.scalars(select(Model.name)).all() == ["a"]


def test_rescoring_replaces_a_models_scores(session_factory, make_store) -> None:
    make_store(2)
    records = [scores_of("p0", 1.0, 0.0), scores_of("p1", 2.0, 0.0)]
    with session_factory.begin() as s:
        model_id = register_model(s, "m", "/runs/m").id
        save_scores(s, model_id, "d", records)
    with session_factory.begin() as s:
        save_scores(s, model_id, "d", [scores_of("p0", -3.0, 0.0)])
    with session_factory() as s:
        assert s.scalars(select(Score.chosen_score).order_by(Score.pair_id)).all() == [-3.0, 2.0]
    with pytest.raises(StoreError, match=r"1 scored pair\(s\) are not in dataset 'd' .*'zz'"):
        with session_factory.begin() as s:
            save_scores(s, model_id, "d", [replace(records[0], id="zz")])


def test_labelled_pairs_cannot_be_deleted(session_factory, make_store) -> None:
    """Deleting a dataset cascades to its pairs, but not through annotators' labels."""
    ids = make_store(1)
    with session_factory.begin() as s:
        record_label(s, ids["p0"], "ana", "keep", expected_event_id=None)
    with pytest.raises(Exception, match=r"(?i)foreign key"):
        with session_factory.begin() as s:
            s.execute(text("DELETE FROM datasets"))
    with session_factory() as s:
        assert count_pairs(s) == 1


# ---------------------------------------------------------------------------- import
def test_import_round_trips_every_field(session_factory, make_pairs) -> None:
    pairs = [*make_pairs(3), PreferencePair("s", "q", "a", "b", "rb", 2.0, subset="math-prm")]
    with session_factory.begin() as s:
        result = import_pairs(s, "d", pairs, source_file="/x/d.jsonl")
    assert (result.added, result.unchanged) == (4, 0)
    with session_factory() as s:
        rows = list_pairs(s, "d")
        got = [
            PreferencePair(
                r.external_id, r.prompt, r.chosen, r.rejected, r.source, r.margin, r.subset
            )
            for r in rows
        ]
        assert got == pairs
        assert [(d.name, d.source_file, d.n_pairs) for d in list_datasets(s)] == [
            ("d", "/x/d.jsonl", 4)
        ]


def test_reimport_is_a_no_op(session_factory, make_pairs) -> None:
    with session_factory.begin() as s:
        import_pairs(s, "d", make_pairs(5))
    with session_factory.begin() as s:
        result = import_pairs(s, "d", make_pairs(5))
    assert (result.added, result.unchanged) == (0, 5)
    with session_factory() as s:
        assert count_pairs(s) == 5


def test_partial_overlap_adds_only_new_pairs(session_factory, make_pairs) -> None:
    with session_factory.begin() as s:
        import_pairs(s, "d", make_pairs(3))
    with session_factory.begin() as s:
        result = import_pairs(s, "d", make_pairs(5))
    assert (result.added, result.unchanged) == (2, 3)


def test_same_ids_in_another_dataset_are_separate(session_factory, make_pairs) -> None:
    with session_factory.begin() as s:
        import_pairs(s, "a", make_pairs(2))
        import_pairs(s, "b", make_pairs(2))
    with session_factory() as s:
        assert count_pairs(s, "a") == count_pairs(s, "b") == 2
        assert count_pairs(s) == 4


def test_conflicting_reimport_is_refused_and_writes_nothing(session_factory, make_pairs) -> None:
    with session_factory.begin() as s:
        import_pairs(s, "d", make_pairs(2))
    changed = [*make_pairs(2), PreferencePair("new", "q", "a", "b")]
    changed[1] = PreferencePair("p1", "Question 1?", "edited", "A bad answer 1.", "hh")
    with pytest.raises(StoreError, match=r"1 pair\(s\) already in dataset 'd'.*'p1'"):
        with session_factory.begin() as s:
            import_pairs(s, "d", changed)
    with session_factory() as s:
        assert count_pairs(s) == 2
        assert list_pairs(s, "d")[1].chosen == "A good answer 1."


def test_a_changed_subset_is_a_conflict(session_factory) -> None:
    with session_factory.begin() as s:
        import_pairs(s, "d", [PreferencePair("x", "q", "a", "b", subset="easy")])
    with pytest.raises(StoreError, match="'x'"):
        with session_factory.begin() as s:
            import_pairs(s, "d", [PreferencePair("x", "q", "a", "b", subset="hard")])


def test_foreign_keys_are_enforced(session_factory) -> None:
    with pytest.raises(Exception, match=r"(?i)foreign key"):
        with session_factory.begin() as s:
            s.execute(
                text(
                    "INSERT INTO pairs (dataset_id, external_id, prompt, chosen, rejected, "
                    "source, created_at) VALUES (999, 'x', 'p', 'c', 'r', 's', '2026-01-01')"
                )
            )


def _open_and_import(url: str, worker: int) -> int:
    pairs = [PreferencePair(f"p{i}", f"Q{i}?", "yes", "no") for i in range(20)]
    engine = open_store(url)
    with make_sessionmaker(engine).begin() as s:
        return import_pairs(s, "shared", pairs).added


def test_concurrent_first_start_migrates_once_and_loses_nothing(store_url: str) -> None:
    """Several processes opening a brand-new store at once: one creates the schema, the others
    wait on the lock; the same import run concurrently adds each pair exactly once."""
    with mp.get_context("spawn").Pool(4) as pool:
        added = pool.starmap(_open_and_import, [(store_url, i) for i in range(4)])
    assert sum(added) == 20
    with make_sessionmaker(make_engine(store_url))() as s:
        assert count_pairs(s) == 20


# ---------------------------------------------------------------------------- queries
def test_filters_and_pagination(session_factory, make_pairs) -> None:
    with session_factory.begin() as s:
        import_pairs(s, "d", make_pairs(30))
    with session_factory() as s:
        page = list_pairs(s, "d", limit=10, offset=10)
        assert [p.external_id for p in page] == [f"p{i}" for i in range(10, 20)]
        assert count_pairs(s, "d", search="ANSWER 7") == 1  # case-insensitive
        assert [p.external_id for p in list_pairs(s, search="answer 2")] == [
            "p2",
            *(f"p{i}" for i in range(20, 30)),
        ]
        assert count_pairs(s, "missing") == 0


def _ids(session_factory, where: PairFilter, **kwargs: object) -> list[str]:
    with session_factory() as s:
        pairs = list_pairs(s, "d", where=where, limit=100, **kwargs)
        assert count_pairs(s, "d", where=where, search=kwargs.get("search")) == len(pairs)
        return [p.external_id for p in pairs]


def test_filter_by_source_and_margin(session_factory, make_store) -> None:
    make_store(10)  # margins: p0 0.0, p3 3.0, p6 6.0, p9 9.0; the others None
    assert _ids(session_factory, PairFilter(source="hh")) == ["p1", "p3", "p5", "p7", "p9"]
    assert _ids(session_factory, PairFilter(min_margin=3, max_margin=6)) == ["p3", "p6"]
    assert _ids(session_factory, PairFilter(source="hh", min_margin=1)) == ["p3", "p9"]
    assert _ids(session_factory, PairFilter(max_margin=4), search="answer 3") == ["p3"]


def test_filter_by_label_status(session_factory, make_store) -> None:
    ids = make_store(6)
    with session_factory.begin() as s:
        for pid, label in [("p0", "keep"), ("p1", "swap"), ("p2", "discard"), ("p3", "swap")]:
            record_label(s, ids[pid], "ana", label, expected_event_id=None)
        undone = label_state(s, ids["p3"]).event_id
        undo_label(s, ids["p3"], "ana", expected_event_id=undone)
    assert _ids(session_factory, PairFilter(label="unlabelled")) == ["p3", "p4", "p5"]
    assert _ids(session_factory, PairFilter(label="labelled")) == ["p0", "p1", "p2"]
    assert _ids(session_factory, PairFilter(label="swap")) == ["p1"]
    assert _ids(session_factory, PairFilter(label="discard", source="pandalm")) == ["p2"]
    with pytest.raises(StoreError, match="label: got 'swapped'; use one of unlabelled, labelled"):
        PairFilter(label="swapped")


def test_filter_by_a_models_scores(session_factory, make_store) -> None:
    ids = make_store(5)
    gaps = {"p0": 2.0, "p1": -1.0, "p2": -3.0, "p3": 0.5}  # chosen minus rejected; p4 unscored
    with session_factory.begin() as s:
        model_id = register_model(s, "m", "/runs/m").id
        other_id = register_model(s, "other", "/runs/other").id
        records = [scores_of(pid, gap, 0.0) for pid, gap in gaps.items()]
        save_scores(s, model_id, "d", records)
        save_scores(s, other_id, "d", [scores_of("p0", -9.0, 0.0)])
        record_label(s, ids["p2"], "ana", "swap", expected_event_id=None)  # model agrees now
        record_label(s, ids["p3"], "ana", "swap", expected_event_id=None)  # model disagrees now
    assert _ids(session_factory, PairFilter(model_id=model_id)) == ["p0", "p1", "p2", "p3"]
    assert _ids(session_factory, PairFilter(model_id=model_id, max_gap=0)) == ["p1", "p2"]
    assert _ids(session_factory, PairFilter(model_id=model_id, min_gap=-1, max_gap=1)) == [
        "p1",
        "p3",
    ]
    assert _ids(session_factory, PairFilter(model_id=model_id, disagreeing=True)) == ["p1", "p3"]
    assert _ids(session_factory, PairFilter(model_id=other_id, disagreeing=True)) == ["p0"]
    assert _ids(
        session_factory, PairFilter(model_id=model_id, disagreeing=True, label="unlabelled")
    ) == ["p1"]
    with pytest.raises(StoreError, match="need model_id"):
        PairFilter(disagreeing=True)


def test_get_pair_names_what_is_missing(session_factory, make_store) -> None:
    make_store(1)
    with session_factory() as s:
        assert get_pair(s, "d", "p0").prompt == "Question 0?"
        with pytest.raises(StoreError, match="no pair 'p9' in dataset 'd'"):
            get_pair(s, "d", "p9")


def test_search_takes_wildcards_literally(session_factory) -> None:
    pairs = [
        PreferencePair("a", "Am I 100% sure?", "Yes.", "No."),
        PreferencePair("b", "Is 1000 a lot?", "Yes.", "No."),
        PreferencePair("c", "What is snake_case?", "Words_with_underscores.", "No."),
        PreferencePair("d", "What is snakeXcase?", "A typo.", "No."),
    ]
    with session_factory.begin() as s:
        import_pairs(s, "d", pairs)
    with session_factory() as s:
        assert [p.external_id for p in list_pairs(s, search="100%")] == ["a"]
        assert [p.external_id for p in list_pairs(s, search="SNAKE_")] == ["c"]


# ---------------------------------------------------------------------------- labels' sides
@pytest.mark.parametrize(
    ("label", "side"),
    [(None, "chosen"), ("keep", "chosen"), ("swap", "rejected"), ("tie", None), ("discard", None)],
)
def test_preferred_side_of_each_label(label: str | None, side: str | None) -> None:
    assert preferred_side(label) == side


def test_preferred_side_refuses_an_unknown_label() -> None:
    with pytest.raises(ValueError, match="label: got 'undo'; use one of keep, swap, tie"):
        preferred_side("undo")


def test_queries_side_with_preferred_side(session_factory, make_store) -> None:
    """The SQL filter and queue order read a label's side as preferred_side does: the model
    disagrees when it prefers the other side, and a tie or discard never disagrees."""
    ids = make_store(5)
    labels = dict(zip(["p0", "p1", "p2", "p3", "p4"], [None, *LABELS], strict=True))
    with session_factory.begin() as s:
        model_id = register_model(s, "m", "/runs/m").id
        save_scores(s, model_id, "d", [scores_of(pid, 1.0, 0.0) for pid in labels])
        for pid, label in labels.items():
            if label is not None:
                record_label(s, ids[pid], "ana", label, expected_event_id=None)
    disagreeing = _ids(session_factory, PairFilter(model_id=model_id, disagreeing=True))
    # The model prefers chosen everywhere: it disagrees exactly where the label prefers rejected.
    assert disagreeing == [
        pid for pid, label in labels.items() if preferred_side(label) == "rejected"
    ]
    with session_factory() as s:
        queue = dict((p.external_id, d) for p, d in annotation_queue(s, "d", model_id))
    for pid, label in labels.items():
        assert queue[pid] == (1.0 if preferred_side(label) == "rejected" else -1.0)
    with session_factory() as s:  # one pair's value, read on its own, is the queue's
        assert {pid: pair_disagreement(s, ids[pid], model_id) for pid in labels} == queue
        other = register_model(s, "unscored", "/runs/unscored").id
        assert pair_disagreement(s, ids["p0"], other) is None


# ---------------------------------------------------------------------------- queue, summaries
def test_annotation_queue_orders_by_disagreement_then_uncertainty(
    session_factory, make_store
) -> None:
    ids = make_store(6)
    gaps = {"p0": 2.0, "p1": -1.0, "p2": -3.0, "p3": 0.5, "p4": -0.2}  # p5 unscored
    with session_factory.begin() as s:
        model_id = register_model(s, "m", "/runs/m").id
        save_scores(s, model_id, "d", [scores_of(pid, gap, 0.0) for pid, gap in gaps.items()])
        record_label(s, ids["p0"], "ana", "swap", expected_event_id=None)  # now disagrees by 2
    with session_factory() as s:
        queue = annotation_queue(s, "d", model_id)
        order = [(p.external_id, d) for p, d in queue]
        # Disagreement: the model prefers what the label rejects, by this much.
        assert order == [
            ("p2", 3.0),
            ("p0", 2.0),
            ("p1", 1.0),
            ("p4", 0.2),
            ("p3", -0.5),
            ("p5", None),
        ]
        unlabelled = annotation_queue(s, "d", model_id, where=PairFilter(label="unlabelled"))
        assert [p.external_id for p, _ in unlabelled] == ["p2", "p1", "p4", "p3", "p5"]
        hh = annotation_queue(s, "d", model_id, where=PairFilter(source="hh"), limit=2, offset=1)
        assert [p.external_id for p, _ in hh] == ["p3", "p5"]
        assert [p.external_id for p, d in annotation_queue(s, "d", None)] == [
            f"p{i}" for i in range(6)
        ]


def test_label_summary_sources_and_margins(session_factory, make_store) -> None:
    ids = make_store(6)
    with session_factory.begin() as s:
        record_label(s, ids["p1"], "ana", "tie", expected_event_id=None)
        record_label(s, ids["p2"], "ana", "swap", expected_event_id=None)
    with session_factory() as s:
        assert label_summary(s, "d") == {
            "unlabelled": 4,
            "keep": 0,
            "swap": 1,
            "tie": 1,
            "discard": 0,
        }
        assert list_sources(s, "d") == ["hh", "pandalm"]
        assert margin_bounds(s, "d") == (0.0, 3.0)
        assert margin_bounds(s, "nope") is None


def test_settings_and_the_active_model(session_factory) -> None:
    with session_factory.begin() as s:
        assert get_setting(s, "guidelines", "none") == "none"
        set_setting(s, "guidelines", "# Be kind")
        set_setting(s, "guidelines", "# Be kinder")
        model = register_model(s, "m", "/runs/m")
        assert get_active_model(s) is None
        set_active_model(s, model.id)
    with session_factory() as s:
        assert get_setting(s, "guidelines") == "# Be kinder"
        assert get_active_model(s).name == "m"
    with session_factory.begin() as s, pytest.raises(StoreError, match="no model with id 99"):
        set_active_model(s, 99)


def test_scored_pairs_for_evaluation(session_factory, make_store) -> None:
    make_store(3)
    with session_factory.begin() as s:
        model_id = register_model(s, "m", "/runs/m").id
        save_scores(s, model_id, "d", [scores_of("p1", 1.5, 0.5)])
    with session_factory() as s:
        [row] = scored_pairs(s, "d", model_id)
    assert (row.external_id, row.source, row.label) == ("p1", "hh", None)
    assert (row.chosen_chars, row.rejected_chars) == (
        len("A good answer 1."),
        len("A bad answer 1."),
    )
    assert (row.chosen_score, row.rejected_score) == (1.5, 0.5)
