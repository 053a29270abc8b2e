"""Split a response into sentence spans with exact character offsets.

A sentence-level reward model inserts a boundary marker after every sentence of a
response, so the segmentation must be predictable and exact on character offsets:
``segment`` returns contiguous :class:`Span` objects whose texts join back to the
input, and ``align_tokens`` maps a fast tokenizer's ``offset_mapping`` onto them.

    >>> [s.text for s in segment("Dr. Smith arrived at 3 p.m. on Jan. 5. He left.")]
    ['Dr. Smith arrived at 3 p.m. on Jan. 5. ', 'He left.']

Rules, applied in this order:

1. **Whitespace.** Every cut is made just before a non-space character, so the
   whitespace after a sentence (spaces, newlines, blank lines) belongs to that
   sentence, and leading whitespace of the whole text belongs to the first span.
   Empty or whitespace-only text gives ``[]``; every span holds a non-space
   character. "Whitespace" means ``str.isspace``; lines are separated by ``"\\n"``
   (a ``"\\r"`` before it is whitespace like any other).
2. **Lines.** Outside fenced code every non-blank line starts a new segment: blank
   lines always split, and so does a single newline between two prose lines,
   because HH-RLHF and PandaLM responses use a newline as a hard line break
   (sentences soft-wrapped over two lines are rare there). This makes list items
   (``- ``, ``* ``, ``+ ``, ``• ``, ``1. ``, ``1) ``) and markdown headings
   (``# ...``) start segments of their own. A heading is never split further.
3. **Fenced code** (from a line opening with three or more backticks or tildes to
   the matching closing fence, or to the end of the text) is one segment, split
   only where a blank line inside the block ends a chunk: never mid-line and never
   by Punkt. A **table** (GitHub's pipe table: a line holding ``|``, then a
   delimiter row such as ``|---|:--:|``, then every following non-blank line
   holding ``|``) is one segment too, never split by Punkt or at its rows.
   :func:`blocks` gives both kinds of block, for views that show them as such.
4. **Sentences.** Inside a prose line (after a list marker) CJK sentence
   punctuation (``。！？``, with any closing quotes or brackets after it) always
   ends a sentence; the rest goes to NLTK Punkt, whose parameters the project
   trains itself (``scripts/train_punkt.py`` writes ``srm/resources/punkt_srm.json``)
   and to which :data:`srm.punkt.CURATED_ABBREVIATIONS` are always added. Closing quotes and
   brackets after the end punctuation stay with the sentence, and so does a token
   with no letter or digit after it (an emoji, an emoticon): ``"Done! 🎉 Next."``
   gives ``"Done! 🎉 "`` and ``"Next."``. An ellipsis (``...`` like ``…``) never
   ends a sentence: ``"Well... I guess so."`` is one.
5. **Length.** A segment longer than ``max_chars`` is cut before the last line
   (of a code chunk or a table) that starts within the limit, else before the last
   word that starts within it, so each piece is at most ``max_chars`` long including
   its trailing whitespace and a block is cut between its lines where it can be. A
   single token longer than the limit is cut hard at ``max_chars`` (moved back so
   that an emoji sequence or a combining mark is not broken, unless that one
   grapheme is itself longer than the limit). The limit is
   counted from a span's first non-space character, so the leading whitespace of
   the text is free, and a run of whitespace longer than the limit is not cut (a
   cut is always made before a non-space character): what is guaranteed for every
   span is that its text from its first to its last non-space character is at
   most ``max_chars`` long.

Which Punkt parameters are used (an installed ``punkt_tab``, else the bundled ones, or as
``SRM_PUNKT`` says) is :mod:`srm.punkt`'s business.

**Cost.** Every step reads the text a bounded number of times, so segmenting is linear in its
length on any input (a run of ``!!! `` or of newlines, a long flag sequence): no step rescans
to the end of a line for each cut, and no regular expression can backtrack over a run twice.
``tests/srm/test_segment.py`` bounds the operation count on adversarial text.
"""

import bisect
import logging
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Literal, NamedTuple

from srm.punkt import PUNKT_CHAR_MAP, load_tokenizer, punkt_source_from_env

if TYPE_CHECKING:
    from nltk.tokenize.punkt import PunktSentenceTokenizer

logger = logging.getLogger(__name__)

DEFAULT_MAX_CHARS = 400
"""Default length limit of a segment, in characters.

About 100 word-piece tokens of English: well above a normal sentence (in the
bundled HH-RLHF and PandaLM responses the median sentence has about 70 characters,
the 99th percentile about 260, and one in a thousand is longer than 400), yet it
keeps a run-on "sentence" from eating a model's context.
"""

_NON_SPACE = re.compile(r"\S")
_WORD_START = re.compile(r"(?<=\s)\S")
_FENCE_OPEN = re.compile(r"[ \t]{0,3}(`{3,}|~{3,})")
_TABLE_CELL = re.compile(r":?-+:?")
_NEWLINE_THEN_SPACE = re.compile(r"\n\s*")
_ALNUM_OR_SPACE = re.compile(r"[^\W_]|\s")  # [^\W_] is exactly str.isalnum, \s str.isspace
_REGIONAL_INDICATORS = re.compile("[\U0001f1e6-\U0001f1ff]+")
# From the start of a run only: tried at every character, a run before a space costs its square.
_CJK_PUNCTUATION_THEN_TEXT = re.compile(r"(?<![。！？、，；：])[。！？、，；：]+(?=\S)")
_HEADING = re.compile(r"[ \t]*#{1,6}(?:\s|$)")
_LIST_MARKER = re.compile(r"[ \t]*(?:[-*+\u2022]|\d{1,9}[.)])[ \t]+(?=\S)")
_CJK_END = re.compile(r"[。！？｡]+[」』”’\"'）)\]】〕〉》»]*")
_CLOSERS = frozenset("\"')]}”’»")
_ZWJ = "\u200d"


@dataclass(frozen=True, slots=True)
class Span:
    """One segment of a text: ``text == source[start:end]``.

    >>> Span(0, 3, "Hi.")
    Span(start=0, end=3, text='Hi.')
    """

    start: int
    """Character offset of the first character, inclusive."""
    end: int
    """Character offset after the last character, exclusive."""
    text: str
    """The segment itself, trailing whitespace included."""


def segment(text: str, *, max_chars: int = DEFAULT_MAX_CHARS) -> list[Span]:
    """Split *text* into contiguous sentence spans (see the module docstring for rules).

    The spans cover the text in order, so ``"".join(s.text for s in spans) == text``.

    >>> [s.text for s in segment("Hi there.  How are you?\\n- fine")]
    ['Hi there.  ', 'How are you?\\n', '- fine']
    >>> segment("  \\n")
    []
    """
    if not isinstance(text, str):
        raise TypeError(f"segment() needs a str, not {type(text).__name__}")
    _check_max_chars(max_chars)
    first = _NON_SPACE.search(text)
    if first is None:
        return []
    tokenizer = load_tokenizer(punkt_source_from_env())
    cuts = [c for c in _cuts(text, tokenizer) if c > first.start()]
    bounds = _limit_lengths(text, [0, *cuts, len(text)], max_chars)
    return [Span(a, b, text[a:b]) for a, b in pairwise(bounds)]


def align_tokens(spans: Sequence[Span], offsets: Sequence[tuple[int, int]]) -> list[int]:
    """Index of the span holding each token, by the token's first character.

    *offsets* is a fast tokenizer's ``offset_mapping`` into the same text. A token
    that straddles a boundary goes to the span of its first character (so a token
    carrying leading whitespace goes to the span that whitespace belongs to).
    Special tokens (``start == end``, such as ``(0, 0)`` for ``[CLS]``) and tokens
    outside every span get ``-1``. O(k + n log k) for k spans and n tokens.

    >>> spans = segment("Hi. Bye.")
    >>> align_tokens(spans, [(0, 0), (0, 2), (2, 3), (4, 7), (7, 8), (0, 0)])
    [-1, 0, 0, 1, 1, -1]
    """
    starts = [s.start for s in spans]
    for i in range(1, len(spans)):
        if spans[i].start < spans[i - 1].end:
            raise ValueError(
                f"spans must be sorted and must not overlap: span {i} starts at "
                f"{spans[i].start}, before span {i - 1} ends at {spans[i - 1].end}"
            )
    result = []
    for start, end in offsets:
        start, end = int(start), int(end)
        index = bisect.bisect_right(starts, start) - 1
        if end <= start or index < 0 or start >= spans[index].end:
            result.append(-1)
        else:
            result.append(index)
    return result


def _check_max_chars(max_chars: int) -> None:
    if isinstance(max_chars, bool) or not isinstance(max_chars, int):
        raise TypeError(f"max_chars must be an int, not {type(max_chars).__name__}")
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")


def _lines(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each line, end excluding the ``"\\n"``."""
    start = 0
    while True:
        end = text.find("\n", start)
        if end < 0:
            yield start, len(text)
            return
        yield start, end
        start = end + 1


def prose_lines(text: str) -> list[str]:
    """The pieces of *text* that ``segment`` hands to Punkt: prose lines, list markers cut off.

    Headings, fenced code, tables and blank lines are left out. ``scripts/train_punkt.py``
    trains on exactly these, so Punkt learns from what it will see.

    >>> prose_lines("# Title\\n1. Preheat. Then bake.\\n```\\nx = 1.\\n```\\nDone.")
    ['Preheat. Then bake.', 'Done.']
    """
    return [text[a:b] for _, a, b in _line_units(text) if a >= 0]


@dataclass(frozen=True, slots=True)
class Block:
    """A fenced code block or a table: ``text[start:end]`` from its first non-space
    character to the end of its last line, that line's ``"\\n"`` included."""

    start: int
    end: int
    kind: Literal["code", "table"]


def blocks(text: str) -> list[Block]:
    """The fenced code blocks and tables of *text*, in order: what :func:`segment` never
    splits by sentence, for a view to show as code and as a table.

    >>> blocks("See:\\n```\\nx = 1\\n```\\n| a | b |\\n|---|---|\\n| 1 | 2 |")
    [Block(start=5, end=19, kind='code'), Block(start=19, end=48, kind='table')]
    """
    found: list[Block] = []
    current: tuple[int, int, str, int] | None = None  # (start, end, kind, block number)
    for line in _classified_lines(text):
        if line.block is None:
            continue
        end = min(line.end + 1, len(text))  # the line's "\n" belongs to the block
        if current is not None and current[3] == line.block:
            current = (current[0], end, current[2], line.block)
            continue
        if current is not None:
            found.append(Block(current[0], current[1], current[2]))  # type: ignore[arg-type]
        current = (line.first, end, line.kind, line.block)
    if current is not None:
        found.append(Block(current[0], current[1], current[2]))  # type: ignore[arg-type]
    return found


class _Line(NamedTuple):
    """One non-blank line of a text, classified."""

    start: int
    end: int
    """Where the line ends, its ``"\\n"`` excluded."""
    first: int
    """Its first non-space character."""
    kind: str
    """``prose``, ``heading``, ``code`` or ``table``."""
    new_unit: bool
    """A segment starts at ``first``."""
    block: int | None
    """For code and table lines: which block (numbered from 0) the line belongs to."""


def _classified_lines(text: str) -> Iterator[_Line]:
    """Every non-blank line of *text* with its kind: a fenced code block runs from its
    opening fence to the matching closing fence (or the end), a new unit after each blank
    line inside it; a table from a line holding ``|`` followed by a delimiter row, through
    the non-blank lines holding ``|`` after it, one unit."""
    lines = list(_lines(text))
    fence = ""  # the opening fence while inside a fenced code block
    in_table = False
    after_blank = False
    blocks_seen = 0
    for index, (line_start, line_end) in enumerate(lines):
        found = _NON_SPACE.search(text, line_start, line_end)
        if found is None:
            after_blank, in_table = True, False
            continue
        first = found.start()
        if fence:
            stripped = text[line_start:line_end].strip()
            if stripped.startswith(fence) and not stripped.strip(fence[0]):
                fence = ""
            yield _Line(line_start, line_end, first, "code", after_blank, blocks_seen - 1)
            after_blank = False
            continue
        after_blank = False
        if in_table and "|" in text[line_start:line_end]:
            yield _Line(line_start, line_end, first, "table", False, blocks_seen - 1)
            continue
        in_table = False
        opening = _FENCE_OPEN.match(text, line_start, line_end)
        if opening:
            fence = opening.group(1)
            blocks_seen += 1
            yield _Line(line_start, line_end, first, "code", True, blocks_seen - 1)
        elif _HEADING.match(text, line_start, line_end):
            yield _Line(line_start, line_end, first, "heading", True, None)
        elif _table_starts(text, line_start, line_end, lines[index + 1 : index + 2]):
            in_table = True
            blocks_seen += 1
            yield _Line(line_start, line_end, first, "table", True, blocks_seen - 1)
        else:
            yield _Line(line_start, line_end, first, "prose", True, None)


def _table_starts(text: str, start: int, end: int, following: list[tuple[int, int]]) -> bool:
    """The line text[start:end] holds ``|`` and the next line is a delimiter row with ``|``."""
    if "|" not in text[start:end] or not following:
        return False
    next_start, next_end = following[0]
    return "|" in text[next_start:next_end] and _is_table_delimiter(text[next_start:next_end])


def _is_table_delimiter(line: str) -> bool:
    """Whether *line* is a table's delimiter row: cells such as ``---`` or ``:--:`` between
    pipes, the outer pipes optional, spaces and tabs around the cells.

    >>> _is_table_delimiter("| --- |:-:"), _is_table_delimiter("| a |")
    (True, False)

    Checked cell by cell: one regular expression with spaces allowed in two places in a row
    backtracks quadratically over a long run of spaces.
    """
    body = line.lstrip(" \t").rstrip()
    if body.startswith("|"):
        body = body[1:]
    if body.endswith("|"):
        body = body[:-1]
    return all(_TABLE_CELL.fullmatch(cell.strip(" \t")) for cell in body.split("|"))


def _line_units(text: str) -> Iterator[tuple[int, int, int]]:
    """(cut, prose_start, prose_end) for each line, code chunk or table that starts a segment.

    *cut* is the position of the unit's first non-space character; prose_start is -1
    for headings, code and tables, else where Punkt's input starts (after a list marker).
    """
    for line in _classified_lines(text):
        if not line.new_unit:
            continue
        if line.kind != "prose":
            yield line.first, -1, -1
            continue
        marker = _LIST_MARKER.match(text, line.start, line.end)
        yield line.first, marker.end() if marker else line.first, line.end


def _cuts(text: str, tokenizer: "PunktSentenceTokenizer") -> list[int]:
    """Increasing positions (of non-space characters) where a new segment starts."""
    cuts: list[int] = []
    for cut, prose_start, prose_end in _line_units(text):
        cuts.append(cut)
        if prose_start >= 0:
            for sentence_cut in _sentence_cuts(text, prose_start, prose_end, tokenizer):
                if sentence_cut > cuts[-1]:
                    cuts.append(sentence_cut)
    return cuts


def _sentence_cuts(
    text: str, start: int, end: int, tokenizer: "PunktSentenceTokenizer"
) -> Iterator[int]:
    """Sentence starts inside the one-line prose text[start:end], excluding *start*."""
    pieces = []
    piece_start = start
    for match in _CJK_END.finditer(text, start, end):
        after = _NON_SPACE.search(text, match.end(), end)
        if after is not None:
            pieces.append((piece_start, after.start()))
            piece_start = after.start()
    pieces.append((piece_start, end))
    symbols = _SymbolSkipper(text, end)
    for piece_index, (a, b) in enumerate(pieces):
        starts = [a] if piece_index else []
        chunk = text[a:b].translate(PUNKT_CHAR_MAP)
        for sentence_start, _ in tokenizer.span_tokenize(chunk):
            found = _NON_SPACE.search(text, a + sentence_start, b) if sentence_start else None
            if found is not None and not _follows_ellipsis(text, a, found.start()):
                starts.append(found.start())
        for cut in starts:
            cut = symbols.move(cut)
            if cut < end:
                yield cut


def _follows_ellipsis(text: str, start: int, cut: int) -> bool:
    """True when text[start:cut] ends with ``..`` or ``. .``, maybe closed by quotes."""
    end = cut
    while end > start and text[end - 1].isspace():
        end -= 1
    while end > start and text[end - 1] in _CLOSERS:
        end -= 1
    tail = text[max(start, end - 3) : end]
    return tail.endswith("..") or tail.endswith(". .")


class _SymbolSkipper:
    """Moves the sentence cuts of one line past tokens with no letter or digit (emoji,
    emoticons): such a token after a sentence end belongs to that sentence. When nothing but
    such tokens follow, a cut moves to *end*, which callers treat as no cut. A token runs from
    the cut (a CJK sentence can start inside a whitespace-delimited token) to whitespace.

    Cuts come in increasing order, and what one cut's move has read is remembered, so the
    line is read once however many cuts it has (``"!!! " * 4000`` once read its tail again for
    every cut).
    """

    def __init__(self, text: str, end: int) -> None:
        self.text = text
        self.end = end
        self._crossed = (-1, -1)
        """(cut, moved): every cut in [cut, moved) moves to *moved* (symbols and spaces)."""
        self._plain = (-1, -1)
        """(start, stop): text[start:stop] holds no letter, digit or whitespace, and
        text[stop] is one (or is *end*); nothing is known yet while both are -1."""

    def move(self, cut: int) -> int:
        """Where *cut* (no smaller than the cuts before it) ends up."""
        start, moved = self._crossed
        if start <= cut < moved:
            return moved
        position = cut
        while True:
            token = _NON_SPACE.search(self.text, position, self.end)
            if token is None:
                moved = self.end
                break
            stop = self._next_letter_digit_or_space(token.start())
            if stop < self.end and not self.text[stop].isspace():
                moved = token.start()
                break
            position = stop
        self._crossed = (cut, moved)
        return moved

    def _next_letter_digit_or_space(self, at: int) -> int:
        """The first letter, digit or whitespace at or after *at* (*end* if none)."""
        start, stop = self._plain
        if not start <= at <= stop:
            found = _ALNUM_OR_SPACE.search(self.text, at, self.end)
            stop = self.end if found is None else found.start()
            self._plain = (at, stop)
        return stop


def _limit_lengths(text: str, bounds: list[int], max_chars: int) -> list[int]:
    """Add cuts so that no segment exceeds *max_chars* (rule 5 of the module docstring)."""
    result = [bounds[0]]
    for start, end in pairwise(bounds):
        first = _NON_SPACE.search(text, start, end)
        assert first is not None
        if end - first.start() > max_chars:
            result.extend(_split_long(text, first.start(), end, max_chars))
        result.append(end)
    return result


def _split_long(text: str, first: int, end: int, max_chars: int) -> Iterator[int]:
    """Cuts inside text[first:end] (first is non-space) so each piece fits *max_chars*:
    between lines where a line starts within the limit (a code chunk or a table), else
    between words."""
    word_starts = [m.start() for m in _WORD_START.finditer(text, first + 1, end)]
    # One match per run of whitespace that holds a newline: its end is where a line starts.
    line_starts = [
        m.end() for m in _NEWLINE_THEN_SPACE.finditer(text, first + 1, end) if m.end() < end
    ]
    flags: _FlagRuns | None = None
    while end - first > max_chars:
        limit = first + max_chars
        line = bisect.bisect_right(line_starts, limit) - 1
        index = bisect.bisect_right(word_starts, limit) - 1
        if line >= 0 and line_starts[line] > first:
            cut = line_starts[line]
        elif index >= 0 and word_starts[index] > first:
            cut = word_starts[index]
        elif not text[limit].isspace():  # one token runs past the limit: cut it hard
            flags = flags or _FlagRuns(text, first, end)
            cut = _grapheme_cut(text, first, limit, flags)
        else:  # a word, then only whitespace up to the limit: cut at the next word
            index = bisect.bisect_right(word_starts, limit)
            if index == len(word_starts):
                return
            cut = word_starts[index]
        yield cut
        first = cut


class _FlagRuns:
    """Where each run of regional indicators (the letters that pair into flags) in
    text[start:end] starts, found once, so that the pairing at a position is a lookup and not
    a scan back to the start of a run that may be the whole text."""

    def __init__(self, text: str, start: int, end: int) -> None:
        while start > 0 and _is_regional_indicator(text[start - 1]):
            start -= 1
        self.starts = [m.start() for m in _REGIONAL_INDICATORS.finditer(text, start, end)]

    def run_start(self, i: int) -> int:
        """The start of the run holding the regional indicator text[i]."""
        return self.starts[bisect.bisect_right(self.starts, i) - 1]


def _grapheme_cut(text: str, first: int, limit: int, flags: _FlagRuns) -> int:
    """*limit*, moved back so as not to break a grapheme unless one is longer than the limit."""
    cut = limit
    while cut > first + 1 and _joined(text, cut, flags):
        cut -= 1
    return limit if _joined(text, cut, flags) else cut


def _joined(text: str, i: int, flags: _FlagRuns) -> bool:
    """True when text[i] continues the grapheme of text[i - 1] (simplified UAX #29)."""
    ch, prev = text[i], text[i - 1]
    if ch == _ZWJ or prev == _ZWJ:
        return True
    code = ord(ch)
    if (
        0xFE00 <= code <= 0xFE0F  # variation selectors
        or 0x1F3FB <= code <= 0x1F3FF  # skin tone modifiers
        or 0xE0020 <= code <= 0xE007F  # tag characters (flag sequences)
        or unicodedata.category(ch) in ("Mn", "Mc", "Me")
    ):
        return True
    if _is_regional_indicator(ch) and _is_regional_indicator(prev):
        return (i - flags.run_start(i - 1)) % 2 == 1  # an odd number of them before: a pair
    return False


def _is_regional_indicator(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


# ------------------------------------------------------------------------------- hand edits
def merge_spans(spans: Sequence[Span], index: int) -> list[Span]:
    """Join sentence ``index`` (0-based) with the one after it: a boundary removed by hand.

    >>> [s.text for s in merge_spans([Span(0, 4, "Hi. "), Span(4, 7, "Yo.")], 0)]
    ['Hi. Yo.']
    """
    if not 0 <= index < len(spans) - 1:
        raise ValueError(
            f"sentence {index + 1}: pick one of sentences 1 to {len(spans) - 1} to merge with "
            "the sentence after it"
        )
    first, second = spans[index], spans[index + 1]
    joined = Span(first.start, second.end, first.text + second.text)
    return [*spans[:index], joined, *spans[index + 2 :]]


def split_points(text: str) -> list[int]:
    """Where :func:`split_span` may cut a sentence's ``text``: before each word, and after
    CJK punctuation (CJK text has no spaces between words), leaving text that is not only
    spaces on both sides. Offsets into ``text``, increasing.

    >>> split_points("Hi. Yo there")
    [4, 7]
    >>> split_points("你好，我很好")
    [3]
    """
    starts = {m.start() for m in _WORD_START.finditer(text)}
    starts |= {m.end() for m in _CJK_PUNCTUATION_THEN_TEXT.finditer(text)}
    first = _NON_SPACE.search(text)
    if first is None:
        return []
    return sorted(at for at in starts if first.start() < at < len(text))


def split_span(spans: Sequence[Span], index: int, at: int) -> list[Span]:
    """Split sentence ``index`` (0-based) before character ``at`` of that sentence's text.

    >>> [s.text for s in split_span([Span(0, 12, "Hi. Yo there")], 0, 4)]
    ['Hi. ', 'Yo there']
    """
    if not 0 <= index < len(spans):
        raise ValueError(f"sentence {index + 1}: there are {len(spans)} sentences")
    span = spans[index]
    if not 0 < at < len(span.text):
        raise ValueError(
            f"split position {at}: give a character position inside sentence {index + 1}, "
            f"between 1 and {len(span.text) - 1}"
        )
    if not span.text[:at].strip() or not span.text[at:].strip():
        raise ValueError("a split must leave some text (not only spaces) on both sides")
    left = Span(span.start, span.start + at, span.text[:at])
    right = Span(span.start + at, span.end, span.text[at:])
    return [*spans[:index], left, right, *spans[index + 1 :]]
