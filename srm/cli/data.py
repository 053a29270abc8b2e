"""Data in and out of the store: ``srm import``, ``datasets``, ``export``; and ``segment``."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import click

from srm.cli.options import check_output, clean_errors, db_option, open_store, path_option

EXPORT_FORMATS = ("jsonl", "hf", "prm", "votes")


@click.command("import")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@db_option
@click.option(
    "--dataset",
    default=None,
    help="Dataset name in the store. Default: the file's name without extension.",
)
@click.option(
    "--if-empty",
    is_flag=True,
    help="Import only when the store holds no pairs yet (used by `make app`).",
)
@click.option(
    "--score",
    is_flag=True,
    help="Then score the new pairs with the default model ($SRM_MODEL, else the bundled one), "
    "registered in the store, so the app's Annotate queue is ordered from the start (used by "
    "`make app`; about 15 s for the 50-pair sample on a CPU).",
)
def import_cmd(
    path: Path, db_url: str | None, dataset: str | None, if_empty: bool, score: bool
) -> None:
    """Validate preference pairs from PATH and add them to the store.

    PATH may be JSONL, JSON, CSV, Parquet or a saved Hugging Face dataset directory, in TRL
    (prompt/chosen/rejected), HH-RLHF transcript or chat-message form. An invalid file imports
    nothing; every problem is listed with its file, line and field. Re-importing the same file
    adds nothing. --score then scores the dataset with the default model.
    """
    from srm.data import DataError, load_pairs
    from srm.store import StoreError, count_pairs, import_pairs

    url, sessions = open_store(db_url)
    if if_empty:
        with sessions() as session:
            existing = count_pairs(session)
        if existing:
            click.echo(f"Store {url} already holds {existing} pairs; nothing imported.")
            return
    with clean_errors(DataError):
        pairs = load_pairs(path)
    name = dataset or (path.name if path.is_dir() else path.stem)
    with clean_errors(StoreError), sessions.begin() as session:
        result = import_pairs(session, name, pairs, source_file=str(path.resolve()))
    click.echo(
        f"Imported {result.added} new pairs into dataset {name!r} "
        f"({result.unchanged} already present) at {url}."
    )
    if result.added == 0:
        click.echo("Nothing new: the store already holds every pair in this file.")
    click.echo("By source: " + ", ".join(f"{s} {n}" for s, n in _count_by(pairs).items()))
    if score and result.added:
        from srm.cli.scoring import score_store_dataset
        from srm.jobs import SCORE_BATCH_SIZE

        score_store_dataset(url, name, None, SCORE_BATCH_SIZE, "auto")


def _count_by(pairs: Iterable) -> dict[str, int]:
    return dict(Counter(p.source for p in pairs).most_common())


@click.command("datasets")
@db_option
def datasets_cmd(db_url: str | None) -> None:
    """List the datasets in the store with their pair counts."""
    from srm.store import list_datasets

    url, sessions = open_store(db_url, read_only=True)
    with sessions() as session:
        summaries = list_datasets(session)
    if not summaries:
        click.echo(f"No datasets in {url}. Add one with: srm import PATH")
        return
    width = max(len(s.name) for s in summaries)
    for s in summaries:
        click.echo(f"{s.name:<{width}}  {s.n_pairs:>7} pairs  {s.source_file or ''}")


@click.command("export")
@db_option
@click.option("--dataset", required=True, help="The dataset in the store to export.")
@path_option("--out", "out", "File to write (jsonl, prm), or a new directory (hf).", required=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(EXPORT_FORMATS),
    default="jsonl",
    show_default=True,
    help="jsonl: TRL-style JSON Lines; hf: a datasets.save_to_disk directory; prm: sentence "
    "tags as TRL stepwise-supervision records (prompt, completions, labels); votes: every "
    "annotator's vote per pair, with the pair's aggregate label.",
)
def export_cmd(db_url: str | None, dataset: str, out: Path, fmt: str) -> None:
    """Write a dataset with its annotators' corrections applied.

    Each pair's label is its annotators' votes aggregated by the dataset's method (majority,
    or Dawid-Skene: `srm agreement --aggregation`), a reviewer's decision overriding it.
    Swapped pairs come out swapped; tied and discarded pairs are left out, and so are pairs
    whose votes tie until a reviewer settles them; pairs nobody labelled keep their imported
    verdict. The counts are printed. --format prm exports sentence tags instead: one record
    per response whose every sentence is tagged good or bad. --format votes writes every
    annotator's vote (one record per pair and annotator) with the aggregate label.
    """
    from srm.data import write_dataset_dir, write_json_lines, write_jsonl
    from srm.files import FileError
    from srm.store import StoreError, effective_pairs, prm_records
    from srm.store.export import vote_records

    if fmt == "hf" and out.exists():
        raise click.ClickException(f"{out} already exists; give a new directory with --out")
    check_output(out, "--out", directory=fmt == "hf")
    _, sessions = open_store(db_url, read_only=True)
    with clean_errors(StoreError), sessions() as session:
        if fmt == "prm":
            prm = prm_records(session, dataset)
        elif fmt == "votes":
            votes = vote_records(session, dataset)
        else:
            result = effective_pairs(session, dataset)

    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "prm":
        with clean_errors(FileError):  # a full disk: nothing half-written, and what to free
            write_json_lines(prm.records, out)
        click.echo(
            f"Exported {len(prm.records)} of {prm.tagged_responses} tagged responses from "
            f"dataset {dataset!r} as PRM records to {out}; left out {prm.incomplete} with "
            "sentences not tagged good or bad."
        )
        return
    if fmt == "votes":
        with clean_errors(FileError):
            write_json_lines(votes, out)
        pairs = len({v["id"] for v in votes})
        click.echo(f"Exported {len(votes)} votes on {pairs} pairs of dataset {dataset!r} to {out}.")
        return
    with clean_errors(FileError):
        if fmt == "jsonl":
            write_jsonl(result.pairs, out)
        else:
            write_dataset_dir(result.pairs, out)
    click.echo(f"Exported {result.counts.summary()} from dataset {dataset!r} to {out}.")


@click.command("segment")
@click.argument("text", required=False)
@click.option(
    "--file",
    "file",
    type=click.Path(path_type=Path, allow_dash=True),
    default=None,
    help="Read the text from a file ('-' for stdin) instead of the argument.",
)
@click.option("--json", "as_json", is_flag=True, help="Print spans as JSON (start, end, text).")
@click.option(
    "--max-chars",
    type=click.IntRange(min=1),
    default=None,
    help="Split segments longer than this at whitespace (default: the library default).",
)
def segment_cmd(text: str | None, file: Path | None, as_json: bool, max_chars: int | None) -> None:
    """Split TEXT (a response) into the sentences the reward model scores."""
    from srm.files import FileError, decode_utf8, read_input_bytes, read_limited
    from srm.segment import DEFAULT_MAX_CHARS, segment

    if (text is None) == (file is None):
        raise click.UsageError("Give the text as an argument or with --file, not both.")
    if file is not None:
        # Read as every input is (srm.files): a regular file (or stdin) up to the size limit,
        # so a FIFO or /dev/zero is refused instead of blocking or filling the memory.
        try:
            if str(file) == "-":
                data = read_limited(click.get_binary_stream("stdin"), "stdin")
            else:
                data = read_input_bytes(file, expected="a text file")
            text = decode_utf8(data, "stdin" if str(file) == "-" else str(file))
        except FileError as err:
            raise click.BadParameter(str(err), param_hint="--file") from None
    spans = segment(text, max_chars=max_chars or DEFAULT_MAX_CHARS)
    if as_json:
        click.echo(
            json.dumps(
                [{"start": s.start, "end": s.end, "text": s.text} for s in spans],
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    width = len(str(len(spans)))
    for i, span in enumerate(spans, start=1):
        click.echo(f"{i:>{width}}  {span.text.strip()}")
