"""What models say about pairs, for the pages: scores (computed once per pair and model and kept
in the store), verdicts, hand-edited sentence boundaries, two models compared, and the pairs
the showcase presents. Torch loads on first use, not when a page imports this module."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import streamlit as st

from srm import compare, store
from srm.compare import Comparison, Verdict, verdict
from srm.records import (
    NO_CLEAR_PREFERENCE,
    PairScores,
    ResponseScores,
    probability_text,
)
from webapp import services
from webapp.featured import (
    DEMO_FILTER,
    DEMO_PAIRS,
    demo_filter_on,
    featured_pairs,
    is_demo_pair,
    set_demo_filter,
    toggle_demo_pair,
)
from webapp.services import ModelInfo, PairRow
from webapp.store_access import demo_mode, read_session, write

if TYPE_CHECKING:
    from srm.attention import AttentionMap
    from srm.model import SentenceRewardModel
    from srm.segment import Span

# Re-exported: the pages reach the demo's featuring (featured.py) through scoring.
__all__ = [
    "DEMO_FILTER",
    "DEMO_PAIRS",
    "NO_CLEAR_PREFERENCE",
    "demo_filter_on",
    "is_demo_pair",
    "set_demo_filter",
    "toggle_demo_pair",
    "verdict",
]


# ------------------------------------------------------------------------------- scores
@st.cache_resource(show_spinner=services.LOADING_MODEL, max_entries=2)
def _model(path: str, mtime: float) -> SentenceRewardModel:
    """One loaded model per checkpoint (``path``) and version (``mtime``), shared by every
    page and session of the server process."""
    from srm.checkpoint import load

    return load(path)


def loaded_model(path: str, mtime: float) -> SentenceRewardModel:
    """The checkpoint at ``path``, loaded once per ``mtime`` (:func:`model_mtime`) and shared
    with the other pages' scoring."""
    return _model(path, mtime)


def model_mtime(path: str) -> float:
    """Changes when the checkpoint is rewritten, so caches keyed on it refresh."""
    from srm.checkpoint import WEIGHTS_FILE, model_dir

    return (model_dir(path) / WEIGHTS_FILE).stat().st_mtime


def cached_scores(url: str, pair: PairRow, model: ModelInfo) -> PairScores | None:
    """The model's stored scores of the pair, or ``None`` if it has not scored it yet."""
    if model.id is None:
        return None
    with read_session(url) as session:
        row = store.get_score(session, pair.db_id, model.id)
        if row is None:
            return None
        return PairScores(
            id=pair.id,
            source=pair.source,
            margin=pair.margin,
            head=model.head,
            prefix_rewards=model.causal,
            chosen=row.response("chosen"),
            rejected=row.response("rejected"),
        )


def scores(url: str, pair: PairRow, model: ModelInfo) -> PairScores:
    """Per-sentence rewards and weights of a pair: computed once per (pair, model) and kept
    in the store, so every later view (and every other user) reads them back."""
    found = cached_scores(url, pair, model)
    if found is not None:
        return found
    record = _compute(model.path, model_mtime(model.path), pair)
    if model.id is not None and not demo_mode():
        with write(url) as session:
            store.save_scores(session, model.id, pair.dataset, [record])
        services.queue_page.clear()
    return record


@st.cache_data(show_spinner="Scoring…", max_entries=256)
def _compute(path: str, mtime: float, pair: PairRow) -> PairScores:
    from srm.data import PreferencePair
    from srm.score import score_pairs

    item = PreferencePair(pair.id, pair.prompt, pair.chosen, pair.rejected, pair.source)
    return score_pairs(_model(path, mtime), [item])[0]


def attention_maps(pair: PairRow, model: ModelInfo) -> dict[str, AttentionMap]:
    """Both responses' sentence x sentence attention (:func:`srm.attention.pair_attention`),
    computed once per (pair, checkpoint) and kept in memory, so picking another layer or head
    reads the same maps (:meth:`~srm.attention.AttentionMap.matrix`) without a forward pass.
    Raises ``ValueError`` for a model without an SRM backbone (an imported reward model)."""
    return _attention(model.path, model_mtime(model.path), pair.dataset, pair.id, pair)


@st.cache_resource(show_spinner="Reading the attention…", max_entries=16)
def _attention(
    path: str, mtime: float, dataset: str, pair_id: str, _pair: PairRow
) -> dict[str, AttentionMap]:
    from srm.attention import pair_attention
    from srm.data import PreferencePair

    item = PreferencePair(_pair.id, _pair.prompt, _pair.chosen, _pair.rejected, _pair.source)
    return pair_attention(_model(path, mtime), item)


def rescore_with_spans(
    pair: PairRow, model: ModelInfo, spans: Mapping[str, Sequence[tuple[int, int]]]
) -> PairScores:
    """Score the pair with hand-edited sentence boundaries (``{"chosen": [(start, end), ...]}``);
    kept in memory only, since they are not the model's own segmentation."""
    return _compute_with_spans(
        model.path,
        model_mtime(model.path),
        pair,
        tuple(sorted((side, tuple(map(tuple, cuts))) for side, cuts in spans.items())),
    )


@st.cache_data(show_spinner="Rescoring…", max_entries=64)
def _compute_with_spans(
    path: str, mtime: float, pair: PairRow, spans: tuple[tuple[str, tuple], ...]
) -> PairScores:
    from srm.data import PreferencePair
    from srm.score import score_pairs

    item = PreferencePair(pair.id, pair.prompt, pair.chosen, pair.rejected, pair.source)
    given = {side: _spans(getattr(pair, side), cuts) for side, cuts in spans}
    return score_pairs(_model(path, mtime), [item], spans=[given])[0]


def _spans(text: str, cuts: Sequence[tuple[int, int]]) -> list[Span]:
    from srm.segment import Span

    return [Span(start, end, text[start:end]) for start, end in cuts]


def sentences(text: str) -> list[Span]:
    """The text's sentences as the model segments it (:func:`srm.segment.segment`)."""
    from srm.segment import segment

    return segment(text)


def segment_spans(text: str) -> list[tuple[int, int]]:
    return [(s.start, s.end) for s in sentences(text)]


def split_choices(text: str, cut: tuple[int, int], words: int = 4) -> dict[int, str]:
    """Where sentence ``text[cut[0]:cut[1]]`` can be split (:func:`srm.segment.split_points`),
    each offset shown as the words on either side: ``{6: "Alpha | then beta."}``, with "…"
    where more words run on. Offsets are into the sentence, as :func:`split_sentence` takes.
    """
    from srm.segment import split_points

    sentence = text[cut[0] : cut[1]]
    choices = {}
    for at in split_points(sentence):
        before, after = sentence[:at].split(), sentence[at:].split()
        left = ("… " if len(before) > words else "") + " ".join(before[-words:])
        right = " ".join(after[:words]) + (" …" if len(after) > words else "")
        choices[at] = f"{left} | {right}"
    return choices


def cut_note(side: ResponseScores) -> str | None:
    """What truncation cut from one scored response, for under its text: how many sentences
    are greyed (not scored), and whether the last scored one was cut part-way; ``None`` when
    the whole response was scored."""
    greyed = sum(not s.scored for s in side.sentences)
    notes = []
    if greyed:
        notes.append(
            f"{greyed} of {services.plural(len(side.sentences), 'sentence')} greyed: "
            f"{'it' if greyed == 1 else 'they'} did not fit the model's context and took no "
            "part in the score."
        )
    if side.last_cut_short:
        notes.append(f"Sentence {side.n_scored} was cut part-way: only its start was scored.")
    return " ".join(notes) or None


def agreement_text(verdict: Verdict) -> str | None:
    """The model's verdict against the pair's label, in words; ``None`` for a tie or a
    discard (which prefer neither response). An unlabelled pair is judged against the
    imported verdict (chosen is better), and the words say so: nobody has labelled it.
    Inside the no-clear-preference band the model neither agrees nor disagrees (as its
    suggestion on the Annotate page is no suggestion there); the words give P instead."""
    if verdict.agrees is None:
        return None
    if verdict.label is None:
        against = "the imported verdict (chosen is better)"
        start = "Nobody has labelled this pair yet; the model"
    else:
        wanted = store.preferred_side(verdict.label)
        against = f"the current label ({verdict.label}: {wanted} is better)"
        start = "The model"
    if not verdict.clear:
        return (
            f"{start} has no clear preference (P(chosen better) = "
            f"{probability_text(verdict.p_chosen)}): it neither backs nor questions {against}."
        )
    how = "agrees" if verdict.agrees else "disagrees"
    review = "" if verdict.agrees else ": a candidate for review on the Annotate page"
    return f"{start} {how} with {against}{review}."


def merge_sentences(
    text: str, cuts: Sequence[tuple[int, int]], index: int
) -> list[tuple[int, int]]:
    """Remove the boundary after sentence ``index`` (0-based); raises ``ValueError``."""
    from srm.segment import merge_spans

    return [(s.start, s.end) for s in merge_spans(_spans(text, cuts), index)]


def split_sentence(
    text: str, cuts: Sequence[tuple[int, int]], index: int, at: int
) -> list[tuple[int, int]]:
    """Add a boundary ``at`` characters into sentence ``index``; raises ``ValueError``."""
    from srm.segment import split_span

    return [(s.start, s.end) for s in split_span(_spans(text, cuts), index, at)]


# ------------------------------------------------------------------------------- two models
def compare_models(url: str, dataset: str, a: int, b: int) -> Comparison:
    """Model A against model B on the pairs of ``dataset`` both have scored, judged by the
    current labels (:func:`srm.compare.compare_models`)."""
    with read_session(url) as session:
        return compare.compare_models(session, dataset, a, b)


def sample_note(comparison: Comparison) -> str:
    """Which pairs a comparison's figures come from (:func:`srm.compare.sample_note`)."""
    return compare.sample_note(comparison)


def flipped_rows(comparison: Comparison) -> list[dict[str, Any]]:
    """The flipped pairs as the Models page's table shows them, the largest move first."""
    return [
        {
            "id": p.id,
            "source": p.source,
            "label": p.label or "unlabelled",
            "A margin for the label": p.a,
            "B margin for the label": p.b,
            "B is now": "right" if p.b > 0 else "wrong",
        }
        for p in comparison.flipped
    ]


# ------------------------------------------------------------------------------- demo
DEMO_CANDIDATES = 64
"""The demo picks its automatic examples among this many pairs of the largest dataset."""


def demo_pairs(url: str, model: ModelInfo | None, limit: int = 8) -> list[tuple[str, str]]:
    """The pairs demo mode shows: the featured ones first (:func:`featured.featured_pairs`,
    chosen on the Inspect page), then up to ``limit`` picked automatically
    (:func:`demo_picks`)."""
    featured = featured_pairs(url)
    with read_session(url) as session:
        datasets = sorted(store.list_datasets(session), key=lambda d: -d.n_pairs)
    if len(featured) >= limit or not datasets or model is None:
        return featured[:limit]
    filtered = demo_filter_on(url)
    picked = demo_picks(url, datasets[0].name, model, filtered=filtered, want=limit)
    return [*featured, *[p for p in picked if p not in featured]][:limit]


@st.cache_data(ttl=300, show_spinner=False, max_entries=8)
def demo_picks(
    url: str, dataset: str, model: ModelInfo, *, filtered: bool = True, want: int = 8
) -> list[tuple[str, str]]:
    """The automatic examples: among the first :data:`DEMO_CANDIDATES` pairs of ``dataset``
    (the largest, so a small scratch dataset does not turn up), the ones where the model has a
    clear preference (outside the no-clear-preference band) that its sentences carry (the
    prompt shift does not outweigh them, :attr:`srm.records.MarginSplit.prompt_dominates`);
    those where it agrees with the people first, the surest first. With ``filtered`` (the
    content filter, :func:`demo_filter_on`) a pair from a red-team source or on a harmful
    topic (:func:`srm.data.content.unsuitable`) is never picked.

    The model's stored scores are read first; only when they give fewer than ``want``
    examples are the other candidates scored, in memory and never written (demo mode is
    read-only). Kept for five minutes."""
    from srm.data.content import unsuitable

    pairs = services.pair_page(url, dataset, "", 0, DEMO_CANDIDATES)
    if filtered:
        pairs = [p for p in pairs if not unsuitable(p.source, p.prompt, p.chosen, p.rejected)]
    stored = [(p, cached_scores(url, p, model)) for p in pairs]
    scored = [(p, r) for p, r in stored if r is not None]
    good = _telling(scored)
    missing = tuple(p for p, r in stored if r is None)
    if len(good) < want and missing:
        computed = _compute_many(model.path, model_mtime(model.path), missing)
        good = _telling([*scored, *zip(missing, computed, strict=True)])
    return [(p.dataset, p.id) for p in good]


def _telling(scored: Sequence[tuple[PairRow, PairScores]]) -> list[PairRow]:
    """The pairs whose verdict is clear and carried by the sentences: agreeing with the
    people first, then the surest."""
    keep = []
    for pair, record in scored:
        v = verdict(record, pair.label)
        if v.clear and not v.split.prompt_dominates:
            keep.append((v.agrees is not True, -abs(v.margin), pair))
    keep.sort(key=lambda x: x[:2])
    return [pair for *_, pair in keep]


@st.cache_data(show_spinner="Picking examples…", max_entries=4)
def _compute_many(path: str, mtime: float, pairs: tuple[PairRow, ...]) -> list[PairScores]:
    from srm.data import PreferencePair
    from srm.score import score_pairs

    items = [PreferencePair(p.id, p.prompt, p.chosen, p.rejected, p.source) for p in pairs]
    return score_pairs(_model(path, mtime), items)
