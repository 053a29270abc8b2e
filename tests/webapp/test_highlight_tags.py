"""webapp/highlight.py on the Annotate page: tagged sentences marked on the text, and the
prompt folded past a few lines; everything from the data still escaped."""

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
