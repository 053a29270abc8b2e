"""Sentence-labelled responses: loading them (load_steps), the response text and its spans,
and ``srm eval --steps`` end to end on a tiny random model."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

import srm.score
from srm.checkpoint import load
from srm.cli import main
from srm.data import DataError, StepRecord, load_steps
from srm.records import SentenceScore
from srm.score import score_responses

RECORDS = [
    {
        "id": "r1",
        "prompt": "What is the capital of France?",
        "completions": ["Paris is the capital.", "It is in the south."],
        "labels": [True, False],
        "source": "geo",
    },
    {
        "id": "r2",
        "prompt": "Say hi.",
        "completions": ["Hi.", "I am a fish.", "Bye."],
        "labels": [True, False, True],
    },
    {
        "id": 3,
        "prompt": "Tell me a joke.",
        "completions": ["Why did the chicken cross the road?\n", "To get to the other side!"],
        "labels": [True, True],
    },
    {
        "prompt": "Explain photosynthesis briefly.",
        "completions": [
            "Plants use light to make food.",
            "They eat rocks.",
            "They give off oxygen.",
        ],
        "labels": [True, False, True],
    },
]


def write_lines(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def steps_file(tmp_path: Path) -> Path:
    return write_lines(tmp_path / "steps.jsonl", RECORDS)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random sentence-head model, written once for this module."""
    out = tmp_path_factory.mktemp("steps") / "tiny-model"
    result = CliRunner().invoke(
        main, ["init", "--out", str(out), "--backbone", "tiny", "--d", "16"]
    )
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def scoring_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the responses each score_responses call was given (it still scores them)."""
    calls: list[int] = []

    def counted(model, prompts, responses, **kwargs):
        calls.append(len(responses))
        return score_responses(model, prompts, responses, **kwargs)

    monkeypatch.setattr(srm.score, "score_responses", counted)
    return calls


# ------------------------------------------------------------------------------- loading


def test_load_steps_reads_trl_stepwise_records(steps_file: Path) -> None:
    records = load_steps(steps_file)
    assert [r.id for r in records[:3]] == ["r1", "r2", "3"]  # an integer id becomes a string
    assert records[3].id.startswith("sha256:")  # no id: a content hash
    assert [r.source for r in records] == ["geo", "steps", "steps", "steps"]  # default: stem
    assert records[1] == StepRecord(
        "r2", "Say hi.", ("Hi.", "I am a fish.", "Bye."), (True, False, True), "steps"
    )
    assert records[0].to_dict() == {**RECORDS[0], "source": "geo"}


def test_load_steps_reads_a_json_list_parquet_and_a_saved_dataset(tmp_path: Path) -> None:
    from datasets import Dataset

    rows = [{**r, "id": str(r.get("id", f"row{i}"))} for i, r in enumerate(RECORDS)]
    json_list = tmp_path / "list.json"
    json_list.write_text(json.dumps(rows), encoding="utf-8")
    Dataset.from_list(rows).to_parquet(tmp_path / "table.parquet")
    Dataset.from_list(rows).save_to_disk(tmp_path / "saved")
    expected = [(r["id"], tuple(r["completions"]), tuple(r["labels"])) for r in rows]
    for path in (json_list, tmp_path / "table.parquet", tmp_path / "saved"):
        records = load_steps(path)
        assert [(r.id, r.completions, r.labels) for r in records] == expected, path
        assert records[1].source == path.stem


def test_load_steps_refuses_csv(tmp_path: Path) -> None:
    path = tmp_path / "steps.csv"
    path.write_text('prompt,completions,labels\nQ?,"[""A."", ""B.""]","[true, false]"\n')
    with pytest.raises(DataError, match="CSV cannot hold step records.*write JSON Lines"):
        load_steps(path)


def test_load_steps_lists_every_problem_and_returns_nothing(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "bad.jsonl",
        [
            RECORDS[0],
            {"prompt": "Q?", "completions": ["A.", 3, "  "], "labels": [True, False]},
            {"completions": ["A.", "B."], "labels": [True, None]},
            RECORDS[0],
            "not a record",
        ],
    )
    with pytest.raises(DataError) as caught:
        load_steps(path)
    found = [(p.location, p.field, p.message) for p in caught.value.problems]
    assert found == [
        ("line 2", "completions[1]", "expected a string, got int"),
        ("line 2", "completions[2]", "is empty or whitespace-only; every sentence needs text"),
        (
            "line 2",
            "labels",
            "has 2 labels but completions has 3 sentences; give one label per sentence",
        ),
        (
            "line 3",
            "prompt",
            "missing required field; step records need 'prompt', 'completions' and 'labels' "
            "(TRL's stepwise-supervision format)",
        ),
        (
            "line 3",
            "labels[1]",
            'expected a bool (true = good, false = bad), got null; 1/0 and "true"/"false" are '
            "not read as labels",
        ),
        (
            "line 4",
            "id",
            "id 'r1' already used on line 1; ids must be unique: rename or remove one of them",
        ),
        ("line 5", None, "expected a JSON object (a record), got str"),
    ]
    assert str(caught.value).startswith(f"7 problems in {path}; nothing was loaded:")


# ----------------------------------------------------------------------- response and spans


@pytest.mark.parametrize("separator", ["\n", " ", "", "\n\n"])
def test_spans_tile_the_response(separator: str) -> None:
    steps = ("First step.", "Second one ends in space ", "Third\n", "Last.")
    text, spans = StepRecord("r", "Q?", steps, (True, False, True, True)).response(separator)
    assert "".join(span.text for span in spans) == text
    for step, span in zip(steps, spans, strict=True):
        assert text[span.start : span.end] == span.text
        assert span.text.startswith(step)
    # The separator follows a step unless the step ends in whitespace or is the last.
    assert [span.text for span in spans] == [
        "First step." + separator,
        "Second one ends in space ",
        "Third\n",
        "Last.",
    ]
    assert spans[0].start == 0 and spans[-1].end == len(text)


# ---------------------------------------------------------------------------- srm eval --steps


def naive_auroc(scores: list[float], good: list[bool]) -> float:
    """Every (good, bad) pair counted: 1 when good is above, 1/2 for a tie."""
    pairs = [
        (s, t)
        for s, g in zip(scores, good, strict=True)
        if g
        for t, b in zip(scores, good, strict=True)
        if not b
    ]
    return sum(1.0 if s > t else 0.5 if s == t else 0.0 for s, t in pairs) / len(pairs)


def naive_pointing(responses: list[tuple[list[float], list[bool]]]) -> float:
    credits = []
    for scores, good in responses:
        lowest = [g for s, g in zip(scores, good, strict=True) if s == min(scores)]
        credits.append(lowest.count(False) / len(lowest))
    return sum(credits) / len(credits)


def recompute(
    checkpoint: Path, records: list[StepRecord], value: Callable[[SentenceScore], float], **kwargs
) -> dict:
    """AUROC and pointing recomputed from a fresh scoring of ``records``, by brute force."""
    model = load(checkpoint, device="cpu")
    texts_and_spans = [r.response() for r in records]
    scored = score_responses(
        model,
        [r.prompt for r in records],
        [text for text, _ in texts_and_spans],
        spans=[spans for _, spans in texts_and_spans],
        **kwargs,
    )
    scores, good, responses, truncated = [], [], [], 0
    for record, response in zip(records, scored, strict=True):
        kept = [
            (value(s), label)
            for s, label in zip(response.sentences, record.labels, strict=True)
            if s.reward is not None
        ]
        truncated += len(record.labels) - len(kept)
        scores += [v for v, _ in kept]
        good += [label for _, label in kept]
        if len({label for _, label in kept}) == 2:
            responses.append(([v for v, _ in kept], [label for _, label in kept]))
    return {
        "auroc": naive_auroc(scores, good),
        "pointing": naive_pointing(responses),
        "truncated": truncated,
    }


def test_eval_steps_prints_the_table_and_writes_the_report(
    checkpoint: Path, steps_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report.json"
    result = CliRunner().invoke(
        main, ["eval", "--model", str(checkpoint), "--steps", str(steps_file), "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()  # the progress bar goes to stderr
    assert lines[0].split() == ["sentence", "credit", "AUROC", "pointing"]
    assert lines[1] == (
        "overall: 4 responses, 3 with good and bad; sentences 7 good, 3 bad, 0 truncated, "
        "0 unlabelled"
    )
    assert lines[2].startswith("  sentence reward r_j ")
    assert "source geo: 1 response, 1 with good and bad" in result.output
    assert "source steps: 3 responses, 2 with good and bad" in result.output

    report = json.loads(out.read_text())
    assert set(report) == {
        "head",
        "prefix_rewards",
        "methods",
        "default_method",
        "overall",
        "by_source",
    }
    assert report["default_method"] == "reward" and "reward" in report["overall"]["metrics"]
    assert (report["head"], report["prefix_rewards"]) == ("sentence", True)
    assert list(report["by_source"]) == ["geo", "steps"]
    overall = report["overall"]
    assert set(overall) == {"responses", "eligible", "sentences", "metrics"}
    assert set(overall["metrics"]) == {"reward", "weighted", "random", "first", "last", "length"}
    assert all(set(m) == {"auroc", "pointing"} for m in overall["metrics"].values())

    records = load_steps(steps_file)
    for method, value in {
        "reward": lambda s: s.reward,
        "weighted": lambda s: s.weight * s.reward,
        "length": lambda s: len(s.text.strip()),
    }.items():
        expected = recompute(checkpoint, records, value)
        got = overall["metrics"][method]
        assert got["auroc"] == pytest.approx(expected["auroc"]), method
        assert got["pointing"] == pytest.approx(expected["pointing"]), method
    shown = f"{overall['metrics']['reward']['auroc']:.3f}"
    assert lines[2].split()[-2] == shown


def test_eval_steps_max_length_leaves_sentences_out(
    checkpoint: Path, steps_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report.json"
    result = CliRunner().invoke(
        main,
        ["eval", "--model", str(checkpoint), "--steps", str(steps_file), "--json", str(out)]
        + ["--max-length", "14"],
    )
    assert result.exit_code == 0, result.output
    overall = json.loads(out.read_text())["overall"]
    expected = recompute(checkpoint, load_steps(steps_file), lambda s: s.reward, max_length=14)
    assert overall["sentences"]["truncated"] == expected["truncated"] > 0
    assert overall["metrics"]["reward"]["auroc"] == pytest.approx(expected["auroc"])


def test_eval_steps_joins_steps_with_the_separator(
    checkpoint: Path, steps_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    given: dict = {}

    def capture(model, prompts, responses, *, spans, **kwargs):
        given.update(responses=responses, spans=spans)
        return score_responses(model, prompts, responses, spans=spans, **kwargs)

    monkeypatch.setattr(srm.score, "score_responses", capture)
    result = CliRunner().invoke(
        main,
        ["eval", "--model", str(checkpoint), "--steps", str(steps_file)]
        + ["--step-separator", "\\n\\n"],
    )
    assert result.exit_code == 0, result.output
    assert given["responses"][1] == "Hi.\n\nI am a fish.\n\nBye."
    assert given["responses"][2] == "Why did the chicken cross the road?\nTo get to the other side!"
    assert [s.text for s in given["spans"][1]] == ["Hi.\n\n", "I am a fish.\n\n", "Bye."]


GOOD_LINE = RECORDS[1]
BAD_FILES = {
    "length mismatch": (
        {"prompt": "Q?", "completions": ["A.", "B.", "C."], "labels": [True, False]},
        ["field 'labels': has 2 labels but completions has 3 sentences"],
    ),
    "non-bool labels": (
        {"prompt": "Q?", "completions": ["A.", "B."], "labels": [1, "true"]},
        [
            "field 'labels[0]': expected a bool (true = good, false = bad), got int 1",
            "field 'labels[1]': expected a bool (true = good, false = bad), got str 'true'",
        ],
    ),
    "empty completions": (
        {"prompt": "Q?", "completions": [], "labels": []},
        ["field 'completions': is empty"],
    ),
    "non-string completion": (
        {"prompt": "Q?", "completions": ["A.", 7], "labels": [True, False]},
        ["field 'completions[1]': expected a string, got int"],
    ),
    "missing prompt": (
        {"completions": ["A.", "B."], "labels": [True, False]},
        ["field 'prompt': missing required field"],
    ),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_eval_steps_refuses_a_bad_file_and_scores_nothing(
    case: str, checkpoint: Path, tmp_path: Path, scoring_calls: list[int]
) -> None:
    bad_record, messages = BAD_FILES[case]
    path = write_lines(tmp_path / "bad.jsonl", [GOOD_LINE, bad_record])
    out = tmp_path / "report.json"
    result = CliRunner().invoke(
        main, ["eval", "--model", str(checkpoint), "--steps", str(path), "--json", str(out)]
    )
    assert result.exit_code != 0
    for message in messages:
        assert f"{path}:line 2: {message}" in result.output
    assert "nothing was loaded" in result.output.lower()
    assert scoring_calls == []
    assert not out.exists()


def test_eval_steps_scores_a_good_file_once(
    checkpoint: Path, steps_file: Path, scoring_calls: list[int]
) -> None:
    # The other side of the test above: the counting fixture does see real scoring.
    result = CliRunner().invoke(
        main, ["eval", "--model", str(checkpoint), "--steps", str(steps_file)]
    )
    assert result.exit_code == 0, result.output
    assert scoring_calls == [len(RECORDS)]


def test_eval_steps_excludes_pairs_and_pair_only_options(steps_file: Path) -> None:
    both = CliRunner().invoke(main, ["eval", "--steps", str(steps_file), "--data", "x.jsonl"])
    assert both.exit_code == 2
    assert "Give one of --steps FILE, --data PATH or --scores FILE" in both.output
    stray = CliRunner().invoke(main, ["eval", "--data", "x.jsonl", "--step-separator", " "])
    assert stray.exit_code == 2
    assert "--step-separator applies to --steps FILE only" in stray.output
