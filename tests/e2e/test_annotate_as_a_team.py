"""Annotating as a team in Chromium (issue 24): three accounts sign in, each works through
the pairs assigned to them, the second voter on a pair sees nothing of the first vote until
they have voted, and the team panel's agreement is what a hand computation gives.

The app runs as `make app` runs it (conftest `serve()`), on a store prepared here: four pairs
of the bundled sample as dataset ``team``, three accounts and an overlap of two.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from srm import store
from srm.data import load_pairs
from tests.e2e.conftest import REPO_ROOT, App, serve

pytestmark = pytest.mark.e2e
MODEL_LOAD = 120_000  # ms: the first page that scores loads torch and the model
PASSWORD = "a long enough password"
PAIRS = load_pairs(REPO_ROOT / "data" / "sample_50.jsonl")[:4]
ROLES = {"alice-x": "annotator", "bob-y": "annotator", "carol-z": "admin"}
# assign(overlap=2, seed=2) gives alice pairs 0, 1, 3, bob 0, 1, 2 and carol 2, 3 (checked
# below). Each annotator's vote on each of their pairs:
VOTES = {
    "alice-x": {0: "keep", 1: "swap", 3: "keep"},
    "bob-y": {0: "keep", 1: "swap", 2: "tie"},
    "carol-z": {2: "tie", 3: "swap"},
}
KEYS = {"keep": "k", "swap": "s", "tie": "t", "discard": "d"}


@pytest.fixture(scope="module")
def team_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    workdir = tmp_path_factory.mktemp("team-e2e")
    db = workdir / "app.db"
    with store.make_sessionmaker(store.open_store(f"sqlite:///{db}")).begin() as session:
        store.import_pairs(session, "team", PAIRS)
        for name, role in ROLES.items():
            store.add_user(session, name, role, PASSWORD)
        store.assign(session, "team", list(ROLES), overlap=2, seed=2)
    with serve(db, workdir / "make-app.log") as app:
        yield app


def assigned(app: App, name: str) -> set[str]:
    with store.make_sessionmaker(store.open_store(app.db_url))() as session:
        where = store.PairFilter(assigned_to=name)
        return {p.external_id for p in store.list_pairs(session, "team", where=where)}


def sign_in(browser: Browser, app: App, name: str) -> Page:
    """A new browser (its own session) that opens the Annotate page's address signed out,
    signs in as ``name`` there and lands on Annotate (a reload would sign out: the sign-in
    lives in the session)."""
    page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
    page.goto(f"{app.url}/annotate")
    page.get_by_role("textbox", name="Name", exact=True).fill(name)
    page.get_by_role("textbox", name="Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text(f"Signed in as {name} ({ROLES[name]})").first).to_be_visible()
    expect(page.get_by_role("heading", name="Annotate", exact=True)).to_be_visible()
    return page


def shown_pair(page: Page) -> str:
    """The pair in the action bar's heading, once its responses are drawn."""
    expect(page.locator(".srm-response .srm-sentence").first).to_be_visible(timeout=MODEL_LOAD)
    expect(page.locator("[data-stale='true']")).to_have_count(0)
    heading = page.locator(".st-key-annotate-bar h3")
    return heading.inner_text().removeprefix("Pair ").replace("\u2060", "").strip()


def bar_facts(page: Page) -> str:
    return page.locator(".st-key-annotate-bar [data-testid='stCaptionContainer']").inner_text()


def votes_of(app: App) -> list[tuple[str, str, str]]:
    """Every label event: (pair index, annotator, action)."""
    index = {p.id: i for i, p in enumerate(PAIRS)}
    with store.make_sessionmaker(store.open_store(app.db_url))() as session:
        found = []
        for pair in PAIRS:
            row = store.get_pair(session, "team", pair.id)
            for e in store.label_history(session, row.id):
                found.append((index[pair.id], e.annotator.name, e.action))
        return sorted(found)


def until(check, what: str, timeout: float = 60) -> None:
    """Wait until ``check()`` is true (the page reruns after each key)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.2)


def press_until(page: Page, key: str, done, pair_id: str, tries: int = 3) -> None:
    """Press ``key`` until ``done()``: a key pressed while the page reruns can be lost (a
    Streamlit race), so, while the same pair is still shown and nothing landed after 15 s,
    press again (a second press after the first landed is refused as stale and writes
    nothing)."""
    for _ in range(tries):
        page.keyboard.press(key)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if done():
                return
            time.sleep(0.2)
        if shown_pair(page) != pair_id:
            return


def work_through(page: Page, app: App, name: str) -> None:
    """Vote on every pair of ``name``'s queue as VOTES says, by key. On a pair someone voted
    on already, check that before the vote the page shows nothing of it (no name, no label,
    no label wording), and all of it after (back on the pair with ``p``)."""
    plan = VOTES[name]
    mine = assigned(app, name)
    assert mine == {PAIRS[i].id for i in plan}  # the seed's layout, as the plan assumes
    main = page.get_by_test_id("stMain")
    for left in range(len(plan), 0, -1):
        pair_id = shown_pair(page)
        assert pair_id in mine  # only assigned pairs are offered
        assert re.search(rf"\bof {left}\b", bar_facts(page)), bar_facts(page)
        i = next(i for i in plan if PAIRS[i].id == pair_id)
        earlier = voters(app, i) - {name}
        for other in earlier:
            expect(main.get_by_text(other)).to_have_count(0)
        if earlier:
            assert "label:" not in bar_facts(page) and "disagree" not in bar_facts(page)
            expect(main.get_by_text("the label says", exact=False)).to_have_count(0)
            expect(main.get_by_text("No label events yet")).to_be_visible()
        press_until(page, KEYS[plan[i]], lambda i=i: name in voters(app, i), pair_id)
        until(lambda i=i: name in voters(app, i), f"{name}'s {plan[i]} on pair {i}")
        # A key pressed while a rerun draws can be lost: wait for the page to move on.
        if left > 1:
            until(lambda p=pair_id: shown_pair(page) != p, "the next pair")
        else:
            expect(page.get_by_text("Nothing left in this queue.")).to_be_visible()
        if earlier:
            page.keyboard.press("p")  # back to the pair just voted on: now everything shows
            until(lambda p=pair_id: shown_pair(page) == p, "the pair again")
            for other in earlier:
                # the trail's cells are an accessible table behind the grid's canvas
                expect(main.get_by_text(other)).not_to_have_count(0)
            assert "label: " in bar_facts(page)
            if left > 1:
                page.keyboard.press("n")
                until(lambda p=pair_id: shown_pair(page) != p, "the next pair")


def voters(app: App, index: int) -> set[str]:
    return {name for i, name, _ in votes_of(app) if i == index}


def test_three_accounts_annotate_blind_and_agree_as_computed(
    browser: Browser, team_app: App
) -> None:
    alice = sign_in(browser, team_app, "alice-x")
    # No name box: a key pressed right after signing in votes as the account, whatever it is.
    assert alice.get_by_role("textbox", name="Annotator").count() == 0
    work_through(alice, team_app, "alice-x")
    assert {name for _, name, _ in votes_of(team_app)} == {"alice-x"}

    bob = sign_in(browser, team_app, "bob-y")
    work_through(bob, team_app, "bob-y")
    carol = sign_in(browser, team_app, "carol-z")
    work_through(carol, team_app, "carol-z")

    votes = votes_of(team_app)
    assert votes == sorted(
        (i, name, label) for name, plan in VOTES.items() for i, label in plan.items()
    )
    # Majority by hand: 0 keep-keep, 1 swap-swap, 2 tie-tie, 3 keep-swap (a tie: undecided).
    with store.make_sessionmaker(store.open_store(team_app.db_url))() as session:
        labels = store.aggregate_labels(session, "team").labels
        by_index = {
            i: labels[store.get_pair(session, "team", p.id).id] for i, p in enumerate(PAIRS)
        }
    assert by_index == {0: "keep", 1: "swap", 2: "tie", 3: None}

    # Cohen's kappa by hand, (p_o - p_e) / (1 - p_e) on the pairs two annotators share:
    # alice-bob on 0, 1: p_o = 1, p_e = 1/2 * 1/2 (keep) + 1/2 * 1/2 (swap) = 1/2 -> 1.00;
    # alice-carol on 3: keep vs swap, p_o = 0, p_e = 0 -> 0.00; bob-carol on 2: tie and tie,
    # p_e = 1 (kappa is 0/0) -> "—". Krippendorff's alpha (nominal) over the four pairs:
    # 1 - D_o / D_e = 1 - (2/8) / ((64 - 9 - 9 - 4) / 56) = 1 - 0.25 / 0.75 = 0.67.
    carol.get_by_text("Team: progress, assignment, agreement").click()
    panel = carol.get_by_test_id("stExpander").filter(has_text="Krippendorff")
    expect(panel).to_have_count(1)  # while the page reruns, the old panel lingers a moment
    expect(panel).to_contain_text("Krippendorff's alpha 0.67")
    expect(panel).to_contain_text("1 undecided")
    rows = panel.get_by_test_id("stDataFrame").locator("tr")
    for pair, kappa in (("alice-x · bob-y", "1.00"), ("alice-x · carol-z", "0.00")):
        expect(rows.filter(has_text=pair)).to_contain_text(kappa)
    expect(rows.filter(has_text="bob-y · carol-z")).to_contain_text("—")
    for page in (alice, bob, carol):
        page.context.close()
