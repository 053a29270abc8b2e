"""Signing in, for an app others can reach: the rules are :mod:`srm.access`, this is the page side.

When a shared password is configured, each browser session signs in once and keeps the role of
the password it gave (``annotator`` or ``admin``); without one, every session is admin, and the
app refuses to serve beyond loopback unless started with ``--insecure``. Pages hide what a role
may not do, and the writes in ``services`` check again with :func:`require_admin`.
"""

from __future__ import annotations

import logging
import os

import streamlit as st

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
        return
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
        st.rerun()
