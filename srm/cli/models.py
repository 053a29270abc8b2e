"""Models without training: ``srm init`` (new heads on a backbone, or a model read as it is:
an imported reward model or a language model's likelihood), ``srm backbones``, and the store's
models: ``srm models`` and ``srm compare`` (the Models page's comparison)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from srm.cli.options import (
    check_output,
    clean_errors,
    config_options,
    db_option,
    open_store,
    path_option,
)
from srm.config import SEED_MAX, ModelConfig, field_docs

if TYPE_CHECKING:
    from srm.model import SentenceRewardModel

#: The ModelConfig fields ``srm init`` takes as flags.
INIT_FLAGS = (
    "backbone",
    "head",
    "d",
    "max_length",
    "score_max_length",
    "bidirectional",
    "prompt_term",
)
#: The flags that describe new heads, which a model read as it is has none of.
HEAD_FLAGS = ("backbone", "head", "d", "bidirectional", "prompt_term")


@click.command("init")
@path_option("--out", "out", "Checkpoint directory to write.", required=True)
@click.option(
    "--reward-model",
    "reward_model",
    metavar="NAME_OR_DIR",
    help="Register a reward model someone trained instead (head classifier): any "
    "AutoModelForSequenceClassification with num_labels=1, a local directory or a name in the "
    "Hugging Face cache, read at every sentence end (its prefix rewards). Nothing is copied: "
    "the checkpoint refers to it.",
)
@click.option(
    "--likelihood",
    metavar="BACKBONE",
    help="Register a language model's likelihood instead (head likelihood): smollm2, or a "
    "causal LM directory or cached name saved with its LM head; a sentence's reward is its "
    "mean token log-probability. Nothing is copied: the checkpoint refers to it.",
)
@config_options(ModelConfig, INIT_FLAGS)
@click.option(
    "--chat-template/--no-chat-template",
    "chat_template",
    default=None,
    help=field_docs(ModelConfig)["chat_template"]
    + " [default: with --reward-model and --likelihood, on when the tokenizer has a template]",
)
@click.option(
    "--seed",
    type=click.IntRange(0, SEED_MAX),
    default=0,
    show_default=True,
    help="Seed for the new heads.",
)
def init_cmd(
    out: Path,
    reward_model: str | None,
    likelihood: str | None,
    chat_template: bool | None,
    seed: int,
    **fields: object,
) -> None:
    """Write an untrained model (new heads on a backbone) as a checkpoint, or register a
    model read as it is (--reward-model, --likelihood).

    Useful to see what an untrained model does, as the start of custom training, and to
    compare an existing reward model or an LM's likelihood with trained ones.
    """
    from srm.backbones import BackboneError
    from srm.checkpoint import save
    from srm.config import ConfigError

    check_output(out, "--out", directory=True)
    read_as_is = {"--reward-model": reward_model, "--likelihood": likelihood}
    given = [flag for flag, value in read_as_is.items() if value is not None]
    if len(given) > 1:
        raise click.UsageError("Give --reward-model or --likelihood, not both.")
    clashing = ["--" + name.replace("_", "-") for name in HEAD_FLAGS if fields[name] is not None]
    if given and clashing:
        raise click.UsageError(
            f"{given[0]} names the whole model, with no new heads: drop {', '.join(clashing)}."
        )
    lengths = {name: fields[name] for name in ("max_length", "score_max_length")}
    with clean_errors(ConfigError, BackboneError):
        if reward_model is not None:
            from srm.imported import import_reward_model

            model = import_reward_model(reward_model, chat_template=chat_template, **lengths)
        elif likelihood is not None:
            from srm.imported import likelihood_model

            model = likelihood_model(likelihood, chat_template=chat_template, **lengths)
        else:
            model = _new_heads(fields, chat_template, seed)
    save(model, out)
    config = model.config
    if given:
        template = "on" if config.chat_template else "off"
        click.echo(
            f"Registered {config.backbone!r} as a {config.head} model in {out} (chat template "
            f"{template}); it refers to the model and copies none of its weights."
        )
    else:
        click.echo(f"Wrote an untrained {config.head}-head model on {config.backbone!r} to {out}.")


def _new_heads(
    fields: dict[str, object], chat_template: bool | None, seed: int
) -> SentenceRewardModel:
    """New heads on a backbone, as the flags describe them."""
    from srm.model import SentenceRewardModel

    given = {name: value for name, value in fields.items() if value is not None}
    if chat_template is not None:
        given["chat_template"] = chat_template
    model = SentenceRewardModel.create(ModelConfig(**given), seed=seed)
    model.backbone.requires_grad_(False)  # untouched backbone: minilm stores only the heads
    return model


@click.command("backbones")
def backbones_cmd() -> None:
    """List the named backbones: size, licence, how each is causal, and whether it is here.

    Any Hugging Face name in the local cache, or a local directory, works as well."""
    from srm.backbones import NAMED, backbone_present, cache_dir

    rows = [
        (b.name, b.parameters, b.licence, b.kind, "yes" if backbone_present(b.name) else "no")
        for b in NAMED.values()
    ]
    header = ("name", "params", "licence", "causal", "present")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    click.echo("")
    for b in NAMED.values():
        missing = "" if backbone_present(b.name) else f" Missing: {b.install}."
        click.echo(f"{b.name}: {b.description}.{missing}")
    click.echo(f"Converted backbones are cached in {cache_dir()} ($SRM_CACHE_DIR).")


@click.command("models")
@db_option
def models_cmd(db_url: str | None) -> None:
    """List the models registered in the store (ids for srm compare), newest first."""
    from srm.store import ACTIVE_MODEL, get_setting, list_models

    with open_store(db_url, read_only=True).sessions() as session:
        active = get_setting(session, ACTIVE_MODEL)
        rows = [
            (
                f"{'*' if m.id == active else ' '}{m.id}",
                m.name,
                str(m.created_at)[:16],
                m.checkpoint_dir,
            )
            for m in list_models(session)
        ]
    if not rows:
        click.echo("No models in the store yet: the app registers the default one on start.")
        return
    for row in rows:
        click.echo("  ".join(row))
    click.echo("(* the active model)")


@click.command("compare")
@click.option("--dataset", required=True, help="The dataset whose pairs both models scored.")
@click.option("--a", "model_a", type=int, required=True, help="Model A's id (srm models).")
@click.option("--b", "model_b", type=int, required=True, help="Model B's id.")
@db_option
def compare_cmd(dataset: str, model_a: int, model_b: int, db_url: str | None) -> None:
    """Compare model A with model B on a dataset, as the app's Models page does: accuracy per
    source and overall beside the length baseline, and the pairs whose verdict flipped."""
    from srm.compare import compare_models, format_comparison
    from srm.store import StoreError

    with open_store(db_url, read_only=True).sessions() as session:
        try:
            comparison = compare_models(session, dataset, model_a, model_b)
        except StoreError as err:
            raise click.ClickException(str(err)) from err
    click.echo(format_comparison(comparison))
