"""Signing in, for an app others can reach: the rules are :mod:`srm.access`, this is the page side.

When a shared password is configured, each browser session signs in once and keeps the role of
the password it gave (``annotator`` or ``admin``); without one, every session is admin, and the
app refuses to serve beyond loopback unless started with ``--insecure``. Pages hide what a role
may not do, and the writes in ``services`` check again with :func:`require_admin`.

Uploads are behind the same check (:func:`guard_uploads`): Streamlit's upload endpoint takes a
file from any browser session that exists, signed in or not, and keeps it in memory while the
session lives; guarded, it refuses a session until it has signed in.
"""

from __future__ import annotations

import collections
import logging
import os
import threading

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

import mdtext
from srm import access
from srm.store import StoreError

logger = logging.getLogger(__name__)
ROLE = "auth.role"


class AccessDenied(StoreError):
    """An action the session's role may not take."""


def configured() -> access.Passwords:
    """The shared passwords: the environment, else top-level keys of Streamlit's secrets."""
    try:
        secrets = dict(st.secrets)
    except FileNotFoundError:  # no secrets.toml anywhere, or one that does not parse
        secrets = {}
    return access.passwords(os.environ, secrets)


def role() -> str | None:
    """The session's role; ``None`` until it signs in (when a password is configured)."""
    if not configured().required:
        return access.ADMIN
    return st.session_state.get(ROLE)


def is_admin() -> bool:
    return role() == access.ADMIN


def require_admin(action: str) -> None:
    """Raise :class:`AccessDenied` unless the session is admin; ``action`` names what was tried."""
    if not is_admin():
        raise AccessDenied(f"{action} needs the admin role: sign in with the admin password")


def exposure_error() -> str | None:
    """Why this server must not serve pages, as :func:`srm.access.exposure_error` says for the
    address Streamlit listens on (``make app HOST=0.0.0.0`` does not go through ``srm app``)."""
    insecure = os.environ.get(access.INSECURE, "").strip().lower() in ("1", "true", "yes", "on")
    return access.exposure_error(st.get_option("server.address"), configured(), insecure)


def gate() -> None:
    """Stop the script run unless this session may see the app: refuse an exposed server
    without a password, and ask for the password until the session gives a right one."""
    refusal = exposure_error()
    if refusal is not None:
        st.error(mdtext.escape(refusal), icon=":material/lock:")
        st.stop()
    if role() is not None:
        _allow_uploads(_session_id())
        return
    _forbid_uploads(_session_id())
    st.title("SRM Studio")
    with st.form("auth.sign_in"):
        st.text_input("Password", type="password", key="auth.password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        given = st.session_state.pop("auth.password", "")
        signed_in = configured().role(given)
        if signed_in is not None:
            st.session_state[ROLE] = signed_in
            st.rerun()
        logger.warning("a sign-in attempt with a wrong password")
        st.error("Wrong password.", icon=":material/lock:")
    st.stop()


def sidebar() -> None:
    """Who is signed in, and a way out (only when passwords are configured)."""
    if not configured().required:
        return
    st.caption(f":material/person: Signed in as {role()}")  # safe: role is annotator or admin
    if st.button("Sign out", key="auth.sign_out"):
        st.session_state.pop(ROLE, None)
        _forbid_uploads(_session_id())
        st.rerun()


# ------------------------------------------------------------------------------------ uploads
_UPLOADERS_KEPT = 10_000
_uploaders: collections.OrderedDict[str, None] = collections.OrderedDict()
"""The browser sessions that have signed in, the most recent last (each run renews its place),
at most :data:`_UPLOADERS_KEPT`: a session pushed out is let in again by its next run."""
_uploaders_lock = threading.Lock()  # the upload endpoint asks from the server's thread


def may_upload(session_id: str) -> bool:
    """Whether Streamlit may take a file from browser session ``session_id``: once the session
    has signed in, or always when nobody signs in; never from an exposed server that shows no
    page (:func:`exposure_error`)."""
    if exposure_error() is not None:
        return False
    if not configured().required:
        return True
    with _uploaders_lock:
        return session_id in _uploaders


def guard_uploads() -> None:
    """Put Streamlit's upload endpoint (``PUT /_stcore/upload_file/SESSION/FILE``) behind
    :func:`may_upload`. Streamlit checks only that the session exists, and a websocket client
    learns its session's upload address without ever running the app's script, so a
    signed-out client could fill the server's memory (five 190 MB files took it from 488 MB to
    1,440 MB, held while the socket stayed open).

    Two checks, both at Streamlit's class level (it offers no hook for this):
    ``Runtime.is_active_session``, which the endpoint alone calls, answers no before the body
    is read (a 400), and ``MemoryUploadedFileManager.add_file`` refuses to keep a file (a 403)
    should a body get that far. Idempotent; ``webapp/launch.py`` (``make app``, ``srm app``)
    calls it before the server starts, and every script run calls it too (an app started with
    plain ``streamlit run`` is then guarded from its first page load).
    """
    from starlette.exceptions import HTTPException
    from streamlit.runtime import Runtime
    from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager

    if getattr(Runtime.is_active_session, "_srm_guarded", False):
        return
    session_exists = Runtime.is_active_session
    keep_file = MemoryUploadedFileManager.add_file

    def is_active_session(self: Runtime, session_id: str) -> bool:
        if not session_exists(self, session_id):
            return False
        if not may_upload(session_id):
            logger.warning("an upload from a session that has not signed in was refused")
            return False
        return True

    def add_file(self: MemoryUploadedFileManager, session_id: str, file) -> None:  # noqa: ANN001
        if not may_upload(session_id):
            logger.warning("an upload from a session that has not signed in was refused")
            raise HTTPException(status_code=403, detail="sign in before uploading")
        keep_file(self, session_id, file)

    is_active_session._srm_guarded = True  # type: ignore[attr-defined]
    Runtime.is_active_session = is_active_session  # type: ignore[method-assign]
    MemoryUploadedFileManager.add_file = add_file  # type: ignore[method-assign]


def _session_id() -> str | None:
    ctx = get_script_run_ctx()
    return None if ctx is None else ctx.session_id


def _allow_uploads(session_id: str | None) -> None:
    if session_id is None:
        return
    with _uploaders_lock:
        _uploaders[session_id] = None
        _uploaders.move_to_end(session_id)
        while len(_uploaders) > _UPLOADERS_KEPT:
            _uploaders.popitem(last=False)


def _forbid_uploads(session_id: str | None) -> None:
    """Signed out: refuse the session's uploads again and drop the files it holds."""
    from streamlit.runtime import Runtime

    if session_id is None:
        return
    with _uploaders_lock:
        _uploaders.pop(session_id, None)
    if Runtime.exists():
        Runtime.instance().uploaded_file_mgr.remove_session_files(session_id)
