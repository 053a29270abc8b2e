"""Every page of the router renders, in the mode that lists it, on a filled store; the pages
are read from ``webapp/streamlit_app.py``'s ``st.Page(...)`` lists, so a new page is tested
the day it is added."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

WEBAPP = Path(__file__).resolve().parents[2] / "webapp"


def _page_files(nodes: list[ast.stmt]) -> list[str]:
    """The files of the ``st.Page("app_pages/NAME.py", ...)`` calls in ``nodes``."""
    return [
        call.args[0].value
        for node in nodes
        for call in ast.walk(node)
        if isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and call.func.attr == "Page"
        and call.args
        and isinstance(call.args[0], ast.Constant)
    ]


def router_pages() -> list[tuple[str, bool]]:
    """``(page file, demo mode)`` for every page of the router: the ``if demo:`` branch lists
    the demo's pages, its ``else`` the full app's."""
    tree = ast.parse((WEBAPP / "streamlit_app.py").read_text(encoding="utf-8"))
    (branch,) = [
        node
        for node in tree.body
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "demo"
    ]
    return [(f, True) for f in _page_files(branch.body)] + [
        (f, False) for f in _page_files(branch.orelse)
    ]


def page_title(page_file: str) -> str:
    """The title a page file gives itself (its ``st.title("...")``)."""
    tree = ast.parse((WEBAPP / page_file).read_text(encoding="utf-8"))
    titles = [
        call.args[0].value
        for call in ast.walk(tree)
        if isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and call.func.attr == "title"
        and call.args
        and isinstance(call.args[0], ast.Constant)
    ]
    assert titles, f"{page_file} has no st.title"
    return titles[0]


PAGES = router_pages()


def test_the_router_lists_every_page_file() -> None:
    listed = {Path(f).name for f, _ in PAGES}
    on_disk = {p.name for p in (WEBAPP / "app_pages").glob("*.py") if p.name != "__init__.py"}
    assert listed == on_disk
    assert {"app_pages/demo.py", "app_pages/data.py"} <= {f for f, _ in PAGES}


@pytest.mark.parametrize(
    "page_file,demo", PAGES, ids=[f"{Path(f).stem}{' (demo)' if d else ''}" for f, d in PAGES]
)
def test_every_page_renders_on_a_filled_store(
    filled_store: str, run_page, monkeypatch, page_file: str, demo: bool
) -> None:
    if demo:
        monkeypatch.setenv("SRM_DEMO", "1")
    at = run_page(Path(page_file).stem)
    assert at.title[0].value == page_title(page_file)
    assert not at.error
    assert not bare_copies()


def bare_copies() -> list[str]:
    """The modules loaded from webapp/ under a name other than ``webapp.NAME``: a second copy
    of an app module, with its own state (its caches, its settings). The script directory is on
    the path while a page runs, so a bare ``import services`` would still work, and be wrong.
    The entry script runs as ``__main__`` and imports ``_repo_root`` by its bare name."""
    return sorted(
        name
        for name, module in list(sys.modules.items())
        if name not in ("__main__", "_repo_root")
        and name.partition(".")[0] != "webapp"
        and getattr(module, "__file__", None)
        and Path(module.__file__).resolve().is_relative_to(WEBAPP)
    )


@pytest.mark.parametrize("page", ["inspect", "annotate", "train"])
def test_pages_explain_an_empty_store(app_store: str, run_page, page: str) -> None:
    at = run_page(page)
    assert "The store is empty" in at.info[0].value


def test_the_sidebar_names_the_store_outside_demo_mode(filled_store, run_page) -> None:
    at = run_page()
    captions = [c.value for c in at.sidebar.caption]
    assert any(c.startswith("Store: `sqlite:///") for c in captions)
    assert not any("Demo mode" in c for c in captions)
