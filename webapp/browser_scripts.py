"""Small same-origin scripts for what Streamlit has no API for: remembering the annotator's
name in a cookie, and letting Esc or Enter leave a text field so the page's shortcuts work.

Each script runs in the page itself (``st.html(..., unsafe_allow_javascript=True)``; the
component iframe Streamlit ran them in before is deprecated), as ``window.parent``: at the
top level that is the page's own window, in an iframe the page around it, so the scripts work
either way. Values from Python reach a script only as JSON with ``<`` escaped, so a name such
as ``</script><script>...`` stays a string.
"""

from __future__ import annotations

import json

import streamlit as st

#: The cookie that remembers who is annotating in this browser (a year; path ``/``).
ANNOTATOR_COOKIE = "srm_annotator"
COOKIE_MAX_AGE = 365 * 24 * 3600


def js_string(value: str) -> str:
    """``value`` as a JavaScript string literal that is safe inside a ``<script>`` element."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e")


def remembered_annotator() -> str:
    """The name this browser last annotated under (its cookie), or ``""``. (Under AppTest
    there is no browser: the cookies are a stand-in that holds no strings.)"""
    value = st.context.cookies.get(ANNOTATOR_COOKIE)
    return value.strip() if isinstance(value, str) else ""


def remember_annotator(name: str) -> None:
    """Keep ``name`` in this browser's cookie, so a new tab or a bookmark starts as ``name``."""
    run_script(
        "window.parent.document.cookie = "
        f"{js_string(ANNOTATOR_COOKIE)} + '=' + encodeURIComponent({js_string(name)}) + "
        f"'; path=/; max-age={COOKIE_MAX_AGE}; SameSite=Lax';"
    )


# Installed once in the page's window (window.parent): in a text field inside an element of
# class `st-key-<key>`, Esc or Enter blurs the field. Blurring commits the value
# (Streamlit sends it on blur) and hands the keyboard back to the page's shortcuts.
_BLUR_ON_KEYS = """
(function (key) {
  const w = window.parent;
  w.__srmBlurKeys = w.__srmBlurKeys || {};
  if (w.__srmBlurKeys[key]) return;
  w.__srmBlurKeys[key] = true;
  w.eval(`document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" && event.key !== "Enter") return;
    const field = event.target;
    if (!(field instanceof HTMLInputElement)) return;
    if (!field.closest(".st-key-${key}")) return;
    field.blur();
  }, true);`);
})(%s);
"""


def blur_on_escape(key: str) -> None:
    """Make Esc and Enter leave the text input of widget ``key`` (letters, digits, ``-``,
    ``_`` and ``.`` only: it is used in a CSS class)."""
    run_script(_BLUR_ON_KEYS % js_string(_css_key(key)))


# The element may be drawn after this script runs (by a fragment): it is looked for every
# 200 ms, for up to 10 s.
_SCROLL_TO = """
(function (key) {
  const doc = window.parent.document;
  let tries = 0;
  const timer = setInterval(function () {
    const found = doc.querySelector(".st-key-" + key);
    if (found || ++tries > 50) clearInterval(timer);
    if (found) found.scrollIntoView({block: "nearest"});
  }, 200);
})(%s);
"""


def scroll_into_view(key: str) -> None:
    """Scroll the page so the element of key ``key`` (a container's, say) is on screen: after
    a button low on the page starts something whose progress is drawn higher up."""
    run_script(_SCROLL_TO % js_string(_css_key(key)))


def _css_key(key: str) -> str:
    css_key = key.replace(".", "-")
    if not all(c.isalnum() or c in "-_" for c in css_key):
        raise ValueError(f"key: got {key!r}; use letters, digits, '-', '_' and '.' only")
    return css_key


def run_script(script: str) -> None:
    """Run ``script`` (our own code, values in it through :func:`js_string`) in the page."""
    st.html(f"<script>{script}</script>", unsafe_allow_javascript=True)
