"""Start SRM Studio's Streamlit server with the upload guard already in place.

    python webapp/launch.py run webapp/streamlit_app.py [streamlit flags]

is ``streamlit run`` (what ``make app`` and ``srm app`` run) with :func:`auth.guard_uploads`
called before the server accepts a connection: the app's script calls it too, but a websocket
client can ask for an upload address without ever making the script run.
"""

import sys

from streamlit.web import cli

import auth  # this directory is the script's, so the app's modules import as they do in it

if __name__ == "__main__":
    auth.guard_uploads()
    sys.exit(cli.main(prog_name="streamlit"))
