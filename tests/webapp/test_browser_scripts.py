"""webapp/browser_scripts.py: values reach the page's scripts as inert JavaScript strings."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from webapp import browser_scripts


@pytest.mark.parametrize(
    "name",
    ["ana", "</script><script>window.__xss=1</script>", 'o\'hara "bo"\n\u2028x', "<!--"],
)
def test_a_name_is_one_inert_string_literal(name: str) -> None:
    literal = browser_scripts.js_string(name)
    assert "<" not in literal and ">" not in literal  # cannot close or open a script element
    assert json.loads(literal) == name  # and it is the very same string to the script


def test_blur_on_escape_takes_a_css_safe_key_only() -> None:
    with pytest.raises(ValueError, match=r"key: got 'a b'; use letters, digits"):
        browser_scripts.blur_on_escape("a b")


def test_the_blur_script_targets_the_widget_class() -> None:
    script = browser_scripts._BLUR_ON_KEYS % browser_scripts.js_string("annotate-note")
    assert re.search(r'closest\("\.st-key-\$\{key\}"\)', script)
    assert script.rstrip().endswith('("annotate-note");')


def test_the_scripts_run_in_the_page_not_in_a_deprecated_component(monkeypatch) -> None:
    """st.html runs them (components.v1.html is deprecated, and logs so on every call)."""
    calls: list[tuple[str, bool]] = []
    monkeypatch.setattr(
        browser_scripts.st,
        "html",
        lambda body, *, unsafe_allow_javascript=False: calls.append(
            (body, unsafe_allow_javascript)
        ),
    )
    browser_scripts.remember_annotator("</script>ana")
    browser_scripts.blur_on_escape("annotate.note")
    assert [allowed for _, allowed in calls] == [True, True]
    cookie, blur = (body for body, _ in calls)
    assert cookie.startswith("<script>window.parent.document.cookie = ")
    assert cookie.count("</script>") == 1 and '"\\u003c/script\\u003eana"' in cookie
    assert blur.startswith("<script>") and '("annotate-note");' in blur
    webapp = Path(browser_scripts.__file__).parent
    assert not [p.name for p in webapp.rglob("*.py") if "components.v1" in p.read_text()]
