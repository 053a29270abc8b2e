"""Text for Streamlit's markdown: user and URL text escaped so it shows as itself, and the
annotation guidelines rendered without images, raw HTML or live links.

``highlight.py`` is the HTML side; this is the markdown side. Streamlit renders as markdown not
only ``st.markdown`` but captions, alerts, toasts, headings, metric labels and values, progress
text, widget labels and help, and the options of radios, pills and segmented controls. A pair
id, a dataset or annotator name, a job's error or a URL parameter reaching any of those could
otherwise plant an image (which the browser fetches at once) or a link; so every such string
goes through :func:`escape` first::

    st.caption(f"dataset {mdtext.escape(pair.dataset)}")  # safe: escaped

Selectbox and multiselect options and text-input values are plain text in Streamlit: they need
no escaping (it would show the backslashes).
"""

from __future__ import annotations

import html
import re
import string
from collections.abc import Sequence

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import OptionsDict

# Every ASCII punctuation character may be backslash-escaped in CommonMark, and an escaped one
# never starts markup: emphasis, links and images, code, HTML, headings, lists, tables, LaTeX
# ($) and Streamlit's :color[...] directives.
_PUNCTUATION = re.compile(f"([{re.escape(string.punctuation)}])")
# Some rewrites run on the *parsed* text, after escapes are undone: GFM autolink literals
# (http://…, www.…, a@b.c become links), emoji and icon shortcodes (:smile:, :streamlit:,
# :material_x:) and typographic arrows (a -> b). An invisible word joiner breaks each pattern.
_WORD_JOINER = "\u2060"
_AFTER_COLON = re.compile(r"(?<=:)(?=\S)")  # scheme://, mailto:, :shortcode:
_WWW = re.compile(r"(?i)(?<=\bwww)(?=\.)")
_AFTER_AT = re.compile(r"(?<=@)")
_ARROW = re.compile(r"(?<!\S)(<->|->|<-|--|>=|<=|~=)(?!\S)")


def escape(text: object) -> str:
    """``text`` as markdown that renders as exactly that text: nothing in it becomes markup.

    ASCII punctuation is backslash-escaped; word joiners (U+2060, invisible) break the
    patterns Streamlit rewrites after parsing (bare URLs and e-mail addresses, shortcodes,
    arrows); each line's leading whitespace is dropped (it would start a code block, and HTML
    does not show it anyway), and line breaks stay line breaks. ``escape("![x](http://a/x.png)")``
    shows ``![x](http://a/x.png)`` on the page and fetches nothing.
    """
    out = str(text)
    out = _AFTER_COLON.sub(_WORD_JOINER, out)
    out = _WWW.sub(_WORD_JOINER, out)
    out = _AFTER_AT.sub(_WORD_JOINER, out)
    out = _ARROW.sub(lambda m: m[1][0] + _WORD_JOINER + m[1][1:], out)
    out = _PUNCTUATION.sub(r"\\\1", out)
    # Leading whitespace would start a code block (and HTML does not show it anyway); a line
    # break at either end would show as a stray backslash. A backslash ending a line is a
    # hard line break.
    lines = out.strip().replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\\\n".join(line.lstrip() for line in lines)


# --- guidelines: markdown by design, but kept in the store, where their editors may put anything
_GUIDELINES = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


# Render rules, bound to markdown-it's renderer (``self``): the inline tokens, this one's
# index, the options and the render's env.
def _image(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: dict
) -> str:
    alt = tokens[idx].content or "image"
    return f'<span class="srm-image">[image not shown: {html.escape(alt)}]</span>'


def _link_open(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: dict
) -> str:
    token = tokens[idx]
    shown = "" if token.markup == "autolink" else str(token.attrGet("href") or "")
    env.setdefault("links", []).append(shown)  # <http://x> shows its address already
    return '<span class="srm-link">'


def _link_close(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: dict
) -> str:
    href = env["links"].pop()
    return f"</span> (link: {html.escape(href)})" if href else "</span>"


_GUIDELINES.add_render_rule("image", _image)
_GUIDELINES.add_render_rule("link_open", _link_open)
_GUIDELINES.add_render_rule("link_close", _link_close)


def guidelines_html(source: str) -> str:
    """The annotation guidelines (markdown) as HTML for ``st.html``: headings, lists, tables and
    emphasis as written, but raw HTML shown as text, images replaced by their alt text, and
    links as plain text followed by their address, so nothing is fetched or clickable.

    Guidelines come from the store, where anyone allowed to edit them may put anything;
    ``markdown-it-py`` parses them (CommonMark, GFM tables and strikethrough) and escapes all
    text, and Streamlit's DOMPurify runs on the result as well.
    """
    body = _GUIDELINES.render(source, {})
    return f'<div class="srm-guidelines">{body}</div>'
