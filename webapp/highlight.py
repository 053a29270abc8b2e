"""Responses as HTML, each sentence (or token) tinted by the model's reward, its attention weight
or the sentence's likelihood (:data:`credit_methods.VALUES`).

Pure string builders for ``st.html``.
Everything taken from a response is escaped with ``html.escape(..., quote=True)``: responses are
untrusted text and may contain ``<script>`` or ``onerror=`` attributes, so nothing from them may
ever become markup, in element content or in an attribute. The response's fenced code blocks
and tables (:func:`srm.segment.blocks`) are shown as such, in a monospace ``<pre>`` block
(``<pre><code>`` for code); their text is escaped like the rest and kept character for
character, fences and pipes included, so the spans still tile the response exactly.

Records are the typed scores of :mod:`srm.records`: a pair's :class:`~srm.records.PairScores`
for the shared colour scale, one side's :class:`~srm.records.ResponseScores` for the text.
"""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Mapping, Sequence

from srm.data.turns import last_human_turn
from srm.records import PairScores, ResponseScores, sig3
from srm.segment import Block, blocks
from webapp import credit_methods
from webapp.credit_methods import VALUES
from webapp.palette import (
    NEGATIVE_RGB,
    POSITIVE_RGB,
    WEIGHT_RGB,
    Scale,
    as_scale,
    centred_scale,
    max_abs,
)

# Tints stay translucent so black text on them keeps its contrast.
MAX_ALPHA = 0.6
TRUNCATED_GREY = "#8a8a8a"
#: How a tagged sentence is marked: an underline in the tag's colour and a small label after it.
TAG_COLORS = {"good": "#2e7d32", "bad": "#c62828", "unsure": "#8a8a8a", "mixed": "#6a1b9a"}
#: How the keyboard's focused sentence is outlined (Annotate: ``j``/``h`` move it).
FOCUS_STYLE = " outline: 2px dashed #1565c0; outline-offset: 2px;"
#: ``(start, end) -> {annotator: tag}``: one side's current sentence tags.
Tags = Mapping[tuple[int, int], Mapping[str, str]]


def reward_color(value: float, scale: float) -> str:
    """Diverging tint for a reward: orange below 0, purple above, transparent at 0.

    ``|value| >= scale`` gets the full tint (values beyond are clamped), so one ``scale`` shared
    by both responses makes their colours comparable. A NaN reward is shown as neutral.
    """
    frac = _fraction(value, scale)
    rgb = POSITIVE_RGB if frac > 0 else NEGATIVE_RGB
    return _rgba(rgb, abs(frac) * MAX_ALPHA)


def weight_color(value: float, scale: float) -> str:
    """Sequential tint for an attention weight: transparent at 0, full teal at ``scale``."""
    frac = max(_fraction(value, scale), 0.0)
    return _rgba(WEIGHT_RGB, frac * MAX_ALPHA)


def tint(value: float | None, by: str, scale: float | Scale) -> str:
    """A sentence's tint on ``scale``: a weight's sequential, anything else diverging about
    the scale's centre (0, or the pair's mean for log-probabilities). No value: no tint."""
    scale = as_scale(scale)
    if by == "weight":
        return weight_color(math.nan if value is None else value, scale.span)
    return reward_color(math.nan if value is None else value - scale.centre, scale.span)


def shared_scale(pair_record: PairScores, by: str) -> Scale:
    """The scale both responses of a pair share (:func:`credit_methods.colour_scale`): its
    ``span`` is max |reward| (or max weight) over both sides' scored sentences, about 0; a
    likelihood's (or a likelihood-head model's reward) is centred at the pair's mean. Never a
    span of 0 (1.0 when there is nothing to scale), so it is always safe to divide by."""
    _check_by(by)
    return credit_methods.colour_scale(pair_record, by)


def sentences_html(
    text: str,
    record: ResponseScores,
    *,
    by: str = "reward",
    scale: float | Scale | None = None,
    selected: int | None = None,
    large: bool = False,
    tags: Tags | None = None,
    focus: tuple[int, int] | None = None,
) -> str:
    """One response, each sentence in a ``<span>`` tinted by its ``reward``, ``weight`` or
    ``likelihood``.

    ``record`` is one side of a scored pair and ``text`` that response: sentence offsets index
    into it. Pass ``scale=shared_scale(pair, by)`` so chosen and rejected share a colour scale
    (a bare number is a span about 0); without it this response's own maximum is used (its
    mean is the centre for ``likelihood``). ``selected`` (1-based) gets an outline.
    Sentences that truncation dropped (``reward`` None) are grey with a dashed underline. Spans
    carry ``data-sentence="<1-based index>"`` and a tooltip with the numbers. Sentences in
    ``tags`` (``(start, end) -> {annotator: tag}``) are marked as :func:`tagged_html` marks them,
    and the sentence spanning ``focus`` as it does.
    """
    _check_by(by)
    sentences = record.sentences
    if scale is None:
        values = [getattr(s, by) for s in sentences]
        scale = centred_scale(values) if by == "likelihood" else max_abs(values)
    spans = []
    for i, s in enumerate(sentences, start=1):
        reward, weight = s.reward, s.weight
        if reward is None or weight is None:
            style = f"color: {TRUNCATED_GREY}; text-decoration: underline dashed {TRUNCATED_GREY};"
            title = f"sentence {i} · cut by truncation: not scored, not part of the score"
            classes = ["srm-sentence", "srm-truncated"]
        else:
            style = f"background-color: {tint(getattr(s, by), by, scale)}; border-radius: 3px;"
            title = (
                f"sentence {i} · reward {sig3(reward)} · weight {sig3(weight, signed=False)}"
                f" · contributes {sig3(reward * weight)}"
            )
            if s.likelihood is not None and s.likelihood != reward:  # not the reward again
                title += f" · likelihood {sig3(s.likelihood)}"
            classes = ["srm-sentence"]
        if selected == i:
            style += " outline: 2px solid #222; outline-offset: 1px;"
            classes.append("srm-selected")
        span = (s.start, s.end, classes, style, title, {"data-sentence": str(i)})
        span = _with_tag(span, (tags or {}).get((s.start, s.end)))
        spans.append(_with_focus(span, focus))
    return _response_div(text, spans, large=large)


def tagged_html(
    text: str,
    sentences: Sequence[tuple[int, int]],
    tags: Tags,
    *,
    focus: tuple[int, int] | None = None,
) -> str:
    """Untinted text with its tagged sentences marked: each tagged sentence underlined in the
    tag's colour, followed by a small label (``good``, ``bad``, ``unsure``, or ``mixed`` when
    annotators differ); the tooltip says who tagged what. ``sentences`` are ``(start, end)``
    spans of ``text``; ``tags`` as for :func:`sentences_html`. The sentence spanning
    ``focus`` (the keyboard's, on the Annotate page) gets a dashed outline, the class
    ``srm-focus`` and ``data-focus="true"``."""
    spans = []
    for i, (start, end) in enumerate(sentences, start=1):
        span = (start, end, ["srm-sentence"], "", f"sentence {i}", {"data-sentence": str(i)})
        spans.append(_with_focus(_with_tag(span, tags.get((start, end))), focus))
    return _response_div(text, spans, large=False)


def prompt_term_html(
    record: ResponseScores, *, by: str = "reward", scale: float | Scale, large: bool = False
) -> str:
    """A chip for the prompt's own term (marker 0) of one response, tinted like a sentence:
    it is part of the score, so the coloured text would tell half the story without it.
    ``scale`` is the sentences' shared scale; a prompt term beyond it gets the full tint and
    the chip says so. The prompt has no likelihood (it is given, not scored): coloured by
    likelihood, the chip is untinted."""
    _check_by(by)
    scale = as_scale(scale)
    reward, weight = record.prompt_reward, record.prompt_weight
    value = {"reward": reward, "weight": weight}.get(by)
    color = tint(value, by, scale)
    beyond = ""
    if value is not None and abs(value - scale.centre) > scale.span:
        beyond = " · beyond the sentences' colour scale"
    text = (
        f"prompt contribution: reward r₀ {sig3(reward)} × weight a₀ "
        f"{sig3(weight, signed=False)} = {sig3(reward * weight)}{beyond}"
    )
    size = "1.1rem" if large else "0.85rem"
    return (
        f'<div class="srm-prompt-term" style="font-size: {size}; color: #333;">'
        f'<span style="background-color: {color}; border-radius: 3px; padding: 1px 4px;">'
        f"{_escape(text)}</span></div>"
    )


def tokens_html(
    text: str,
    record: ResponseScores,
    *,
    scale: float | Scale | None = None,
    large: bool = False,
    log_probabilities: bool = False,
) -> str:
    """One response, each token in a ``<span>`` tinted by its reward: the token head's, or
    with ``log_probabilities`` (a likelihood-head model) the token's log-probability, whose
    scale is centred at the response's mean token log-probability unless ``scale`` is given.

    ``record`` must come from a token-head or likelihood-head model (it has ``tokens``). Spans
    carry ``data-token="<1-based index>"`` and a tooltip with the token text and its value.
    """
    tokens = record.tokens
    if tokens is None:
        raise ValueError(
            "this record has no token rewards: only token-head and likelihood-head models "
            "produce them; use sentences_html for sentence and response heads"
        )
    if scale is None:
        values = [t.reward for t in tokens]
        scale = centred_scale(values) if log_probabilities else max_abs(values)
    what = "log-probability" if log_probabilities else "reward"
    spans = []
    for i, t in enumerate(tokens, start=1):
        piece = text[t.start : t.end]
        spans.append(
            (
                t.start,
                t.end,
                ["srm-token"],
                f"background-color: {tint(t.reward, 'reward', scale)};",
                f"token {i} · {piece!r} · {what} {sig3(t.reward)}",
                {"data-token": str(i)},
            )
        )
    return _response_div(text, spans, large=large)


def plain_html(text: str, *, large: bool = False) -> str:
    """Untinted text (a prompt, say) in the same escaped, whitespace-keeping box as a response."""
    return _response_div(text, [], large=large)


def prompt_html(text: str, *, lines: int = 3) -> str:
    """A prompt that takes at most ``lines`` lines until opened. A transcript shows its last
    human turn (:func:`srm.data.turns.last_human_turn`: the question being answered), the
    turns before it folded behind an "Earlier turns" ``<details>``; a prompt without turns
    is the text. Either, when longer than ``lines``, shows its first lines in a
    ``<details>`` summary, the whole inside. Escaped like a response."""
    text = text.strip()
    turns = last_human_turn(text)
    if turns is None or not turns.earlier or _fits(text, lines):
        return _folded(text, lines)
    earlier = _response_div(turns.earlier, [], large=False, kind="srm-prompt-earlier-turns")
    what = f"Earlier turns ({turns.n_earlier})" if turns.n_earlier else "Earlier text"
    return (
        '<div class="srm-prompt-turns"><details class="srm-prompt-earlier">'
        '<summary style="cursor: pointer; color: #666; font-size: 0.85rem;">'
        f"{what}</summary>{earlier}</details>{_folded(turns.question, lines)}</div>"
    )


def question_html(prompt: str, *, large: bool = True) -> str:
    """The question a prompt asks, for an audience: its last human turn without the role
    word ("Human:"), the turns before it folded behind an "Earlier turns" ``<details>``; a
    prompt without turns is the text. Escaped like a response."""
    prompt = prompt.strip()
    turns = last_human_turn(prompt)
    if turns is None:
        return _response_div(prompt, [], large=large, kind="srm-prompt")
    question = turns.question.split(":", 1)[1].strip()  # the role word ends at the first colon
    shown = _response_div(question, [], large=large, kind="srm-prompt")
    if not turns.earlier:
        return shown
    earlier = _response_div(turns.earlier, [], large=False, kind="srm-prompt-earlier-turns")
    return (
        '<div class="srm-prompt-turns"><details class="srm-prompt-earlier">'
        '<summary style="cursor: pointer; color: #666; font-size: 0.85rem;">'
        f"Earlier turns ({turns.n_earlier})</summary>{earlier}</details>{shown}</div>"
    )


def _fits(text: str, lines: int) -> bool:
    return len(text.splitlines()) <= lines and len(text) <= 80 * lines


def _folded(text: str, lines: int) -> str:
    """``text`` whole when it fits in ``lines`` lines, else its first lines in a
    ``<details>`` summary with the whole inside."""
    whole = _response_div(text, [], large=False, kind="srm-prompt")
    if _fits(text, lines):
        return whole
    shown = [line for line in text.splitlines() if line.strip()][:lines]
    head = "\n".join(shown)[: 80 * lines].rstrip() + " …"
    return (
        '<details class="srm-prompt-folded"><summary style="cursor: pointer;'
        f' white-space: pre-wrap; overflow-wrap: anywhere; color: #333;">{_escape(head)}'
        f"</summary>{whole}</details>"
    )


#: The legend's name for each value.
LEGEND_LABELS = {
    "reward": "sentence reward",
    "weight": "sentence weight",
    "likelihood": "likelihood (mean token log-probability)",
}


def legend_html(by: str, scale: float | Scale, *, caption: str | None = None) -> str:
    """A small gradient bar with its numeric ends, to sit beside tinted responses; a scale
    about a mean (log-probabilities) says so. ``caption`` (the method's words,
    :func:`credit_methods.colour_caption`) goes on the line above, escaped."""
    _check_by(by)
    scale = as_scale(scale)
    span, centre = scale.span, scale.centre
    label = LEGEND_LABELS[by]
    if by == "reward" and scale.mean is not None:  # a likelihood-head model's rewards
        label += " (mean token log-probability)"
    if by == "weight":
        stops = f"transparent, {weight_color(span, span)}"
        low, high, note = "0", sig3(span, signed=False), ""
    else:
        stops = f"{reward_color(-span, span)}, transparent, {reward_color(span, span)}"
        low, high = sig3(centre - span), sig3(centre + span)
        note = f" ({credit_methods.scale_note(scale)})"
    bar = (
        '<span style="display: inline-block; width: 10em; height: 0.9em; vertical-align: middle;'
        f" border: 1px solid #ccc; border-radius: 2px; background: linear-gradient(to right,"
        f' {stops});"></span>'
    )
    named = (
        f'<div class="srm-colour-method" style="color: #333;">{_escape(caption)}</div>'
        if caption
        else ""
    )
    return (
        '<div class="srm-legend" style="font-size: 0.8rem; color: #555;">'
        f"{named}{label}: {low} {bar} {high}{_escape(note)}</div>"
    )


# --- helpers -------------------------------------------------------------------------------


def _fraction(value: float, scale: float) -> float:
    """``value / scale`` clamped to [-1, 1]; NaN -> 0."""
    if not scale > 0:
        raise ValueError(f"scale must be > 0 (got {scale!r}); use shared_scale(...) to pick one")
    if math.isnan(value):
        return 0.0
    return max(-1.0, min(1.0, value / scale))


def _rgba(rgb: tuple[int, int, int], alpha: float) -> str:
    r, g, b = rgb
    return f"rgba({r}, {g}, {b}, {alpha:.3f})"


def _check_by(by: str) -> None:
    if by not in VALUES:
        raise ValueError(f"by must be one of {VALUES}, got {by!r}")


def _escape(s: str) -> str:
    # Newlines become character references so the whole block is one line: st.markdown would
    # otherwise end the HTML block at a blank line and parse the rest of the response as
    # Markdown. Inside the div, white-space: pre-wrap turns them back into line breaks.
    return html.escape(s, quote=True).replace("\r", "&#13;").replace("\n", "&#10;")


def _with_tag(
    span: tuple[int, int, list[str], str, str, dict[str, str]], votes: Mapping[str, str] | None
) -> tuple[int, int, list[str], str, str, dict[str, str]]:
    """A sentence span, marked when it carries tags (``votes``: annotator -> tag)."""
    if not votes:
        return span
    start, end, classes, style, title, data = span
    kinds = set(votes.values())
    tag = kinds.pop() if len(kinds) == 1 else "mixed"
    color = TAG_COLORS[tag]
    who = ", ".join(f"{name} {value}" for name, value in sorted(votes.items()))
    return (
        start,
        end,
        [*classes, "srm-tagged", f"srm-tag-{tag}"],
        f"{style} border-bottom: 3px solid {color};",
        f"{title} · tagged: {who}",
        {**data, "data-tag": tag},
    )


def _with_focus(
    span: tuple[int, int, list[str], str, str, dict[str, str]], focus: tuple[int, int] | None
) -> tuple[int, int, list[str], str, str, dict[str, str]]:
    """A sentence span, outlined when it is the keyboard's focused sentence."""
    start, end, classes, style, title, data = span
    if focus != (start, end):
        return span
    return (
        start,
        end,
        [*classes, "srm-focus"],
        style + FOCUS_STYLE,
        f"{title} · focused",
        {**data, "data-focus": "true"},
    )


def _tag_label(classes: list[str]) -> str:
    """The small label after a tagged sentence (fixed words only, never data)."""
    tag = next((c.removeprefix("srm-tag-") for c in classes if c.startswith("srm-tag-")), None)
    if tag is None:
        return ""
    return (
        f'<span class="srm-tag-label" style="font-size: 0.7em; color: {TAG_COLORS[tag]};'
        f' vertical-align: super; margin-left: 2px;">{tag}</span>'
    )


#: The monospace box a code block or a table is shown in.
BLOCK_STYLE = (
    "font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.9em;"
    " line-height: 1.5; white-space: pre; overflow-x: auto; background: #f6f8fa;"
    " border: 1px solid #e1e4e8; border-radius: 4px; padding: 6px 8px; margin: 4px 0;"
)
_BLOCK_TAGS = {
    "code": ('<pre class="srm-block srm-code" style="{style}"><code>', "</code></pre>"),
    "table": ('<pre class="srm-block srm-table" style="{style}">', "</pre>"),
}

Spans = list[tuple[int, int, list[str], str, str, dict[str, str]]]


def _response_div(text: str, spans: Spans, *, large: bool, kind: str = "srm-response") -> str:
    """``text`` with the given ``(start, end, classes, style, title, data)`` spans wrapped,
    everything between them as plain escaped text, and its code blocks and tables
    (:func:`srm.segment.blocks`) in monospace boxes; a tagged span is followed by its label.
    ``kind`` is the box's class (a fixed name, never data).

    A span that crosses a block's edge (a boundary edited by hand, or the blank lines a code
    chunk ends with) is closed at the edge and continued after it: the continuation keeps the
    tint but not the ``data-`` attributes (``data-continues`` names the sentence instead), so
    each sentence is still one ``[data-sentence]`` element; a continuation of only spaces is
    left as plain text.
    """
    regions = blocks(text)
    parts = []
    pos = 0
    inside: Block | None = None
    for start, end, classes, style, title, data in spans:
        # Guard against overlapping or out-of-range offsets: never repeat or invent text.
        start, end = max(start, pos), min(end, len(text))
        if end <= start:
            continue
        inside = _emit(parts, text, pos, start, None, regions, inside)
        inside = _emit(parts, text, start, end, (classes, style, title, data), regions, inside)
        parts.append(_tag_label(classes))
        pos = end
    inside = _emit(parts, text, pos, len(text), None, regions, inside)
    if inside is not None:
        parts.append(_BLOCK_TAGS[inside.kind][1])
    size = "1.35rem" if large else "1rem"
    return (
        f'<div class="{kind}" style="white-space: pre-wrap; overflow-wrap: anywhere;'
        f' font-size: {size}; line-height: 1.7;">{"".join(parts)}</div>'
    )


def _emit(
    parts: list[str],
    text: str,
    start: int,
    end: int,
    span: tuple[list[str], str, str, dict[str, str]] | None,
    regions: list[Block],
    inside: Block | None,
) -> Block | None:
    """Append text[start:end] (in a span when ``span`` is given) to ``parts``, opening and
    closing block boxes at the regions' edges; return the block left open."""
    first_piece = True
    for a, b, region in _pieces(start, end, regions):
        if region is not inside:
            if inside is not None:
                parts.append(_BLOCK_TAGS[inside.kind][1])
            if region is not None:
                parts.append(_BLOCK_TAGS[region.kind][0].format(style=BLOCK_STYLE))
            inside = region
        piece = _escape(text[a:b])
        if span is None or (not first_piece and not text[a:b].strip()):
            parts.append(piece)
        else:
            classes, style, title, data = span
            if first_piece:
                attrs = "".join(f' {k}="{_escape(v)}"' for k, v in data.items())
            else:
                attrs = "".join(f' data-continues="{_escape(v)}"' for v in data.values())
            parts.append(
                f'<span class="{" ".join(classes)}" style="{style}" title="{_escape(title)}"'
                f"{attrs}>{piece}</span>"
            )
        first_piece = False
    return inside


def _pieces(start: int, end: int, regions: list[Block]) -> list[tuple[int, int, Block | None]]:
    """[start, end) cut at the regions' edges: ``(a, b, the region holding it or None)``."""
    edges = sorted({start, end} | {e for r in regions for e in (r.start, r.end) if start < e < end})
    pieces = []
    for a, b in itertools.pairwise(edges):
        holder = next((r for r in regions if r.start <= a and b <= r.end), None)
        pieces.append((a, b, holder))
    return pieces
