"""Who may use the app: two shared passwords, one per role, and the rule that an app reachable
from other machines needs one.

The scheme is deliberately small: ``SRM_APP_PASSWORD`` signs a visitor in as an *annotator*
(browse, label, tag, upload a file), ``SRM_ADMIN_PASSWORD`` as an *admin* (also training and
scoring jobs, importing by a path on the server, editing the guidelines, choosing the active
model and the demo's pairs). Either may instead be a top-level key of the same name in
Streamlit's ``secrets.toml``. With neither set nobody signs in and everyone is admin, which
``srm app`` allows only on a loopback address unless told ``--insecure``.

Once the store has accounts (``srm users add``), the app signs people in by name and password
instead (:mod:`srm.store.team`) and the shared passwords are not asked for.

The CLI (``srm app``) and the app (``webapp/auth.py``) both apply these rules; nothing here
imports Streamlit.
"""

from __future__ import annotations

import hmac
import ipaddress
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

APP_PASSWORD = "SRM_APP_PASSWORD"
ADMIN_PASSWORD = "SRM_ADMIN_PASSWORD"
#: Set by ``srm app --insecure``: serve beyond loopback without a password, knowingly.
INSECURE = "SRM_APP_INSECURE"
ANNOTATOR, ADMIN = "annotator", "admin"


@dataclass(frozen=True)
class Passwords:
    """The configured shared passwords (``None``: not set)."""

    annotator: str | None = None
    admin: str | None = None

    @property
    def required(self) -> bool:
        """Whether visitors must sign in."""
        return bool(self.annotator or self.admin)

    def role(self, given: str) -> str | None:
        """The role ``given`` signs in as, or ``None`` when it matches neither password.

        Compared in constant time, so response times say nothing about how close a guess was.
        """
        attempt = given.encode()
        if self.admin and hmac.compare_digest(attempt, self.admin.encode()):
            return ADMIN
        if self.annotator and hmac.compare_digest(attempt, self.annotator.encode()):
            return ANNOTATOR
        return None


def passwords(env: Mapping[str, str], secrets: Mapping[str, Any] | None = None) -> Passwords:
    """The passwords from the environment, else from the top-level ``secrets`` keys of the same
    names; empty values count as unset."""

    def pick(name: str) -> str | None:
        value = env.get(name) or (secrets or {}).get(name)
        return str(value) if value else None

    return Passwords(annotator=pick(APP_PASSWORD), admin=pick(ADMIN_PASSWORD))


def read_secrets(files: Sequence[Path]) -> dict[str, Any]:
    """The top-level keys of the given ``secrets.toml`` files that exist, later files winning
    (Streamlit's order). Raises ``ValueError`` naming a file that is not valid TOML."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    found: dict[str, Any] = {}
    for file in files:
        if not file.is_file():
            continue
        try:
            found.update(tomllib.loads(file.read_text(encoding="utf-8")))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{file}: not valid TOML ({err}); fix or remove it") from err
    return found


def is_loopback(host: str | None) -> bool:
    """Whether an address to listen on is reachable from this machine only. An empty address
    means every interface (Streamlit's default), and a host name other than ``localhost`` is
    taken as exposed."""
    if not host:
        return False
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_error(
    host: str | None, configured: Passwords, insecure: bool, *, accounts: bool = False
) -> str | None:
    """Why the app must not serve on ``host`` as configured, or ``None`` when it may.
    ``accounts``: the store has accounts (``srm users add``), so everyone signs in by name and
    password whether or not a shared password is set."""
    if is_loopback(host) or configured.required or accounts or insecure:
        return None
    where = f"on {host}" if host else "on every network interface"
    return (
        f"Serving {where} without a password would let anyone who can reach it read and change "
        f"the store. Set {APP_PASSWORD} (annotators) and {ADMIN_PASSWORD} (admins), in the "
        "environment or in .streamlit/secrets.toml, or pass --insecure if the network is "
        "trusted (see the README's Security section)."
    )
