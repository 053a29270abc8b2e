"""The server's messages: the pydantic models of the requests and answers of /get_reward
(OpenRLHF's remote reward model) and /score, which FastAPI validates and documents."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class RewardRequest(BaseModel):
    """OpenRLHF's remote reward model request (other keys, which forks add, are ignored)."""

    model_config = ConfigDict(extra="allow")

    query: list[str] = Field(
        description="Prompt + response as the policy produced them (OpenRLHF: the decoded "
        "sequence); each must contain its prompt, the response is the text after it."
    )
    prompts: list[str] = Field(description="The prompt of each query, as OpenRLHF sends it.")
    labels: list[Any] | None = Field(default=None, description="Accepted and not used.")
    response_ids: list[list[int]] | None = Field(
        default=None,
        description="The policy's token ids of each response, as sampled (needs srm serve "
        "--dense-tokenizer, the policy's tokenizer): the response is read off them, not off "
        "the query, and token_rewards has one reward per id. Special tokens hold no text.",
    )
    response_offsets: list[list[tuple[int, int]]] | None = Field(
        default=None,
        description="Instead of response_ids: each response token's [start, end) in the UTF-8 "
        "bytes of the response (the query after its prompt); token_rewards has one reward per "
        "token.",
    )


class RewardResponse(BaseModel):
    """OpenRLHF's keys (rewards, scores, extra_logs) and the sentence-level view."""

    rewards: list[float] = Field(description="The model's score S of each query.")
    scores: list[float] = Field(description="The same as rewards (OpenRLHF logs them).")
    extra_logs: dict[str, list[float]] = Field(
        description="Per query: prompt_term (a_0 r_0), sentences (scored), truncated (0 or 1)."
    )
    sentence_rewards: list[list[float]] = Field(
        description="Per query, the dense reward a_j r_j of each scored sentence; they add up "
        "to the reward less the prompt term."
    )
    sentence_spans: list[list[tuple[int, int]]] = Field(
        description="Per query, [start, end] of each scored sentence: character offsets into "
        "the query (with response_ids or response_offsets: into the response they spell). The "
        "reward goes on the policy token holding the last character."
    )
    token_rewards: list[list[float]] | None = Field(
        default=None,
        description="Per query, one dense reward per token, zero but on the token ending each "
        "scored sentence: per id of response_ids or token of response_offsets when sent (exact), "
        "else, with srm serve --dense-tokenizer, per token of that tokenizer over the query "
        "re-tokenised (no special tokens added; approximate: a policy samples ids that "
        "re-tokenising its text does not give).",
    )
    prompt_match: list[str] = Field(
        default_factory=list,
        description="Per query, how the response was found in it: 'prompt' (the prompt is in "
        "the query), 'template_header' (after the last assistant header of a known chat "
        "template), 'prompt_suffix' / 'prompt_prefix' (the longest end or beginning of the "
        "prompt the query holds: a prompt cut or tidied), 'none' (the whole query scored).",
    )
    token_positions: list[str] | None = Field(
        default=None,
        description="Per query, what token_rewards index: 'response_ids', 'response_offsets' "
        "(the policy's own tokens) or 'query_retokenised' (approximate).",
    )


class ScoreRequest(BaseModel):
    """Score responses to one prompt, as ``srm score`` does."""

    prompt: str
    responses: list[str] = Field(min_length=1)
    dense: bool = Field(default=False, description="Add each sentence's dense reward.")


class ScoreResponse(BaseModel):
    head: str
    max_length: int
    responses: list[dict[str, Any]] = Field(
        description="One srm score record per response: score, prompt_reward, prompt_weight, "
        "truncated, n_sentences, n_scored, sentences [{text, start, end, reward, weight}, "
        "plus likelihood, the sentence's mean token log-prob, for a backbone with an LM head] "
        "(and dense [{start, end, dense_reward}] when asked)."
    )
