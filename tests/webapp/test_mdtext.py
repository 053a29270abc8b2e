"""mdtext: user text escaped for Streamlit's markdown, and guidelines rendered without images,
raw HTML or live links. markdown-it-py (CommonMark) is the oracle; the browser test checks the
real renderer."""

from __future__ import annotations

import html
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.webapp.conftest import markup_in
from webapp import mdtext

HOSTILE = [
    "![b](http://127.0.0.1:8999/x.png)",
    "[Session expired: sign in again](http://127.0.0.1:8999/login)",
    "<http://127.0.0.1:8999/auto> http://bare.example/x www.bare.example me@mail.example",
    "<img src=x onerror=alert(1)> <b>bold</b> &amp; &#60;",
    "**bold** _em_ `code` ~~gone~~ :red[red] $x^2$ :material/lock: :smile: :streamlit:",
    "# heading",
    "> quote",
    "- item",
    "1. item",
    "    indented code",
    "| a | b |",
    "[ref]: http://127.0.0.1:8999/ref",
    "a -> b <- c -- d",
    "trailing backslash \\",
]


def visible(markdown: str) -> str:
    """The text a reader sees: tags dropped, entities decoded, joiners and spacing ignored."""
    rendered = re.sub(r"<[^>]+>", " ", render(markdown))
    return " ".join(html.unescape(rendered).replace("\u2060", "").split())


def render(markdown: str) -> str:
    """HTML for ``markdown`` as CommonMark with GFM tables and strikethrough render it."""
    from markdown_it import MarkdownIt

    return (
        MarkdownIt("commonmark", {"html": False})
        .enable(["table", "strikethrough"])
        .render(markdown)
    )


@pytest.mark.parametrize("text", HOSTILE)
def test_escaped_text_renders_as_itself(text: str) -> None:
    escaped = mdtext.escape(text)
    assert markup_in(escaped) == []
    assert render(escaped).startswith("<p>")  # no heading, list, quote, code block, table
    assert visible(escaped) == " ".join(text.split())


def test_line_breaks_stay_line_breaks() -> None:
    rendered = render(mdtext.escape("first line\n\n  # second\nthird"))
    assert rendered.count("<br />") == 3 and "<h1>" not in rendered


def test_the_word_joiner_breaks_what_streamlit_rewrites_after_parsing() -> None:
    # Bare URLs, e-mail addresses, shortcodes and arrows are found in the parsed text, where
    # backslash escapes are already gone.
    escaped = mdtext.escape("http://a.example www.b.example c@d.example :smile: x -> y")
    text = html.unescape(re.sub(r"<[^>]+>", "", render(escaped)))
    for pattern in ("http://", "www.", "c@d", ":smile:", "->"):
        assert pattern not in text
        assert pattern in text.replace("\u2060", "")


@given(st.text(st.characters(exclude_categories=("Cs", "Cc"), include_characters="\n\t")))
def test_no_text_becomes_markup(text: str) -> None:
    escaped = mdtext.escape(text)
    assert markup_in(escaped) == []
    assert visible(escaped) == " ".join(text.replace("\u2060", "").split())


def test_guidelines_keep_their_markdown_but_nothing_loads_or_links() -> None:
    source = (
        "### How to label\n\n| key | action |\n|---|---|\n| **k** | keep |\n\n"
        "- ![logo](http://127.0.0.1:8999/logo.png) an image\n"
        "- [the rules](http://127.0.0.1:8999/rules) and <http://127.0.0.1:8999/auto>\n"
        "- [click](javascript:alert(1)) and [ref][r]\n"
        "- <img src=x onerror=alert(1)> <script>alert(1)</script>\n\n"
        "[r]: http://127.0.0.1:8999/ref\n"
    )
    rendered = mdtext.guidelines_html(source)
    assert "<h3>How to label</h3>" in rendered and "<strong>k</strong>" in rendered
    assert "<table>" in rendered and "<li>" in rendered
    assert not re.search(r"<(?:img|a|script)\b", rendered)
    assert "[image not shown: logo]" in rendered
    assert "the rules</span> (link: http://127.0.0.1:8999/rules)" in rendered
    assert "http://127.0.0.1:8999/auto</span>" in rendered  # an autolink shows its address once
    assert "(link: http://127.0.0.1:8999/ref)" in rendered
    assert "&lt;img src=x onerror=alert(1)&gt;" in rendered
    assert "&lt;script&gt;" in rendered
