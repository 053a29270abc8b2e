"""Every page is reachable from the router and renders on an empty and a filled store."""

from __future__ import annotations

import pytest

PAGES = {
    "data": "Preference data",
    "inspect": "Inspect a pair",
    "annotate": "Annotate",
    "train": "Train",
    "models": "Models",
}


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_a_filled_store(filled_store: str, run_page, page: str) -> None:
    at = run_page(page)
    assert at.title[0].value == PAGES[page]
    assert not at.error


@pytest.mark.parametrize("page", ["inspect", "annotate", "train"])
def test_pages_explain_an_empty_store(app_store: str, run_page, page: str) -> None:
    at = run_page(page)
    assert "The store is empty" in at.info[0].value


def test_the_sidebar_names_the_store_outside_demo_mode(filled_store, run_page) -> None:
    at = run_page()
    captions = [c.value for c in at.sidebar.caption]
    assert any(c.startswith("Store: `sqlite:///") for c in captions)
    assert not any("Demo mode" in c for c in captions)
