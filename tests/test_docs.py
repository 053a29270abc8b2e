"""The README documents every command and option the CLI has, each option where its command is
documented: in the command's own usage lines of the CLI reference (a command's entry starts
with ``srm NAME`` and runs on over the indented lines below it), so ``--db`` documented for one
command does not count for another."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from srm.cli import main

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
#: Commands whose options are too many for their usage lines, and the README section that
#: tables them ("[model and training options, below]").
OPTION_TABLES = {"train": "## Training"}


def cli_reference() -> str:
    """The ``text`` block under the README's "## The CLI" heading."""
    section = README.split("\n## The CLI\n", 1)[1]
    return section.split("```text\n", 1)[1].split("\n```", 1)[0]


def usage_lines() -> dict[str, list[str]]:
    """Each command's lines of the CLI reference: every entry whose first line starts with
    ``srm NAME``, with the indented lines that continue it."""
    entries: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in cli_reference().splitlines():
        if line.startswith("srm "):
            name = re.match(r"srm (\S+)", line).group(1)
            current = entries.setdefault(name, []) if not name.startswith("-") else None
        if current is not None:
            current.append(line)
    return entries


def section(heading: str) -> str:
    """The README's text from ``heading`` to the next heading of its level."""
    level = heading.split(" ", 1)[0]
    text = README.split(f"\n{heading}\n", 1)[1]
    return re.split(rf"\n{level} ", text, maxsplit=1)[0]


def commands() -> list[tuple[str, click.Command]]:
    return sorted(main.commands.items())


def flags(command: click.Command) -> list[str]:
    """The long flags of ``command`` and, for a group, of its subcommands."""
    found = [
        flag
        for param in command.params
        if isinstance(param, click.Option)
        for flag in [*param.opts, *param.secondary_opts]
        if flag.startswith("--")
    ]
    for sub in getattr(command, "commands", {}).values():
        found += flags(sub)
    return found


def mentions(text: str, flag: str) -> bool:
    """Whether ``text`` names ``flag`` itself (``--max-length``, not ``--max-length-x``)."""
    return re.search(re.escape(flag) + r"(?![\w-])", text) is not None


@pytest.mark.parametrize("name,command", commands(), ids=[n for n, _ in commands()])
def test_every_command_and_option_is_in_its_readme_entry(name: str, command: click.Command) -> None:
    entries = usage_lines()
    assert name in entries, f"`srm {name}` has no entry in the README's CLI reference"
    own = "\n".join(entries[name])
    if name in OPTION_TABLES:
        own += "\n" + section(OPTION_TABLES[name])
    missing = [flag for flag in flags(command) if not mentions(own, flag)]
    assert missing == [], f"`srm {name}`: {missing} not in its README entry:\n{own}"


@pytest.mark.parametrize("name,command", commands(), ids=[n for n, _ in commands()])
def test_every_subcommand_is_in_its_groups_entry(name: str, command: click.Command) -> None:
    own = "\n".join(usage_lines().get(name, []))
    missing = [sub for sub in getattr(command, "commands", {}) if not re.search(rf"\b{sub}\b", own)]
    assert missing == [], f"`srm {name}`: subcommands {missing} not in its README entry"


def test_the_entries_name_only_commands_that_exist() -> None:
    assert sorted(set(usage_lines()) - set(main.commands)) == []


def test_an_option_of_another_command_does_not_count() -> None:
    lines = usage_lines()
    assert mentions("\n".join(lines["app"]), "--demo")
    assert not mentions("\n".join(lines["datasets"]), "--demo")
    assert not mentions("--max-length-x", "--max-length")


def test_make_targets_in_the_readme_exist() -> None:
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text(encoding="utf-8")
    for target in ("app", "test", "lint"):
        assert f"make {target}" in README
        assert f"\n{target}:" in makefile
