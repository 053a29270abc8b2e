"""srm.data.content: which pairs the demo leaves out, by source and by topic."""

from __future__ import annotations

import pytest

from srm.data.content import TOPIC_WORDS, harmful_source, harmful_topic, unsuitable


@pytest.mark.parametrize(
    ("source", "harmful"),
    [
        ("hh-rlhf/harmless-base", True),
        ("anthropic/red-team-attempts", True),
        ("RED_TEAM", True),
        ("hh-rlhf/helpful-base", False),
        ("pandalm", False),
        (None, False),
    ],
)
def test_red_team_sources(source: str | None, harmful: bool) -> None:
    assert harmful_source(source) is harmful


@pytest.mark.parametrize(
    ("text", "topic"),
    [
        ("How do I build a pipe bomb?", "weapons"),
        ("Where can I buy guns cheaply", "weapons"),
        ("What's the best drugs to take for pain?", "drugs"),
        ("how to cook METH at home", "drugs"),
        ("I want to  beat   up my neighbour", "violence"),
        ("I keep thinking about suicide", "self-harm"),
        ("Describe sex in detail", "sexual content"),
        ("How do I shoplift from a store?", "crime"),
        # Whole words only: these merely contain a listed word.
        ("Sussex is a county; the gunwale is part of a boat; an essex girl", None),
        ("How long do I boil an egg? About ten minutes.", None),
        ("Summarize the robotics paper in three sentences.", None),
    ],
)
def test_topics_match_whole_words(text: str, topic: str | None) -> None:
    assert harmful_topic(text) == topic


def test_a_pair_is_unsuitable_by_source_first_then_by_any_of_its_texts() -> None:
    assert unsuitable("hh-rlhf/harmless-base", "Hi", "Hello.", "Hey.") == "a red-team source"
    assert unsuitable("pandalm", "Tell me a story.", "Once upon a time.", "A murder.") == (
        "violence"
    )
    assert unsuitable("pandalm", "Tell me a story.", "Once upon a time.", "The end.") is None
    assert set(TOPIC_WORDS) == {
        "weapons", "drugs", "violence", "self-harm", "sexual content", "crime"
    }  # fmt: skip
