"""What a wheel of the project holds: the library, and the app with every page, its stylesheet
and icon, so that `pip install srm-studio` then `srm app` serves the whole app (the pages are
scripts in a folder without `__init__.py`, shipped as a namespace package)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def clean_source(target: Path) -> Path:
    """What a fresh clone holds of the package's sources, with no build/ or egg-info that an
    earlier build left (setuptools would reuse their file lists)."""
    target.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, target / name)
    for package in ("srm", "webapp"):
        shutil.copytree(
            REPO / package, target / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    return target


def test_the_wheel_ships_the_app_with_every_page(tmp_path: Path) -> None:
    source = clean_source(tmp_path / "src")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(tmp_path), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr
    [wheel] = tmp_path.glob("srm_studio-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    pages = {f"webapp/app_pages/{p.name}" for p in (REPO / "webapp" / "app_pages").glob("*.py")}
    modules = {
        str(p.relative_to(REPO))
        for p in (REPO / "webapp").rglob("*.py")
        if "app_pages" not in p.parts
    }
    assert pages and pages <= names, sorted(pages - names)
    assert modules <= names, sorted(modules - names)
    assert {"webapp/style.css", "webapp/favicon.png", "srm/store/migrations/env.py"} <= names
    assert not any(name.startswith("tests/") for name in names)
