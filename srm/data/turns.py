"""A prompt read as a transcript: the question being answered is its last human turn.

Multi-turn prompts arrive as transcripts, ``"\\n\\nHuman: ...\\n\\nAssistant: ...\\n\\nHuman: ..."``
(HH-RLHF, and every chat conversation :mod:`srm.data.pairs` renders), or with other role words
(``"User: ..."``). A role word counts only at the start of a line, followed by a colon, so
"the user: ..." inside a sentence is text, not a turn.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from srm.data.pairs import CHAT_ROLE_NAMES

#: The role words of the person asking, as transcripts write them (matched in any case).
HUMAN_ROLES = (CHAT_ROLE_NAMES["user"], "User")
#: The role words of the model answering.
ASSISTANT_ROLES = (CHAT_ROLE_NAMES["assistant"],)
ROLES = (*HUMAN_ROLES, *ASSISTANT_ROLES, CHAT_ROLE_NAMES["system"])

_HUMAN = re.compile(rf"^(?:{'|'.join(HUMAN_ROLES)})[ \t]*:", re.IGNORECASE | re.MULTILINE)
_ANY_ROLE = re.compile(rf"^(?:{'|'.join(ROLES)})[ \t]*:", re.IGNORECASE | re.MULTILINE)
# The empty assistant turn a prompt ends with ("...\n\nAssistant:"): the answer goes there.
_OPEN_ANSWER = re.compile(
    rf"^(?:{'|'.join(ASSISTANT_ROLES)})[ \t]*:\s*\Z", re.IGNORECASE | re.MULTILINE
)


@dataclass(frozen=True)
class LastTurn:
    """A transcript split before its last human turn."""

    earlier: str
    """The transcript before that turn, stripped; ``""`` when the prompt has one turn."""
    question: str
    """The last human turn, role word included, without the empty assistant turn after it."""
    n_earlier: int
    """How many turns (of any role in :data:`ROLES`) ``earlier`` holds."""


def last_human_turn(prompt: str) -> LastTurn | None:
    """Split ``prompt`` before its last human turn; ``None`` when it has no human turn.

    >>> last_human_turn("\\n\\nHuman: Hi\\n\\nAssistant: Hello\\n\\nHuman: Why?\\n\\nAssistant:")
    LastTurn(earlier='Human: Hi\\n\\nAssistant: Hello', question='Human: Why?', n_earlier=2)
    """
    starts = [m.start() for m in _HUMAN.finditer(prompt)]
    if not starts:
        return None
    rest = prompt[starts[-1] :]
    answer = _OPEN_ANSWER.search(rest)
    if answer is not None:
        rest = rest[: answer.start()]
    earlier = prompt[: starts[-1]].strip()
    return LastTurn(earlier, rest.strip(), n_earlier=len(_ANY_ROLE.findall(earlier)))
