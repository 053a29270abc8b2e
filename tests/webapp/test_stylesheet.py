"""One stylesheet: the router loads webapp/style.css on every page; no page carries CSS."""

from __future__ import annotations

from tests.webapp.conftest import WEBAPP
from webapp import widgets


def test_no_page_carries_css_of_its_own() -> None:
    for page in sorted((WEBAPP / "app_pages").glob("*.py")):
        source = page.read_text()
        assert "<style" not in source and "style=" not in source, page.name


def test_the_router_loads_the_stylesheet(filled_store: str, run_page) -> None:
    at = run_page("data")
    css = widgets.STYLESHEET.read_text()
    assert ".st-key-annotate-bar" in css
    assert [h for h in at.html if ".st-key-annotate-bar" in h.value]
