"""Chat-template markup: where a query's response starts, a templated prompt's turns."""

from __future__ import annotations

import pytest

from srm.chat_markup import QuerySplit, split_query, untemplate

PROMPT = "Tell me about the rain in Spain, please."


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (PROMPT + " It rains.", QuerySplit(len(PROMPT), "prompt")),
        ("<s>" + PROMPT + " It rains.", QuerySplit(3 + len(PROMPT), "prompt")),
        # cut from the left (the end of the prompt kept), and from the right
        ("the rain in Spain, please. It rains.", QuerySplit(26, "prompt_suffix")),
        ("Tell me about the rai It rains.", QuerySplit(21, "prompt_prefix")),
        # a tidied space: the longest end of the prompt the query holds
        ("Tell me about the rain in Spain , please. It rains.", QuerySplit(41, "prompt_suffix")),
        (
            "<|im_start|>user\nHi <|im_end|>\n<|im_start|>assistant\nIt rains.",
            QuerySplit(53, "template_header"),
        ),
        ("Nothing alike.", QuerySplit(0, "none")),
    ],
)
def test_split_query(query: str, expected: QuerySplit) -> None:
    assert split_query(query, PROMPT) == expected


def test_untemplate_reads_the_three_templates() -> None:
    chatml = (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi?<|im_end|>\n"
        "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nRain?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert untemplate(chatml) == [
        ("system", "Be brief."),
        ("user", "Hi?"),
        ("assistant", "Hello."),
        ("user", "Rain?"),
    ]
    llama3 = (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nRain?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    assert untemplate(llama3) == [("user", "Rain?")]
    mistral = "<s>[INST] Hi? [/INST] Hello.</s>[INST] Rain? [/INST]"
    assert untemplate(mistral) == [("user", "Hi?"), ("assistant", "Hello."), ("user", "Rain?")]
    assert untemplate("Plain text.") is None
