"""The Showcase's words: each example's caption, the sides' names and the colour legend, built
from the example's own numbers by pure functions (the demo page only shows them).

The rules they follow live in ``srm``: which side a label prefers
(:func:`srm.store.preferred_side`), how a margin splits between the prompt term and the
sentences (:func:`srm.records.margin_split`, read through :class:`srm.compare.Verdict`).
A caption never gives the sentences credit for a verdict the prompt term carries, and says
so when the model disagrees with the people.

The caption is plain text, shown through :func:`caption_html`, which escapes it; the legend is
markdown of fixed words.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from srm.compare import Verdict
from srm.records import SIDES, PairScores, ResponseScores, probability_text
from srm.store import preferred_side
from webapp import mdtext

if TYPE_CHECKING:
    from webapp.services import ModelInfo

ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth")
ORDINALS += ("ninth", "tenth")
QUOTE_CHARS = 70
"""A quoted sentence is cut to this many characters (then "…")."""


def side_names(label: str | None) -> dict[str, str]:
    """What the page calls each side, by what people preferred: ``{"chosen": "The answer
    people preferred", "rejected": "The other answer"}`` (the other way round after a swap);
    "The first answer" and "The second answer" when people preferred neither (a tie)."""
    wanted = preferred_side(label)
    if wanted is None:
        return {"chosen": "The first answer", "rejected": "The second answer"}
    other = "rejected" if wanted == "chosen" else "chosen"
    return {wanted: "The answer people preferred", other: "The other answer"}


def sides_in_order(label: str | None) -> tuple[str, str]:
    """The sides as the page shows them, left to right: the one people preferred first."""
    return ("rejected", "chosen") if preferred_side(label) == "rejected" else SIDES


def sentence_name(index: int) -> str:
    """``sentence_name(0) == "the first sentence"``, ``sentence_name(11) == "sentence 12"``."""
    if index < len(ORDINALS):
        return f"the {ORDINALS[index]} sentence"
    return f"sentence {index + 1}"


@dataclass(frozen=True)
class KeySentence:
    """The sentence that moves the margin most towards the model's verdict."""

    side: str
    index: int
    """0-based, in its response."""
    text: str
    term: float
    """weight x reward: what it adds to (or, negative, takes off) its response's score."""


def key_sentence(record: PairScores, verdict: Verdict) -> KeySentence | None:
    """The scored sentence whose term pushes the margin furthest the model's way: the most
    positive one in the answer the model prefers, or the most negative in the other; ``None``
    when no sentence pushes that way."""
    favoured = verdict.model_prefers
    best: KeySentence | None = None
    for side in SIDES:
        sign = 1.0 if side == favoured else -1.0
        for j, s in enumerate(record.side(side).sentences):
            if not s.scored:
                continue
            term = s.weight * s.reward  # type: ignore[operator]
            if sign * term > 0 and (best is None or abs(term) > abs(best.term)):
                best = KeySentence(side, j, s.text, term)
    return best


def model_sentence(verdict: Verdict, names: dict[str, str]) -> str:
    """How sure the model is, in words: "The model agrees with the people: it is 73.1% sure
    the answer people preferred is the better one." (σ(margin), named by side, written by
    :func:`srm.records.probability_text` like every P the pages show.)"""
    favoured = verdict.model_prefers
    _, sure = verdict.suggestion  # the favoured side's probability
    name = names[favoured][0].lower() + names[favoured][1:]
    if not verdict.clear:
        return (
            f"The model has no clear preference: it leans only {probability_text(sure)} to "
            f"{name}, too close to call."
        )
    said = f"it is {probability_text(sure)} sure {name} is the better one."
    if verdict.agrees is None:
        return f"People preferred neither answer; the model {said[3:]}"
    if verdict.agrees:
        return f"The model agrees with the people: {said}"
    return f"The model disagrees with the people: {said}"


def credit_sentence(record: PairScores, verdict: Verdict, names: dict[str, str]) -> str:
    """What carries the verdict: the prompt term (then no sentence is given credit), or the
    sentences, with the one that counts most quoted."""
    split = verdict.split
    if verdict.prompt_note:  # srm.compare's rule: the prompt term outweighs the sentences
        return (
            f"Here the question itself, not the sentences, carries the verdict "
            f"({split.prompt_share:.0%} of the difference between the two scores): it comes "
            "from how much weight each answer gives the question, so the sentence colours "
            "below do not explain it."
        )
    share = 1 - split.prompt_share if verdict.prompt_term else 1.0
    carried = f"The sentences carry {share:.0%} of the difference between the two scores"
    if verdict.prompt_term:
        carried += f"; the question itself, {split.prompt_share:.0%}"
    key = key_sentence(record, verdict)
    if key is None:  # not when the sentences carry the margin: some sentence leans its way
        return carried + "."
    text = " ".join(key.text.split())
    quote = text if len(text) <= QUOTE_CHARS else text[: QUOTE_CHARS - 1].rstrip() + "…"
    where = names[key.side][0].lower() + names[key.side][1:]
    moves = (
        f"adds {abs(key.term):.2f} to its score"
        if key.term > 0
        else f"takes {abs(key.term):.2f} off its score"
    )
    tips = "counts most" if verdict.clear else "tips the balance"
    notice = f"Notice {sentence_name(key.index)} of {where}, “{quote}”"
    return f"{carried}. {notice}: it {tips}, it {moves}."


def caption(record: PairScores, verdict: Verdict) -> str:
    """One example's caption, from its numbers: how sure the model is and whether it agrees
    with the people, then what carries the verdict (plain text)."""
    names = side_names(verdict.label)
    return f"{model_sentence(verdict, names)} {credit_sentence(record, verdict, names)}"


def caption_html(record: PairScores, verdict: Verdict) -> str:
    """:func:`caption`, escaped, in type as large as the demo's responses (webapp/style.css)."""
    return f'<div class="srm-caption">{html.escape(caption(record, verdict))}</div>'


def legend(by: str) -> str:
    """The colours in words, for the way the sentences are coloured (``reward`` or
    ``weight``)."""
    if by == "reward":
        return (
            "**Colours:** purple sentences raise their answer's score, orange ones lower it; "
            "the deeper the colour, the larger the reward. Untinted sentences count for little."
        )
    if by == "weight":
        return (
            "**Colours:** the deeper the teal, the more weight the model gives the sentence in "
            "its answer's score."
        )
    raise ValueError(f"by: got {by!r}; use reward or weight")


WATERFALL = (
    "Each bar is what one part adds to an answer's score (its reward times its weight): the "
    "question itself first, then each sentence in order; the last bar is the score."
)


def question_part(scored: ResponseScores) -> str:
    """The prompt contribution (a_0 r_0) of one answer in plain words, for under it:
    "The question itself adds 0.61 to this answer's score." (or "takes 0.61 off")."""
    amount = scored.prompt_term
    if abs(amount) < 0.005:
        return "The question itself adds next to nothing to this answer's score."
    if amount > 0:
        return f"The question itself adds {amount:.2f} to this answer's score."
    return f"The question itself takes {-amount:.2f} off this answer's score."


def public_name(name: str) -> str:
    """A name safe to show an audience: a filesystem path (``/srv/runs/m1/model``,
    ``./runs/x``, ``~/m``) becomes its last part; a hub id (``org/model``) stays."""
    path = PurePosixPath(name)
    if name.startswith(("/", "./", "../", "~")) or "\\" in name:
        return path.name or name
    return name


def model_words(model: ModelInfo) -> str:
    """Which model scored the examples, escaped for markdown and with no server path:
    "Model: default (sentence head on minilm)"."""
    return mdtext.escape(
        f"Model: {public_name(model.name)} ({model.head} head on {public_name(model.backbone)})"
    )
