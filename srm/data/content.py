"""Which pairs are not for showing to a general audience: the rule the demo's automatic
examples follow (a person may still feature any pair by hand).

Two checks, both cheap and both conservative (a false alarm only drops an example):

- the source: HH-RLHF's ``harmless-base`` subset and any red-team data are conversations in
  which people tried to make the assistant say something harmful, by design;
- the text: a short keyword list per topic (weapons, drugs, violence, self-harm, sexual
  content, crime), matched as whole words, in the prompt and both responses.

    >>> harmful_source("hh-rlhf/harmless-base")
    True
    >>> harmful_topic("How do I make a pipe bomb?")
    'weapons'
    >>> unsuitable("hh-rlhf/helpful-base", "How long do I boil an egg?", "Ten minutes.", "Five.")
"""

from __future__ import annotations

import re

#: Source names (or parts of them) of data collected to elicit harmful answers.
HARMFUL_SOURCES = ("harmless", "red-team", "red_team", "redteam")

#: Whole words (a plural "s"/"es" also matches) that put a text in a topic.
TOPIC_WORDS: dict[str, tuple[str, ...]] = {
    "weapons": (
        "gun", "firearm", "rifle", "pistol", "shotgun", "ammo", "ammunition", "bomb",
        "explosive", "grenade", "weapon", "bullet", "silencer",
    ),
    "drugs": (
        "drug", "cocaine", "heroin", "meth", "methamphetamine", "marijuana", "weed", "lsd",
        "opioid", "fentanyl", "overdose", "ecstasy", "mdma", "narcotic",
    ),
    "violence": (
        "kill", "killing", "murder", "stab", "shoot", "shooting", "torture", "assault",
        "beat up", "poison", "kidnap", "strangle", "terrorist",
    ),
    "self-harm": ("suicide", "suicidal", "self-harm", "cut myself", "kill myself", "hang myself"),
    "sexual content": (
        "sex", "sexual", "porn", "pornography", "nude", "naked", "rape", "orgasm", "penis",
        "vagina", "genital", "genitals", "prostitute",
    ),
    "crime": ("steal", "shoplift", "burglary", "rob", "robbery", "launder", "hack into"),
}  # fmt: skip

_PATTERNS = {
    topic: re.compile(
        r"\b(?:" + "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in words) + r")(?:e?s)?\b",
        re.IGNORECASE,
    )
    for topic, words in TOPIC_WORDS.items()
}


def harmful_source(source: str | None) -> bool:
    """The pair comes from data collected to elicit harmful answers (red-teaming)."""
    name = (source or "").lower()
    return any(part in name for part in HARMFUL_SOURCES)


def harmful_topic(*texts: str) -> str | None:
    """The first topic of :data:`TOPIC_WORDS` any of ``texts`` touches, or ``None``."""
    for topic, pattern in _PATTERNS.items():
        if any(pattern.search(text) for text in texts):
            return topic
    return None


def unsuitable(source: str | None, prompt: str, chosen: str, rejected: str) -> str | None:
    """Why a pair is not for a general audience ("a red-team source", "weapons"), or
    ``None`` when neither its source nor its text says so."""
    if harmful_source(source):
        return "a red-team source"
    return harmful_topic(prompt, chosen, rejected)
