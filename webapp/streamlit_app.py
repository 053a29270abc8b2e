"""SRM Studio's entry point: page set-up, shared state and the router.

Run with ``make app`` (or ``srm app``; ``srm app --demo`` for the read-only demo mode).
"""

from pathlib import Path

import _repo_root  # noqa: F401  (this directory's: `webapp` importable from a tree not installed)
import streamlit as st

from webapp import auth, services, widgets

# A file the server serves itself: a ":material/...:" page icon makes the browser fetch the
# icon from fonts.gstatic.com, and the app makes no request beyond its own server.
ICON = Path(__file__).with_name("favicon.png")
auth.guard_uploads()  # uploads refused until signed in (webapp/launch.py does it at start-up)
st.set_page_config(page_title="SRM Studio", page_icon=str(ICON), layout="wide")

url = services.store_url()
demo = services.demo_mode()
if demo:
    pages = [
        st.Page("app_pages/demo.py", title="Showcase", icon=":material/slideshow:", default=True),
        st.Page("app_pages/models.py", title="Models", icon=":material/compare_arrows:"),
    ]
else:
    pages = [
        st.Page("app_pages/data.py", title="Data", icon=":material/table_rows:", default=True),
        st.Page("app_pages/inspect.py", title="Inspect", icon=":material/manage_search:"),
        st.Page("app_pages/annotate.py", title="Annotate", icon=":material/rate_review:"),
        st.Page("app_pages/train.py", title="Train", icon=":material/model_training:"),
        st.Page("app_pages/models.py", title="Models", icon=":material/compare_arrows:"),
        st.Page("app_pages/best_of_n.py", title="Best-of-N", icon=":material/leaderboard:"),
    ]
# The router before the gate, hidden until the session may see the pages: a sign-in then lands
# on the page the address asked for (/annotate), not the default one. No page runs before the
# gate lets the session in (page.run() comes after it).
visible = auth.exposure_error() is None and auth.role() is not None
page = st.navigation(pages, position="sidebar" if visible else "hidden")
auth.gate()  # a sign-in when accounts or a password are set; no pages for an exposed server
widgets.stylesheet()  # every page's CSS, from one file

# Here, once, so that the pages' reads never write. Reading the bundled model's files imports
# torch: many seconds on the server's first run, nothing after (a spinner shows after 0.5 s).
with st.spinner(services.LOADING_MODEL):
    services.register_default_model(url)

with st.sidebar:
    st.caption("SRM Studio · sentence-level reward models")
    if demo:  # an audience sees no server path
        st.caption(":material/lock: Demo mode: read-only")
    else:
        st.caption(f"Store: `{services.display_url(url)}`")  # safe: the operator's own setting
    auth.sidebar()
page.run()
