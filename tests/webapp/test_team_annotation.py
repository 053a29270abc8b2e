"""Team annotation in the app (issue 24): signing in as an account, the queue of assigned
pairs, blind labelling, and the team panel for reviewers and admins."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest

from srm.segment import segment
from srm.store import (
    LabelEvent,
    LoginAttempt,
    PairFilter,
    add_user,
    assign,
    get_aggregation,
    get_pair,
    is_blind,
    label_state,
    list_pairs,
    make_sessionmaker,
    open_store,
    record_label,
    set_password,
    tag_sentence,
)
from tests.webapp.conftest import APP, rerun
from tests.webapp.test_annotate_page import current_id, unescaped
from webapp import annotation

PASSWORD = "a long enough password"
ACCOUNTS = {"ana": "annotator", "bo": "annotator", "cy": "annotator", "rev": "reviewer"}
ACCOUNTS |= {"boss": "admin"}


# --- the pure rules ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("blind", "voted", "reviewing", "shown"),
    [
        (False, False, False, True),
        (True, False, False, False),
        (True, True, False, True),
        (True, False, True, True),
    ],
)
def test_what_a_blind_pair_shows(blind: bool, voted: bool, reviewing: bool, shown: bool) -> None:
    assert annotation.visible(blind, voted, reviewing) == annotation.Visible(shown, shown)


def test_the_views_of_an_annotator_with_assigned_pairs() -> None:
    assert annotation.queue_views(assigned=True, reviewer=False) == ["my queue", "my voted pairs"]
    assert annotation.queue_views(assigned=True, reviewer=True)[:3] == [
        "my queue",
        "my voted pairs",
        "unlabelled",
    ]
    assert annotation.queue_views(assigned=False, reviewer=False)[0] == "unlabelled"
    assert annotation.view_filter("my queue", "ana") == {"assigned_to": "ana", "unvoted_by": "ana"}
    assert annotation.view_filter("my voted pairs", "ana") == {
        "assigned_to": "ana",
        "voted_by": "ana",
    }
    assert annotation.view_filter("any", "ana") == {"label": None}


# --- the app ----------------------------------------------------------------------------------
def session(db_url: str):
    return make_sessionmaker(open_store(db_url))


@pytest.fixture
def team(filled_store: str) -> str:
    """The sample with five accounts; ana, bo and cy share its pairs two by two."""
    with session(filled_store).begin() as s:
        for name, role in ACCOUNTS.items():
            add_user(s, name, role, PASSWORD)
        assign(s, "sample", ["ana", "bo", "cy"], overlap=2, seed=3)
    return filled_store


def assigned(db_url: str, name: str) -> set[str]:
    with session(db_url)() as s:
        found = list_pairs(s, "sample", where=PairFilter(assigned_to=name), limit=1000)
        return {p.external_id for p in found}


def sign_in(name: str, password: str = PASSWORD, page: str | None = "annotate", query=None):
    at = AppTest.from_file(APP, default_timeout=90)
    at.query_params.update(query or {})
    rerun(at)
    at.text_input(key="auth.name").input(name)
    at.text_input(key="auth.password").input(password)
    at.button[0].click()  # the form's "Sign in"
    rerun(at)
    if page is not None:
        at.switch_page(f"app_pages/{page}.py")
        rerun(at)
    return at


def table(at, column: str):
    """The dataframe with ``column``."""
    return next(d.value for d in at.dataframe if column in d.value)


def label_events(db_url: str) -> list[tuple[str, str, str]]:
    with session(db_url)() as s:
        rows = s.scalars(select(LabelEvent).order_by(LabelEvent.id))
        return [(e.pair.external_id, e.action, e.annotator.name) for e in rows]


def test_a_wrong_password_is_refused_and_counted(team: str) -> None:
    at = sign_in("ana", "not the password", page=None)
    assert unescaped(at.error[0].value) == "Wrong name or password, or the account is disabled."
    assert [t.value for t in at.title] == ["SRM Studio"]
    with session(team)() as s:
        assert [(a.name, a.ok) for a in s.scalars(select(LoginAttempt))] == [("ana", False)]


def test_the_annotator_is_the_signed_in_account(team: str) -> None:
    # The URL names someone else; nothing on the page lets anyone type a name.
    at = sign_in("ana", query={"annotator": "mallory"})
    assert any(c.value == ":material/person: Signed in as ana (annotator)" for c in at.caption)
    assert not [w for w in at.text_input if w.key == "annotate.annotator"]
    shown = current_id(at)
    at.button(key="annotate.keep").click()
    rerun(at)
    assert label_events(team) == [(shown, "keep", "ana")]
    with session(team)() as s:
        assert [(a.name, a.ok) for a in s.scalars(select(LoginAttempt))] == [("ana", True)]


def test_a_sign_in_ends_with_a_new_password_or_after_its_hours(team: str, monkeypatch) -> None:
    at = sign_in("ana")
    with session(team).begin() as s:
        set_password(s, "ana", "another long password")
    rerun(at)
    assert "no longer holds" in at.warning[0].value
    assert at.text_input(key="auth.name") is not None  # back at the sign-in form

    monkeypatch.setenv("SRM_SESSION_HOURS", "2")
    at = sign_in("bo")
    at.session_state["auth.signed_in_at"] = datetime.now(timezone.utc) - timedelta(hours=3)
    rerun(at)
    assert "Your session has ended" in at.warning[0].value
    assert "auth.account" not in at.session_state


def test_sign_out_forgets_the_account(team: str) -> None:
    at = sign_in("ana", page=None)
    at.sidebar.button(key="auth.sign_out").click()
    rerun(at)
    assert "auth.account" not in at.session_state
    assert at.text_input(key="auth.password") is not None


def test_my_queue_is_my_assigned_pairs_i_have_not_voted_on(team: str) -> None:
    at = sign_in("ana")
    assert at.selectbox(key="annotate.status").options == ["my queue", "my voted pairs"]
    queue = next(d.value for d in at.dataframe if "source" in d.value)
    mine = assigned(team, "ana")
    assert set(queue["id"]) == mine and len(mine) == 34  # 50 pairs x 2 / 3 annotators
    first = current_id(at)
    at.button(key="annotate.swap").click()
    rerun(at)
    queue = next(d.value for d in at.dataframe if "source" in d.value)
    assert set(queue["id"]) == mine - {first}
    at.selectbox(key="annotate.status").select("my voted pairs")
    rerun(at)
    queue = next(d.value for d in at.dataframe if "source" in d.value)
    assert list(queue["id"]) == [first]


def test_a_blind_pair_shows_nothing_of_the_other_vote_until_mine(team: str) -> None:
    shared = sorted(assigned(team, "ana") & assigned(team, "bo"))[0]
    with session(team).begin() as s:
        pair = get_pair(s, "sample", shared)
        record_label(s, pair.id, "bo", "swap", expected_event_id=label_state(s, pair.id).event_id)
        first = segment(pair.chosen)[0]
        tag_sentence(s, pair.id, "bo", "chosen", (first.start, first.end), "bad")
    at = sign_in("ana")
    at.text_input(key="annotate.search").input(shared)
    rerun(at)
    assert current_id(at) == shared

    def seen() -> str:
        """Every text of the main area (the sidebar's key list names the labels)."""
        texts = [c.value for c in at.main.caption] + [m.value for m in at.main.markdown]
        texts += [str(d.value.to_dict()) for d in at.main.dataframe]
        texts += [bar.proto.text for bar in at.main.get("progress")]
        return unescaped(" ".join(texts))

    before = seen()
    assert "You have voted on 0 of your 34 pairs" in before
    assert "label: " not in before and "the label says" not in before
    assert "bo" not in before.split() and "swap" not in before.replace("Swap", "")
    assert not [h for h in at.get("html") if "tagged: bo" in h.value]  # bo's tag neither
    at.button(key="annotate.keep").click()
    rerun(at)
    at.button(key="annotate.prev").click()  # back to the pair just voted on
    rerun(at)
    after = seen()
    assert "label: unlabelled" in after  # keep and swap: a tie, undecided
    assert "annotators disagree: ana keep · bo swap" in after
    trail = next(d.value for d in at.dataframe if "action" in d.value)
    assert list(trail["annotator"]) == ["bo", "bo", "ana"]  # bo's vote and tag, ana's vote
    assert [h for h in at.get("html") if "tagged: bo bad" in h.value]


def test_the_team_panel_for_an_admin(team: str) -> None:
    # Four pairs both ana and bo hold: they agree on three (keep, keep, swap), not on one.
    shared = sorted(assigned(team, "ana") & assigned(team, "bo"))[:4]
    votes = [("keep", "keep"), ("keep", "keep"), ("swap", "swap"), ("keep", "swap")]
    with session(team).begin() as s:
        for pair_id, (a, b) in zip(shared, votes, strict=True):
            pair = get_pair(s, "sample", pair_id)
            e = record_label(s, pair.id, "ana", a, expected_event_id=None)
            record_label(s, pair.id, "bo", b, expected_event_id=e.id)
    at = sign_in("boss")
    kappa = table(at, "Cohen's kappa")
    # p_o = 3/4; ana keep 3 swap 1, bo keep 2 swap 2: p_e = (3*2 + 1*2)/16 = 1/2; kappa = 1/2
    assert list(kappa["annotators"]) == ["ana · bo"]
    assert [float(k) for k in kappa["Cohen's kappa"]] == [0.5]
    progress = table(at, "remaining")
    assert list(progress["annotator"]) == ["ana", "bo", "cy"]
    held = {name: len(assigned(team, name)) for name in ("ana", "bo", "cy")}
    assert list(progress["assigned"]) == [34, 33, 33] == list(held.values())
    assert list(progress["done"]) == [4, 4, 0]
    assert list(progress["remaining"]) == [30, 29, 33]
    assert any("1 undecided" in m.value for m in at.markdown)
    # Reassign: cy's pairs (none voted on) all go to rev.
    at.selectbox(key="annotate.reassign_from").select("cy")
    at.selectbox(key="annotate.reassign_to").select("rev")
    [go] = [b for b in at.button if b.label == "Reassign"]
    go.click()
    rerun(at)
    progress = table(at, "remaining")
    assert dict(zip(progress["annotator"], progress["assigned"], strict=True)) == {
        "ana": held["ana"],
        "bo": held["bo"],
        "rev": held["cy"],
    }


def test_a_reviewer_accepts_or_rejects_a_label(team: str) -> None:
    with session(team).begin() as s:
        pair = get_pair(s, "sample", sorted(assigned(team, "ana"))[0])
        record_label(s, pair.id, "ana", "keep", expected_event_id=None)
        pair_id = pair.external_id
    at = sign_in("rev")
    at.selectbox(key="annotate.status").select("labelled")
    rerun(at)
    assert current_id(at) == pair_id
    at.button(key="annotate.reject.swap").click()
    rerun(at)
    assert label_events(team)[-1] == (pair_id, "reject", "rev")
    with session(team)() as s:
        assert get_pair(s, "sample", pair_id).label == "swap"
    annotator = sign_in("ana")
    assert not [b for b in annotator.button if b.key == "annotate.accept"]  # annotators don't


def test_uploads_wait_for_an_account_to_sign_in(team: str) -> None:
    from webapp import auth

    session_id = "test session id"  # AppTest's, for every session
    at = rerun(AppTest.from_file(APP, default_timeout=90))
    assert not at.get("file_uploader")
    assert not auth.may_upload(session_id)  # no shared password, but accounts
    at.text_input(key="auth.name").input("ana")
    at.text_input(key="auth.password").input(PASSWORD)
    at.button[0].click()
    rerun(at)
    assert auth.may_upload(session_id)
    at.sidebar.button(key="auth.sign_out").click()
    rerun(at)
    assert not auth.may_upload(session_id)


def test_an_exposed_server_with_accounts_asks_for_a_sign_in(team: str) -> None:
    st_config.set_option("server.address", "0.0.0.0")  # the fixture puts loopback back
    at = rerun(AppTest.from_file(APP, default_timeout=90))
    assert not at.error  # not refused: everyone signs in by account
    assert at.text_input(key="auth.name") is not None


def test_an_admin_chooses_how_votes_aggregate(team: str) -> None:
    at = sign_in("boss")
    at.selectbox(key="annotate.aggregation.sample").select("dawid-skene")
    rerun(at)
    with session(team)() as s:
        assert get_aggregation(s, "sample") == "dawid-skene"
        assert is_blind(s, "sample")  # overlap 2: on by default
    at.toggle(key="annotate.blind.sample").set_value(False)
    rerun(at)
    with session(team)() as s:
        assert not is_blind(s, "sample")
    reviewer = sign_in("rev")
    assert not [w for w in reviewer.selectbox if w.key == "annotate.aggregation.sample"]
    assert not [b for b in reviewer.button if b.label == "Assign"]
    assert any("Krippendorff" in m.value for m in reviewer.markdown)  # the dashboard, though


def test_a_blind_annotator_sees_no_list_of_disagreements(team: str) -> None:
    shared = sorted(assigned(team, "ana") & assigned(team, "bo"))[0]
    with session(team).begin() as s:
        pair = get_pair(s, "sample", shared)
        e = record_label(s, pair.id, "ana", "keep", expected_event_id=None)
        record_label(s, pair.id, "bo", "swap", expected_event_id=e.id)
    assert not [e for e in sign_in("cy").expander if e.label.startswith("Disagreements")]
    reviewer = sign_in("rev")
    assert "Disagreements to settle (1)" in [e.label for e in reviewer.expander]
