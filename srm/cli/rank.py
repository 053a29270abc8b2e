"""``srm rank``: Best-of-N, each prompt's candidate responses ranked by the model
(:mod:`srm.bestofn`), as the app's Best-of-N page shows them."""

from __future__ import annotations

from pathlib import Path

import click

from srm.cli.options import (
    batch_size_option,
    check_output,
    checked_device,
    clean_errors,
    device_option,
    model_option,
    model_path,
    path_option,
    score_length_option,
)


@click.command("rank")
@click.argument("file", type=click.Path(exists=True, path_type=Path))
@model_option
@path_option(
    "--out", "out", "Also write the rankings as JSONL: id, prompt, order, the scored responses."
)
@click.option(
    "--explain/--no-explain",
    default=True,
    show_default=True,
    help="Under each prompt, why the top candidate beat the runner-up.",
)
@batch_size_option
@score_length_option
@device_option
def rank_cmd(
    file: Path,
    model_dir: Path | None,
    out: Path | None,
    explain: bool,
    batch_size: int,
    max_length: int | None,
    device: str,
) -> None:
    """Rank each prompt's N candidate responses by the model's score (Best-of-N).

    FILE holds one JSON object per line: {"id": ..., "prompt": "...", "responses": ["...",
    "...", ...]} (id optional, at least two responses).
    """
    if out is not None:
        check_output(out, "--out")
    device = checked_device(device)
    from srm.bestofn import explain as explain_ranking
    from srm.bestofn import rank
    from srm.checkpoint import CheckpointError, load
    from srm.data import DataError, load_candidates, write_json_lines
    from srm.files import FileError
    from srm.records import sig3

    with clean_errors(DataError):
        items = load_candidates(file)
    with clean_errors(CheckpointError):
        model = load(model_path(model_dir), device=device)
    with clean_errors(ValueError):  # a --max-length the backbone cannot take
        rankings = rank(
            model, items, batch_size=batch_size, max_length=max_length, show_progress=True
        )
    for ranking in rankings:
        order = ranking.order
        scores = "  ".join(f"#{i + 1} {sig3(ranking.responses[i].score)}" for i in order)
        click.echo(f"{ranking.id}: {scores}")
        if explain:
            text = explain_ranking(ranking).text()
            click.echo("\n".join(f"    {line}" for line in text.splitlines()))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        with clean_errors(FileError):
            write_json_lines((r.to_json() for r in rankings), out)
        click.echo(f"Wrote {out}.")
