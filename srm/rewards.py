"""SRM rewards inside RL trainers: TRL, verl and OpenRLHF (``docs/rl.md`` has their configs).

- TRL: :func:`for_trl` is a ``GRPOTrainer`` reward function. GRPO takes one number per
  completion, so TRL gets the score S; the sentence credit does not reach it.
- verl: :func:`compute_score` and :func:`compute_score_batch` are ``custom_reward_function``
  entries (one number per response, as verl's default reward loop keeps), and
  ``SRMRewardManager`` (``reward.reward_manager.source=importlib``, module
  ``pkg://srm.rewards``) writes each sentence's dense reward a_j r_j onto the policy token that
  ends the sentence in ``rm_scores``: the dense credit, on the ids the policy sampled.
- OpenRLHF: ``srm serve`` is its remote reward model (:mod:`srm.serve`).

Every entry takes a model the same way (:class:`Scorer`): a loaded
:class:`~srm.model.SentenceRewardModel`, a checkpoint directory, or the URL of an ``srm serve``
(``http://host:5000``, its ``--token`` as ``token=``). verl builds its reward objects from
config, so there the model comes from ``$SRM_MODEL`` (a checkpoint) or ``$SRM_REWARD_URL``
(a server) and ``$SRM_SERVE_TOKEN``, or from ``reward_kwargs`` ``srm_model`` / ``srm_url``.

Chat prompts (TRL's conversational datasets, verl's ``raw_prompt``) are rendered as the
transcript chat pairs are trained on (:func:`srm.data.pairs.transcript`), so the reward model
reads a prompt as it learned to, not chat-template markup.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from srm.dense import PolicyTokens, policy_token_rewards, policy_tokens

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from srm.model import SentenceRewardModel

URL_ENV = "SRM_REWARD_URL"
MODEL_ENV = "SRM_MODEL"
TOKEN_ENV = "SRM_SERVE_TOKEN"

Messages = Sequence[Mapping[str, Any]]


# ------------------------------------------------------------------------------ the scorer
class Scorer:
    """Scores responses with a local model or an ``srm serve`` at ``url``.

    ``Scorer(model_dir)``, ``Scorer(model)`` or ``Scorer("http://127.0.0.1:5000", token=...)``;
    :meth:`scores` gives one score per response, :meth:`token_rewards` the dense rewards on
    the policy's own token ids.
    """

    def __init__(
        self,
        model_or_url: SentenceRewardModel | str | Path,
        *,
        token: str | None = None,
        batch_size: int = 16,
        device: str | None = None,
        timeout_s: float = 300.0,
    ) -> None:
        self.batch_size = batch_size
        self.token = token
        self.timeout_s = timeout_s
        self.url: str | None = None
        self.model: SentenceRewardModel | None = None
        if isinstance(model_or_url, str) and model_or_url.startswith(("http://", "https://")):
            self.url = model_or_url.rstrip("/")
            if self.url.endswith("/get_reward"):
                self.url = self.url[: -len("/get_reward")]
        elif isinstance(model_or_url, (str, Path)):
            from srm.checkpoint import load

            self.model = load(Path(model_or_url), device=device).eval()
        else:
            self.model = model_or_url

    def scores(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        """The score S of each response to its prompt."""
        if self.model is not None:
            from srm.score import score_responses

            records = score_responses(self.model, prompts, responses, batch_size=self.batch_size)
            return [r.score for r in records]
        return self._post(prompts, responses)["rewards"]

    def token_rewards(
        self, prompts: Sequence[str], tokens: Sequence[PolicyTokens]
    ) -> tuple[list[list[float]], list[float]]:
        """Per response, one dense reward per policy token (:func:`policy_token_rewards`),
        and its score S. ``tokens[i]`` is response i as the policy's ids spell it."""
        responses = [t.text for t in tokens]
        if self.model is not None:
            from srm.score import score_responses

            records = score_responses(self.model, prompts, responses, batch_size=self.batch_size)
            dense = [policy_token_rewards(r, t) for r, t in zip(records, tokens, strict=True)]
            return dense, [r.score for r in records]
        offsets = [[list(span) for span in t.byte_spans] for t in tokens]
        body = self._post(prompts, responses, response_offsets=offsets)
        return body["token_rewards"], body["rewards"]

    def _post(self, prompts: Sequence[str], responses: Sequence[str], **extra: Any) -> dict:
        """OpenRLHF's request to the server's /get_reward, with the token in the header."""
        import httpx

        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        body = {
            "query": [p + r for p, r in zip(prompts, responses, strict=True)],
            "prompts": list(prompts),
            **extra,
        }
        answer = httpx.post(
            f"{self.url}/get_reward", json=body, headers=headers, timeout=self.timeout_s
        )
        answer.raise_for_status()
        return answer.json()


def prompt_text(prompt: str | Messages) -> str:
    """A prompt as the reward model reads it: text unchanged, chat messages as the transcript
    chat pairs are trained on (``"\\n\\nHuman: ...\\n\\nAssistant:"``)."""
    if isinstance(prompt, str):
        return prompt
    from srm.data.pairs import CHAT_ROLE_NAMES, transcript

    turns = []
    for message in prompt:
        role = message.get("role")
        if role not in CHAT_ROLE_NAMES:
            raise ValueError(
                f"a chat message with role {role!r}: use one of {', '.join(CHAT_ROLE_NAMES)}"
            )
        turns.append((role, _content_text(message.get("content"))))
    return transcript(turns)


def completion_text(completion: str | Messages) -> str:
    """A completion as text: TRL's conversational completions are a list of assistant
    messages."""
    if isinstance(completion, str):
        return completion
    return "".join(_content_text(m.get("content")) for m in completion)


def _content_text(content: Any) -> str:
    """A message's content: a string, or a list of parts of which the text parts count."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
    return "" if content is None else str(content)


# ------------------------------------------------------------------------------------ TRL
def for_trl(
    model_or_url: SentenceRewardModel | str | Path,
    *,
    token: str | None = None,
    batch_size: int = 16,
    device: str | None = None,
    name: str = "srm",
) -> Callable[..., list[float]]:
    """A reward function for TRL's ``GRPOTrainer``: the score S of each completion.

    ``GRPOTrainer(..., reward_funcs=for_trl("runs/my-srm"))``; prompts and completions may
    be text or chat messages (rendered with :func:`prompt_text`). TRL logs it as
    ``rewards/{name}``. GRPO uses one number per completion, so the sentence rewards do not
    reach it: for dense credit use verl's ``SRMRewardManager`` or OpenRLHF with ``srm serve``.
    """
    scorer = Scorer(model_or_url, token=token, batch_size=batch_size, device=device)

    def reward(
        prompts: Sequence[str | Messages],
        completions: Sequence[str | Messages],
        completion_ids: Sequence[Sequence[int]] | None = None,
        **kwargs: Any,
    ) -> list[float]:
        return scorer.scores(
            [prompt_text(p) for p in prompts], [completion_text(c) for c in completions]
        )

    reward.__name__ = name
    reward.__qualname__ = name
    return reward


# ----------------------------------------------------------------------------------- verl
@functools.cache
def _scorer_for(model: str | None, url: str | None, token: str | None) -> Scorer:
    """One scorer per process and model (verl calls the score functions per response)."""
    model = model or os.environ.get(MODEL_ENV)
    url = url or os.environ.get(URL_ENV)
    token = token or os.environ.get(TOKEN_ENV)
    if url:
        return Scorer(url, token=token)
    if model:
        return Scorer(model)
    raise ValueError(
        f"no SRM model: set ${MODEL_ENV} (a checkpoint directory) or ${URL_ENV} (an srm serve "
        "URL), or pass srm_model / srm_url in custom_reward_function.reward_kwargs"
    )


def _verl_prompt(extra_info: Mapping[str, Any] | None) -> str:
    """The prompt verl's ``extra_info`` carries (``prompt``, ``raw_prompt`` or
    ``question``; put one there in the dataset's ``extra_info``); else empty."""
    for key in ("prompt", "raw_prompt", "question"):
        value = (extra_info or {}).get(key)
        if value is not None and len(value):
            return prompt_text(value if isinstance(value, str) else list(value))
    return ""


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    *,
    srm_model: str | None = None,
    srm_url: str | None = None,
    srm_token: str | None = None,
    **kwargs: Any,
) -> float:
    """verl's ``custom_reward_function`` (``name=compute_score``): the score S of
    ``solution_str`` given the prompt in ``extra_info``; ``ground_truth`` is not used."""
    scorer = _scorer_for(srm_model, srm_url, srm_token)
    return scorer.scores([_verl_prompt(extra_info)], [solution_str])[0]


def compute_score_batch(
    data_sources: Sequence[str],
    solution_strs: Sequence[str],
    ground_truths: Sequence[Any],
    extra_infos: Sequence[Mapping[str, Any] | None],
    *,
    srm_model: str | None = None,
    srm_url: str | None = None,
    srm_token: str | None = None,
    **kwargs: Any,
) -> list[float]:
    """:func:`compute_score` for a batch (verl's batch reward manager's signature)."""
    scorer = _scorer_for(srm_model, srm_url, srm_token)
    return scorer.scores([_verl_prompt(e) for e in extra_infos], list(solution_strs))


def verl_reward_manager() -> type:
    """``SRMRewardManager``: verl's reward-loop manager with the dense rewards. Built on
    first use (``srm.rewards.SRMRewardManager``), so importing this module needs no verl."""
    from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase

    class SRMRewardManager(RewardManagerBase):
        """Writes each sentence's a_j r_j on the sampled response token that ends it.

        ``run_single`` reads the valid response ids of one sample, scores the response they
        spell against its prompt (``raw_prompt`` when the dataset keeps it, else the prompt ids
        decoded), and returns the per-token rewards as ``reward_score``; ``assemble_rm_scores``
        lays them into ``rm_scores`` (B, response_length), zero past each response.
        """

        def __init__(
            self, config: Any, tokenizer: PreTrainedTokenizerBase, compute_score: Any = None, **_
        ) -> None:
            super().__init__(config, tokenizer, compute_score)
            self.scorer = _scorer_for(None, None, None)

        async def run_single(self, data: Any) -> dict:
            item = data[-1]  # multi-sequence outputs: the last sequence, as verl's managers do
            prompt_ids = item.batch["prompts"]
            response_ids = item.batch["responses"]
            mask = item.batch["attention_mask"]
            n_prompt = prompt_ids.shape[-1]
            n = int(mask[n_prompt:].sum())
            ids = response_ids[:n].tolist()
            raw = item.non_tensor_batch.get("raw_prompt")
            if raw is not None and len(raw):
                prompt = prompt_text(list(raw))
            else:
                valid = prompt_ids[mask[:n_prompt].bool()].tolist()
                prompt = self.tokenizer.decode(valid, skip_special_tokens=True)

            def score() -> tuple[list[float], float]:
                tokens = policy_tokens(self.tokenizer, ids)
                dense, scores = self.scorer.token_rewards([prompt], [tokens])
                return dense[0], scores[0]

            dense, total = await asyncio.get_running_loop().run_in_executor(None, score)
            return {"reward_score": dense, "reward_extra_info": {"srm_score": total}}

        @classmethod
        def assemble_rm_scores(cls, data: Any, scores: list[list[float]]) -> Any:
            import torch

            rm_scores = torch.zeros_like(data.batch["responses"], dtype=torch.float32)
            for i, row in enumerate(scores):  # (B, response_length), each row's tokens first
                rm_scores[i, : len(row)] = torch.tensor(row, dtype=torch.float32)
            return rm_scores

    SRMRewardManager.__module__ = __name__
    return SRMRewardManager


def __getattr__(name: str) -> Any:
    if name == "SRMRewardManager":
        cls = verl_reward_manager()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
