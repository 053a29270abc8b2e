"""Pairs into and out of the store from the Data page: files under the import roots, uploads,
and the corrected dataset as JSON Lines."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import replace
from pathlib import Path

from srm import store
from srm.files import NUL_IN_PATH
from srm.store import StoreError
from webapp import auth, services
from webapp.services import PROJECT_DIR
from webapp.store_access import read_session, write

#: Folders the app may import from by path (os.pathsep-separated); see import_roots().
IMPORT_ROOTS_ENV = "SRM_IMPORT_ROOTS"


def import_roots() -> list[Path]:
    """The folders a path typed in the app may point into: ``$SRM_IMPORT_ROOTS`` (separated
    by ``os.pathsep``; relative ones start at the project directory; empty: none), else the
    project's ``data/`` and ``$XDG_DATA_HOME/srm-studio/uploads``. A visitor must not be able to
    read (or learn of) any other file on the server through an import."""
    configured = os.environ.get(IMPORT_ROOTS_ENV)
    if configured is None:
        data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
        folders = [PROJECT_DIR / "data", data_home / "srm-studio" / "uploads"]
    else:
        folders = [PROJECT_DIR / Path(p).expanduser() for p in configured.split(os.pathsep) if p]
    return [folder.resolve() for folder in folders]


def import_path(typed: str) -> Path:
    """The file a path typed in the app names, if it is under an import root (symbolic links
    and ``..`` resolved first); else ``StoreError``, with the same words whether or not the
    path exists, so the message says nothing about the rest of the server."""
    roots = import_roots()
    if not roots:
        raise StoreError(
            f"importing by path is switched off ({IMPORT_ROOTS_ENV} is empty): upload the file"
        )
    if "\0" in typed:  # resolve() would raise ValueError("embedded null byte")
        raise StoreError(f"{typed!r}: {NUL_IN_PATH}")
    path = (PROJECT_DIR / Path(typed).expanduser()).resolve()
    if not any(path.is_relative_to(root) for root in roots):
        raise StoreError(
            f"{typed}: the app imports only from {', '.join(map(str, roots))}; copy the file "
            f"into one of them, or set {IMPORT_ROOTS_ENV} (see the README)"
        )
    if not path.exists():
        raise StoreError(f"{typed}: no such file or directory")
    return path


def import_file(url: str, path: str, dataset: str | None = None) -> store.ImportResult:
    """Validate and import a file on the server, which must be under an import root (admins
    only); raises ``DataError`` (every problem) or ``StoreError``."""
    auth.require_admin("Importing a path on the server")
    found = import_path(path)
    return _import(
        url, found, (dataset or "").strip() or (found.name if found.is_dir() else found.stem)
    )


def import_upload(
    url: str, file_name: str, data: bytes, dataset: str | None = None
) -> store.ImportResult:
    """Import an uploaded file; problems name the file as uploaded, not where the server kept
    it."""
    from srm.data import DataError

    safe_name = Path(file_name).name or "upload.jsonl"
    with tempfile.TemporaryDirectory(prefix="srm-upload-") as tmp:
        path = Path(tmp) / safe_name
        path.write_bytes(data)
        name = (dataset or "").strip() or Path(safe_name).stem
        try:
            return _import(url, path, name)
        except DataError as err:
            raise DataError(
                [replace(p, file=p.file.replace(str(path), safe_name)) for p in err.problems]
            ) from None


def _import(url: str, path: Path, name: str) -> store.ImportResult:
    from srm.data import load_pairs

    pairs = load_pairs(path)
    with write(url) as session:
        result = store.import_pairs(session, name, pairs, source_file=str(path))
    services.clear_pair_caches()
    services.sources.clear()
    return result


def score_after_import(url: str, result: store.ImportResult) -> int | None:
    """After an import that added pairs: score the dataset with the active model as a job
    (:func:`services.score_imported`), so its queue is ordered when first opened; the job's
    id, or ``None`` when nothing was added or there is no model."""
    if result.added == 0:
        return None
    return services.score_imported(url, result.dataset)


def export_jsonl(url: str, dataset: str) -> tuple[bytes, str]:
    """The dataset with corrections applied, as TRL-style JSON Lines, and the count summary."""
    with read_session(url) as session:
        result = store.effective_pairs(session, dataset)
    lines = [json.dumps(p.to_dict(), ensure_ascii=False) for p in result.pairs]
    return ("\n".join(lines) + "\n").encode() if lines else b"", result.counts.summary()
