"""Start SRM Studio's Streamlit server with the upload guard already in place.

    python webapp/launch.py run webapp/streamlit_app.py [streamlit flags]

is ``streamlit run`` (what ``make app`` and ``srm app`` run) with :func:`auth.guard_uploads`
called before the server accepts a connection: the app's script calls it too, but a websocket
client can ask for an upload address without ever making the script run.
"""

import sys

import _repo_root  # noqa: F401  (this directory's: `webapp` importable from a tree not installed)
from streamlit.web import cli

from webapp import auth

if __name__ == "__main__":
    auth.guard_uploads()
    sys.exit(cli.main(prog_name="streamlit"))
