"""End-to-end fixtures: the real portal in a subprocess and Debian's headless Chromium driven by Playwright.

The browser tests skip (with the reason) where `chromium` is not installed or `playwright` cannot be imported,
so that `make test` still passes on a machine without them. Playwright's own browser download is never used:
Chromium is always launched from `shutil.which("chromium")`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS_DIR = Path(__file__).resolve().parent / "screenshots"

ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "admin-password-1"

STARTUP_TIMEOUT_S = 30.0
SHUTDOWN_TIMEOUT_S = 10.0

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass(frozen=True)
class Portal:
    base_url: str
    data_dir: Path
    log_path: Path

    def url(self, path: str) -> str:
        return self.base_url + path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=SHUTDOWN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=SHUTDOWN_TIMEOUT_S)


@pytest.fixture(scope="module")
def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("Debian's `chromium` is not installed (apt-get install chromium, or `make browser`)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as error:
        pytest.skip(f"the `playwright` Python package cannot be imported: {error}")
    return path


@pytest.fixture(scope="module")
def portal(chromium_path: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    """The real portal (`python main.py`) on a free port with its own DATA_DIR; stopped after the module."""
    tmp_dir = tmp_path_factory.mktemp("e2e-portal")
    data_dir = tmp_dir / "data"
    log_path = tmp_dir / "portal.log"
    port = _free_port()
    # pytest's and NiceGUI's test markers would make `ui.run` believe it runs under pytest (and ignore PORT).
    env = {name: value for name, value in os.environ.items() if not name.startswith(("PYTEST_", "NICEGUI_"))}
    for name in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY"):
        env.pop(name, None)
    env.update({
        "DATA_DIR": str(data_dir),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "ADMIN_USERNAME": ADMIN_USERNAME,
        "ADMIN_PASSWORD": ADMIN_PASSWORD,
        "PYTHONUNBUFFERED": "1",
    })
    base_url = f"http://127.0.0.1:{port}"
    health_url = base_url + "/api/v1/health"

    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "main.py"], cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while not _healthy(health_url):
                if process.poll() is not None:
                    pytest.fail(f"the portal exited with code {process.returncode} while starting; "
                                f"log tail:\n{_log_tail(log_path)}")
                if time.monotonic() > deadline:
                    pytest.fail(f"the portal did not answer {health_url} within {STARTUP_TIMEOUT_S:.0f} s; "
                                f"log tail:\n{_log_tail(log_path)}")
                time.sleep(0.2)
            yield Portal(base_url=base_url, data_dir=data_dir, log_path=log_path)
        finally:
            _stop(process)


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    """A fresh desktop-sized browser context (no cookies) per test."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    ctx.set_default_timeout(10_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: Any) -> Any:
    return context.new_page()


@pytest.fixture(scope="module")
def screenshots_dir() -> Path:
    SCREENSHOTS_DIR.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS_DIR
