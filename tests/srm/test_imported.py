"""Models read as they are: an imported reward model (head ``classifier``) read at every
sentence end, and ``srm init --reward-model`` / ``--likelihood`` checkpoints that refer to
their model instead of copying it. Tiny random classifiers built from configs, no downloads."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch.testing import assert_close
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DebertaV2Config,
    DebertaV2ForSequenceClassification,
    LlamaConfig,
    LlamaForSequenceClassification,
    Qwen2Config,
    Qwen2ForSequenceClassification,
)

from srm.backbones import BackboneError, minilm_path
from srm.checkpoint import CheckpointError, load, read_info
from srm.cli import main
from srm.collate import MARKER, collate, encode_many
from srm.data import PreferencePair, write_jsonl
from srm.imported import ImportedRewardModel, SpecialTokens, import_reward_model
from srm.score import score_responses
from srm.segment import segment

PROMPT = "Where is the cat?"
RESPONSES = ["The cat is on the mat. It sleeps there. Dogs bark.", "It left. Bye."]
TEMPLATE = (
    "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def make_classifier_dir(
    tmp_path_factory: pytest.TempPathFactory, tiny_gpt2_dir: Path
) -> Callable[..., Path]:
    """``make_classifier_dir("llama" | "qwen2" | "deberta", num_labels=1) -> directory``: a
    tiny random sequence classifier and its tokenizer, saved as save_pretrained writes them.
    The decoders use the byte-level BPE tokenizer (Qwen2's without a BOS, as Qwen's has
    none); DeBERTa uses MiniLM's WordPiece, whose [CLS] a [SEP] b [SEP] template it reads."""

    def make(kind: str, num_labels: int = 1) -> Path:
        path = tmp_path_factory.mktemp(f"{kind}-rm")
        if kind == "deberta":
            tokenizer = AutoTokenizer.from_pretrained(minilm_path())
        else:
            tokenizer = AutoTokenizer.from_pretrained(tiny_gpt2_dir)
            tokenizer.pad_token = tokenizer.eos_token
            if kind == "qwen2":
                tokenizer.bos_token = None
        tokenizer.save_pretrained(path)
        shared = {
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 256,
            "num_labels": num_labels,
            "pad_token_id": tokenizer.pad_token_id,
        }
        torch.manual_seed(0)
        if kind == "llama":
            model = LlamaForSequenceClassification(LlamaConfig(num_key_value_heads=1, **shared))
        elif kind == "qwen2":
            model = Qwen2ForSequenceClassification(Qwen2Config(num_key_value_heads=1, **shared))
        else:  # DeBERTa-v3's settings: relative attention, no absolute positions; token types
            config = DebertaV2Config(
                relative_attention=True,
                position_biased_input=False,
                pos_att_type=["p2c", "c2p"],
                type_vocab_size=2,
                **shared,
            )
            model = DebertaV2ForSequenceClassification(config)
        head = model.score if kind != "deberta" else model.classifier
        with torch.no_grad():  # a fresh head scores everything near 0: spread the values out
            head.weight.mul_(10.0)
        model.save_pretrained(path)
        return path

    return make


@pytest.fixture(scope="module")
def llama_rm(make_classifier_dir) -> Path:
    return make_classifier_dir("llama")


@pytest.fixture(scope="module")
def qwen2_rm(make_classifier_dir) -> Path:
    return make_classifier_dir("qwen2")


@pytest.fixture(scope="module")
def deberta_rm(make_classifier_dir) -> Path:
    return make_classifier_dir("deberta")


def encoded(model, prompt: str, responses: list[str]):
    items = encode_many(
        model.tokenizer,
        [model.prompt_text(prompt)] * len(responses),
        responses,
        max_length=model.score_length,
    )
    return items, collate(items, model.tokenizer.pad_token_id or 0)


def direct(path: Path):
    """The classifier as transformers loads it: the reference to compare with."""
    return AutoModelForSequenceClassification.from_pretrained(path).eval()


def check_prefix_credit(out) -> None:
    """The response head's semantics: r_0 = v_0, r_j = v_j - v_(j-1), weights 1, score v_K,
    and the weighted sum of the rewards is the score."""
    mask = out.marker_mask
    last = mask.sum(-1) - 1
    assert_close(out.weights, mask.float())
    assert_close(out.score, out.values[torch.arange(len(last)), last])
    assert_close(out.sentence_rewards[:, 0], out.values[:, 0])
    assert_close(
        out.sentence_rewards[:, 1:], (out.values[:, 1:] - out.values[:, :-1]) * mask[:, 1:]
    )
    assert_close((out.weights * out.sentence_rewards).sum(-1), out.score)


@pytest.mark.parametrize("kind", ["llama", "qwen2"])
def test_a_decoder_is_read_in_one_pass_at_the_end_of_every_prefix(
    kind, make_classifier_dir
) -> None:
    path = make_classifier_dir(kind)
    model = import_reward_model(str(path))
    assert model.one_pass and model.causal and model.config.head == "classifier"
    items, batch = encoded(model, PROMPT, RESPONSES)
    with torch.no_grad():
        out = model(batch)
    check_prefix_credit(out)
    reference = direct(path)
    for row, e in enumerate(items):
        # The classifier called on each prefix alone: the text tokens (markers are not text)
        # up to marker j, exactly as the encoding tokenised them.
        text = [t for t, s in zip(e.input_ids, e.token_sentence, strict=True) if s != MARKER]
        for j, position in enumerate(e.marker_positions):
            prefix = torch.tensor([text[: position - j]])
            with torch.no_grad():
                expected = reference(input_ids=prefix).logits[0, 0]
            assert_close(out.values[row, j], expected)
        with torch.no_grad():  # score == v_K == the classifier's own score of the whole text
            whole = reference(input_ids=torch.tensor([text])).logits[0, 0]
        assert_close(out.score[row], whole)
    assert out.values[0, : items[0].n_sentences + 1].unique().numel() > 1  # not constant


def test_an_empty_prefix_has_value_zero(qwen2_rm) -> None:
    """An empty prompt on a tokenizer without BOS (Qwen's) leaves no token to read v_0 at."""
    model = import_reward_model(str(qwen2_rm))
    items, batch = encoded(model, "", RESPONSES[:1])
    with torch.no_grad():
        out = model(batch)
    assert items[0].marker_positions[0] == 0 and out.values[0, 0].item() == 0.0
    check_prefix_credit(out)
    first = [t for t, s in zip(items[0].input_ids, items[0].token_sentence, strict=True) if s == 1]
    with torch.no_grad():
        expected = direct(qwen2_rm)(input_ids=torch.tensor([first])).logits[0, 0]
    assert_close(out.values[0, 1], expected)


def test_an_encoder_rescores_every_prefix_text_as_its_tokenizer_pairs_it(deberta_rm) -> None:
    model = import_reward_model(str(deberta_rm))
    assert not model.one_pass and model.causal
    items, batch = encoded(model, PROMPT, RESPONSES)
    with torch.no_grad():
        out = model(batch)
    check_prefix_credit(out)
    reference, tokenizer = direct(deberta_rm), AutoTokenizer.from_pretrained(deberta_rm)
    for row, response in enumerate(RESPONSES):
        spans = segment(response)
        assert items[row].n_sentences == len(spans) > 1
        texts = [tokenizer(PROMPT, return_tensors="pt")]  # v_0: the prompt alone
        texts += [tokenizer(PROMPT, response[: s.end], return_tensors="pt") for s in spans]
        for j, inputs in enumerate(texts):
            with torch.no_grad():
                expected = reference(**inputs).logits[0, 0]
            assert_close(out.values[row, j], expected)
        with torch.no_grad():
            whole = reference(**tokenizer(PROMPT, response, return_tensors="pt")).logits[0, 0]
        assert_close(out.score[row], whole)


def test_special_tokens_follow_the_tokenizers_own_template(deberta_rm, llama_rm) -> None:
    bert = AutoTokenizer.from_pretrained(deberta_rm)
    cls, sep = bert.cls_token_id, bert.sep_token_id
    assert SpecialTokens.of(bert, pair=True).around([7, 8], [9]) == (
        [cls, 7, 8, sep, 9, sep],
        [0, 0, 0, 0, 1, 1],
    )
    assert SpecialTokens.of(bert, pair=False).around([7]) == ([cls, 7, sep], [0, 0, 0])
    bpe = AutoTokenizer.from_pretrained(llama_rm)  # adds nothing
    assert SpecialTokens.of(bpe, pair=True).around([7, 8], [9]) == ([7, 8, 9], [0, 0, 0])


@pytest.mark.parametrize("kind", ["llama", "deberta"])
def test_init_reward_model_refers_to_it_and_the_checkpoint_scores(
    kind, make_classifier_dir, tmp_path
) -> None:
    source = make_classifier_dir(kind)
    out = tmp_path / "ck"
    result = invoke("init", "--reward-model", source, "--out", out)
    assert result.exit_code == 0, result.output
    assert "copies none of its weights" in result.output
    info = read_info(out)
    assert (info.model.head, info.backbone_weights, info.causal) == (
        "classifier",
        "reference",
        True,
    )
    assert info.model.backbone == str(source.resolve())
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    assert (out / "model.safetensors").stat().st_size < 1_000  # no weights copied

    pairs = [
        PreferencePair(id=f"p{i}", prompt=PROMPT, chosen=RESPONSES[i], rejected=RESPONSES[1 - i])
        for i in range(2)
    ]
    write_jsonl(pairs, tmp_path / "pairs.jsonl")
    result = invoke(
        "score", "--data", tmp_path / "pairs.jsonl", "--model", out, "--out", tmp_path / "s.jsonl"
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert isinstance(load(out), ImportedRewardModel)
    expected = score_responses(import_reward_model(str(source)), [PROMPT] * 2, RESPONSES)
    for record in records:
        assert (record["head"], record["prefix_rewards"]) == ("classifier", True)
        chosen = expected[int(record["id"][1])]
        assert record["chosen"]["score"] == pytest.approx(chosen.score, abs=1e-5)
        sentences = record["chosen"]["sentences"]
        assert [s["weight"] for s in sentences] == [1.0] * len(sentences)
        total = record["chosen"]["prompt_reward"] + sum(s["reward"] for s in sentences)
        assert total == pytest.approx(record["chosen"]["score"], abs=1e-5)

    steps = {"prompt": PROMPT, "completions": segment(RESPONSES[0]), "labels": [True, False, True]}
    steps["completions"] = [span.text.strip() for span in steps["completions"]]
    (tmp_path / "steps.jsonl").write_text(json.dumps(steps) + "\n")
    result = invoke("eval", "--model", out, "--steps", tmp_path / "steps.jsonl")
    assert result.exit_code == 0, result.output
    assert "prefix rewards (imported reward model)" in result.output


def test_a_registered_reward_model_scores_a_store_dataset(llama_rm, tmp_path) -> None:
    pairs = [PreferencePair(id="p0", prompt=PROMPT, chosen=RESPONSES[0], rejected=RESPONSES[1])]
    write_jsonl(pairs, tmp_path / "pairs.jsonl")
    db = f"sqlite:///{tmp_path / 'store.db'}"
    assert invoke("import", tmp_path / "pairs.jsonl", "--db", db, "--dataset", "d").exit_code == 0
    assert invoke("init", "--reward-model", llama_rm, "--out", tmp_path / "rm").exit_code == 0
    result = invoke("score", "--dataset", "d", "--model", tmp_path / "rm", "--db", db)
    assert result.exit_code == 0, result.output
    assert "Scored 1 pairs of dataset 'd' with model 1" in result.output


def test_a_referenced_model_that_has_gone_is_named(llama_rm, tmp_path) -> None:
    moved = tmp_path / "rm-elsewhere"
    shutil.copytree(llama_rm, moved)
    assert invoke("init", "--reward-model", moved, "--out", tmp_path / "ck").exit_code == 0
    shutil.rmtree(moved)
    assert read_info(tmp_path / "ck").model.backbone == str(moved)  # still readable
    with pytest.raises(CheckpointError, match=f"refers to, {moved}, is gone"):
        load(tmp_path / "ck")


def test_chat_template_is_on_when_the_tokenizer_has_one_unless_turned_off(
    llama_rm, tmp_path
) -> None:
    templated = tmp_path / "templated"
    shutil.copytree(llama_rm, templated)
    tokenizer = AutoTokenizer.from_pretrained(templated)
    tokenizer.chat_template = TEMPLATE
    tokenizer.save_pretrained(templated)
    for flags, expected in (([], True), (["--no-chat-template"], False)):
        out = tmp_path / f"ck{len(flags)}"
        result = invoke("init", "--reward-model", templated, "--out", out, *flags)
        assert result.exit_code == 0, result.output
        assert read_info(out).model.chat_template is expected
    model = load(tmp_path / "ck0")
    assert model.prompt_text(PROMPT) == f"<|user|>{PROMPT}\n<|assistant|>"
    assert read_info(tmp_path / "ck0").model.chat_template
    plain = invoke("init", "--reward-model", llama_rm, "--out", tmp_path / "plain")
    assert plain.exit_code == 0 and not read_info(tmp_path / "plain").model.chat_template


def test_a_two_label_classifier_is_refused_naming_the_fix(make_classifier_dir, tmp_path) -> None:
    two = make_classifier_dir("llama", num_labels=2)
    with pytest.raises(BackboneError, match="2 labels.*num_labels=1"):
        import_reward_model(str(two))
    result = CliRunner().invoke(main, ["init", "--reward-model", str(two), "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "is a classifier with 2 labels" in result.output and "num_labels=1" in result.output


def test_a_directory_with_a_pickle_file_is_refused(llama_rm, tmp_path) -> None:
    unsafe = tmp_path / "unsafe"
    shutil.copytree(llama_rm, unsafe)
    (unsafe / "pytorch_model.bin").write_bytes(b"not really a pickle")
    with pytest.raises(BackboneError, match=r"pickle-based files \(pytorch_model.bin\)"):
        import_reward_model(str(unsafe))


def test_a_language_model_is_not_a_reward_model(tiny_llama_dir) -> None:
    with pytest.raises(BackboneError, match="srm init --likelihood"):
        import_reward_model(str(tiny_llama_dir))


def test_init_refuses_flags_of_new_heads_with_a_model_read_as_it_is(llama_rm, tmp_path) -> None:
    result = CliRunner().invoke(
        main, ["init", "--reward-model", str(llama_rm), "--head", "sentence", "--out", "x"]
    )
    assert result.exit_code == 2
    assert "drop --head" in result.output
    both = CliRunner().invoke(
        main, ["init", "--reward-model", str(llama_rm), "--likelihood", "smollm2", "--out", "x"]
    )
    assert both.exit_code == 2 and "not both" in both.output


def test_init_likelihood_gives_negative_log_prob_sentence_rewards(tiny_llama_dir, tmp_path) -> None:
    out = tmp_path / "lik"
    result = invoke("init", "--likelihood", tiny_llama_dir, "--out", out)
    assert result.exit_code == 0, result.output
    info = read_info(out)
    assert (info.model.head, info.backbone_weights) == ("likelihood", "reference")
    assert info.model.backbone == str(tiny_llama_dir.resolve())
    assert not (out / "backbone").exists()
    assert (out / "model.safetensors").stat().st_size < 1_000  # the unused heads, no backbone
    model = load(out)
    (record,) = score_responses(model, [PROMPT], [RESPONSES[0]])
    assert record.n_scored == 3
    for sentence in record.sentences:
        assert sentence.reward < 0  # a mean token log-probability
        assert sentence.reward == pytest.approx(sentence.likelihood)
    weighted = sum(s.weight * s.reward for s in record.sentences)
    assert weighted + record.prompt_weight * record.prompt_reward == pytest.approx(record.score)
