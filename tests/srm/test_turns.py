"""srm/data/turns.py: a transcript prompt split before its last human turn."""

from __future__ import annotations

import pytest

from srm.data.turns import LastTurn, last_human_turn


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        # HH-RLHF: the prompt ends with the empty assistant turn the answer fills.
        (
            "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Why is the sky blue?\n\nAssistant:",
            LastTurn("Human: Hi\n\nAssistant: Hello!", "Human: Why is the sky blue?", 2),
        ),
        # Other role words, one newline apart, any case; a system turn counts as a turn.
        (
            "System: be brief\nUSER: a\nAssistant: b\nuser: c\n  and more\nassistant:  \n",
            LastTurn("System: be brief\nUSER: a\nAssistant: b", "user: c\n  and more", 3),
        ),
        # One turn: nothing earlier.
        ("Human: only this\n\nAssistant:", LastTurn("", "Human: only this", 0)),
        # A prefilled answer after the last question stays with it.
        ("Human: q\n\nAssistant: Sure, here", LastTurn("", "Human: q\n\nAssistant: Sure, here", 0)),
    ],
)
def test_the_last_human_turn_is_the_question(prompt: str, expected: LastTurn) -> None:
    assert last_human_turn(prompt) == expected


@pytest.mark.parametrize(
    "prompt",
    [
        "Write a haiku about autumn.",
        "Summarise what the user: wrote below.",  # a role word inside a line is text
        "Assistant: I am only an answer.",
        "",
    ],
)
def test_a_prompt_without_a_human_turn_has_none(prompt: str) -> None:
    assert last_human_turn(prompt) is None


def test_markup_in_a_turn_is_kept_as_text() -> None:
    """Splitting never touches the text: escaping is the page's job (and is tested there)."""
    turns = last_human_turn("Human: <script>alert(1)</script>\n\nAssistant: no\n\nHuman: </b>?")
    assert turns == LastTurn("Human: <script>alert(1)</script>\n\nAssistant: no", "Human: </b>?", 2)
