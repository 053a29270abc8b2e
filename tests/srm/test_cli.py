"""The ``srm`` CLI through click's runner: exit codes, output, and what reaches the store."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from srm import __version__
from srm.cli import main
from srm.config import TrainConfig, field_docs
from srm.data import PreferencePair, load_pairs, write_jsonl
from srm.segment import segment
from srm.store import (
    Score,
    TrainingJob,
    count_pairs,
    get_pair,
    label_state,
    list_datasets,
    list_models,
    make_sessionmaker,
    open_store,
    record_label,
    tag_sentence,
    undo_label,
)
from srm.train import TrainResult


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"srm, version {__version__}"


def command_paths(
    group: click.Group = main, prefix: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], click.Command]]:
    """Every command and subcommand of ``srm`` with the words that invoke it."""
    found = []
    for name, command in sorted(group.commands.items()):
        found.append(((*prefix, name), command))
        if isinstance(command, click.Group):
            found += command_paths(command, (*prefix, name))
    return found


def test_help_lists_every_command() -> None:
    result = invoke("--help")
    assert result.exit_code == 0, result.output
    listed = {line.split()[0] for line in result.output.split("Commands:")[1].splitlines() if line}
    assert listed == set(main.commands)


@pytest.mark.parametrize(
    "words,command", command_paths(), ids=[" ".join(w) for w, _ in command_paths()]
)
def test_every_command_has_help(words: tuple[str, ...], command: click.Command) -> None:
    """``srm WORDS --help`` works for every command and subcommand, names its usage, and
    lists every option it takes (and, for a group, every subcommand)."""
    result = CliRunner().invoke(main, [*words, "--help"], prog_name="srm")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: srm {' '.join(words)} "), result.output
    options = [
        flag
        for param in command.params
        if isinstance(param, click.Option) and not param.hidden
        for flag in param.opts
        if flag.startswith("--")
    ]
    missing = [flag for flag in options if flag not in result.output]
    assert missing == [], result.output
    if isinstance(command, click.Group):
        assert all(sub in result.output for sub in command.commands), result.output
    assert command.help, f"srm {' '.join(words)} has no help text"


def test_segment_splits_the_documented_example() -> None:
    result = invoke("segment", "Dr. Smith arrived at 3 p.m. on Jan. 5. He left.")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "1  Dr. Smith arrived at 3 p.m. on Jan. 5.",
        "2  He left.",
    ]


def test_segment_json_gives_offsets(tmp_path: Path) -> None:
    text = "First one. Second one."
    path = tmp_path / "t.txt"
    path.write_text(text, encoding="utf-8")
    result = invoke("segment", "--file", str(path), "--json")
    assert result.exit_code == 0, result.output
    spans = json.loads(result.output)
    assert [(s["start"], s["end"]) for s in spans] == [(0, 11), (11, 22)]
    assert "".join(s["text"] for s in spans) == text


def test_segment_needs_exactly_one_input(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["segment"])
    assert result.exit_code == 2
    assert "Give the text as an argument or with --file" in result.output


def test_import_then_reimport(db_url: str, sample_path: Path) -> None:
    first = invoke("import", str(sample_path), "--db", db_url)
    assert first.exit_code == 0, first.output
    assert "Imported 50 new pairs into dataset 'sample_50' (0 already present)" in first.output
    assert "By source: pandalm 15, hh-rlhf/helpful-base 14, hh-rlhf/harmless-base 12" in (
        first.output
    )

    again = invoke("import", str(sample_path), "--db", db_url)
    assert again.exit_code == 0, again.output
    assert "Imported 0 new pairs" in again.output
    assert "Nothing new" in again.output
    with make_sessionmaker(open_store(db_url))() as s:
        assert count_pairs(s) == 50


def test_import_if_empty_skips_a_populated_store(db_url: str, sample_path: Path) -> None:
    assert invoke("import", str(sample_path), "--db", db_url, "--dataset", "a").exit_code == 0
    result = invoke("import", str(sample_path), "--db", db_url, "--dataset", "b", "--if-empty")
    assert result.exit_code == 0, result.output
    assert "already holds 50 pairs; nothing imported" in result.output
    with make_sessionmaker(open_store(db_url))() as s:
        assert [d.name for d in list_datasets(s)] == ["a"]


def test_import_then_score_registers_the_default_model_and_scores_the_new_pairs(
    db_url: str, sample_path: Path, tmp_path: Path, tiny_model: Path, monkeypatch
) -> None:
    """`make app`'s first import: the sample is scored by the default model (the one the app
    makes active), so the Annotate queue is ordered from the first key; a second run imports
    and scores nothing."""
    from srm.store import Model, scored_pairs

    monkeypatch.setenv("SRM_MODEL", str(tiny_model))
    data = tmp_path / "few.jsonl"
    data.write_text("".join(sample_path.read_text().splitlines(True)[:6]))
    first = invoke("import", str(data), "--db", db_url, "--if-empty", "--score")
    assert first.exit_code == 0, first.output
    assert "Scored 6 pairs of dataset 'few' with model 1" in first.output
    with make_sessionmaker(open_store(db_url))() as s:
        [model] = s.scalars(select(Model)).all()
        assert model.checkpoint_dir == str(tiny_model.resolve())
        assert len(scored_pairs(s, "few", model.id)) == 6
    again = invoke("import", str(data), "--db", db_url, "--if-empty", "--score")
    assert again.exit_code == 0, again.output
    assert "nothing imported" in again.output and "Scored" not in again.output


def test_import_uses_srm_db_url_by_default(sample_path: Path, db_url: str, monkeypatch) -> None:
    monkeypatch.setenv("SRM_DB_URL", db_url)
    result = invoke("import", str(sample_path), "--dataset", "sample")
    assert result.exit_code == 0, result.output
    assert db_url in result.output
    with make_sessionmaker(open_store(db_url))() as s:
        assert count_pairs(s, "sample") == 50


def test_invalid_file_fails_with_location_and_imports_nothing(tmp_path: Path, db_url: str) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"prompt": "p", "chosen": "a", "rejected": "b"}\n'
        '{"prompt": "p", "chosen": 3, "rejected": "b"}\n',
        encoding="utf-8",
    )
    result = CliRunner().invoke(main, ["import", str(bad), "--db", db_url])
    assert result.exit_code == 1
    assert "bad.jsonl" in result.output
    assert "line 2" in result.output
    assert "chosen" in result.output
    with make_sessionmaker(open_store(db_url))() as s:
        assert count_pairs(s) == 0


@pytest.mark.parametrize(
    "args",
    [
        ["import", "{pairs}"],
        ["datasets"],
        ["export", "--dataset", "d", "--out", "{tmp}/e.jsonl"],
        ["score", "--dataset", "d", "--model", "{tmp}"],
        ["score", "--job", "1"],
        ["train", "--dataset", "d", "--out", "{tmp}/run"],
        ["train", "--job", "1"],
        ["jobs"],
        ["jobs", "run", "1"],
        ["jobs", "cancel", "1"],
    ],
    ids=" ".join,
)
def test_a_bad_db_is_one_clean_line(args: list[str], sample_path: Path, tmp_path: Path) -> None:
    """Every command that opens the store opens it the same way (srm.cli.options.open_store):
    a URL that names no store is one line saying what to check, never a traceback."""
    argv = [a.format(pairs=sample_path, tmp=tmp_path) for a in args] + ["--db", "nonsense://x"]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert result.output.splitlines() == [
        "Error: cannot open the store nonsense://x (Can't load plugin: "
        "sqlalchemy.dialects:nonsense); check --db or $SRM_DB_URL: a SQLAlchemy URL such as "
        "sqlite:///path/to/srm.db or postgresql+psycopg://USER@HOST/DB"
    ]


def test_datasets_lists_counts(db_url: str, sample_path: Path) -> None:
    empty = invoke("datasets", "--db", db_url)
    assert "No datasets" in empty.output
    invoke("import", str(sample_path), "--db", db_url)
    result = invoke("datasets", "--db", db_url)
    assert result.exit_code == 0, result.output
    assert result.output.split()[:3] == ["sample_50", "50", "pairs"]


# ---------------------------------------------------------------------------- export, train --db
LABELLED = [
    PreferencePair("k", "Keep me?", "Right.", "Wrong.", "hh", 1.0),
    PreferencePair("s", "Swap me?", "Worse.", "Better.", "hh"),
    PreferencePair("t", "Tie?", "Same.", "Same!", "pandalm"),
    PreferencePair("d", "Discard?", "Broken.", "Broken!", "pandalm"),
    PreferencePair("u", "Untouched?", "Fine.", "Meh.", "hh", 0.5, subset="chat"),
]


def labelled_store(url: str, tmp_path: Path) -> None:
    """Import LABELLED through the CLI, then label it: k keep, s swap, t tie, d discard;
    u is unlabelled, and a swap then undo on k leaves it at keep."""
    data = tmp_path / "labelled.jsonl"
    write_jsonl(LABELLED, data)
    assert invoke("import", str(data), "--db", url, "--dataset", "d").exit_code == 0
    session_factory = make_sessionmaker(open_store(url))
    for external_id, actions in {
        "k": ["keep", "swap", "undo"],
        "s": ["swap"],
        "t": ["tie"],
        "d": ["discard"],
    }.items():
        for action in actions:
            with session_factory.begin() as s:
                pair_id = get_pair(s, "d", external_id).id
                seen = label_state(s, pair_id).event_id
                if action == "undo":
                    undo_label(s, pair_id, "ana", expected_event_id=seen)
                else:
                    record_label(s, pair_id, "ana", action, expected_event_id=seen)


CORRECTED = [LABELLED[0], LABELLED[1].swapped(), LABELLED[4]]
LAST_METRICS = {"loss": 0.5, "accuracy": 1.0}
COUNTS = "3 of 5 pairs: 1 unlabelled, 1 kept, 1 swapped; left out 1 ties, 1 discards"


def test_reimport_through_the_cli_adds_nothing_on_either_backend(store_url, tmp_path) -> None:
    data = tmp_path / "x.jsonl"
    write_jsonl(LABELLED, data)
    assert "Imported 5 new pairs" in invoke("import", str(data), "--db", store_url).output
    again = invoke("import", str(data), "--db", store_url)
    assert "Imported 0 new pairs into dataset 'x' (5 already present)" in again.output
    assert "Nothing new: the store already holds every pair in this file." in again.output


def test_export_applies_swaps_and_drops_ties_and_discards(store_url, tmp_path) -> None:
    labelled_store(store_url, tmp_path)
    out = tmp_path / "corrected.jsonl"
    result = invoke("export", "--db", store_url, "--dataset", "d", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"Exported {COUNTS} from dataset 'd' to {out}."
    assert load_pairs(out) == CORRECTED


def test_export_as_a_saved_dataset_directory(db_url, tmp_path) -> None:
    labelled_store(db_url, tmp_path)
    out = tmp_path / "corrected"
    result = invoke("export", "--db", db_url, "--dataset", "d", "--out", str(out), "--format", "hf")
    assert result.exit_code == 0, result.output
    assert load_pairs(out) == CORRECTED
    again = CliRunner().invoke(
        main, ["export", "--db", db_url, "--dataset", "d", "--out", str(out), "--format", "hf"]
    )
    assert again.exit_code == 1
    assert "already exists; give a new directory with --out" in again.output


def test_export_of_an_unknown_dataset_names_the_known_ones(db_url, tmp_path) -> None:
    labelled_store(db_url, tmp_path)
    result = CliRunner().invoke(
        main, ["export", "--db", db_url, "--dataset", "nope", "--out", str(tmp_path / "o.jsonl")]
    )
    assert result.exit_code == 1
    assert "no dataset 'nope' in the store (datasets: d); see srm datasets" in result.output
    assert not (tmp_path / "o.jsonl").exists()


def test_prm_export_has_one_label_per_sentence(store_url, tmp_path) -> None:
    pairs = [
        PreferencePair(
            "a", "Add 2 and 3.", "2 plus 3 is 5. So the answer is 5.", "It is 6. Yes.", "m"
        ),
        PreferencePair("b", "Name a colour.", "Blue. Red. Green.", "Seven."),
        PreferencePair("c", "Spell cat.", "C-A-T. Done.", "K-A-T."),
    ]
    data = tmp_path / "steps.jsonl"
    write_jsonl(pairs, data)
    assert invoke("import", str(data), "--db", store_url, "--dataset", "steps").exit_code == 0
    session_factory = make_sessionmaker(open_store(store_url))

    def tag_all(s, external_id: str, side: str, tags: list[str]) -> None:
        pair = get_pair(s, "steps", external_id)
        spans = segment(getattr(pair, side))
        assert len(spans) == len(tags)
        for span, tag in zip(spans, tags, strict=True):
            tag_sentence(s, pair.id, "ana", side, (span.start, span.end), tag)

    with session_factory.begin() as s:
        tag_all(s, "a", "chosen", ["good", "good"])
        tag_all(s, "a", "rejected", ["bad", "bad"])
        tag_all(s, "b", "chosen", ["good", "unsure", "good"])
        pair_b = get_pair(s, "steps", "b")
        tag_sentence(s, pair_b.id, "bo", "chosen", (6, 10), "bad")  # later: settles "unsure"
        tag_all(s, "c", "chosen", ["good", "good"])
        record_label(s, get_pair(s, "steps", "c").id, "ana", "discard", expected_event_id=None)
        # The latest tag on a sentence counts: a's first rejected sentence was re-tagged good.
        pair_a = get_pair(s, "steps", "a")
        tag_sentence(s, pair_a.id, "bo", "rejected", (0, 8), "good")

    out = tmp_path / "prm.jsonl"
    result = invoke(
        "export", "--db", store_url, "--dataset", "steps", "--out", str(out), "--format", "prm"
    )
    assert result.exit_code == 0, result.output
    assert "Exported 3 of 3 tagged responses" in result.output
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert records == [
        {
            "id": "a:chosen",
            "prompt": "Add 2 and 3.",
            "completions": ["2 plus 3 is 5.", "So the answer is 5."],
            "labels": [True, True],
        },
        {
            "id": "a:rejected",
            "prompt": "Add 2 and 3.",
            "completions": ["It is 6.", "Yes."],
            "labels": [True, False],
        },
        {
            "id": "b:chosen",
            "prompt": "Name a colour.",
            "completions": ["Blue.", "Red.", "Green."],
            "labels": [True, False, True],
        },
    ]
    for record in records:
        assert len(record["labels"]) == len(record["completions"])


def test_prm_export_leaves_out_partly_tagged_responses(db_url, tmp_path) -> None:
    data = tmp_path / "steps.jsonl"
    write_jsonl([PreferencePair("a", "Q?", "One. Two.", "Three.", "m")], data)
    invoke("import", str(data), "--db", db_url, "--dataset", "steps")
    with make_sessionmaker(open_store(db_url)).begin() as s:
        tag_sentence(s, get_pair(s, "steps", "a").id, "ana", "chosen", (0, 4), "good")
    out = tmp_path / "prm.jsonl"
    result = invoke(
        "export", "--db", db_url, "--dataset", "steps", "--out", str(out), "--format", "prm"
    )
    assert "Exported 0 of 1 tagged responses" in result.output
    assert "left out 1 with sentences not tagged good or bad" in result.output
    assert out.read_text(encoding="utf-8") == ""


def test_train_on_a_store_dataset_uses_the_corrected_pairs(db_url, tmp_path, monkeypatch) -> None:
    labelled_store(db_url, tmp_path)
    seen = {}

    def fake_train(cfg, train_pairs, eval_pairs, **kwargs):
        seen["pairs"] = list(train_pairs)
        return TrainResult(Path(cfg.output_dir), 1, 1, 1.0, 3, train_metrics=LAST_METRICS)

    monkeypatch.setattr("srm.train.train", fake_train)
    result = invoke("train", "--db", db_url, "--dataset", "d", "--out", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    assert f"Dataset 'd' at {db_url}: {COUNTS}." in result.output
    assert seen["pairs"] == CORRECTED


def test_train_flags_are_the_config_fields(tmp_path, sample_path, monkeypatch) -> None:
    """Every TrainConfig field is a flag of its own name (but the model, --out and the two
    switches), typed and documented by the config; a recipe's values stand unless a flag
    is given."""
    flags = {p.name: p for p in main.commands["train"].params if isinstance(p, click.Option)}
    for name in TrainConfig.model_fields:
        if name not in ("model", "output_dir", "use_margin", "disable_dropout"):
            assert flags[name].opts == ["--" + name.replace("_", "-")]
            assert flags[name].help.startswith(field_docs(TrainConfig)[name])
    assert flags["lr"].help.endswith("[default: 0.0002]")
    assert list(flags["scheduler"].type.choices) == ["cosine", "linear", "constant"]

    seen = {}

    def fake_train(cfg, train_pairs, eval_pairs, **kwargs):
        seen["cfg"] = cfg
        return TrainResult(Path(cfg.output_dir), 1, 1, 1.0, 3, train_metrics=LAST_METRICS)

    monkeypatch.setattr("srm.train.train", fake_train)
    recipe = tmp_path / "recipe.toml"
    recipe.write_text('lr = 0.001\nscheduler = "linear"\n[model]\nhead = "token"\n')
    result = invoke(
        "train", "--data", str(sample_path), "--out", str(tmp_path / "run"),
        "--config", str(recipe), "--lora-targets", "q_proj, v_proj", "--no-margin",
        "--keep-dropout", "--max-length", "64", "--scheduler", "constant",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    cfg = seen["cfg"]
    assert cfg.lora_targets == ["q_proj", "v_proj"]
    assert (cfg.use_margin, cfg.disable_dropout) == (False, False)
    assert (cfg.lr, cfg.scheduler) == (0.001, "constant")
    assert (cfg.model.head, cfg.model.max_length) == ("token", 64)


def test_train_on_a_store_dataset_for_real(db_url, tmp_path) -> None:
    labelled_store(db_url, tmp_path)
    out = tmp_path / "run"
    result = invoke(
        "train",
        "--db",
        db_url,
        "--dataset",
        "d",
        "--out",
        str(out),
        "--backbone",
        "tiny",
        "--max-length",
        "32",
        "--max-steps",
        "1",
        "--batch-size",
        "2",
        "--device",
        "cpu",
        "--finetune",
        "heads",
    )
    assert result.exit_code == 0, result.output
    assert "with 3 pairs" in result.output
    assert "Done: 1 steps" in result.output
    assert (out / "model" / "model.safetensors").exists()


def test_train_needs_exactly_one_of_data_and_dataset(db_url, tmp_path, sample_path) -> None:
    both = CliRunner().invoke(
        main, ["train", "--data", str(sample_path), "--dataset", "d", "--out", str(tmp_path)]
    )
    assert both.exit_code == 2
    assert "Give the training data with --data PATH or --dataset NAME" in both.output
    stray_db = CliRunner().invoke(
        main, ["train", "--data", str(sample_path), "--db", db_url, "--out", str(tmp_path)]
    )
    assert stray_db.exit_code == 2
    assert "--db applies to --dataset NAME" in stray_db.output


# ---------------------------------------------------------------------------- jobs, app
TINY_JOB = {
    "model": {"backbone": "tiny", "d": 16, "max_length": 32},
    "max_steps": 2,
    "batch_size": 2,
    "finetune": "heads",
    "device": "cpu",
}


def queue_train_job(url: str, tmp_path: Path, **config) -> int:
    """The LABELLED store with a tiny training job queued on it (job 1)."""
    from srm.jobs import create_train_job

    labelled_store(url, tmp_path)
    with make_sessionmaker(open_store(url)).begin() as s:
        return create_train_job(s, dataset="d", config={**TINY_JOB, **config}).id


def job_row(url: str, job_id: int) -> TrainingJob:
    with make_sessionmaker(open_store(url))() as s:
        return s.get(TrainingJob, job_id)


def tiny_checkpoint(tmp_path: Path) -> Path:
    out = tmp_path / "tiny-model"
    result = invoke("init", "--out", str(out), "--backbone", "tiny", "--d", "16")
    assert result.exit_code == 0, result.output
    return out


def test_train_job_runs_once_and_is_listed(db_url, tmp_path) -> None:
    job_id = queue_train_job(db_url, tmp_path)
    result = invoke("train", "--job", str(job_id), "--db", db_url)
    assert result.exit_code == 0, result.output
    assert f"Job {job_id} succeeded: model 1: 2 steps on 3 pairs" in result.output
    assert job_row(db_url, job_id).status == "succeeded"

    again = CliRunner().invoke(main, ["train", "--job", str(job_id), "--db", db_url])
    assert again.exit_code == 1
    assert f"job {job_id} is succeeded, not queued: a job runs once" in again.output

    listed = invoke("jobs", "--db", db_url)
    assert listed.exit_code == 0, listed.output
    header, row = listed.output.splitlines()
    assert header.split()[:7] == [
        "id",
        "kind",
        "status",
        "where",
        "dataset",
        "progress",
        "message",
    ]
    assert row.split()[:6] == [str(job_id), "train", "succeeded", socket.gethostname(), "d", "100%"]


def test_a_failed_train_job_exits_1_with_its_error(db_url, tmp_path, monkeypatch) -> None:
    job_id = queue_train_job(db_url, tmp_path)

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr("srm.train.train", out_of_memory)
    result = CliRunner().invoke(main, ["train", "--job", str(job_id), "--db", db_url])
    assert result.exit_code == 1
    assert f"Error: job {job_id} failed: CUDA out of memory" in result.output
    job = job_row(db_url, job_id)
    assert job.status == "failed"
    assert job.error.startswith("CUDA out of memory\n\n")


def test_a_cancelled_train_job_exits_130(db_url, tmp_path, monkeypatch) -> None:
    import srm.jobs.run
    import srm.train

    job_id = queue_train_job(db_url, tmp_path, max_steps=20)
    real_train = srm.train.train

    def cancel_at_step_one(cfg, pairs, *args, progress, **kwargs):
        def hook(step, total, metrics):
            if step == 1:
                assert invoke("jobs", "cancel", str(job_id), "--db", db_url).exit_code == 0
            progress(step, total, metrics)

        return real_train(cfg, pairs, *args, progress=hook, **kwargs)

    monkeypatch.setattr(srm.jobs.run, "PROGRESS_INTERVAL", 0.0)
    monkeypatch.setattr("srm.train.train", cancel_at_step_one)
    result = invoke("train", "--job", str(job_id), "--db", db_url)
    assert result.exit_code == 130, result.output
    assert f"Job {job_id} cancelled: cancelled at step 1/20" in result.output


def test_train_job_takes_no_other_training_options(db_url, tmp_path, sample_path) -> None:
    result = CliRunner().invoke(
        main,
        ["train", "--job", "1", "--db", db_url, "--data", str(sample_path), "--max-steps", "3"],
    )
    assert result.exit_code == 2
    assert "--job N runs a job as it was created in the store; leave out --data, --max-steps" in (
        result.output
    )


def test_jobs_cancel(db_url, tmp_path) -> None:
    assert "No jobs in" in invoke("jobs", "--db", db_url).output
    job_id = queue_train_job(db_url, tmp_path)
    result = invoke("jobs", "cancel", str(job_id), "--db", db_url)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"Job {job_id} cancelled before it started."
    assert job_row(db_url, job_id).status == "cancelled"
    # --db may also come before the subcommand.
    again = invoke("jobs", "--db", db_url, "cancel", str(job_id))
    assert again.output.strip() == f"Job {job_id} already cancelled; nothing to cancel."
    unknown = CliRunner().invoke(main, ["jobs", "cancel", "99", "--db", db_url])
    assert unknown.exit_code == 1
    assert "no job with id 99 in the store" in unknown.output


def test_score_a_store_dataset_and_a_score_job(db_url, tmp_path) -> None:
    from srm.jobs import create_score_job

    labelled_store(db_url, tmp_path)
    model_dir = tiny_checkpoint(tmp_path)
    result = invoke("score", "--dataset", "d", "--model", str(model_dir), "--db", db_url)
    assert result.exit_code == 0, result.output
    assert "Scored 5 pairs of dataset 'd' with model 1" in result.output
    session_factory = make_sessionmaker(open_store(db_url))
    with session_factory() as s:
        assert [(m.id, m.name, m.checkpoint_dir) for m in list_models(s)] == [
            (1, "tiny-model", str(model_dir.resolve()))
        ]
        assert s.scalar(select(func.count()).select_from(Score)) == 5

    with session_factory.begin() as s:
        job_id = create_score_job(s, dataset="d", model_id=1).id
    wrong_kind = CliRunner().invoke(main, ["train", "--job", str(job_id), "--db", db_url])
    assert wrong_kind.exit_code == 1
    assert f"job {job_id} is a score job; run it with srm jobs run {job_id}" in wrong_kind.output
    result = invoke("jobs", "run", str(job_id), "--db", db_url)
    assert result.exit_code == 0, result.output
    assert f"Job {job_id} succeeded: scored 5 pairs with model 1" in result.output
    assert job_row(db_url, job_id).progress == 1.0
    again = CliRunner().invoke(main, ["jobs", "--db", db_url, "run", str(job_id)])
    assert again.exit_code == 1
    assert f"job {job_id} is succeeded, not queued: a job runs once" in again.output
    unknown = CliRunner().invoke(main, ["jobs", "run", "99", "--db", db_url])
    assert unknown.exit_code == 1
    assert "no job with id 99 in the store" in unknown.output


def test_score_needs_exactly_one_source(db_url, tmp_path, sample_path) -> None:
    both = CliRunner().invoke(main, ["score", "--data", str(sample_path), "--dataset", "d"])
    assert both.exit_code == 2
    assert "Give the pairs with --data PATH or --dataset NAME" in both.output
    out_with_dataset = CliRunner().invoke(main, ["score", "--dataset", "d", "--out", "x.jsonl"])
    assert out_with_dataset.exit_code == 2
    assert "With --dataset the scores go to the store" in out_with_dataset.output
    no_out = CliRunner().invoke(main, ["score", "--data", str(sample_path)])
    assert no_out.exit_code == 2
    assert "Give the JSONL file to write with --out FILE" in no_out.output


def test_app_runs_streamlit_on_localhost(db_url, monkeypatch) -> None:
    help_text = invoke("app", "--help").output
    for option in ("--demo", "--host", "--port", "--db"):
        assert option in help_text
    calls = []

    def fake_exec(file, args, env):
        calls.append((file, args, env))
        raise SystemExit(0)

    monkeypatch.setattr("srm.cli.app.os.execvpe", fake_exec)
    monkeypatch.delenv("SRM_DEMO", raising=False)
    result = CliRunner().invoke(main, ["app", "--demo", "--port", "8600", "--db", db_url])
    assert result.exit_code == 0, result.output
    [(file, args, env)] = calls
    assert args[0] == file and args[1].endswith("webapp/launch.py") and args[2] == "run"
    assert args[3].endswith("webapp/streamlit_app.py")
    assert args[args.index("--server.maxUploadSize") + 1] == "50"
    assert args[-4:] == ["--server.address", "127.0.0.1", "--server.port", "8600"]
    assert args[args.index("--server.fileWatcherType") + 1] == "none"
    assert (env["SRM_DEMO"], env["SRM_DB_URL"]) == ("1", db_url)

    calls.clear()
    CliRunner().invoke(main, ["app"])
    [(_, _, env)] = calls
    assert "SRM_DEMO" not in env


def fake_streamlit(monkeypatch, home: Path) -> list:
    """Capture what `srm app` would exec, with no password set and `home` as $HOME."""
    calls = []

    def fake_exec(file, args, env):
        calls.append((args, env))
        raise SystemExit(0)

    monkeypatch.setattr("srm.cli.app.os.execvpe", fake_exec)
    monkeypatch.setenv("HOME", str(home))
    for name in ("SRM_APP_PASSWORD", "SRM_ADMIN_PASSWORD", "SRM_APP_INSECURE"):
        monkeypatch.delenv(name, raising=False)
    return calls


def test_app_beyond_loopback_refuses_to_start_without_a_password(monkeypatch, tmp_path) -> None:
    calls = fake_streamlit(monkeypatch, tmp_path)
    refused = CliRunner().invoke(main, ["app", "--host", "0.0.0.0"])
    assert refused.exit_code == 2 and not calls
    assert "without a password" in refused.output and "SRM_APP_PASSWORD" in refused.output
    assert "--insecure" in refused.output

    insecure = CliRunner().invoke(main, ["app", "--host", "0.0.0.0", "--insecure"])
    assert insecure.exit_code == 0, insecure.output
    [(args, env)] = calls
    assert args[-4:-2] == ["--server.address", "0.0.0.0"]
    assert env["SRM_APP_INSECURE"] == "1"  # so the app's own check lets it serve

    calls.clear()
    monkeypatch.setenv("SRM_APP_PASSWORD", "a long shared secret")
    assert CliRunner().invoke(main, ["app", "--host", "0.0.0.0"]).exit_code == 0
    [(args, env)] = calls
    assert "SRM_APP_INSECURE" not in env


def test_app_beyond_loopback_starts_when_the_store_has_accounts(
    monkeypatch, tmp_path, db_url
) -> None:
    calls = fake_streamlit(monkeypatch, tmp_path)
    refused = CliRunner().invoke(main, ["app", "--host", "0.0.0.0", "--db", db_url])
    assert refused.exit_code == 2 and not calls
    added = CliRunner().invoke(main, ["users", "add", "ana", "--db", db_url], input="a password\n")
    assert added.exit_code == 0, added.output
    started = CliRunner().invoke(main, ["app", "--host", "0.0.0.0", "--db", db_url])
    assert started.exit_code == 0, started.output
    [(args, env)] = calls
    assert "SRM_APP_INSECURE" not in env and env["SRM_DB_URL"] == db_url


def test_app_finds_a_password_in_secrets_toml(monkeypatch, tmp_path) -> None:
    calls = fake_streamlit(monkeypatch, tmp_path)
    secrets = tmp_path / ".streamlit" / "secrets.toml"
    secrets.parent.mkdir()
    secrets.write_text('SRM_ADMIN_PASSWORD = "a long admin secret"\n')
    result = CliRunner().invoke(main, ["app", "--host", "0.0.0.0"])
    assert result.exit_code == 0, result.output
    [(args, _)] = calls
    # Streamlit is told to read the same files the check read.
    files = [args[i + 1] for i, arg in enumerate(args) if arg == "--secrets.files"]
    assert files[0] == str(secrets) and files[1].endswith(".streamlit/secrets.toml")

    secrets.write_text("SRM_ADMIN_PASSWORD = \n")
    broken = CliRunner().invoke(main, ["app", "--host", "0.0.0.0"])
    assert broken.exit_code == 1 and f"{secrets}: not valid TOML" in broken.output


def test_prompt_term_is_switched_off_by_flag_or_recipe(tmp_path) -> None:
    from srm.checkpoint import read_info
    from srm.config import merge_train_config

    out = tmp_path / "init"
    result = CliRunner().invoke(
        main, ["init", "--out", str(out), "--backbone", "tiny", "--d", "8", "--no-prompt-term"]
    )
    assert result.exit_code == 0, result.output
    assert read_info(out).model.prompt_term is False
    recipe = {"model": {"backbone": "tiny", "prompt_term": False}}
    assert merge_train_config(recipe, {"prompt_term": None}).model.prompt_term is False
    assert merge_train_config(recipe, {"prompt_term": True}).model.prompt_term is True


def test_print_config_writes_the_merged_recipe_and_trains_nothing(tmp_path, monkeypatch) -> None:
    """--print-config: the recipe with the flags on top, checked, as TOML that --config reads
    back to the same config; no data is asked for and nothing is trained."""
    from srm.config import merge_train_config

    monkeypatch.setattr("srm.train.train", lambda *a, **k: pytest.fail("trained"))
    recipe = tmp_path / "recipe.toml"
    recipe.write_text('lr = 0.001\n[model]\nbackbone = "tiny"\n', encoding="utf-8")
    result = invoke("train", "--config", str(recipe), "--max-steps", "7", "--print-config")
    assert result.exit_code == 0, result.output
    mine = tmp_path / "mine.toml"
    mine.write_text(result.output, encoding="utf-8")
    expected = merge_train_config({"lr": 0.001, "model": {"backbone": "tiny"}}, {"max_steps": 7})
    assert TrainConfig.from_toml(mine) == expected
    assert "max_pairs" not in result.output  # unset fields are left out (TOML has no null)
    bad = CliRunner().invoke(
        main, ["train", "--config", str(recipe), "--lr", "0", "--print-config"]
    )
    assert bad.exit_code != 0 and "lr: got 0.0; use a positive number" in bad.output
