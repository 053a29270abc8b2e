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

    url, sessions = open_store(db_url)
    with sessions.begin() as session:
        if source is not None:
            set_setting(session, GUIDELINES, source.read_text(encoding="utf-8"))
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
