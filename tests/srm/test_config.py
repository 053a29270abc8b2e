"""srm.config: the one merge of a recipe and flags, the strict checks, and the field docs that
the CLI's flags and the app's forms are built from."""

from __future__ import annotations

from pathlib import Path

import pytest

from srm.config import (
    FINETUNE_MODES,
    HEADS,
    Bounds,
    ConfigError,
    ModelConfig,
    ScoreConfig,
    ServeConfig,
    TrainConfig,
    field_bounds,
    field_choices,
    field_docs,
    merge_train_config,
    read_config_file,
)


def test_overrides_go_to_their_dataclass_and_none_leaves_the_base_alone() -> None:
    base = {"lr": 1e-3, "batch_size": 4, "model": {"backbone": "tiny", "head": "response"}}
    cfg = merge_train_config(base, {"batch_size": 2, "head": "token", "lr": None, "d": None})
    assert (cfg.lr, cfg.batch_size) == (1e-3, 2)
    assert (cfg.model.backbone, cfg.model.head, cfg.model.d) == ("tiny", "token", 128)
    assert merge_train_config() == TrainConfig()


def test_a_recipe_round_trips_through_to_dict() -> None:
    cfg = TrainConfig(model=ModelConfig(backbone="tiny", d=16), lr=1e-3, lora_targets=["query"])
    assert merge_train_config(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    "base,message",
    [
        ({"lr": "1e-4"}, r"^lr: got '1e-4' \(str\); expected float$"),
        ({"batch_size": True}, r"^batch_size: got True \(bool\); expected int$"),
        ({"max_steps": 2.0}, r"^max_steps: got 2.0 \(float\); expected int \| None$"),
        ({"lora_targets": ["q", 1]}, r"^lora_targets: got \['q', 1\] \(list\); expected list"),
        ({"scheduler": 3}, r"^scheduler: got 3 \(int\); expected one of cosine, linear, const"),
        ({"scheduler": "step"}, r"^scheduler: got 'step'; choose one of cosine, linear, constant"),
        ({"model": {"d": 2.5}}, r"^model.d: got 2.5 \(float\); expected int$"),
        ({"model": "tiny"}, r"^model: got 'tiny'; give a table of model fields"),
        ({"bogus": 1}, r"^unknown training config field\(s\) bogus; known: batch_size, "),
        ({"model": {"bogus": 1}}, r"^unknown model config field\(s\) bogus; known: backbone, "),
        ({"model": {"d": 7}}, r"^model.d: got 7; use an even number \(RoPE rotates pairs\)$"),
        ({"model": {"max_length": 4}}, r"^model.max_length: got 4; use 8 or more$"),
        ({"model": {"head": "likelihood"}}, r"^model.head: 'likelihood' reads a model as it is"),
        ({"warmup_ratio": 1}, r"^warmup_ratio: got 1; use a value in \[0, 1\)$"),
        ({"seed": -1}, r"^seed: got -1; use a whole number from 0 to 4294967295$"),
        (
            {"lr": 0, "batch_size": 0},
            r"^lr: got 0; use a positive number\nbatch_size: got 0; use 1",
        ),
    ],
)
def test_a_bad_value_is_refused_naming_the_field(base: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        merge_train_config(base)


def test_an_int_is_a_float_and_a_bad_override_is_refused_too() -> None:
    assert merge_train_config({"lr": 1}).lr == 1
    with pytest.raises(ConfigError, match=r"^epochs: got inf; give a finite number"):
        merge_train_config({}, {"epochs": float("inf")})


def test_errors_from_a_recipe_name_the_file(tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.toml"
    recipe.write_text('lr = "fast"\n[model]\nbackbone = "tiny"\n', encoding="utf-8")
    assert read_config_file(recipe) == {"lr": "fast", "model": {"backbone": "tiny"}}
    with pytest.raises(ConfigError, match=rf"^{recipe}: lr: got 'fast' \(str\); expected float"):
        TrainConfig.from_toml(recipe)
    recipe.write_text("lr = \n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"^{recipe}: cannot read the config"):
        read_config_file(recipe)


@pytest.mark.parametrize("cls", [TrainConfig, ModelConfig, ServeConfig])
def test_every_field_has_a_one_line_doc(cls: type) -> None:
    """The docs are the flags' help: a field without one would be an undocumented flag."""
    docs = field_docs(cls)
    assert set(docs) == set(cls.model_fields)
    for name, doc in docs.items():
        assert doc and "\n" not in doc and "``" not in doc, name


def test_a_field_doc_is_its_docstring_on_one_line() -> None:
    assert field_docs(ModelConfig)["head"].startswith("sentence (the SRM), response (value at")
    assert field_docs(TrainConfig)["lr"] == (
        "Peak learning rate of the backbone's trainable weights (LoRA adapters or all)."
    )


def test_choices_come_from_the_annotations() -> None:
    assert field_choices(ModelConfig, "head") == HEADS == ("sentence", "response", "token")
    assert field_choices(TrainConfig, "finetune") == FINETUNE_MODES
    assert field_choices(TrainConfig, "lr") is None


def test_the_bundled_default_model_was_trained_with_its_recipe() -> None:
    """recipes/default.toml is what the README tells users to reproduce data/models/default
    with: the model's own record of its training config must be that recipe (where it ran
    and how often it logged or saved aside)."""
    from srm.checkpoint import read_info

    repo = Path(__file__).resolve().parents[2]
    recipe = TrainConfig.from_toml(repo / "recipes" / "default.toml").to_dict()
    trained = merge_train_config(read_info(repo / "data" / "models" / "default").training["config"])
    incidental = ("output_dir", "log_every", "save_every", "eval_every")
    for record in (recipe, trained := trained.to_dict()):
        for name in incidental:
            record.pop(name)
    assert trained == recipe


def test_direct_construction_is_checked_as_a_recipe_is() -> None:
    """One validation style: a config built in Python gets the same checks and words as one
    read from TOML or JSON, never pydantic's own error."""
    with pytest.raises(ConfigError, match=r"^lr: got '1e-4' \(str\); expected float$"):
        TrainConfig(lr="1e-4")
    with pytest.raises(ConfigError, match=r"^model.likelihood_feature: the token head has no"):
        TrainConfig(model={"head": "token", "likelihood_feature": True})
    with pytest.raises(ConfigError, match=r"^max_wait_ms: got 20000.0; use a value from 0 to"):
        ServeConfig(max_wait_ms=20_000.0)
    assert ModelConfig(head="likelihood").head == "likelihood"  # srm init's read-only heads
    assert TrainConfig(model={"backbone": "tiny"}).model == ModelConfig(backbone="tiny")


@pytest.mark.parametrize(
    "cls,name,bounds,advice",
    [
        (TrainConfig, "lr", Bounds(0, None, low_open=True), "use a positive number"),
        (TrainConfig, "batch_size", Bounds(1), "use 1 or more"),
        (TrainConfig, "warmup_ratio", Bounds(0, 1, high_open=True), "use a value in [0, 1)"),
        (ModelConfig, "prompt_fraction", Bounds(0, 1, True, True), "use a value between 0 and 1"),
        (ModelConfig, "max_length", Bounds(8), "use 8 or more"),
        (ModelConfig, "rope_base", Bounds(1, None, low_open=True), "use a value above 1"),
        (TrainConfig, "scheduler", Bounds(), "use a finite number"),
    ],
)
def test_bounds_are_read_from_the_fields(cls, name: str, bounds: Bounds, advice: str) -> None:
    assert field_bounds(cls, name) == bounds
    assert bounds.advice() == advice


def test_a_forms_limits_are_a_closed_range_inside_the_fields_range() -> None:
    assert field_bounds(TrainConfig, "max_steps").widget_limits(whole=True) == (1, None)
    low, high = field_bounds(TrainConfig, "lr").widget_limits()
    assert 0 < low < 1e-300 and high is None
    assert field_bounds(ModelConfig, "prompt_fraction").widget_limits()[1] < 1
    TrainConfig(lr=low)  # the smallest a form offers is accepted


def test_replace_is_a_checked_copy() -> None:
    recipe = TrainConfig(model=ModelConfig(backbone="tiny"), lr=1e-3)
    changed = recipe.replace(max_steps=3, model=recipe.model.replace(head="token"))
    assert (changed.max_steps, changed.model.head, changed.lr) == (3, "token", 1e-3)
    assert (recipe.max_steps, recipe.model.head) == (None, "sentence")  # the original stands
    with pytest.raises(ConfigError, match=r"^max_steps: got 0; use 1 or more$"):
        recipe.replace(max_steps=0)


def test_a_score_jobs_config_is_checked_as_the_others_are() -> None:
    assert ScoreConfig(device="cpu").to_dict() == {"batch_size": 16, "device": "cpu"}
    with pytest.raises(ConfigError, match=r"^batch_size: got 0; use 1 or more$"):
        ScoreConfig(batch_size=0)
    with pytest.raises(ConfigError, match=r"^unknown score config field\(s\) lr; known: batch"):
        ScoreConfig(lr=1e-3)
