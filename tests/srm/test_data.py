"""Loading, validating and writing preference pairs (srm.data)."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from srm.data import (
    MAX_MARGIN,
    DataError,
    PreferencePair,
    Problem,
    content_id,
    load_pairs,
    write_jsonl,
)

DATA_DIR = Path(__file__).parents[2] / "data"

Records = list[dict[str, Any]]
MakeInput = Callable[..., "Path | datasets.Dataset"]
WriteText = Callable[[str, "str | bytes"], Path]

TRL_RECORDS: Records = [
    {
        "id": "a1",
        "prompt": "What is 2+2?",
        "chosen": "4",
        "rejected": "5",
        "source": "math",
        "margin": 0.5,
    },
    {
        "id": "a2",
        "prompt": "Say hi, please",
        "chosen": "Hi!",
        "rejected": "Go away.",
        "source": None,
        "margin": None,
    },
]

SYSTEM = {"role": "system", "content": "Be brief."}
ASK = {"role": "user", "content": "Capital of France?"}
CHAT_PROMPT = "\n\nSystem: Be brief.\n\nHuman: Capital of France?\n\nAssistant:"
CHAT_RECORDS: Records = [
    {  # implicit prompt: the whole conversation in both chosen and rejected
        "prompt": None,
        "chosen": [SYSTEM, ASK, {"role": "assistant", "content": "Paris."}],
        "rejected": [SYSTEM, ASK, {"role": "assistant", "content": " Lyon, I think. "}],
    },
    {  # TRL conversational: explicit prompt list, one assistant message each
        "prompt": [SYSTEM, ASK],
        "chosen": [{"role": "assistant", "content": "Paris"}],
        "rejected": [{"role": "assistant", "content": "Marseille"}],
    },
]


def _fill_columns(records: Records) -> Records:
    """Give every record every key: Arrow tables need one column set for all rows."""
    keys = list(dict.fromkeys(key for record in records for key in record))
    return [{key: record.get(key) for key in keys} for record in records]


@pytest.fixture
def make_input(tmp_path: Path) -> MakeInput:
    """Write ``records`` as the given kind of input and return its path (or a Dataset)."""

    def make(records: Records, kind: str = "jsonl", name: str = "pairs") -> Path | datasets.Dataset:
        if kind == "memory":
            return datasets.Dataset.from_list(_fill_columns(records))
        if kind == "jsonl":
            path = tmp_path / f"{name}.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        elif kind == "json":
            path = tmp_path / f"{name}.json"
            path.write_text(json.dumps(records, indent=2), encoding="utf-8")
        elif kind == "csv":
            path = tmp_path / f"{name}.csv"
            rows = _fill_columns(records)
            with path.open("w", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in rows)
        elif kind == "parquet":
            path = tmp_path / f"{name}.parquet"
            datasets.Dataset.from_list(_fill_columns(records)).to_parquet(path)
        elif kind == "dataset":
            path = tmp_path / name
            datasets.Dataset.from_list(_fill_columns(records)).save_to_disk(path)
        else:
            raise AssertionError(f"unknown kind {kind}")
        return path

    return make


@pytest.fixture
def write_text(tmp_path: Path) -> WriteText:
    """Write raw text or bytes to ``tmp_path / name`` and return the path."""

    def write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return write


def problem_keys(err: pytest.ExceptionInfo[DataError]) -> list[tuple[str, str | None]]:
    return [(p.location, p.field) for p in err.value.problems]


# ----------------------------------------------------------------------------- input kinds


@pytest.mark.parametrize("kind", ["jsonl", "json", "csv", "parquet", "dataset", "memory"])
def test_every_input_kind_loads_trl_records(make_input: MakeInput, kind: str) -> None:
    pairs = load_pairs(make_input(TRL_RECORDS, kind))

    fallback = "dataset" if kind == "memory" else "pairs"
    assert pairs == [
        PreferencePair("a1", "What is 2+2?", "4", "5", source="math", margin=0.5),
        PreferencePair("a2", "Say hi, please", "Hi!", "Go away.", source=fallback, margin=None),
    ]


@pytest.mark.parametrize("kind", ["jsonl", "json", "parquet", "dataset", "memory"])
def test_every_structured_input_kind_loads_chat_records(make_input: MakeInput, kind: str) -> None:
    pairs = load_pairs(make_input(CHAT_RECORDS, kind), default_source="chat")

    assert pairs == [
        PreferencePair(
            content_id(CHAT_PROMPT, "Paris.", "Lyon, I think."),
            CHAT_PROMPT,
            "Paris.",
            "Lyon, I think.",
            source="chat",
        ),
        PreferencePair(
            content_id(CHAT_PROMPT, "Paris", "Marseille"), CHAT_PROMPT, "Paris", "Marseille", "chat"
        ),
    ]


def test_csv_cells_are_text_and_empty_optional_cells_are_absent(write_text: WriteText) -> None:
    path = write_text(
        "cells.csv",
        "id,prompt,chosen,rejected,source,margin\n"
        '007,"Count, then stop",42,"forty-\ntwo",,\n'
        ",Pick one,yes,no,poll,-1.5\n",
    )

    assert load_pairs(path) == [
        PreferencePair("007", "Count, then stop", "42", "forty-\ntwo", "cells", None),
        PreferencePair(content_id("Pick one", "yes", "no"), "Pick one", "yes", "no", "poll", -1.5),
    ]


def test_csv_columns_that_look_numeric_stay_text(write_text: WriteText) -> None:
    path = write_text(
        "numbers.csv",
        "id,prompt,chosen,rejected,margin\n007,Pick a number,42,7,1\n010,Another,3.0,1e3,2.5\n",
    )

    assert load_pairs(path) == [
        PreferencePair("007", "Pick a number", "42", "7", "numbers", 1.0),
        PreferencePair("010", "Another", "3.0", "1e3", "numbers", 2.5),
    ]


def test_json_file_written_as_json_lines_by_datasets_is_read(tmp_path: Path) -> None:
    path = tmp_path / "exported.json"
    datasets.Dataset.from_list(TRL_RECORDS).to_json(path)  # JSON Lines despite the suffix

    assert [p.id for p in load_pairs(path)] == ["a1", "a2"]


def test_format_overrides_the_extension(write_text: WriteText) -> None:
    path = write_text("pairs.txt", json.dumps(TRL_RECORDS[0]) + "\n")

    assert load_pairs(path, format="jsonl") == [
        PreferencePair("a1", "What is 2+2?", "4", "5", source="math", margin=0.5)
    ]


def test_a_single_split_dataset_dict_loads_that_split(tmp_path: Path) -> None:
    path = tmp_path / "dd"
    datasets.DatasetDict({"test": datasets.Dataset.from_list(TRL_RECORDS)}).save_to_disk(path)

    assert [p.id for p in load_pairs(path)] == ["a1", "a2"]


def test_a_multi_split_dataset_dict_must_be_loaded_one_split_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "dd"
    split = datasets.Dataset.from_list(TRL_RECORDS)
    datasets.DatasetDict({"train": split, "test": split.select([0])}).save_to_disk(path)

    with pytest.raises(DataError) as err:
        load_pairs(path)
    assert err.value.problems == [
        Problem(
            str(path),
            "",
            None,
            "a DatasetDict with splits 'train', 'test'; load one split at a time: pass one "
            f"split's folder, e.g. {path / 'train'}",
        )
    ]
    assert [p.id for p in load_pairs(path / "test")] == ["a1"]
    assert load_pairs(path / "train")[1].source == "train"


def test_an_in_memory_multi_split_dataset_dict_is_refused_with_the_fix() -> None:
    split = datasets.Dataset.from_list(TRL_RECORDS)
    with pytest.raises(DataError, match=re.escape("<dataset>: a DatasetDict with splits 'a', 'b'")):
        load_pairs(datasets.DatasetDict({"a": split, "b": split}))
    pairs = load_pairs(datasets.DatasetDict({"only": split}))
    assert [p.source for p in pairs] == ["math", "dataset"]


def test_an_in_memory_dataset_ignores_its_format_and_honours_selection() -> None:
    data = datasets.Dataset.from_list(TRL_RECORDS).select([1, 0]).with_format("numpy")

    assert [p.id for p in load_pairs(data)] == ["a2", "a1"]
    assert load_pairs(data)[1].margin == 0.5


def test_loading_through_datasets_leaves_the_hf_cache_and_progress_bars_alone(
    make_input: MakeInput, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "hf-cache"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    csv_path = make_input(TRL_RECORDS, "csv")
    parquet_path = make_input(TRL_RECORDS, "parquet")
    datasets.enable_progress_bars()

    assert len(load_pairs(csv_path)) == 2
    assert len(load_pairs(parquet_path)) == 2
    assert not cache.exists()
    assert datasets.is_progress_bar_enabled()


# -------------------------------------------------------------------------------- adapters


def test_trl_record_with_integer_id_and_integer_margin(make_input: MakeInput) -> None:
    path = make_input([{"id": 7, "prompt": "p", "chosen": "c", "rejected": "r", "margin": 2}])

    assert load_pairs(path) == [PreferencePair("7", "p", "c", "r", "pairs", 2.0)]
    assert isinstance(load_pairs(path)[0].margin, float)


def test_trl_text_is_kept_verbatim(make_input: MakeInput) -> None:
    record = {"prompt": "  Hi \n", "chosen": " Hello\n", "rejected": "\tYo"}

    [pair] = load_pairs(make_input([record]))

    assert (pair.prompt, pair.chosen, pair.rejected) == ("  Hi \n", " Hello\n", "\tYo")


def test_default_source_is_used_only_when_the_record_has_none(make_input: MakeInput) -> None:
    pairs = load_pairs(make_input(TRL_RECORDS), default_source="upload")

    assert [p.source for p in pairs] == ["math", "upload"]


def test_hh_transcripts_are_split_at_the_last_shared_assistant_turn(make_input: MakeInput) -> None:
    history = "\n\nHuman: Hi\n\nAssistant: Hello! How can I help?\n\nHuman: Is the Sun a star?"
    record = {
        "id": "hh-1",
        "chosen": history + "\n\nAssistant: Yes, the Sun is a star.",
        "rejected": history + "\n\nAssistant: Yes, it is a planet.\n",
    }

    assert load_pairs(make_input([record])) == [
        PreferencePair(
            "hh-1",
            history + "\n\nAssistant:",
            "Yes, the Sun is a star.",
            "Yes, it is a planet.",
            "pairs",
        )
    ]


def test_hh_transcript_chat_and_trl_forms_of_one_pair_are_the_same_pair(
    make_input: MakeInput,
) -> None:
    prompt = "\n\nHuman: Name a prime.\n\nAssistant:"
    records = [
        {"prompt": prompt, "chosen": "Seven.", "rejected": "Nine."},
        {"chosen": prompt + " Seven.", "rejected": prompt + " Nine."},
        {
            "chosen": [
                {"role": "user", "content": "Name a prime."},
                {"role": "assistant", "content": "Seven."},
            ],
            "rejected": [
                {"role": "user", "content": "Name a prime."},
                {"role": "assistant", "content": "Nine."},
            ],
        },
    ]
    for record in records:
        assert load_pairs(make_input([record])) == [
            PreferencePair(
                "sha256:" + _sha(prompt, "Seven.", "Nine."), prompt, "Seven.", "Nine.", "pairs"
            )
        ]


def test_bundled_hh_pairs_survive_being_rebuilt_as_transcripts(tmp_path: Path) -> None:
    pairs = load_pairs(DATA_DIR / "heldout_hh_rlhf.jsonl")
    path = tmp_path / "transcripts.jsonl"
    path.write_text(
        "".join(
            json.dumps(
                {
                    "id": p.id,
                    "source": p.source,
                    "chosen": f"{p.prompt} {p.chosen}",
                    "rejected": f"{p.prompt} {p.rejected}",
                }
            )
            + "\n"
            for p in pairs
        ),
        encoding="utf-8",
    )

    assert load_pairs(path) == pairs


# --------------------------------------------------------------------------------- ids


def _sha(prompt: str, chosen: str, rejected: str) -> str:
    return hashlib.sha256(f"{prompt}\x1f{chosen}\x1f{rejected}".encode()).hexdigest()[:16]


def test_content_id_is_a_fixed_function_of_the_content() -> None:
    # A literal, so a change to the recipe (which would orphan stored ids) fails here.
    assert (
        content_id("Why is the sky blue?", "Rayleigh scattering.", "Because it reflects the sea.")
        == "sha256:4a5911f52ecca7e8"
    )


def test_missing_ids_are_stable_across_loads_and_files(make_input: MakeInput) -> None:
    records = [
        {"prompt": "p", "chosen": "c", "rejected": "r"},
        {"prompt": "p", "chosen": "r", "rejected": "c"},
        {"prompt": "p2", "chosen": "c", "rejected": "r"},
    ]
    first = load_pairs(make_input(records, name="one"))
    again = load_pairs(make_input(records, name="one"))
    elsewhere = load_pairs(make_input(records[:1], "csv", name="two"))

    assert [p.id for p in first] == [
        "sha256:" + _sha("p", "c", "r"),
        "sha256:" + _sha("p", "r", "c"),
        "sha256:" + _sha("p2", "c", "r"),
    ]
    assert len({p.id for p in first}) == 3
    assert [p.id for p in again] == [p.id for p in first]
    assert elsewhere[0].id == first[0].id


def test_duplicate_ids_name_both_lines(write_text: WriteText) -> None:
    lines = [
        {"id": "x", "prompt": "p", "chosen": "a", "rejected": "b"},
        {"id": "y", "prompt": "p", "chosen": "a", "rejected": "c"},
        {"id": "x", "prompt": "q", "chosen": "a", "rejected": "b"},
        {"id": 5, "prompt": "q", "chosen": "a", "rejected": "c"},
        {"id": "5", "prompt": "q", "chosen": "a", "rejected": "d"},
    ]
    path = write_text("dups.jsonl", "\n".join(json.dumps(r) for r in lines))

    with pytest.raises(DataError, match=re.escape(f"{path}:line 3: field 'id': id 'x' already")):
        load_pairs(path)
    with pytest.raises(DataError) as err:
        load_pairs(path)
    assert [str(p) for p in err.value.problems] == [
        f"{path}:line 3: field 'id': id 'x' already used on line 1; ids must be unique: rename "
        "or remove one of them",
        f"{path}:line 5: field 'id': id '5' already used on line 4; ids must be unique: rename "
        "or remove one of them",
    ]


def test_duplicate_ids_are_reported_even_on_records_with_other_problems(
    write_text: WriteText,
) -> None:
    path = write_text(
        "dups.jsonl",
        '{"id": "x", "prompt": "p", "chosen": "a", "rejected": "b"}\n'
        '{"id": "x", "prompt": "p", "chosen": 1, "rejected": "b"}\n',
    )

    with pytest.raises(DataError) as err:
        load_pairs(path)
    assert problem_keys(err) == [("line 2", "chosen"), ("line 2", "id")]


def test_identical_records_without_ids_are_reported_as_exact_duplicates(
    make_input: MakeInput,
) -> None:
    record = {"prompt": "p", "chosen": "a", "rejected": "b"}
    path = make_input([record, record], "csv")

    with pytest.raises(DataError) as err:
        load_pairs(path)
    assert err.value.problems == [
        Problem(
            str(path),
            "row 2",
            "id",
            f"id 'sha256:{_sha('p', 'a', 'b')}' already used on row 1; that id was derived "
            "from the content, so the two records are exact duplicates: remove one",
        )
    ]


# --------------------------------------------------------------------------- bad records

GOOD = {"id": "good-1", "prompt": "Hi", "chosen": "Hello", "rejected": "Go away"}
HH = "\n\nHuman: Hi"
USER = {"role": "user", "content": "Hi"}


def _chat(chosen_last: Any, rejected_last: Any, history: list[Any] | None = None) -> dict:
    history = [USER] if history is None else history
    return {"chosen": [*history, chosen_last], "rejected": [*history, rejected_last]}


def _say(text: Any, role: Any = "assistant") -> dict[str, Any]:
    return {"role": role, "content": text}


# (line 3 of bad.jsonl, field, start of the message)
BAD_RECORDS = [
    pytest.param(
        {"prompt": "Hi", "rejected": "No"},
        "chosen",
        "missing required field",
        id="trl-missing-chosen",
    ),
    pytest.param(
        {"chosen": HH + "\n\nAssistant: Hello"},
        "rejected",
        "missing required field (records without 'prompt' are read as HH-RLHF transcripts",
        id="hh-missing-rejected",
    ),
    pytest.param(
        {"prompt": "Hi", "chosen": 42, "rejected": "No"},
        "chosen",
        "expected a string, got int",
        id="chosen-is-a-number",
    ),
    pytest.param(
        {"prompt": None, "chosen": "Yes", "rejected": "No"},
        "prompt",
        "expected a string, got null",
        id="prompt-is-null",
    ),
    pytest.param(
        {"prompt": "Hi", "chosen": "", "rejected": "No"},
        "chosen",
        "is empty or whitespace-only; a preference pair needs two non-empty responses",
        id="chosen-empty",
    ),
    pytest.param(
        {"prompt": "Hi", "chosen": "Yes", "rejected": " \n\t"},
        "rejected",
        "is empty or whitespace-only",
        id="rejected-whitespace",
    ),
    pytest.param(
        {"prompt": "  ", "chosen": "Yes", "rejected": "No"},
        "prompt",
        "is empty; every pair needs the prompt its responses answer",
        id="prompt-whitespace",
    ),
    pytest.param(
        {"prompt": "Hi", "chosen": "Same", "rejected": "Same"},
        "rejected",
        "chosen and rejected are identical; a preference pair needs two different responses",
        id="identical-responses",
    ),
    pytest.param(
        {"chosen": HH + "\n\nAssistant: Same ", "rejected": HH + "\n\nAssistant: Same"},
        "rejected",
        "chosen and rejected are identical",
        id="hh-identical-after-split",
    ),
    pytest.param(
        {"prompt": "Hi", "chosen": "Yes", "rejected": "No", "margin": "high"},
        "margin",
        "expected a finite number, got str 'high'",
        id="margin-is-text",
    ),
    pytest.param(
        '{"prompt": "Hi", "chosen": "Yes", "rejected": "No", "margin": NaN}',
        "margin",
        "expected a finite number, got nan",
        id="margin-nan",
    ),
    pytest.param(
        {"prompt": "Hi", "chosen": "Yes", "rejected": "No", "margin": True},
        "margin",
        "expected a finite number, got bool",
        id="margin-bool",
    ),
    pytest.param(
        {"id": 1.5, "prompt": "Hi", "chosen": "Yes", "rejected": "No"},
        "id",
        "expected a string or an integer, got float",
        id="id-float",
    ),
    pytest.param(
        {"id": " ", "prompt": "Hi", "chosen": "Yes", "rejected": "No"},
        "id",
        "is empty; give a non-empty id or drop the field to derive one",
        id="id-blank",
    ),
    pytest.param(
        {"id": "good-1", "prompt": "Hi", "chosen": "Yes", "rejected": "No"},
        "id",
        "id 'good-1' already used on line 1",
        id="id-duplicate",
    ),
    pytest.param(
        {"prompt": "Hi", "chosen": "Yes", "rejected": "No", "source": 3},
        "source",
        "expected a string, got int",
        id="source-number",
    ),
    pytest.param(
        {"chosen": "Yes", "rejected": "No"},
        "chosen",
        "there is no 'prompt' field, and chosen and rejected are not HH-RLHF transcripts",
        id="hh-no-shared-assistant-turn",
    ),
    pytest.param(
        {"chosen": HH + "\n\nAssistant:  ", "rejected": HH + "\n\nAssistant: Go away"},
        "chosen",
        "the response after the final shared '\\n\\nAssistant:' is empty",
        id="hh-empty-response",
    ),
    pytest.param(
        {"chosen": "\n\nAssistant: Yes", "rejected": "\n\nAssistant: No"},
        "chosen",
        "nothing comes before the shared '\\n\\nAssistant:', so the prompt would be empty",
        id="hh-empty-prompt",
    ),
    pytest.param(
        _chat(_say("Yes"), _say("Hm?", role="user")),
        "rejected",
        "the last message has role 'user'; the final turn must be the assistant's response",
        id="chat-last-turn-not-assistant",
    ),
    pytest.param(
        {
            "chosen": [USER, _say("Yes")],
            "rejected": [_say("Hey", role="user"), _say("No")],
        },
        "rejected",
        "the conversation before the final assistant turn differs from chosen's (first "
        "difference at message 0)",
        id="chat-histories-differ",
    ),
    pytest.param(
        {
            "chosen": [SYSTEM, USER, _say("Yes")],
            "rejected": [USER, _say("No")],
        },
        "rejected",
        "the conversation before the final assistant turn differs from chosen's (first "
        "difference at message 0)",
        id="chat-history-missing-system-turn",
    ),
    pytest.param(
        _chat(_say("Yes", role="bot"), _say("No")),
        "chosen[1].role",
        "expected one of 'system', 'user', 'assistant', got 'bot'",
        id="chat-unknown-role",
    ),
    pytest.param(
        _chat(_say("Yes"), _say(None)),
        "rejected[1].content",
        "expected a string, got null",
        id="chat-content-null",
    ),
    pytest.param(
        _chat("Yes", _say("No")),
        "chosen[1]",
        "expected a {role, content} object, got str",
        id="chat-message-not-object",
    ),
    pytest.param(
        _chat(_say("Yes"), _say("No"), history=[]),
        "chosen",
        "there are no turns before the final assistant turn, so the prompt would be empty",
        id="chat-no-prompt-turns",
    ),
    pytest.param(
        {"chosen": [USER, _say("Yes")], "rejected": "No"},
        "rejected",
        "expected a list of {role, content} messages like the other fields of this record, got str",
        id="chat-mixed-with-string",
    ),
    pytest.param(
        _chat(_say(" "), _say("No")),
        "chosen",
        "is empty or whitespace-only",
        id="chat-empty-response",
    ),
]


@pytest.mark.parametrize(("line", "field", "message"), BAD_RECORDS)
def test_a_bad_record_is_reported_with_file_line_and_field(
    write_text: WriteText, line: dict | str, field: str, message: str
) -> None:
    text = line if isinstance(line, str) else json.dumps(line)
    path = write_text("bad.jsonl", f"{json.dumps(GOOD)}\n\n{text}\n")

    with pytest.raises(DataError, match=re.escape(f"{path}:line 3: field '{field}': {message}")):
        load_pairs(path)
    with pytest.raises(DataError) as err:
        load_pairs(path)
    assert problem_keys(err) == [("line 3", field)]


# (content of bad.jsonl, location, start of the message) for problems with a whole record
BAD_LINES = [
    pytest.param(
        '{"prompt": "Hi", "chosen": "Yes" "rejected": "No"}',
        "line 3",
        "invalid JSON: Expecting ',' delimiter (column 34)",
        id="malformed-json",
    ),
    pytest.param(
        '["Hi", "Yes", "No"]', "line 3", "expected a JSON object (a record), got list", id="array"
    ),
    pytest.param("17", "line 3", "expected a JSON object (a record), got int", id="number"),
    pytest.param(
        '{"question": "Hi", "answer": "Yes"}',
        "line 3",
        "unrecognised record shape: found keys 'question', 'answer'; tried TRL (prompt, chosen, "
        "rejected as strings), HH-RLHF transcripts",
        id="unrecognised-shape",
    ),
]


@pytest.mark.parametrize(("line", "location", "message"), BAD_LINES)
def test_a_bad_line_is_reported_with_file_and_line(
    write_text: WriteText, line: str, location: str, message: str
) -> None:
    path = write_text("bad.jsonl", f"{json.dumps(GOOD)}\n\n{line}\n")

    with pytest.raises(DataError, match=re.escape(f"{path}:{location}: {message}")):
        load_pairs(path)
    with pytest.raises(DataError) as err:
        load_pairs(path)
    assert problem_keys(err) == [(location, None)]


def test_a_line_that_is_not_utf8_is_reported_and_the_rest_still_checked(
    write_text: WriteText,
) -> None:
    path = write_text(
        "latin1.jsonl",
        json.dumps(GOOD).encode() + b'\n{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}\n'
        b'{"prompt": "p", "chosen": 1, "rejected": "b"}\n',
    )

    with pytest.raises(DataError) as err:
        load_pairs(path)
    assert [str(p) for p in err.value.problems] == [
        f"{path}:line 2: not UTF-8 text (byte 16); save the file as UTF-8",
        f"{path}:line 3: field 'chosen': expected a string, got int",
    ]


ROW_CASES = [
    pytest.param(
        "csv",
        [GOOD, {"prompt": "Hi", "chosen": "", "rejected": "No"}],
        "row 2",
        "chosen",
        "is empty or whitespace-only",
        id="csv-empty-cell",
    ),
    pytest.param(
        "csv",
        [{**GOOD, "margin": "lots"}],
        "row 1",
        "margin",
        "expected a finite number, got str 'lots'",
        id="csv-margin-text",
    ),
    pytest.param(
        "parquet",
        [GOOD, {"id": "good-2", "prompt": "Hi", "chosen": "Yes", "rejected": "Yes"}],
        "row 2",
        "rejected",
        "chosen and rejected are identical",
        id="parquet-identical",
    ),
    pytest.param(
        "dataset",
        [GOOD, {"id": "good-1", "prompt": "Hi", "chosen": "Yes", "rejected": "No"}],
        "row 2",
        "id",
        "id 'good-1' already used on row 1",
        id="dataset-dir-duplicate-id",
    ),
    pytest.param(
        "json",
        [GOOD, GOOD | {"id": "good-2", "margin": math.inf}],
        "row 2",
        "margin",
        "expected a finite number, got inf",
        id="json-list-infinite-margin",
    ),
    pytest.param(
        "memory",
        [GOOD, {"id": "good-2", "prompt": "", "chosen": "Yes", "rejected": "No"}],
        "row 2",
        "prompt",
        "is empty",
        id="in-memory-empty-prompt",
    ),
]


@pytest.mark.parametrize(("kind", "records", "location", "field", "message"), ROW_CASES)
def test_a_bad_row_is_reported_with_file_row_and_field(
    make_input: MakeInput, kind: str, records: Records, location: str, field: str, message: str
) -> None:
    source = make_input(records, kind, name="bad")
    label = "<dataset>" if kind == "memory" else str(source)

    with pytest.raises(
        DataError, match=re.escape(f"{label}:{location}: field '{field}': {message}")
    ):
        load_pairs(source)
    with pytest.raises(DataError) as err:
        load_pairs(source)
    assert problem_keys(err) == [(location, field)]


def test_a_json_list_element_that_is_not_an_object_is_reported_by_row(
    write_text: WriteText,
) -> None:
    path = write_text("list.json", json.dumps([GOOD, "oops"]))

    with pytest.raises(DataError, match=re.escape(f"{path}:row 2: expected a JSON object")):
        load_pairs(path)


def test_every_problem_in_a_file_is_collected_in_order(write_text: WriteText) -> None:
    path = write_text(
        "many.jsonl",
        '{"prompt": "Hi", "chosen": 1, "rejected": null, "margin": "x", "id": []}\n'
        f"{json.dumps(GOOD)}\n"
        "{not json\n"
        '{"prompt": "Hi", "chosen": "a", "rejected": "a"}\n',
    )

    with pytest.raises(DataError) as err:
        load_pairs(path)
    assert problem_keys(err) == [
        ("line 1", "chosen"),
        ("line 1", "rejected"),
        ("line 1", "id"),
        ("line 1", "margin"),
        ("line 3", None),
        ("line 4", "rejected"),
    ]
    assert str(err.value).splitlines()[0] == f"6 problems in {path}; nothing was loaded:"


def test_the_message_lists_twenty_problems_and_counts_the_rest(write_text: WriteText) -> None:
    path = write_text("all_bad.jsonl", "[]\n" * 25)

    with pytest.raises(DataError) as err:
        load_pairs(path)
    lines = str(err.value).splitlines()
    assert len(err.value.problems) == 25
    assert lines[1] == f"  {path}:line 1: expected a JSON object (a record), got list"
    assert lines[20] == f"  {path}:line 20: expected a JSON object (a record), got list"
    assert lines[21:] == ["  ... and 5 more", "Fix these and load again."]


# ---------------------------------------------------------------------------- bad files


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nope.jsonl"
    with pytest.raises(DataError, match=re.escape(f"{path}: no such file or directory; check")):
        load_pairs(path)


def test_an_unknown_extension_lists_the_supported_ones(write_text: WriteText) -> None:
    path = write_text("pairs.tsv", "prompt\tchosen\trejected\n")
    with pytest.raises(DataError) as err:
        load_pairs(path)
    assert str(err.value.problems[0]) == (
        f"{path}: cannot tell the format from extension '.tsv'; supported: .jsonl/.ndjson "
        "(JSON Lines), .json (a list of records), .csv, .parquet, or a directory written by "
        "datasets' save_to_disk. Rename the file or pass format= (one of jsonl, json, csv, "
        "parquet, dataset)"
    )


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("empty.jsonl", ""),
        ("blank.ndjson", "\n  \n\n"),
        ("empty.json", "[]"),
        ("header_only.csv", "prompt,chosen,rejected\n"),
        ("nothing.csv", ""),
    ],
)
def test_an_input_without_records_is_an_error(
    write_text: WriteText, name: str, content: str
) -> None:
    path = write_text(name, content)
    with pytest.raises(DataError) as err:
        load_pairs(path)
    assert err.value.problems == [
        Problem(str(path), "", None, "no records; expected at least one preference pair")
    ]


def test_a_json_file_that_is_not_a_list_says_what_to_write(write_text: WriteText) -> None:
    path = write_text("obj.json", '"just a string"')
    with pytest.raises(DataError, match=re.escape(f"{path}: expected a top-level JSON list")):
        load_pairs(path)


def test_a_json_syntax_error_names_its_line(write_text: WriteText) -> None:
    path = write_text("broken.json", '[\n  {"prompt": "p",\n  "chosen": }\n]')
    with pytest.raises(DataError) as err:
        load_pairs(path)
    assert err.value.problems == [
        Problem(str(path), "line 3", None, "invalid JSON: Expecting value (column 13)")
    ]


def test_a_plain_directory_is_not_a_dataset(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(DataError, match=re.escape(f"{folder}: not a dataset saved with datasets'")):
        load_pairs(folder)


def test_a_corrupt_parquet_file_is_reported(write_text: WriteText) -> None:
    path = write_text("broken.parquet", b"PAR1 this is not parquet")
    with pytest.raises(DataError, match=re.escape(f"{path}: cannot read it as Parquet: ")):
        load_pairs(path)


def test_wrong_arguments_are_programming_errors(make_input: MakeInput) -> None:
    with pytest.raises(ValueError, match=r"unknown format 'xml'; use one of jsonl, json, csv"):
        load_pairs(make_input(TRL_RECORDS), format="xml")
    with pytest.raises(ValueError, match=r"format= only applies to paths"):
        load_pairs(make_input(TRL_RECORDS, "memory"), format="jsonl")
    with pytest.raises(
        TypeError, match=r"takes a path, a datasets\.Dataset or a DatasetDict, not list"
    ):
        load_pairs(TRL_RECORDS)  # type: ignore[arg-type]


def test_data_error_survives_pickling(write_text: WriteText) -> None:
    path = write_text("bad.jsonl", "[]\n")
    with pytest.raises(DataError) as err:
        load_pairs(path)

    copy = pickle.loads(pickle.dumps(err.value))

    assert copy.problems == err.value.problems
    assert str(copy) == str(err.value)


# ------------------------------------------------------------------------------ bundled data


@pytest.mark.parametrize(
    ("name", "rows"),
    [
        ("train_hh_rlhf.jsonl", 7991),
        ("heldout_hh_rlhf.jsonl", 512),
        ("eval_pandalm.jsonl", 762),
        ("sample_50.jsonl", 50),
    ],
)
def test_bundled_files_load_completely_with_unique_ids(name: str, rows: int) -> None:
    pairs = load_pairs(DATA_DIR / name)

    assert len(pairs) == rows
    assert len({p.id for p in pairs}) == rows
    assert all(p.source and p.margin is None for p in pairs)


def test_loading_logs_a_summary(make_input: MakeInput, caplog: pytest.LogCaptureFixture) -> None:
    path = make_input([*TRL_RECORDS, CHAT_RECORDS[1]])
    with caplog.at_level(logging.INFO, logger="srm.data"):
        load_pairs(path)
    assert caplog.messages == [f"loaded 3 preference pairs from {path} (1 chat, 2 trl)"]


# ---------------------------------------------------------------------- pairs and writing


def test_swapped_exchanges_the_responses_and_keeps_the_rest() -> None:
    pair = PreferencePair("x", "p", "good", "bad", "hh", 1.5)

    assert pair.swapped() == PreferencePair("x", "p", "bad", "good", "hh", 1.5)
    assert pair.swapped().swapped() == pair


def test_to_dict_is_a_trl_record_with_margin_only_when_set() -> None:
    assert PreferencePair("x", "p", "c", "r", "hh", 0.25).to_dict() == {
        "id": "x",
        "prompt": "p",
        "chosen": "c",
        "rejected": "r",
        "source": "hh",
        "margin": 0.25,
    }
    assert PreferencePair("x", "p", "c", "r").to_dict() == {
        "id": "x",
        "prompt": "p",
        "chosen": "c",
        "rejected": "r",
        "source": "",
    }


def test_write_then_load_round_trips_exactly(tmp_path: Path) -> None:
    pairs = [
        PreferencePair("a", "\n\nHuman: Hi\n\nAssistant:", "Hello", "Go away", "hh", None),
        PreferencePair("b", "Ünïcödé ✓\u2028line", " spaced \r\n", "tab\there", "pandalm", -0.75),
        PreferencePair("7", "p", "c", "r", "", 3.0),
    ]
    path = tmp_path / "out.jsonl"

    write_jsonl(pairs, path)

    assert load_pairs(path) == pairs
    assert path.read_text(encoding="utf-8").count("\n") == 3
    assert os.listdir(tmp_path) == ["out.jsonl"]


def test_bundled_sample_round_trips_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "sample_50.jsonl"
    write_jsonl(load_pairs(DATA_DIR / "sample_50.jsonl"), path)

    assert path.read_bytes() == (DATA_DIR / "sample_50.jsonl").read_bytes()


def test_write_replaces_atomically_and_leaves_no_temp_file_on_failure(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    write_jsonl([PreferencePair("old", "p", "c", "r", "s")], path)
    before = path.read_bytes()

    def failing() -> Any:
        yield PreferencePair("new", "p", "c", "r", "s")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        write_jsonl(failing(), path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["out.jsonl"]

    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        write_jsonl([PreferencePair("nan", "p", "c", "r", "s", math.nan)], path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["out.jsonl"]


def test_written_files_get_normal_permissions(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        write_jsonl([PreferencePair("x", "p", "c", "r", "s")], tmp_path / "out.jsonl")
    finally:
        os.umask(umask)
    assert (tmp_path / "out.jsonl").stat().st_mode & 0o777 == 0o644


def _text(min_size: int = 0) -> st.SearchStrategy[str]:
    # Any text a store can hold: no NUL (refused on every store), no lone surrogates.
    alphabet = st.characters(exclude_characters="\x00", exclude_categories=["Cs"])
    return st.text(alphabet, min_size=min_size, max_size=40).filter(
        lambda s: bool(s.strip()) or min_size == 0
    )


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            _text(1),
            _text(1),
            _text(1),
            _text(),
            st.none() | st.floats(min_value=-MAX_MARGIN, max_value=MAX_MARGIN),
        ).filter(lambda t: t[1] != t[2]),
        min_size=1,
        max_size=5,
    )
)
def test_any_valid_pairs_round_trip_through_jsonl(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[str, str, str, str, float | None]]
) -> None:
    pairs = [
        PreferencePair(f"id-{i}", prompt, chosen, rejected, source, margin)
        for i, (prompt, chosen, rejected, source, margin) in enumerate(rows)
    ]
    path = tmp_path_factory.mktemp("roundtrip") / "pairs.jsonl"

    write_jsonl(pairs, path)

    assert load_pairs(path) == pairs
