"""``srm users``, ``srm assign``, ``srm agreement`` and ``srm export --format votes``."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from srm.cli import main
from srm.data import load_pairs
from srm.store import (
    authenticate,
    get_pair,
    label_state,
    list_users,
    make_sessionmaker,
    open_store,
    record_label,
)

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample_50.jsonl"


def invoke(*args: str, stdin: str | None = None, code: int = 0):
    result = CliRunner().invoke(main, list(args), input=stdin, catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def store_with_sample(db_url: str) -> None:
    invoke("import", str(SAMPLE), "--db", db_url, "--dataset", "s")


def test_accounts_are_added_listed_disabled_and_changed(db_url: str) -> None:
    assert "No accounts" in invoke("users", "list", "--db", db_url).output
    result = invoke("users", "add", "ana", "--db", db_url, stdin="a long password\n")
    assert result.output.strip() == "Added ana (annotator)."
    invoke("users", "add", "rev", "--role", "reviewer", "--db", db_url, stdin="review-pass\n")
    refused = invoke("users", "add", "ana", "--db", db_url, stdin="another one\n", code=1)
    assert "'ana' already has an account (annotator)" in refused.output
    short = invoke("users", "add", "bo", "--db", db_url, stdin="short\n", code=1)
    assert "password: use at least 8 characters" in short.output
    empty = invoke("users", "add", "bo", "--db", db_url, stdin="", code=1)
    assert "no password" in empty.output

    lines = invoke("users", "list", "--db", db_url).output.splitlines()
    assert [line.split()[:3] for line in lines] == [
        ["ana", "annotator", "active"],
        ["rev", "reviewer", "active"],
    ]
    invoke("users", "passwd", "ana", "--db", db_url, stdin="a new password\n")
    invoke("users", "role", "ana", "admin", "--db", db_url)
    invoke("users", "disable", "rev", "--db", db_url)
    unknown = invoke("users", "passwd", "zed", "--db", db_url, stdin="whatever-pass\n", code=1)
    assert "no account called 'zed'" in unknown.output
    sessions = make_sessionmaker(open_store(db_url))
    with sessions.begin() as s:
        assert authenticate(s, "ana", "a new password").role == "admin"
        assert [(u.name, u.disabled) for u in list_users(s)] == [("ana", False), ("rev", True)]


def test_assign_reassign_and_progress(db_url: str) -> None:
    store_with_sample(db_url)
    result = invoke(
        "assign", "--dataset", "s", "--annotators", "ana,bo,cy", "--overlap", "2", "--db", db_url
    )
    assert "Assigned 100 more (pair, annotator) slots of 's' at overlap 2." in result.output
    assert "s: 50 pairs, 0 with 2 or more votes (overlap 2)" in result.output
    counts = {line.split()[0]: int(line.split()[3]) for line in result.output.splitlines()[2:]}
    assert sum(counts.values()) == 100 and max(counts.values()) - min(counts.values()) <= 1
    again = invoke(
        "assign", "--dataset", "s", "--annotators", "ana,bo,cy", "--overlap", "2", "--db", db_url
    )
    assert "Assigned 0 more" in again.output
    moved = invoke("assign", "--dataset", "s", "--reassign", "cy", "--to", "ana", "--db", db_url)
    assert "Moved " in moved.output
    half = invoke("assign", "--dataset", "s", "--reassign", "cy", "--db", db_url, code=2)
    assert "--reassign FROM needs --to TO" in half.output
    too_many = invoke(
        "assign", "--dataset", "s", "--annotators", "ana", "--overlap", "2", "--db", db_url, code=1
    )
    assert "overlap: got 2; give 1 to 1" in too_many.output
    cleared = invoke("assign", "--dataset", "s", "--clear", "--db", db_url)
    assert "Removed 100 assignments of 's'." in cleared.output


def test_agreement_and_the_votes_export(db_url: str, tmp_path: Path) -> None:
    store_with_sample(db_url)
    sessions = make_sessionmaker(open_store(db_url))
    votes = {"p0": ("keep", "keep"), "p1": ("swap", "keep")}
    with sessions.begin() as s:
        ids = {}
        for i, (external_id, (a, b)) in enumerate(votes.items()):
            pair = load_pairs(SAMPLE)[i]
            pair_id = get_pair(s, "s", pair.id).id
            ids[external_id] = (pair.id, pair_id)
            record_label(s, pair_id, "ana", a, expected_event_id=None)
            seen = label_state(s, pair_id).event_id
            record_label(s, pair_id, "bo", b, expected_event_id=seen)
    report = json.loads(
        invoke(
            "agreement", "--dataset", "s", "--json", "--aggregation", "dawid-skene", "--db", db_url
        ).output
    )
    assert report["aggregation"] == "dawid-skene" and report["blind"] is False
    assert report["overlapped_pairs"] == 2
    assert report["pairwise"] == [
        {"a": "ana", "b": "bo", "n": 2, "agreed": 1, "kappa": 0.0}
    ]  # p_o = 1/2; ana keep+swap, bo keep+keep: p_e = (1*2 + 1*0) / 4 = 1/2
    text = invoke(
        "agreement", "--dataset", "s", "--aggregation", "majority", "--blind", "--db", db_url
    ).output
    assert (
        "aggregation majority, labelling blind; 2 pairs with two or more votes; 1 undecided" in text
    )
    assert "ana / bo: 2 pairs, 50.0% agree, kappa 0.000" in text

    out = tmp_path / "votes.jsonl"
    result = invoke(
        "export", "--dataset", "s", "--format", "votes", "--out", str(out), "--db", db_url
    )
    assert f"Exported 4 votes on 2 pairs of dataset 's' to {out}." in result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    first, second = ids["p0"][0], ids["p1"][0]
    assert [(r["id"], r["annotator"], r["vote"], r["label"]) for r in rows] == [
        (first, "ana", "keep", "keep"),
        (first, "bo", "keep", "keep"),
        (second, "ana", "swap", "undecided"),
        (second, "bo", "keep", "undecided"),
    ]
    exported = invoke(
        "export", "--dataset", "s", "--out", str(tmp_path / "e.jsonl"), "--db", db_url
    ).output
    assert "left out 0 ties, 0 discards, 1 undecided" in exported
