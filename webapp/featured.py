"""Which pairs the Showcase (demo mode) features: the list an admin curates on the Inspect page
and the content filter on its automatic picks, both store settings. Which pairs the model picks
by itself is :func:`scoring.demo_picks`; the pages reach these through ``scoring``.
"""

from __future__ import annotations

from srm import store
from webapp import auth
from webapp.rows import PairRow
from webapp.store_access import read_session, write

DEMO_PAIRS = "demo_pairs"
"""Store setting: the curated pairs, a list of ``[dataset, id]``."""
DEMO_FILTER = "demo_content_filter"
"""Store setting: the demo's automatic examples leave out harmful-content pairs (default on)."""


def featured_pairs(url: str) -> list[tuple[str, str]]:
    """The curated pairs, ``(dataset, id)`` in the order they were chosen."""
    with read_session(url) as session:
        return [(d, i) for d, i in store.get_setting(session, DEMO_PAIRS) or []]


def demo_filter_on(url: str) -> bool:
    """Whether the demo's automatic examples leave out harmful-content pairs (on unless an
    admin turned it off)."""
    with read_session(url) as session:
        return bool(store.get_setting(session, DEMO_FILTER, True))


def set_demo_filter(url: str, on: bool) -> None:
    auth.require_admin("Changing the demo's content filter")
    with write(url) as session:
        store.set_setting(session, DEMO_FILTER, on)


def toggle_demo_pair(url: str, pair: PairRow) -> bool:
    """Add the pair to the demo's curated list, or take it out; return whether it is in."""
    auth.require_admin("Choosing the demo's pairs")
    key = [pair.dataset, pair.id]
    with write(url) as session:
        chosen = [list(x) for x in store.get_setting(session, DEMO_PAIRS) or []]
        now_in = key not in chosen
        chosen = [*chosen, key] if now_in else [x for x in chosen if x != key]
        store.set_setting(session, DEMO_PAIRS, chosen)
    return now_in


def is_demo_pair(url: str, pair: PairRow) -> bool:
    return (pair.dataset, pair.id) in featured_pairs(url)
