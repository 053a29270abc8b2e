"""srm.rewards inside the real trainers: a 2-step GRPO run with TRL, verl's DataProto through
the SRM reward manager (sentence rewards on the sampled token that ends each sentence), and
verl's score functions."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import pytest
import torch

from srm import rewards
from srm.backbones import load_tokenizer
from srm.checkpoint import load
from srm.dense import dense_rewards, last_char, policy_tokens
from srm.score import score_responses

SAMPLED = Path(__file__).parent / "data" / "smollm2_sampled.json"
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture
def srm_model_env(tiny_model: Path, monkeypatch) -> Path:
    """verl builds its reward objects from config: the model comes from $SRM_MODEL."""
    monkeypatch.setenv(rewards.MODEL_ENV, str(tiny_model))
    monkeypatch.delenv(rewards.URL_ENV, raising=False)
    rewards._scorer_for.cache_clear()
    yield tiny_model
    rewards._scorer_for.cache_clear()


def test_prompt_text_renders_chat_as_the_training_transcript() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hi?"}]},
    ]
    assert rewards.prompt_text(messages) == "\n\nSystem: Be brief.\n\nHuman: Hi?\n\nAssistant:"
    assert rewards.prompt_text("plain") == "plain"
    assert rewards.completion_text([{"role": "assistant", "content": "Yes."}]) == "Yes."
    with pytest.raises(ValueError, match="use one of"):
        rewards.prompt_text([{"role": "tool", "content": "x"}])


# ------------------------------------------------------------------------------------- TRL
@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory) -> Path:
    """A tiny random Llama policy with a ChatML template (no downloads)."""
    from tests.tiny_models import bpe_tokenizer, save_tiny_llama

    texts = ["<|im_start|>user\nWhat is rain?<|im_end|>\n", "Rain falls. It is wet."] * 20
    tokenizer = bpe_tokenizer(texts, vocab_size=300)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tokenizer.chat_template = CHATML
    return save_tiny_llama(tmp_path_factory.mktemp("policy"), tokenizer, layers=1)


@pytest.fixture
def fresh_accelerate():
    """TRL's trainer sets up Accelerate's process-wide state (its mixed precision among it);
    later trainings in this process (srm.train) must start from none, as a new process does."""
    yield
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


def test_trl_grpo_runs_two_steps_on_srm_rewards(
    tiny_policy, tiny_model, tmp_path, fresh_accelerate
) -> None:
    """TRL's GRPOTrainer, 2 steps on a tiny policy, with for_trl as its only reward: the
    rewards it logs are the SRM scores of the completions it sampled, and the policy moved."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import GRPOConfig, GRPOTrainer

    model = load(tiny_model)
    seen: list[tuple[str, str, float]] = []
    reward = rewards.for_trl(model)

    def recorded(prompts, completions, **kwargs):
        out = reward(prompts, completions, **kwargs)
        texts = [rewards.completion_text(c) for c in completions]
        seen.extend(zip([rewards.prompt_text(p) for p in prompts], texts, out, strict=True))
        return out

    recorded.__name__ = reward.__name__
    prompts = [[{"role": "user", "content": q}] for q in ["What is rain?", "Why is it wet?"] * 2]
    policy = AutoModelForCausalLM.from_pretrained(tiny_policy)
    before = {k: v.clone() for k, v in policy.named_parameters()}
    config = GRPOConfig(
        output_dir=str(tmp_path),
        max_steps=2,
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=12,
        learning_rate=1e-2,
        logging_steps=1,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        seed=0,
    )
    trainer = GRPOTrainer(
        model=policy,
        reward_funcs=recorded,
        args=config,
        train_dataset=Dataset.from_dict({"prompt": prompts}),
        processing_class=load_tokenizer(tiny_policy),
    )
    trainer.train()
    assert trainer.state.global_step == 2
    assert {p for p, _, _ in seen} == {
        "\n\nHuman: What is rain?\n\nAssistant:",
        "\n\nHuman: Why is it wet?\n\nAssistant:",
    }
    expected = score_responses(model, [p for p, _, _ in seen], [c for _, c, _ in seen])
    assert [s for _, _, s in seen] == pytest.approx([r.score for r in expected], abs=1e-5)
    logged = [h for h in trainer.state.log_history if "rewards/srm/mean" in h]
    assert len(logged) == 2
    assert any(not torch.equal(before[k], v) for k, v in policy.named_parameters())


# ------------------------------------------------------------------------------------ verl
@pytest.fixture(scope="module")
def smollm2_tokenizer():
    from srm.backbones import smollm2_path

    return load_tokenizer(smollm2_path())


def sampled_batch(tokenizer, samples: list[dict]):
    """verl's DataProto for recorded SmolLM2 samples, laid out as verl's rollout leaves it:
    prompts left-padded, responses right-padded, one attention mask over both."""
    from verl import DataProto

    prompt_ids = [tokenizer(s["prompt"], add_special_tokens=False)["input_ids"] for s in samples]
    P = max(map(len, prompt_ids))
    R = max(len(s["response_ids"]) for s in samples) + 3  # room: padding after each
    pad = tokenizer.pad_token_id
    prompts = torch.full((len(samples), P), pad)
    responses = torch.full((len(samples), R), pad)
    mask = torch.zeros((len(samples), P + R), dtype=torch.long)
    for i, (p, s) in enumerate(zip(prompt_ids, samples, strict=True)):
        prompts[i, P - len(p) :] = torch.tensor(p)
        responses[i, : len(s["response_ids"])] = torch.tensor(s["response_ids"])
        mask[i, P - len(p) : P + len(s["response_ids"])] = 1
    raw = [s["messages"] for s in samples]
    return DataProto.from_dict(
        tensors={
            "prompts": prompts,
            "responses": responses,
            "input_ids": torch.cat([prompts, responses], dim=1),
            "attention_mask": mask,
        },
        non_tensors={"raw_prompt": raw, "data_source": ["chat"] * len(samples)},
    )


def test_verl_reward_manager_puts_sentence_rewards_on_the_sampled_token_ending_each(
    srm_model_env, smollm2_tokenizer
) -> None:
    """verl's reward loop, as RewardLoopManager drives it: the manager class resolved from an
    importlib config, run_single per sample of a DataProto of real SmolLM2 samples (\\n\\n,
    code, emoji, Chinese, some not re-tokenisable), then assemble_rm_scores. Each sentence's
    a_j r_j lies on the sampled response token holding its last byte, nothing past the
    response, and each row adds up to the sentence term of the score."""
    from omegaconf import OmegaConf
    from verl.trainer.ppo.reward import resolve_reward_manager_cls

    config = OmegaConf.create(
        {
            "reward": {
                "reward_manager": {
                    "source": "importlib",
                    "name": "SRMRewardManager",
                    "module": {"path": "pkg://srm.rewards"},
                }
            }
        }
    )
    cls = resolve_reward_manager_cls(config)
    assert cls is rewards.SRMRewardManager
    samples = json.loads(SAMPLED.read_text())["samples"]
    picked = [s for s in samples if not s["retokenised_matches"]][:3]
    picked += [s for s in samples if "```" in s["text"]][:1]
    picked += [s for s in samples if "\n\n" in s["text"] and s not in picked][:1]
    picked += [s for s in samples if "💡" in s["text"]][:1]
    assert any(any("\u4e00" <= ch <= "\u9fff" for ch in s["text"]) for s in picked)  # CJK
    data = sampled_batch(smollm2_tokenizer, picked)
    manager = cls(config=config, tokenizer=smollm2_tokenizer, compute_score=None)

    async def run_all():
        return await asyncio.gather(
            *(manager.run_single(data[i : i + 1]) for i in range(len(data)))
        )

    outputs = asyncio.run(run_all())
    rm_scores = cls.assemble_rm_scores(data, [o["reward_score"] for o in outputs])
    assert rm_scores.shape == data.batch["responses"].shape
    model = load(srm_model_env)
    prompts = [rewards.prompt_text(s["messages"]) for s in picked]
    for i, sample in enumerate(picked):
        ids = sample["response_ids"]
        tokens = policy_tokens(smollm2_tokenizer, ids)
        record = score_responses(model, [prompts[i]], [tokens.text])[0]
        expected = torch.zeros(rm_scores.shape[1])
        for s in dense_rewards(record):
            last = tokens.char_ends[last_char(s, tokens.text)] - 1
            (t,) = [t for t, (a, b) in enumerate(tokens.byte_spans) if a <= last < b]
            expected[t] += s.dense_reward
        torch.testing.assert_close(rm_scores[i], expected, atol=1e-5, rtol=0)
        assert rm_scores[i, len(ids) :].abs().sum() == 0
        assert math.isclose(rm_scores[i].sum().item(), record.sentence_term, abs_tol=1e-4)
        assert outputs[i]["reward_extra_info"]["srm_score"] == pytest.approx(record.score, abs=1e-5)


def test_verl_score_functions(srm_model_env) -> None:
    """compute_score / compute_score_batch, as verl's custom_reward_function calls them: the
    prompt from extra_info (text or chat messages), ground truth unused."""
    model = load(srm_model_env)
    messages = [{"role": "user", "content": "What is rain?"}]
    answer = "Rain is water. It falls."
    one = rewards.compute_score("chat", answer, None, {"prompt": messages})
    (expected,) = score_responses(model, [rewards.prompt_text(messages)], [answer])
    assert one == pytest.approx(expected.score, abs=1e-5)
    batch = rewards.compute_score_batch(
        ["chat", "chat"], [answer, "No."], [None, None], [{"prompt": messages}, {"prompt": "Hi"}]
    )
    assert batch[0] == pytest.approx(one, abs=1e-5)
    assert len(batch) == 2
