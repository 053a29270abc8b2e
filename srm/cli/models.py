"""Models without training: ``srm init`` (new heads on a backbone), ``srm backbones``, and
the store's models: ``srm models`` and ``srm compare`` (the Models page's comparison)."""

from __future__ import annotations

from pathlib import Path

import click

from srm.cli.options import (
    check_output,
    clean_errors,
    config_options,
    db_option,
    open_store,
    path_option,
)
from srm.config import SEED_MAX, ModelConfig

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


@click.command("init")
@path_option("--out", "out", "Checkpoint directory to write.", required=True)
@config_options(ModelConfig, INIT_FLAGS)
@click.option(
    "--seed",
    type=click.IntRange(0, SEED_MAX),
    default=0,
    show_default=True,
    help="Seed for the new heads.",
)
def init_cmd(out: Path, seed: int, **fields: object) -> None:
    """Write an untrained model (new heads on a backbone) as a checkpoint.

    Useful to see what an untrained model does, and as the start of custom training.
    """
    from srm.backbones import BackboneError
    from srm.checkpoint import save
    from srm.config import ConfigError
    from srm.model import SentenceRewardModel

    check_output(out, "--out", directory=True)
    with clean_errors(ConfigError, BackboneError):
        config = ModelConfig(**{name: value for name, value in fields.items() if value is not None})
        model = SentenceRewardModel.create(config, seed=seed)
    model.backbone.requires_grad_(False)  # untouched backbone: minilm stores only the heads
    save(model, out)
    click.echo(f"Wrote an untrained {config.head}-head model on {config.backbone!r} to {out}.")


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
