"""Signing in, for an app others can reach: the rules are :mod:`srm.access`, this is the page side.

When the store has accounts (``srm users add``), each browser session signs in by name and
password (:func:`srm.store.authenticate`, which logs and rate-limits the attempts) and *is* that
account: its name is the annotator every write records, and its role (annotator, reviewer,
admin) says what it may do. Every run checks the sign-in still holds (the account enabled, its
password unchanged since, and at most ``SRM_SESSION_HOURS`` hours old). Without accounts, when a
shared password is configured, each browser session signs in once and keeps the role of
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
from datetime import datetime, timedelta, timezone

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from srm import access, store
from srm.store import StoreError
from webapp import mdtext
from webapp.store_access import demo_mode, engine, read_session, store_url

logger = logging.getLogger(__name__)
ROLE = "auth.role"
ACCOUNT = "auth.account"
SIGNED_IN_AT = "auth.signed_in_at"
#: How long an account's sign-in lasts, in hours (default :data:`DEFAULT_SESSION_HOURS`).
SESSION_HOURS = "SRM_SESSION_HOURS"
DEFAULT_SESSION_HOURS = 12.0
REVIEWER = "reviewer"


class AccessDenied(StoreError):
    """An action the session's role may not take."""


def configured() -> access.Passwords:
    """The shared passwords: the environment, else top-level keys of Streamlit's secrets."""
    try:
        secrets = dict(st.secrets)
    except FileNotFoundError:  # no secrets.toml anywhere, or one that does not parse
        secrets = {}
    return access.passwords(os.environ, secrets)


def accounts_on() -> bool:
    """Whether people sign in as accounts: the store has one (the demo, read-only, never
    signs anyone in)."""
    if demo_mode():
        return False
    with read_session(store_url()) as session:
        return store.accounts_exist(session)


def account() -> str | None:
    """The signed-in account's name: the annotator this session writes as; ``None`` without
    accounts or before signing in."""
    return st.session_state.get(ACCOUNT) if accounts_on() else None


def role() -> str | None:
    """The session's role; ``None`` until it signs in (when accounts exist or a password is
    configured)."""
    if accounts_on():
        return st.session_state.get(ROLE) if st.session_state.get(ACCOUNT) else None
    if not configured().required:
        return access.ADMIN
    return st.session_state.get(ROLE)


def is_admin() -> bool:
    return role() == access.ADMIN


def may_review() -> bool:
    """Reviewers and admins settle disagreements and accept or reject labels."""
    return role() in (REVIEWER, access.ADMIN)


def require_admin(action: str) -> None:
    """Raise :class:`AccessDenied` unless the session is admin; ``action`` names what was tried."""
    if not is_admin():
        how = "sign in as an admin" if accounts_on() else "sign in with the admin password"
        raise AccessDenied(f"{action} needs the admin role: {how}")


def require_reviewer(action: str) -> None:
    """Raise :class:`AccessDenied` unless the session is a reviewer or an admin."""
    if not may_review():
        raise AccessDenied(f"{action} needs the reviewer or admin role")


def exposure_error() -> str | None:
    """Why this server must not serve pages, as :func:`srm.access.exposure_error` says for the
    address Streamlit listens on (``make app HOST=0.0.0.0`` does not go through ``srm app``)."""
    insecure = os.environ.get(access.INSECURE, "").strip().lower() in ("1", "true", "yes", "on")
    host = st.get_option("server.address")
    accounts = not access.is_loopback(host) and accounts_on()  # a store read only if it matters
    return access.exposure_error(host, configured(), insecure, accounts=accounts)


def session_hours() -> float:
    """``SRM_SESSION_HOURS`` (default 12): how long a sign-in lasts."""
    raw = os.environ.get(SESSION_HOURS, "").strip()
    if not raw:
        return DEFAULT_SESSION_HOURS
    try:
        hours = float(raw)
    except ValueError:
        raise StoreError(f"{SESSION_HOURS}: got {raw!r}; give a number of hours, e.g. 12") from None
    if not hours > 0:
        raise StoreError(f"{SESSION_HOURS}: got {raw!r}; give a positive number of hours")
    return hours


def sign_in(url: str, name: str, password: str) -> tuple[str, str]:
    """The account ``name`` signs in with ``password``: its name and role, or
    :class:`srm.store.LoginError`. The attempt is committed either way, so failures count
    towards the lock-out."""
    with store.make_sessionmaker(engine(url))() as session:
        try:
            found = store.authenticate(session, name, password)
        except store.LoginError:
            session.commit()
            raise
        signed = (found.name, found.role)
        session.commit()
    return signed


def sign_in_ended(
    url: str, name: str, signed_in_at: datetime, now: datetime | None = None
) -> str | None:
    """Why a sign-in no longer holds (in words to show), or ``None`` while it does; also
    refreshes the session's role from the store (an admin may have changed it)."""
    now = now or datetime.now(timezone.utc)
    if now - signed_in_at > timedelta(hours=session_hours()):
        return "Your session has ended: sign in again."
    with read_session(url) as session:
        if not store.session_valid(session, name, signed_in_at):
            return "Your sign-in no longer holds (the account changed): sign in again."
        st.session_state[ROLE] = store.get_account(session, name).role
    return None


def sign_out() -> None:
    for key in (ROLE, ACCOUNT, SIGNED_IN_AT):
        st.session_state.pop(key, None)
    _forbid_uploads(_session_id())


def gate() -> None:
    """Stop the script run unless this session may see the app: refuse an exposed server
    without a password, and ask for the password until the session gives a right one."""
    refusal = exposure_error()
    if refusal is not None:
        st.error(mdtext.escape(refusal), icon=":material/lock:")
        st.stop()
    if accounts_on():
        _account_gate()
        return
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


def _account_gate() -> None:
    """Sign in by name and password; a session already signed in passes while its sign-in
    holds (:func:`sign_in_ended`)."""
    url = store_url()
    name = st.session_state.get(ACCOUNT)
    ended = None
    if name is not None:
        ended = sign_in_ended(url, name, st.session_state[SIGNED_IN_AT])
        if ended is None:
            _allow_uploads(_session_id())
            return
        sign_out()
    _forbid_uploads(_session_id())
    st.title("SRM Studio")
    if ended:
        st.warning(ended, icon=":material/lock_clock:")  # safe: fixed sentences
    with st.form("auth.sign_in"):
        st.text_input("Name", key="auth.name")
        st.text_input("Password", type="password", key="auth.password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        given = st.session_state.pop("auth.password", "")
        try:
            signed_name, signed_role = sign_in(url, st.session_state.get("auth.name", ""), given)
        except store.LoginError as err:
            st.error(mdtext.escape(str(err)), icon=":material/lock:")
        else:
            st.session_state[ACCOUNT] = signed_name
            st.session_state[ROLE] = signed_role
            st.session_state[SIGNED_IN_AT] = datetime.now(timezone.utc)
            st.rerun()
    st.stop()


def signed_in_text() -> str | None:
    """``"Signed in as ana (reviewer)"`` (escaped for markdown), or ``None`` when nobody
    signs in."""
    name = account()
    if name is not None:
        return f"Signed in as {mdtext.escape(name)} ({role()})"
    if configured().required:
        return f"Signed in as {role()}"  # safe: role is annotator or admin
    return None


def sidebar() -> None:
    """Who is signed in, and a way out (only when accounts exist or passwords are set)."""
    text = signed_in_text()
    if text is None:
        return
    st.caption(f":material/person: {text}")  # safe: escaped
    if st.button("Sign out", key="auth.sign_out"):
        sign_out()
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
    with _uploaders_lock:
        if session_id in _uploaders:
            return True
    return not configured().required and not accounts_on()


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
