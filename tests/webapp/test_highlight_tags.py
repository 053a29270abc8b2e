"""webapp/highlight.py on the Annotate page: tagged sentences marked on the text, the keyboard's
focused sentence outlined, and the prompt folded past a few lines (a transcript to its last
human turn); everything from the data still escaped."""

from __future__ import annotations

import re

from tests.webapp.test_highlight import XSS_IMG, XSS_SCRIPT, make_side
from webapp import highlight


def test_tagged_sentences_are_marked_with_who_tagged_them() -> None:
    text = f"First one. {XSS_IMG}Second one. Third one."
    spans = [(0, 10), (11, len(text) - 11), (len(text) - 10, len(text))]
    tags = {spans[0]: {"ana": "good"}, spans[1]: {"ana": "bad", "bo": "good"}}
    html = highlight.tagged_html(text, spans, tags)
    assert "<img" not in html and "&lt;img src=x onerror=&quot;" in html
    marked = re.findall(r'<span class="([^"]*)"[^>]*data-tag="(\w+)"', html)
    assert marked == [
        ("srm-sentence srm-tagged srm-tag-good", "good"),
        ("srm-sentence srm-tagged srm-tag-mixed", "mixed"),
    ]
    assert 'title="sentence 2 · tagged: ana bad, bo good"' in html
    labels = re.findall(r'<span class="srm-tag-label"[^>]*>(\w+)</span>', html)
    assert labels == ["good", "mixed"]  # the untagged third sentence gets none
    assert "Third one.</span></div>" in html


def test_scored_sentences_carry_their_tags_too() -> None:
    text, record = make_side([("Good start.", 0.5, 1.0), (XSS_SCRIPT.strip(), -0.5, 1.0)], gap=" ")
    second = record.sentences[1]
    html = highlight.sentences_html(text, record, tags={(second.start, second.end): {"bo": "bad"}})
    assert "<script>" not in html
    assert html.count("srm-tag-label") == 1 and 'data-tag="bad"' in html
    assert "tagged: bo bad" in html and "reward -0.5 " in html  # the numbers stay in the title


def test_a_long_prompt_is_folded_and_a_short_one_is_not() -> None:
    short = highlight.prompt_html(f"Say hi. {XSS_SCRIPT}")
    assert short.startswith('<div class="srm-prompt"') and "<details" not in short
    assert "&lt;script&gt;" in short and "<script>" not in short
    lines = [f"Line {i} {XSS_IMG}" for i in range(1, 8)]
    folded = highlight.prompt_html("\n\n".join(lines))
    summary = re.search(r"<summary[^>]*>(.*)</summary>", folded).group(1)
    assert "Line 3" in summary and "Line 4" not in summary and summary.endswith(" …")
    assert "<img" not in folded and folded.count("Line 7") == 1  # the whole text, once, inside


def test_the_focused_sentence_is_outlined_and_still_escaped() -> None:
    text = f"First one. {XSS_SCRIPT}Third one."
    spans = [(0, 10), (11, len(text) - 10), (len(text) - 10, len(text))]
    html = highlight.tagged_html(text, spans, {spans[1]: {"ana": "bad"}}, focus=spans[1])
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    focused = re.findall(r'<span class="([^"]*)" style="([^"]*)"[^>]*data-focus="true"', html)
    assert focused == [
        (
            "srm-sentence srm-tagged srm-tag-bad srm-focus",
            " border-bottom: 3px solid #c62828;" + highlight.FOCUS_STYLE,
        )
    ]
    assert 'title="sentence 2 · tagged: ana bad · focused"' in html
    assert "srm-focus" not in highlight.tagged_html(text, spans, {})  # no focus, no outline


def test_a_scored_response_outlines_its_focused_sentence_too() -> None:
    text, record = make_side([("Good start.", 0.5, 1.0), (XSS_IMG.strip(), -0.5, 1.0)], gap=" ")
    second = record.sentences[1]
    html = highlight.sentences_html(text, record, focus=(second.start, second.end))
    assert "<img" not in html
    assert re.findall(r'data-sentence="(\d)" data-focus="true"', html) == ["2"]
    assert html.count(highlight.FOCUS_STYLE) == 1


# A transcript long enough to fold: two earlier turns, then the question being answered.
TRANSCRIPT = (
    f"\n\nHuman: Earlier question {XSS_IMG}\n" + "more context\n" * 5
    + f"\n\nAssistant: Earlier answer {XSS_SCRIPT}"
    + f"\n\nHuman: The real question {XSS_SCRIPT}?\n\nAssistant:"
)  # fmt: skip


def test_a_folded_transcript_shows_its_last_human_turn() -> None:
    folded = highlight.prompt_html(TRANSCRIPT)
    assert "<script>" not in folded and "<img" not in folded
    earlier = re.search(
        r'<details class="srm-prompt-earlier"><summary[^>]*>([^<]*)</summary>(.*?)</details>',
        folded,
    )
    assert earlier.group(1) == "Earlier turns (2)"
    assert "Earlier question &lt;img" in earlier.group(2)
    assert "Earlier answer &lt;script&gt;" in earlier.group(2)
    assert "The real question" not in earlier.group(2)
    question = folded[earlier.end() :]  # shown, not folded: it fits in three lines
    assert question == (
        '<div class="srm-prompt" style="white-space: pre-wrap; overflow-wrap: anywhere;'
        ' font-size: 1rem; line-height: 1.7;">Human: The real question '
        "&lt;script&gt;alert(1)&lt;/script&gt; ?</div></div>"
    )
    assert folded.count("The real question") == 1 and "Assistant:</div>" not in folded


def test_a_long_last_turn_is_folded_like_a_prompt_without_turns() -> None:
    long_question = "\n\n".join(f"Line {i} {XSS_IMG}" for i in range(1, 8))
    folded = highlight.prompt_html(f"Human: hi\n\nAssistant: hello\n\nHuman: {long_question}")
    assert folded.startswith('<div class="srm-prompt-turns"><details class="srm-prompt-earlier">')
    summaries = re.findall(r"<summary[^>]*>(.*?)</summary>", folded)
    assert summaries[0] == "Earlier turns (2)"
    assert summaries[1].startswith("Human: Line 1 &lt;img") and "Line 4" not in summaries[1]
    assert "<img" not in folded


def test_one_turn_or_a_short_transcript_is_shown_as_before() -> None:
    one_turn = "Human: " + "\n\n".join(f"Line {i}" for i in range(1, 8))
    assert highlight.prompt_html(one_turn).startswith('<details class="srm-prompt-folded">')
    short = "Human: hi\nAssistant: hello\nHuman: and?"
    assert highlight.prompt_html(short) == highlight.plain_html(short).replace(
        "srm-response", "srm-prompt"
    )
