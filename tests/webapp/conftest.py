"""Fixtures for the app's tests: a store with the sample pairs and a tiny random model."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Widget

from srm.data import PreferencePair, load_pairs
from srm.store import import_pairs, make_sessionmaker, open_store

PASSWORDS = ("SRM_APP_PASSWORD", "SRM_ADMIN_PASSWORD")
WEBAPP = Path(__file__).resolve().parents[2] / "webapp"
APP = str(WEBAPP / "streamlit_app.py")


@pytest.fixture
def app_store(db_url: str, monkeypatch, tiny_model: Path) -> Iterator[str]:
    """An empty store and the tiny model as the app's default model, served on loopback with
    no password (as `make app` is), whatever the developer's environment says."""
    monkeypatch.setenv("SRM_DB_URL", db_url)
    monkeypatch.setenv("SRM_MODEL", str(tiny_model))
    for name in ("SRM_DEMO", *PASSWORDS, "SRM_APP_INSECURE", "SRM_IMPORT_ROOTS"):
        monkeypatch.delenv(name, raising=False)
    # The address the app checks; AppTest reads no config file outside the repository root.
    previous = st_config.get_option("server.address")
    st_config.set_option("server.address", "127.0.0.1")
    yield db_url
    st_config.set_option("server.address", previous)


@pytest.fixture(autouse=True)
def launched(monkeypatch) -> list[int]:
    """Page tests start no job process: the ids of the jobs a page launched, in order (an
    import launches one to score the new pairs)."""
    ids: list[int] = []
    monkeypatch.setattr("srm.jobs.launch", lambda url, job_id: ids.append(job_id) or 0)
    return ids


@pytest.fixture
def filled_store(app_store: str, sample_path: Path) -> str:
    """The store with the 50 sample pairs as dataset ``sample``."""
    fill(app_store, load_pairs(sample_path))
    return app_store


def fill(db_url: str, pairs: list[PreferencePair], dataset: str = "sample") -> None:
    with make_sessionmaker(open_store(db_url)).begin() as s:
        import_pairs(s, dataset, pairs)


@pytest.fixture
def run_page():
    """``run_page("inspect", query={"pair": "x"})``: the app run on that page (the default page
    without one) and URL parameters, failing the test on any exception the script raised."""

    def run(
        page: str | None = None, *, query: dict[str, str] | None = None, timeout: float = 90
    ) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=timeout)
        at.query_params.update(query or {})
        if page is not None:
            at.switch_page(f"app_pages/{page}.py")
        return rerun(at)

    return run


def rerun(at: AppTest) -> AppTest:
    """Run the script again (after widget changes) and fail on any exception."""
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


# --- markdown: what Streamlit renders as markdown, and what in it would become markup -----------
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
# What GFM links after parsing (mdast-util-gfm-autolink-literal): bare URLs and e-mail addresses.
_AUTOLINK = re.compile(r"(?i)(?:https?://|www\.)[-.\w]+|[-.\w+]+@[-\w]+(?:\.[-\w]+)+")
_TEXT_ELEMENTS = {"title", "header", "subheader", "markdown", "caption", "toast"}
_TEXT_ELEMENTS |= {"error", "warning", "info", "success"}


def markup_in(markdown: str) -> list[str]:
    """What in ``markdown`` a browser would get as markup from Streamlit: images and links
    (CommonMark, by markdown-it-py) and the bare URLs and addresses GFM links after parsing."""
    rendered = _MARKDOWN.render(markdown)
    found = re.findall(r"<(?:img|a)\b[^>]*>", rendered)
    return found + _AUTOLINK.findall(html.unescape(re.sub(r"<[^>]+>", "", rendered)))


def markdown_shown(at: AppTest) -> list[str]:
    """Every string the page renders as markdown: texts, alerts, headings, toasts, metric
    labels and values, progress text, expander, tab and popover labels, and every widget's label,
    help and (radio, pills, segmented control) options. Selectbox options and input values are
    plain text in Streamlit, and st.html is checked on its own."""
    shown: list[str] = []
    for node in at._tree:
        proto = getattr(node, "proto", None)
        if node.type in _TEXT_ELEMENTS:
            shown.append(node.value)
        elif node.type == "metric":
            shown += [proto.label, proto.body, proto.delta, proto.help]
        elif node.type == "progress":
            shown.append(proto.text)
        elif node.type in ("expander", "status", "tab"):
            shown.append(node.label)
        elif node.type == "popover":
            shown.append(proto.popover.label)
        elif isinstance(node, Widget):
            shown += [proto.label, getattr(proto, "help", "")]
            if node.type == "radio":
                shown += list(proto.options)
            elif node.type == "button_group":
                shown += [option.content for option in proto.options]
    return [s for s in shown if s]


def assert_no_markup_from_data(at: AppTest) -> None:
    """Nothing the page shows turns into an image or a link, in markdown or in st.html."""
    found = {text: markup_in(text) for text in markdown_shown(at)}
    assert not {text: hits for text, hits in found.items() if hits}
    for element in at.get("html"):
        assert not re.search(r"<(?:img|a)\b", element.value), element.value
