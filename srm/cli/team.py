"""Annotation as a team: ``srm users`` (accounts), ``srm assign`` (who labels which pairs) and
``srm agreement`` (progress, agreement and how a dataset's votes become its label)."""

from __future__ import annotations

import json
import sys

import click

from srm.cli.options import clean_errors, db_option, open_store

ROLE_CHOICE = click.Choice(("annotator", "reviewer", "admin"))


def _password(name: str) -> str:
    """Asked twice on a terminal; else the first line of standard input (for scripts)."""
    if sys.stdin.isatty():
        return click.prompt(
            f"Password for {name}", hide_input=True, confirmation_prompt=True, err=True
        )
    line = sys.stdin.readline()
    password = line.rstrip("\r\n")
    if not password:
        raise click.ClickException(
            "no password: type it at the prompt, or give it on the first line of standard input"
        )
    return password


@click.group("users")
def users_cmd() -> None:
    """Accounts for the app: add, list, disable, enable, change a password or a role.

    Once an account exists, the app asks everyone to sign in with a name and password, the
    annotator of every label is the signed-in account, and only accounts may write labels
    (see the README's Annotate section). Roles: annotator (labels and tags), reviewer (also
    settles disagreements, accepts or rejects labels, sees agreement), admin (also assigns
    pairs, runs jobs, edits the guidelines).
    """


@users_cmd.command("add")
@click.argument("name")
@click.option("--role", type=ROLE_CHOICE, default="annotator", show_default=True)
@db_option
def users_add(name: str, role: str, db_url: str | None) -> None:
    """Create an account NAME. The password is asked for (twice) on a terminal, else read
    from the first line of standard input. A name that already has votes keeps them."""
    from srm.store import StoreError, add_user

    password = _password(name)
    _, sessions = open_store(db_url)
    with clean_errors(StoreError), sessions.begin() as session:
        account = add_user(session, name, role, password)
        shown = account.name
    click.echo(f"Added {shown} ({role}).")


@users_cmd.command("list")
@db_option
def users_list(db_url: str | None) -> None:
    """Every account with its role and state."""
    from srm.store import list_users

    _, sessions = open_store(db_url, read_only=True)
    with sessions() as session:
        users = [(u.name, u.role, u.disabled, u.created_at) for u in list_users(session)]
    if not users:
        click.echo("No accounts: the app signs nobody in (see `srm users add`).")
        return
    width = max(len(name) for name, *_ in users)
    for name, role, disabled, created in users:
        state = "disabled" if disabled else "active"
        click.echo(f"{name:<{width}}  {role:<9}  {state:<8}  since {created:%Y-%m-%d}")


@users_cmd.command("disable")
@click.argument("name")
@click.option("--enable", is_flag=True, help="Enable the account again instead.")
@db_option
def users_disable(name: str, enable: bool, db_url: str | None) -> None:
    """Disable account NAME: it can no longer sign in or write, and its app sessions end;
    its votes stay in the log and keep counting."""
    from srm.store import StoreError, set_disabled

    _, sessions = open_store(db_url)
    with clean_errors(StoreError), sessions.begin() as session:
        set_disabled(session, name, not enable)
    click.echo(f"{'Enabled' if enable else 'Disabled'} {name}.")


@users_cmd.command("passwd")
@click.argument("name")
@db_option
def users_passwd(name: str, db_url: str | None) -> None:
    """Set a new password for NAME (asked twice, or the first line of standard input); the
    account's app sessions end."""
    from srm.store import StoreError, set_password
    from srm.store.team import get_account

    _, sessions = open_store(db_url)
    with clean_errors(StoreError), sessions() as session:
        get_account(session, name)  # an unknown name fails before the password is asked
    password = _password(name)
    with clean_errors(StoreError), sessions.begin() as session:
        set_password(session, name, password)
    click.echo(f"Password changed for {name}.")


@users_cmd.command("role")
@click.argument("name")
@click.argument("role", type=ROLE_CHOICE)
@db_option
def users_role(name: str, role: str, db_url: str | None) -> None:
    """Give account NAME another role."""
    from srm.store import StoreError, set_role

    _, sessions = open_store(db_url)
    with clean_errors(StoreError), sessions.begin() as session:
        set_role(session, name, role)
    click.echo(f"{name} is now {role}.")


def _names(value: str | None) -> list[str]:
    return [n.strip() for n in (value or "").split(",") if n.strip()]


@click.command("assign")
@click.option("--dataset", required=True, help="The dataset whose pairs are assigned.")
@click.option("--annotators", help="Comma-separated names (accounts, when the store has any).")
@click.option(
    "--overlap",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Annotators per pair; above 1, labelling is blind by default.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Shuffles pairs and ties.")
@click.option("--reassign", "from_name", help="Move this annotator's pairs not yet voted on...")
@click.option("--to", "to_name", help="...to this annotator (with --reassign).")
@click.option("--clear", is_flag=True, help="Remove every assignment of the dataset (votes stay).")
@db_option
def assign_cmd(
    dataset: str,
    annotators: str | None,
    overlap: int,
    seed: int,
    from_name: str | None,
    to_name: str | None,
    clear: bool,
    db_url: str | None,
) -> None:
    """Give each pair of a dataset to --overlap of the --annotators, balanced, or move or
    clear assignments; then print each annotator's progress.

    Each annotator's Annotate queue is then their assigned pairs they have not voted on,
    ordered as before (the audit's or the model's disagreement first). Running it again tops
    pairs up to --overlap without moving any. Without --annotators, --reassign or --clear it
    only prints the progress.
    """
    from srm.store import StoreError, assign, progress, reassign, unassign

    if bool(from_name) != bool(to_name):
        raise click.UsageError("--reassign FROM needs --to TO (and the other way round)")
    _, sessions = open_store(db_url)
    with clean_errors(StoreError), sessions.begin() as session:
        if clear:
            click.echo(f"Removed {unassign(session, dataset)} assignments of {dataset!r}.")
        if from_name:
            moved = reassign(session, dataset, from_name, to_name)
            click.echo(
                f"Moved {moved.moved} pairs from {from_name} to {to_name}; {moved.kept} stay "
                f"with {from_name} (voted there, or {to_name} already had them)."
            )
        names = _names(annotators)
        if names:
            result = assign(session, dataset, names, overlap, seed=seed)
            short = f"; {result.short} pairs still short of it" if result.short else ""
            click.echo(
                f"Assigned {result.added} more (pair, annotator) slots of {dataset!r} at overlap "
                f"{overlap}{short}."
            )
    with clean_errors(StoreError), sessions() as session:
        report = progress(session, dataset)
    _print_progress(report)


def _print_progress(report) -> None:  # noqa: ANN001
    overlap = report.overlap or 1
    click.echo(
        f"{report.dataset}: {report.pairs} pairs, {report.complete} with {overlap} or more "
        f"vote{'s' if overlap > 1 else ''}"
        + (f" (overlap {report.overlap})" if report.overlap else "")
    )
    if not report.annotators:
        click.echo("  no assignments (srm assign --annotators a,b --overlap 2)")
        return
    width = max(len(p.name) for p in report.annotators)
    for p in report.annotators:
        click.echo(f"  {p.name:<{width}}  {p.done:>6} of {p.assigned:<6} done, {p.remaining} left")


@click.command("agreement")
@click.option("--dataset", required=True, help="The dataset to report on.")
@click.option(
    "--aggregation",
    type=click.Choice(("majority", "dawid-skene")),
    help="Set how the dataset's votes become its label (training, export, eval use it).",
)
@click.option(
    "--blind/--not-blind",
    default=None,
    help="Set whether annotators see others' votes on a pair before their own "
    "(default: blind when the overlap is above 1).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@db_option
def agreement_cmd(
    dataset: str, aggregation: str | None, blind: bool | None, as_json: bool, db_url: str | None
) -> None:
    """Agreement where it was measured: Cohen's kappa per two annotators on the pairs both
    voted on, Krippendorff's alpha over the pairs with two or more votes, each annotator's
    agreement with the aggregate label, and the pairs whose votes tie (waiting for a
    reviewer). Optionally set the dataset's aggregation method and blind labelling."""
    from srm.store import StoreError, is_blind, set_aggregation, set_blind, team_agreement

    _, sessions = open_store(db_url, read_only=aggregation is None and blind is None)
    if aggregation is not None or blind is not None:
        with clean_errors(StoreError), sessions.begin() as session:
            if aggregation is not None:
                set_aggregation(session, dataset, aggregation)
            if blind is not None:
                set_blind(session, dataset, blind)
    with clean_errors(StoreError), sessions() as session:
        report = team_agreement(session, dataset)
        blind_now = is_blind(session, dataset)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "dataset": dataset,
                    "aggregation": report.method,
                    "blind": blind_now,
                    "overlapped_pairs": report.overlapped,
                    "undecided_pairs": report.undecided,
                    "krippendorff_alpha": report.alpha,
                    "pairwise": [
                        {"a": p.a, "b": p.b, "n": p.n, "agreed": p.agreed, "kappa": p.kappa}
                        for p in report.pairwise
                    ],
                    "with_aggregate": [
                        {"annotator": w.name, "n": w.n, "agreed": w.agreed}
                        for w in report.with_aggregate
                    ],
                },
                indent=2,
            )
        )
        return
    alpha = (
        "n/a (needs two overlapped pairs and two labels)"
        if report.alpha is None
        else f"{report.alpha:.3f}"
    )
    click.echo(
        f"{dataset}: aggregation {report.method}, labelling {'blind' if blind_now else 'open'}; "
        f"{report.overlapped} pairs with two or more votes; {report.undecided} undecided (votes "
        "tie, waiting for a reviewer)"
    )
    click.echo(f"Krippendorff's alpha: {alpha}")
    if report.pairwise:
        click.echo("Cohen's kappa on shared pairs:")
        for p in report.pairwise:
            kappa = "n/a (one label throughout)" if p.kappa is None else f"{p.kappa:.3f}"
            click.echo(f"  {p.a} / {p.b}: {p.n} pairs, {p.percent:.1f}% agree, kappa {kappa}")
    if report.with_aggregate:
        click.echo("Agreement with the aggregate label:")
        for w in report.with_aggregate:
            share = "—" if w.percent is None else f"{w.percent:.1f}%"
            click.echo(f"  {w.name}: {w.agreed} of {w.n} ({share})")
