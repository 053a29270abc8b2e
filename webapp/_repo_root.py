"""Makes ``import webapp`` work in the app's two entry scripts, ``launch.py`` and
``streamlit_app.py``, when this source tree is not installed (``pip install -e .`` maps the
package; a checkout run as it is does not): it puts the repository root on ``sys.path``.

Both scripts import this module by its bare name, before their first ``from webapp import``:
their own directory, webapp/, is on ``sys.path`` when they run (``python webapp/launch.py``
puts it there, and so does Streamlit's script runner). Nothing else imports it. The app's
modules themselves are only ever imported as ``webapp.NAME``: one imported by its bare name too
would be a second copy, with its own state (caches, session keys, settings).
"""

import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("webapp") is None:
    sys.path.append(str(Path(__file__).resolve().parents[1]))
