"""``srm guidelines``: show, replace, lock or unlock the annotation guidelines in the store."""

from __future__ import annotations

from pathlib import Path

import click

from srm.cli.options import db_option, open_store, path_option


@click.command("guidelines")
@db_option
@path_option("--set", "source", "Replace the guidelines with this markdown file.", exists=True)
@click.option(
    "--lock/--unlock",
    "locked",
    default=None,
    help="Lock the guidelines against edits from the app (any role), or open them again.",
)
def guidelines_cmd(db_url: str | None, source: Path | None, locked: bool | None) -> None:
    """Show whether the app may edit the annotation guidelines; replace them, lock or unlock.

    The app shows the store's guidelines (else docs/guidelines.md) on the Annotate page. An admin
    may edit them there unless they are locked here; a locked store keeps them as this command
    last set them, even in a local app where every session is admin.
    """
    from srm.store import GUIDELINES, GUIDELINES_LOCKED, get_setting, set_setting

    new_text = None if source is None else _read_guidelines(source)
    url, sessions = open_store(db_url)
    with sessions.begin() as session:
        if new_text is not None:
            set_setting(session, GUIDELINES, new_text)
        if locked is not None:
            set_setting(session, GUIDELINES_LOCKED, locked)
    with sessions() as session:
        text = get_setting(session, GUIDELINES)
        is_locked = bool(get_setting(session, GUIDELINES_LOCKED, False))
    if source is not None:
        click.echo(f"Guidelines replaced with {source} ({len(text):,} characters).")
    where = f"{len(text):,} characters in the store" if text else "docs/guidelines.md (none set)"
    state = "locked: the app cannot edit them" if is_locked else "open: an admin may edit them"
    click.echo(f"Guidelines at {url}: {where}; {state}.")


def _read_guidelines(source: Path) -> str:
    """The markdown of ``--set``, read as every input file is (:mod:`srm.files`: a regular file
    up to the size limit, never a FIFO or a device), as text the store can hold: UTF-8, with no
    NUL character (a binary file has them, and PostgreSQL cannot store one)."""
    from srm.data import text_problem
    from srm.files import FileError, read_input_text

    try:
        text = read_input_text(source, expected="a markdown file")
    except FileError as err:
        raise click.BadParameter(str(err), param_hint="--set") from None
    problem = text_problem(text)
    if problem is not None:
        raise click.BadParameter(
            f"{source}: {problem}; guidelines are markdown text", param_hint="--set"
        )
    return text
