"""Fixtures for the browser tests: the real `make app` on a free port, and headless Chromium.

One factory (`serve`) starts the app; thin module-scoped fixtures name the two servers the tests
share (the studio, and the same store in demo mode), so the slow parts (Streamlit, torch, the
model) start once per module rather than once per test.

Chromium is Debian's package (installed by .ci/run), never `playwright install`. Locally the
tests are skipped without it; in CI (CI=true) a missing browser is a failure, so a green CI run
means the browser really ran.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "tests" / "e2e" / "artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Untrusted text as a pair may carry it: if any of it ran, it would set window.__xss.
XSS_SCRIPT = "<script>window.__xss=1</script>"
XSS_IMG = '<img src=x onerror="window.__xss=1">'
XSS_PAIRS = [
    {
        "id": "xss-1",
        "prompt": f"Show me how to greet a user. {XSS_SCRIPT}",
        "chosen": f"Here is a greeting for the page. {XSS_SCRIPT} It only sets a flag.",
        "rejected": f"Paste this image tag. {XSS_IMG} Then reload the page.",
        "source": "xss",
    },
    {
        "id": "xss-2",
        "prompt": f"What does {XSS_IMG} do?",
        "chosen": f"It runs the onerror handler. {XSS_IMG} Never render it as markup.",
        "rejected": f"Nothing at all. {XSS_SCRIPT}",
        "source": "xss",
    },
]


@dataclass(frozen=True)
class App:
    """A running `make app`: where to browse it, its store, and its combined output."""

    url: str
    db_url: str
    log: Path

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is not installed; .ci/run must install it")
        pytest.skip("chromium not installed (apt-get install chromium)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"`make app` exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"the app did not come up within {timeout:.0f} s:\n{log.read_text()}")


@contextmanager
def serve(db: Path, log: Path, **env: str) -> Iterator[App]:
    """`make app` on a free port with the SQLite store `db` and extra environment `env`.

    The app scores with the bundled default model (data/models/default): what a newcomer sees,
    and what the screenshots in docs/ should show. A developer's own SRM_MODEL, job set-up
    (SRM_RUNS_DIR, SRM_MODELS_DIR, SRM_SUBMIT_COMMAND) or app passwords are dropped so the run
    is the same everywhere; job run directories go beside the store.
    """
    port = free_port()
    db_url = f"sqlite:///{db}"
    dropped = (
        "SRM_MODEL",
        "SRM_RUNS_DIR",
        "SRM_MODELS_DIR",
        "SRM_SUBMIT_COMMAND",
        "SRM_APP_PASSWORD",
        "SRM_ADMIN_PASSWORD",
    )
    environment = {k: v for k, v in os.environ.items() if k not in dropped}
    environment |= {"SRM_DB_URL": db_url, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    environment |= env
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["make", "--no-print-directory", "app", f"PORT={port}"],
            cwd=REPO_ROOT,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so the whole tree (make, streamlit) can be stopped
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, proc, log)
        yield App(url, db_url, log)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    # Through every test that used this server: an API the app calls is going away.
    warned = deprecations(log)
    assert not warned, f"{len(warned)} deprecation warnings in {log}, the first: {warned[0]}"


def deprecations(log: Path) -> list[str]:
    """The lines of the app's server log that warn of a deprecation."""
    return [
        line for line in log.read_text(errors="replace").splitlines() if "deprecat" in line.lower()
    ]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The module's store, logs and input files; the studio and the demo share the store."""
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="module")
def xss_file(workdir: Path) -> Path:
    path = workdir / "xss.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in XSS_PAIRS))
    return path


@pytest.fixture(scope="module")
def app(workdir: Path) -> Iterator[App]:
    """The studio, started on an empty store (so `make app` imports the bundled sample); it may
    import by path from the project's data/ and from the module's work directory."""
    roots = os.pathsep.join([str(REPO_ROOT / "data"), str(workdir)])
    with serve(workdir / "app.db", workdir / "make-app.log", SRM_IMPORT_ROOTS=roots) as running:
        yield running


@pytest.fixture(scope="module")
def demo_app(workdir: Path) -> Iterator[App]:
    """The same store served read-only (SRM_DEMO=1), as `srm app --demo` does."""
    with serve(workdir / "app.db", workdir / "make-app-demo.log", SRM_DEMO="1") as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Streamlit reruns the page after each interaction, and the first run of a page may import
    # torch: 5 s (Playwright's default) is too short on a 2-core CI machine.
    expect.set_options(timeout=30_000)
    executable = chromium_path()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item,
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Note whether the test body failed, for the `page` fixture's screenshot."""
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser context per test: its own Streamlit session, so no state leaks.

    A failing test leaves the page as it was in artifacts/failed-<test>.png.
    """
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(30_000)
    tab = context.new_page()
    yield tab
    if request.node.stash.get(FAILED, False):
        tab.screenshot(path=ARTIFACTS / f"failed-{request.node.name}.png", full_page=True)
    context.close()
