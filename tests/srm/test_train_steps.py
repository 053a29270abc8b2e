"""Training on sentence labels: the PRM-form term beside (or instead of) Bradley-Terry, from a
TRL stepwise file (``srm train --steps``) or from annotators' sentence tags in the store."""

from __future__ import annotations

import json
import math

import pytest
import torch
from click.testing import CliRunner

from srm.checkpoint import load
from srm.cli import main
from srm.config import ConfigError, ModelConfig, TrainConfig
from srm.data import PreferencePair, SentenceLabels, StepRecord, load_steps, write_jsonl
from srm.losses import step_label_loss
from srm.model import SentenceRewardModel
from srm.score import score_responses
from srm.segment import segment
from srm.store import get_pair, make_sessionmaker, open_store, tag_sentence, tagged_sentences
from srm.train import TrainingError, build_model, train

GOOD = "The sky is blue on a clear day."
BAD = "Bananas are a kind of spaceship."


def step_records(n: int = 12) -> list[StepRecord]:
    """Responses whose bad sentence is always the same nonsense, at varying positions."""
    records = []
    for i in range(n):
        completions = [GOOD, f"Fact number {i} holds.", BAD]
        if i % 2:
            completions = [BAD, GOOD, f"Fact number {i} holds."]
        labels = tuple(c != BAD for c in completions)
        records.append(StepRecord(f"s{i}", f"Tell me fact {i}.", tuple(completions), labels))
    return records


def cfg(tmp_path, **overrides) -> TrainConfig:
    fields = {
        "model": ModelConfig(backbone="tiny", d=8, max_length=64),
        "max_steps": 4,
        "batch_size": 4,
        "lr": 1e-3,
        "head_lr": 1e-2,
        "log_every": 1,
        "device": "cpu",
        "output_dir": str(tmp_path / "run"),
    }
    return TrainConfig(**(fields | overrides))


def test_step_label_loss_is_bce_on_labelled_sentences_only() -> None:
    rewards = torch.tensor([[5.0, 1.0, -2.0, 9.0], [0.3, 0.5, 0.0, 0.0]])
    labels = torch.tensor([[-1.0, 1.0, 0.0, -1.0], [-1.0, 0.0, -1.0, -1.0]])
    loss, accuracy = step_label_loss(rewards, labels)
    expected = (
        -(
            math.log(torch.sigmoid(torch.tensor(1.0)).item())
            + math.log(1 - torch.sigmoid(torch.tensor(-2.0)).item())
            + math.log(1 - torch.sigmoid(torch.tensor(0.5)).item())
        )
        / 3
    )
    torch.testing.assert_close(loss.item(), expected)
    assert accuracy.item() == pytest.approx(2 / 3)
    loss, accuracy = step_label_loss(rewards, torch.full_like(labels, -1.0))
    assert loss.item() == 0.0 and math.isnan(accuracy.item())


def test_training_on_steps_alone_learns_to_blame_the_bad_sentence(tmp_path) -> None:
    steps = [SentenceLabels.from_step(r) for r in step_records()]
    result = train(cfg(tmp_path, max_steps=30), [], train_steps=steps, show_progress=False)
    assert result.steps == 30 and result.pairs_seen == 0 and result.responses_seen == 30 * 4
    assert "step_loss" in result.train_metrics and "accuracy" not in result.train_metrics
    model = load(result.output_dir)
    held_out = step_records(16)[12:]
    texts = [r.response() for r in held_out]
    scored = score_responses(
        model, [r.prompt for r in held_out], [t for t, _ in texts], spans=[s for _, s in texts]
    )
    for record, response in zip(held_out, scored, strict=True):
        rewards = [s.reward for s in response.sentences]
        assert record.labels[rewards.index(min(rewards))] is False  # the bad one is lowest
    metrics = [json.loads(line) for line in (result.output_dir / "metrics.jsonl").open()]
    assert metrics[-1]["step_loss"] < metrics[0]["step_loss"]
    # Two sentences of three are good: the learned base rate leans to "good", and it is kept.
    assert model.label_offset.item() > 0
    assert all(math.isfinite(v) for m in metrics for v in m.values())


def test_pairs_and_steps_train_together_and_both_terms_move_the_weights(
    tmp_path, make_pairs
) -> None:
    steps = [SentenceLabels.from_step(r) for r in step_records(4)]
    result = train(
        cfg(tmp_path, max_steps=3, log_every=3),
        make_pairs(8),
        train_steps=steps,
        show_progress=False,
    )
    assert result.pairs_seen + result.responses_seen == 3 * 4
    assert result.pairs_seen > 0 and result.responses_seen > 0
    line = json.loads((result.output_dir / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"loss", "accuracy", "step_loss", "step_accuracy"} <= set(line)


def test_unlabelled_sentences_take_no_part(tmp_path) -> None:
    labels = SentenceLabels("x", "Q?", "A. B.", tuple(segment("A. B.")), (None, None))
    with pytest.raises(Exception, match="nothing to train on"):
        train(cfg(tmp_path), [], train_steps=[labels], show_progress=False)


def test_steps_with_step_weight_zero_are_refused(tmp_path) -> None:
    steps = [SentenceLabels.from_step(r) for r in step_records(2)]
    with pytest.raises(ConfigError, match="step_weight"):
        train(cfg(tmp_path, step_weight=0.0), [], train_steps=steps, show_progress=False)


def write_steps(path, records) -> None:
    path.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in records), encoding="utf-8")


def test_cli_trains_on_a_step_file_alone(tmp_path) -> None:
    steps = tmp_path / "steps.jsonl"
    write_steps(steps, step_records(6))
    out = tmp_path / "run"
    args = ["train", "--steps", str(steps), "--out", str(out), "--backbone", "tiny"]
    args += ["--max-steps", "2", "--batch-size", "3", "--max-length", "64", "--step-weight", "2"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "with 18 labelled sentences in 6 responses" in result.output
    assert "sentence-label accuracy" in result.output
    assert json.loads((out / "model" / "config.json").read_text())["training"]["config"][
        "step_weight"
    ] == pytest.approx(2.0)


def test_cli_refuses_a_bad_step_file_naming_line_and_field(tmp_path) -> None:
    steps = tmp_path / "steps.jsonl"
    steps.write_text('{"prompt": "Q?", "completions": ["A."], "labels": [1]}\n')
    result = CliRunner().invoke(
        main, ["train", "--steps", str(steps), "--out", str(tmp_path / "r"), "--backbone", "tiny"]
    )
    assert result.exit_code != 0
    assert "line 1" in result.output and "labels[0]" in result.output
    assert not (tmp_path / "r").exists()


def test_a_one_sentence_step_record_is_read(tmp_path) -> None:
    path = tmp_path / "one.jsonl"
    path.write_text('{"prompt": "Q?", "completions": ["A."], "labels": [false]}\n')
    assert load_steps(path)[0].labels == (False,)


def test_tagged_sentences_keep_partly_tagged_responses(db_url, tmp_path) -> None:
    data = tmp_path / "pairs.jsonl"
    write_jsonl([PreferencePair("a", "Q?", "One. Two. Three.", "Four.", "m")], data)
    assert CliRunner().invoke(main, ["import", str(data), "--db", db_url, "--dataset", "d"])
    sessions = make_sessionmaker(open_store(db_url))
    with sessions.begin() as s:
        pair = get_pair(s, "d", "a")
        tag_sentence(s, pair.id, "ana", "chosen", (5, 9), "bad")
        tag_sentence(s, pair.id, "ana", "rejected", (0, 5), "good")
    with sessions() as s:
        tagged = tagged_sentences(s, "d")
    assert [(t.id, t.labels) for t in tagged] == [
        ("a:chosen", (None, False, None)),
        ("a:rejected", (True,)),
    ]
    assert tagged[0].response == "One. Two. Three."
    # And srm train --dataset --sentence-tags reads them.
    out = tmp_path / "run"
    result = CliRunner().invoke(
        main,
        ["train", "--dataset", "d", "--db", db_url, "--sentence-tags", "--out", str(out)]
        + ["--backbone", "tiny", "--max-steps", "1", "--max-length", "64"],
    )
    assert result.exit_code == 0, result.output
    assert "Sentence tags: 2 tagged responses." in result.output


def test_init_from_starts_from_a_checkpoints_weights(tmp_path, make_pairs) -> None:
    first = train(
        cfg(tmp_path / "a", max_steps=2, finetune="full"), make_pairs(8), show_progress=False
    )
    start = load(first.output_dir)
    config = cfg(tmp_path / "b", finetune="full", init_from=str(first.output_dir))
    config.model = ModelConfig(backbone="tiny", d=8, max_length=96)  # lengths may change
    model = build_model(config)
    torch.testing.assert_close(model.value_head.weight, start.value_head.weight)
    torch.testing.assert_close(model.marker_embedding, start.marker_embedding)
    assert model.config.max_length == 96
    assert all(p.requires_grad for p in model.parameters())
    # Sentence labels on top of what it knew: a new run, a new optimizer.
    steps = [SentenceLabels.from_step(r) for r in step_records(4)]
    result = train(config, [], train_steps=steps, show_progress=False)
    assert result.steps == 4


def test_init_from_refuses_another_architecture(tmp_path, make_pairs) -> None:
    first = train(cfg(tmp_path / "a", max_steps=1), make_pairs(4), show_progress=False)
    config = cfg(tmp_path / "b", init_from=str(first.output_dir))
    config.model = ModelConfig(backbone="tiny", head="token", max_length=64)
    with pytest.raises(TrainingError, match="init_from: .* is a sentence-head model"):
        build_model(config)
    config.model = ModelConfig(backbone="tiny", d=16, max_length=64)
    with pytest.raises(TrainingError, match="different d"):
        build_model(config)


def test_a_trained_package_backbone_is_saved_whole_after_init_from(tmp_path) -> None:
    """Starting from a fully fine-tuned minilm model and training its heads only must not save
    "heads over the package's weights": the backbone is no longer the package's."""
    from srm.checkpoint import backbone_weights_kind, read_info, save

    model = SentenceRewardModel.create(ModelConfig(backbone="minilm", d=8, max_length=64))
    with torch.no_grad():
        model.backbone.embeddings.word_embeddings.weight[5].add_(1.0)
    assert backbone_weights_kind(model) == "full"
    save(model, tmp_path / "start")
    config = cfg(tmp_path, finetune="heads", init_from=str(tmp_path / "start"))
    config.model = ModelConfig(backbone="minilm", d=8, max_length=64)
    result = train(
        config,
        [],
        train_steps=[SentenceLabels.from_step(r) for r in step_records(4)],
        show_progress=False,
    )
    assert read_info(result.output_dir).backbone_weights == "full"
    again = load(result.output_dir)
    torch.testing.assert_close(
        again.backbone.embeddings.word_embeddings.weight[5],
        model.backbone.embeddings.word_embeddings.weight[5],
    )
    config.finetune = "lora"
    with pytest.raises(ConfigError, match="trained backbone weights"):
        build_model(config)


def test_held_out_steps_are_evaluated_and_must_not_share_a_prompt(tmp_path) -> None:
    train_file, eval_file = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    records = step_records(10)
    write_steps(train_file, records[:7])
    write_steps(eval_file, records[7:])
    args = ["train", "--steps", str(train_file), "--eval-steps", str(eval_file)]
    args += ["--backbone", "tiny", "--max-steps", "2", "--max-length", "64"]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "Held-out sentence credit: AUROC " in result.output
    assert "on 3 of 3 responses" in result.output
    last = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    credit = last["eval"]["credit"]
    assert set(credit["metrics"]["reward"]) == {"auroc", "pointing"}
    # A held-out response whose prompt was trained on: its neighbours were learned.
    write_steps(eval_file, records[6:])
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "run2")])
    assert result.exit_code == 1
    assert "1 held-out prompts are also in the training steps" in result.output


def test_max_pairs_trains_on_a_seeded_sample_and_says_which(tmp_path, make_pairs) -> None:
    pairs = make_pairs(12)
    result = train(cfg(tmp_path, max_steps=1, max_pairs=5), pairs, show_progress=False)
    assert len(result.pair_ids) == 5 and set(result.pair_ids) <= {p.id for p in pairs}
    again = train(cfg(tmp_path / "b", max_steps=1, max_pairs=5), pairs, show_progress=False)
    assert again.pair_ids == result.pair_ids  # the seed decides
    assert len(train(cfg(tmp_path / "c", max_steps=1), pairs, show_progress=False).pair_ids) == 12
