"""Chat-template markup in the text RL trainers send: where a query's response starts, a
templated prompt read back into messages, and the end-of-turn texts to strip.

A trainer sends the policy's decoded sequence (OpenRLHF's ``query``) and the prompt it
started from, both rendered with the policy's chat template. :func:`split_query` finds the
response even when the prompt is not in the query as sent (OpenRLHF cut its tokens, the
decoder tidied its spaces); :func:`untemplate` turns a prompt in a known template back into
messages, so the reward model reads the transcript it was trained on rather than markup.

The templates known (:data:`TEMPLATES`) are ChatML (Qwen, SmolLM2, many others), Llama 3 and
Mistral / Llama 2 (``[INST] ... [/INST]``)::

    >>> split_query("<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\nHello.", "Hi!")
    QuerySplit(start=52, how='template_header')
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MIN_MATCH = 8
"""Characters a prompt's suffix or prefix must share with a query to be trusted as the place
the response starts (a shorter match is too likely to be chance)."""


@dataclass(frozen=True)
class ChatTemplate:
    """One template's markup: the turns it writes and the text that ends a turn."""

    name: str
    turn: re.Pattern[str]
    """Matches one turn: groups ``role`` and ``content`` (Mistral: ``content``, the user's,
    and ``answer``, the assistant's)."""
    assistant_header: str
    """What opens the assistant's turn: the response follows the last one in a query."""
    end: str
    """The end-of-turn text (the policy's EOS, decoded)."""


TEMPLATES = (
    ChatTemplate(
        "chatml",
        re.compile(r"<\|im_start\|>(?P<role>\w+)\n(?P<content>.*?)(?:<\|im_end\|>\n?|\Z)", re.S),
        "<|im_start|>assistant\n",
        "<|im_end|>",
    ),
    ChatTemplate(
        "llama3",
        re.compile(
            r"<\|start_header_id\|>(?P<role>\w+)<\|end_header_id\|>\n\n"
            r"(?P<content>.*?)(?:<\|eot_id\|>|\Z)",
            re.S,
        ),
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        "<|eot_id|>",
    ),
    ChatTemplate(
        "mistral",
        re.compile(
            r"\[INST\]\s*(?P<content>.*?)\s*\[/INST\](?P<answer>.*?)(?=\[INST\]|\Z)",
            re.S,
        ),
        "[/INST]",
        "</s>",
    ),
)
END_TEXTS = (
    *(t.end for t in TEMPLATES),
    "<|end_of_text|>",
    "<|endoftext|>",
    "<end_of_turn>",
    "<eos>",
)
"""End-of-sequence and end-of-turn texts of the common templates, stripped from a response's
end by default (``srm serve --strip`` replaces them)."""


@dataclass(frozen=True)
class QuerySplit:
    start: int
    """Where the response starts in the query."""
    how: str
    """``prompt`` (the prompt is in the query), ``template_header`` (after the last assistant
    header of a known template), ``prompt_suffix`` / ``prompt_prefix`` (the longest end or
    beginning of the prompt the query holds: a prompt cut or tidied), or ``none`` (nothing
    matched: the whole query is the response)."""


def split_query(query: str, prompt: str) -> QuerySplit:
    """Where the response starts in ``query`` (the prompt and the policy's response), and how
    that was found: see :attr:`QuerySplit.how`, tried in that order."""
    at = query.find(prompt)
    if at >= 0:
        return QuerySplit(at + len(prompt), "prompt")
    headers = [
        query.rfind(t.assistant_header) + len(t.assistant_header)
        for t in TEMPLATES
        if t.assistant_header in query
    ]
    if headers:
        return QuerySplit(max(headers), "template_header")
    suffix_end, suffix = _longest_suffix(query, prompt)
    prefix = _common_prefix(query, prompt)
    need = max(min(MIN_MATCH, len(prompt)), 1)
    # An end of the prompt found after its beginning: the prompt is all there, tidied between.
    if suffix >= need and suffix_end > prefix:
        return QuerySplit(suffix_end, "prompt_suffix")
    if prefix >= need:
        return QuerySplit(prefix, "prompt_prefix")
    return QuerySplit(0, "none")


def _longest_suffix(query: str, prompt: str) -> tuple[int, int]:
    """The longest end of ``prompt`` found in ``query``: (where it ends in the query, its
    length). Binary search: an end found means every shorter end is found too."""
    low, high, end = 0, len(prompt), 0
    while low < high:
        mid = (low + high + 1) // 2
        at = query.find(prompt[-mid:])
        if at >= 0:
            low, end = mid, at + mid
        else:
            high = mid - 1
    return end, low


def _common_prefix(query: str, prompt: str) -> int:
    n = 0
    for a, b in zip(query, prompt, strict=False):
        if a != b:
            break
        n += 1
    return n


def untemplate(prompt: str) -> list[tuple[str, str]] | None:
    """A prompt in a known template as its turns ``(role, content)``, without the open
    assistant turn it ends with; ``None`` when it is in none of them."""
    for template in TEMPLATES:
        if template.assistant_header not in prompt:
            continue
        turns: list[tuple[str, str]] = []
        for match in template.turn.finditer(prompt):
            if template.name == "mistral":
                turns.append(("user", match["content"].strip()))
                answer = match["answer"].replace(template.end, "").strip()
                if answer:
                    turns.append(("assistant", answer))
            else:
                turns.append((match["role"], match["content"].strip()))
        while turns and turns[-1][0] == "assistant" and not turns[-1][1]:
            turns.pop()  # the generation prompt: the answer goes there
        known = [(role, text) for role, text in turns if role in ("system", "user", "assistant")]
        if known:
            return known
    return None
