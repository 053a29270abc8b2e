"""Backbones by name and path, and checkpoints: round trips, safetensors only, atomic saves."""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
from pathlib import Path

import pytest
import torch
from torch.testing import assert_close

from srm import checkpoint
from srm.backbones import BackboneError, load_backbone
from srm.checkpoint import CheckpointError, load, read_info, save
from srm.config import ConfigError, ModelConfig
from srm.model import SentenceRewardModel


def scores(model, batch_for, texts):
    _, batch = batch_for(model, texts)
    with torch.no_grad():
        out = model(batch)
    return out.score, out.weights, out.sentence_rewards


def perturb(model: SentenceRewardModel, seed: int = 1) -> None:
    """Make every trained part differ from a fresh init, as training would."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)


@pytest.mark.parametrize("head", ["sentence", "response", "token"])
def test_round_trip_gives_identical_scores(make_model, batch_for, texts, tmp_path, head) -> None:
    model = make_model(head)
    perturb(model)
    save(model, tmp_path / "ck", training={"steps": 3})
    loaded = load(tmp_path / "ck")
    for a, b in zip(scores(model, batch_for, texts), scores(loaded, batch_for, texts), strict=True):
        assert torch.equal(a, b)
    info = read_info(tmp_path / "ck")
    assert info.model == model.config
    assert info.backbone_weights == "full"  # tiny's random weights must travel with it
    assert info.training == {"steps": 3}
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == [
        "config.json",
        "model.safetensors",
    ]


def test_minilm_heads_only_checkpoint_is_small(batch_for, texts, tmp_path) -> None:
    model = SentenceRewardModel.create(ModelConfig(backbone="minilm", d=16)).eval()
    model.backbone.requires_grad_(False)
    perturb(model)
    save(model, tmp_path / "ck")
    assert read_info(tmp_path / "ck").backbone_weights == "none"
    assert (tmp_path / "ck" / "model.safetensors").stat().st_size < 100_000
    loaded = load(tmp_path / "ck")
    assert torch.equal(scores(model, batch_for, texts)[0], scores(loaded, batch_for, texts)[0])


def test_minilm_top_layers_checkpoint_holds_those_layers_only(batch_for, texts, tmp_path):
    """Full fine-tuning of the top layers over a package backbone: the checkpoint stores the
    trained layers (and heads), the frozen rest comes from the package on load."""
    model = SentenceRewardModel.create(ModelConfig(backbone="minilm", d=16)).eval()
    for name, param in model.backbone.named_parameters():
        param.requires_grad_(".layer.5." in name)
    perturb(model)
    save(model, tmp_path / "ck")
    assert read_info(tmp_path / "ck").backbone_weights == "partial"
    stored = checkpoint._read_weights(tmp_path / "ck" / "model.safetensors")
    backbone_keys = {k for k in stored if k.startswith("backbone.")}
    assert backbone_keys and all(".layer.5." in k for k in backbone_keys)
    # one of six layers: far less than the 90 MB of the whole backbone
    assert (tmp_path / "ck" / "model.safetensors").stat().st_size < 10_000_000
    loaded = load(tmp_path / "ck")
    for a, b in zip(scores(model, batch_for, texts), scores(loaded, batch_for, texts), strict=True):
        assert torch.equal(a, b)
    # A stored tensor the package's backbone does not have is refused by name.
    stored["backbone.encoder.layer.9.output.dense.weight"] = torch.zeros(2)
    from safetensors.torch import save_file

    save_file(stored, tmp_path / "ck" / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"do not fit 'minilm' \(unexpected \['encoder"):
        load(tmp_path / "ck")


def test_lora_checkpoint_round_trip(make_model, batch_for, texts, tmp_path) -> None:
    from peft import LoraConfig, get_peft_model

    model = make_model("sentence")
    model.backbone = get_peft_model(
        model.backbone, LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"])
    )
    perturb(model)  # only LoRA matrices and heads are trainable
    save(model, tmp_path / "ck")
    info = read_info(tmp_path / "ck")
    assert info.backbone_weights == "lora"
    assert info.lora["r"] == 4
    loaded = load(tmp_path / "ck")
    assert_close(scores(model, batch_for, texts)[0], scores(loaded, batch_for, texts)[0])


def test_local_decoder_only_backbone(tiny_gpt2_dir, batch_for, texts, tmp_path) -> None:
    backbone = load_backbone(str(tiny_gpt2_dir))
    assert backbone.causal and backbone.tokenizer.pad_token_id is not None
    model = SentenceRewardModel.create(ModelConfig(backbone=str(tiny_gpt2_dir), d=8)).eval()
    perturb(model)
    save(model, tmp_path / "ck")
    assert (tmp_path / "ck" / "backbone" / "config.json").exists()
    assert (tmp_path / "ck" / "backbone" / "tokenizer.json").exists()
    # Self-contained: loads after the original directory is gone.
    for f in Path(tiny_gpt2_dir).iterdir():
        f.rename(tmp_path / f"moved-{f.name}")
    try:
        loaded = load(tmp_path / "ck")
    finally:
        for f in tmp_path.glob("moved-*"):
            f.rename(Path(tiny_gpt2_dir) / f.name.removeprefix("moved-"))
    assert torch.equal(scores(model, batch_for, texts)[0], scores(loaded, batch_for, texts)[0])


def test_encoder_that_cannot_be_causal_needs_explicit_opt_in(tmp_path) -> None:
    from transformers import DistilBertConfig, DistilBertModel

    path = tmp_path / "distil"
    DistilBertModel(
        DistilBertConfig(vocab_size=30522, dim=32, n_layers=1, n_heads=2, hidden_dim=64)
    ).save_pretrained(path)
    load_backbone("tiny").tokenizer.save_pretrained(path)
    with pytest.raises(BackboneError, match="attends to later tokens.*bidirectional=True"):
        load_backbone(str(path))
    backbone = load_backbone(str(path), bidirectional=True)
    assert backbone.causal is False


def test_unknown_backbone_explains_that_nothing_is_downloaded() -> None:
    with pytest.raises(BackboneError, match="never downloads at run time"):
        load_backbone("no-such-org/no-such-model")


def test_pickle_files_are_refused(make_model, tmp_path) -> None:
    save(make_model(), tmp_path / "ck")
    torch.save({"x": torch.zeros(1)}, tmp_path / "ck" / "pytorch_model.bin")  # a pickle
    with pytest.raises(CheckpointError, match=r"pickle-based files \(pytorch_model.bin\)"):
        load(tmp_path / "ck")


def test_not_a_checkpoint(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="no such directory"):
        load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="needs config.json and model.safetensors"):
        load(tmp_path / "empty")


def test_foreign_format_is_refused(make_model, tmp_path) -> None:
    save(make_model(), tmp_path / "ck")
    config = json.loads((tmp_path / "ck" / "config.json").read_text())
    config["format"] = "something-else/9"
    (tmp_path / "ck" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="not written by a compatible srm"):
        load(tmp_path / "ck")


def test_a_failed_save_leaves_the_old_checkpoint_intact(make_model, tmp_path, monkeypatch) -> None:
    """A full disk mid-save: a CheckpointError (one line from the CLI) that says the model
    already there is unchanged and how much to free; no temporary left behind."""
    model = make_model()
    save(model, tmp_path / "ck")
    before = (tmp_path / "ck" / "model.safetensors").read_bytes()

    def explode(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint, "save_file", explode)
    perturb(model)
    with pytest.raises(
        CheckpointError,
        match=r"cannot save the model at .*ck: no space left on the device \(its weights are "
        r"\d+ [KM]B\); the partial files were removed and the model .*ck held before is "
        r"unchanged\. Free more than \d+ [KM]B on the disk holding",
    ):
        save(model, tmp_path / "ck")
    assert (tmp_path / "ck" / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]  # no temporary left behind


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_checkpoint_with_weights_that_are_not_finite_is_refused_at_load(
    make_model, tmp_path, value: float
) -> None:
    """As a diverged run, or a damaged file, would leave it: refused by name when loaded (for
    scoring or a resume alike), not loaded to give NaN scores later."""
    model = make_model()
    with torch.no_grad():
        model.value_head.weight[0, 0] = value
    save(model, tmp_path / "ck")
    with pytest.raises(
        CheckpointError,
        match=r"ck/model.safetensors: tensor value_head.weight holds NaN or infinite values, so "
        r"the model cannot score; it is not a good checkpoint\. Load or resume from an earlier "
        "one",
    ):
        load(tmp_path / "ck")


@pytest.mark.parametrize("kind", ["a FIFO", "a regular file"])
def test_saving_over_what_is_not_a_directory_is_refused(make_model, tmp_path, kind) -> None:
    target = tmp_path / "ck"
    if kind == "a FIFO":
        os.mkfifo(target)
    else:
        target.write_text("mine\n")
    with pytest.raises(
        CheckpointError, match=rf"ck: not a directory or a new path \(it is {kind}\)"
    ):
        save(make_model(), target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]
    assert target.is_fifo() if kind == "a FIFO" else target.read_text() == "mine\n"


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match="head: got 'paragraph'"):
        ModelConfig(head="paragraph")
    with pytest.raises(ConfigError, match="d: got 7"):
        ModelConfig(d=7)
    with pytest.raises(ConfigError, match="unknown model config field"):
        ModelConfig.from_dict({"heads": "sentence"})


def test_max_length_beyond_the_backbone_positions_is_refused() -> None:
    with pytest.raises(ConfigError, match="max_length: got 1024.*only 512 positions"):
        SentenceRewardModel.create(ModelConfig(backbone="tiny", max_length=1024))


def test_checkpoint_permissions_follow_the_umask(make_model, tmp_path) -> None:
    umask = os.umask(0o022)
    try:
        save(make_model(), tmp_path / "ck")
    finally:
        os.umask(umask)
    assert (tmp_path / "ck").stat().st_mode & 0o777 == 0o755  # not mkdtemp's 0700
    for name in ("config.json", "model.safetensors"):
        assert (tmp_path / "ck" / name).stat().st_mode & 0o777 == 0o644


# ------------------------------------------------------------------------- no code from a model
def saved_tiny_backbone(path: Path) -> Path:
    """The ``tiny`` backbone written with ``save_pretrained``: a local backbone directory."""
    backbone = load_backbone("tiny")
    backbone.model.save_pretrained(path)
    backbone.tokenizer.save_pretrained(path)
    return path


def add_custom_code(path: Path, marker: Path) -> None:
    """Turn a backbone directory into one that asks for remote code: an ``auto_map`` and a
    ``modeling_evil.py`` that would create ``marker`` if it were ever imported."""
    config = json.loads((path / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "modeling_evil.EvilConfig"}
    config["model_type"] = "evil"
    (path / "config.json").write_text(json.dumps(config))
    (path / "modeling_evil.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "from transformers import BertConfig\n"
        "class EvilConfig(BertConfig):\n    model_type = 'evil'\n"
    )


def test_a_backbone_with_custom_code_is_refused(tmp_path) -> None:
    marker = tmp_path / "custom-code-ran"
    evil = saved_tiny_backbone(tmp_path / "evil")
    add_custom_code(evil, marker)
    with pytest.raises(BackboneError, match=r"evil: refusing a backbone that brings its own code"):
        load_backbone(str(evil))
    assert not marker.exists()


def test_a_checkpoint_naming_a_custom_code_backbone_is_refused(tmp_path) -> None:
    from peft import LoraConfig, get_peft_model

    marker = tmp_path / "custom-code-ran"
    backbone = saved_tiny_backbone(tmp_path / "bb")
    model = SentenceRewardModel.create(ModelConfig(backbone=str(backbone), d=8)).eval()
    # Adapters only: loading it loads the backbone from the directory its config.json names.
    lora = get_peft_model(model.backbone, LoraConfig(r=2, target_modules=["query"]))
    model.backbone = lora
    save(model, tmp_path / "ck")
    add_custom_code(backbone, marker)  # the backbone changes after the checkpoint was written
    with pytest.raises(CheckpointError, match=r"brings its own code \(auto_map in config.json"):
        load(tmp_path / "ck")
    # A self-contained checkpoint carries the backbone's config in backbone/: checked the same.
    model.backbone = lora.get_base_model()
    save(model, tmp_path / "full")
    add_custom_code(tmp_path / "full" / "backbone", marker)
    with pytest.raises(CheckpointError, match=r"full/backbone: refusing a backbone"):
        load(tmp_path / "full")
    assert not marker.exists()


def test_pickle_files_in_a_backbone_directory_are_refused(tmp_path) -> None:
    backbone = saved_tiny_backbone(tmp_path / "bb")
    torch.save({"x": torch.zeros(1)}, backbone / "pytorch_model.bin")  # a pickle
    with pytest.raises(BackboneError, match=r"pickle-based files \(pytorch_model.bin\)"):
        load_backbone(str(backbone))


# ------------------------------------------------------------------------- damaged checkpoints
def edit_config(path: Path, change) -> None:
    config = json.loads((path / "config.json").read_text())
    change(config)
    (path / "config.json").write_text(json.dumps(config))


def relink_weights(path: Path, target: Path) -> None:
    (path / "model.safetensors").unlink()
    (path / "model.safetensors").symlink_to(target)


def truncate_weights(path: Path) -> None:
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


DAMAGES = {
    "no model key": (
        lambda ck: edit_config(ck, lambda c: c.pop("model")),
        r"config.json: missing field 'model'",
    ),
    "bad head": (
        lambda ck: edit_config(ck, lambda c: c["model"].update(head="paragraph")),
        r"config.json: field 'model': head: got 'paragraph'",
    ),
    "causal not a bool": (
        lambda ck: edit_config(ck, lambda c: c.update(causal="yes")),
        r"config.json: field 'causal': expected true or false, got 'yes'",
    ),
    "training not a table": (
        lambda ck: edit_config(ck, lambda c: c.update(training=[1])),
        r"config.json: field 'training': expected a table, got \[1\]",
    ),
    "unknown weights kind": (
        lambda ck: edit_config(ck, lambda c: c.update(backbone_weights="some")),
        r"config.json: field 'backbone_weights': got 'some'; "
        r"expected one of none, full, partial, lora",
    ),
    "weights of another shape": (
        lambda ck: edit_config(ck, lambda c: c["model"].update(d=8)),
        r"model.safetensors: the weights do not fit the model config.json describes",
    ),
    "truncated weights": (
        truncate_weights,
        r"model.safetensors: not a readable safetensors file",
    ),
    "weights linked to another file": (
        lambda ck: relink_weights(ck, ck / "config.json"),
        r"model.safetensors: not a readable safetensors file",
    ),
    "weights linked to a device": (
        lambda ck: relink_weights(ck, Path("/dev/zero")),
        r"model.safetensors: not a regular file",
    ),
    "junk lora settings": (
        lambda ck: edit_config(ck, lambda c: c.update(lora="junk")),
        r"config.json: field 'lora': expected a table of LoRA settings, got 'junk'",
    ),
    "lora settings that do not fit": (
        lambda ck: edit_config(ck, lambda c: c["lora"].update(target_modules=["nowhere"])),
        r"config.json: field 'lora': .*nowhere",
    ),
    "lora rank as text": (
        lambda ck: edit_config(ck, lambda c: c["lora"].update(r="eight")),
        r"config.json: field 'lora'",
    ),
}


@pytest.fixture
def lora_checkpoint(make_model, tmp_path) -> Path:
    from peft import LoraConfig, get_peft_model

    model = make_model("sentence")
    model.backbone = get_peft_model(model.backbone, LoraConfig(r=2, target_modules=["query"]))
    return save(model, tmp_path / "ck")


@pytest.mark.parametrize("damage", DAMAGES, ids=list(DAMAGES))
def test_a_damaged_checkpoint_gets_a_clear_error(lora_checkpoint, sample_path, damage) -> None:
    from click.testing import CliRunner

    from srm.cli import main

    apply, message = DAMAGES[damage]
    apply(lora_checkpoint)
    with pytest.raises(CheckpointError, match=message):
        load(lora_checkpoint)
    out = lora_checkpoint.parent / "scores.jsonl"
    result = CliRunner().invoke(
        main,
        ["score", "--model", str(lora_checkpoint), "--data", str(sample_path), "--out", str(out)],
    )
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # a message, not a traceback
    assert f"Error: {lora_checkpoint}" in result.output


# ------------------------------------------------------------------------- saving into a run
class Crash(BaseException):
    """The process dies here: nothing after this call runs, not even cleanup."""


FILE_OPERATIONS = ("replace", "rename", "symlink", "unlink", "rmdir")


def crash_at(monkeypatch: pytest.MonkeyPatch, k: int) -> None:
    """Make the k-th file operation (rename, link, removal) kill the process, and every later
    one too, as a kill -9 would."""
    calls = [0]

    def dying(name: str):
        real = getattr(os, name)

        def operation(*args, **kwargs):
            calls[0] += 1
            if calls[0] >= k:
                raise Crash(f"killed at file operation {calls[0]} ({name})")
            return real(*args, **kwargs)

        return operation

    for name in FILE_OPERATIONS:
        monkeypatch.setattr(os, name, dying(name))


def make_run(path: Path, model: SentenceRewardModel | None, *, flat: bool = False) -> Path:
    """A run directory as training leaves it: metrics, a resumable checkpoint, and the final
    model (none yet; saved by this srm; or ``flat`` at the top, as older versions saved it)."""
    if flat:
        save(model, path)  # a new directory: the model's files at its top
    path.mkdir(exist_ok=True)
    (path / "metrics.jsonl").write_text('{"step": 1, "loss": 0.69}\n')
    save(make_model_for_run(), path / "checkpoints" / "step-000001")
    if model is not None and not flat:
        save(model, path)
    return path


def make_model_for_run() -> SentenceRewardModel:
    config = ModelConfig(backbone="tiny", d=16, max_length=128)
    return SentenceRewardModel.create(config, seed=5).eval()


@pytest.mark.parametrize("earlier", ["no model yet", "a model", "a flat model"])
def test_a_crash_while_saving_into_a_run_never_loses_the_run_or_a_whole_model(
    make_model, batch_for, texts, tmp_path, monkeypatch, earlier
) -> None:
    old, new = make_model(seed=0), make_model(seed=1)
    perturb(new)
    old_score, new_score = scores(old, batch_for, texts)[0], scores(new, batch_for, texts)[0]
    template = make_run(
        tmp_path / "template",
        None if earlier == "no model yet" else old,
        flat=earlier == "a flat model",
    )
    for k in range(1, 100):
        run = tmp_path / f"run-{k}"
        shutil.copytree(template, run, symlinks=True)
        with monkeypatch.context() as patch:
            crash_at(patch, k)
            try:
                save(new, run)
                finished = True
            except Crash:
                finished = False
        # The run's own files never move, whenever the crash came...
        assert (run / "metrics.jsonl").read_text() == '{"step": 1, "loss": 0.69}\n'
        assert read_info(run / "checkpoints" / "step-000001").training is None
        # ... and the run holds one whole model: the old one or the new one.
        if earlier == "no model yet" and not finished:
            try:
                got = scores(load(run), batch_for, texts)[0]
            except CheckpointError:
                continue  # no model yet is the old state
        else:
            got = scores(load(run), batch_for, texts)[0]
        assert torch.equal(got, new_score) or torch.equal(got, old_score), f"crash at {k}"
        if finished:
            assert torch.equal(got, new_score)
            visible = sorted(p.name for p in run.iterdir() if not p.name.startswith("."))
            assert visible == ["checkpoints", "metrics.jsonl", "model"]
            break
    else:
        pytest.fail("save never finished")


def test_saving_again_into_a_run_cleans_up_after_a_crash(make_model, tmp_path, monkeypatch) -> None:
    run = make_run(tmp_path / "run", make_model(seed=0))
    with monkeypatch.context() as patch:
        crash_at(patch, 1)
        with pytest.raises(Crash):
            save(make_model(seed=1), run)
    save(make_model(seed=2), run)
    hidden = [p.name for p in run.iterdir() if p.name.startswith(".")]
    assert len(hidden) == 1 and (run / "model").resolve() == run / hidden[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no temporary beside it


def test_saving_into_a_directory_never_replaces_files_that_are_not_a_model(
    make_model, tmp_path
) -> None:
    project = tmp_path / "project"
    (project / "model").mkdir(parents=True)
    (project / "model" / "notes.txt").write_text("mine")
    (project / "config.json").write_text('{"mine": true}')
    with pytest.raises(CheckpointError, match=r"project/model: already exists and is not a model"):
        save(make_model(), project)
    (project / "model" / "notes.txt").unlink()
    (project / "model").rmdir()
    save(make_model(), project)
    assert (project / "config.json").read_text() == '{"mine": true}'  # not a checkpoint's
    assert read_info(project).model == make_model().config


def json_strings(value) -> list[str]:
    """Every string in a parsed JSON value, keys included."""
    if isinstance(value, dict):
        return [*value, *(s for v in value.values() for s in json_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in json_strings(v)]
    return [value] if isinstance(value, str) else []


@pytest.mark.parametrize("inside", [True, False])
def test_a_saved_checkpoint_names_no_directory_of_the_machine(
    make_model, tmp_path, monkeypatch, inside
) -> None:
    """A checkpoint travels (the bundled default model is one): its JSON files hold no
    absolute path, not even the run directory the training record names."""
    from srm.config import TrainConfig

    workdir, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    workdir.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(workdir if inside else elsewhere)
    run = workdir / "runs" / "job-7"
    training = {"config": TrainConfig(output_dir=str(run)).to_dict(), "step": 1}
    save(make_model("sentence"), run, training=training)
    written = [json.loads(f.read_text()) for f in run.rglob("*.json")]
    strings = [s for data in written for s in json_strings(data)]
    assert not [s for s in strings if os.path.isabs(s) or str(tmp_path) in s]
    saved = read_info(run).training["config"]["output_dir"]
    assert saved == ("runs/job-7" if inside else "job-7")


def test_portable_path_leaves_relative_paths_alone() -> None:
    assert checkpoint.portable_path("runs/x") == "runs/x"
    assert checkpoint.portable_path("/nowhere/under/cwd/x") == "x"
