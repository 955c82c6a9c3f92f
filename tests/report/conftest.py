"""Real runs for the report tests, made once per session: the reference worker and the real Locust worker on
the same few cases (Locust's own worker FAILS malformed/01, so the two columns differ), and a worker command
that never starts (UNKNOWN)."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

from harness.catalog import select
from harness.report import write_run_report
from harness.runner import RunConfig, run_catalog

CASES = "handshake/01-first-message,heartbeat/04-delayed-replies,storms/01-unknown-type-flood,malformed/01-garbage"
NOT_A_WORKER = "{python} -c 'import sys; sys.exit(3)' {host} {port}"


def _run(root: Path, worker: str, label: str, cases: str = CASES) -> Path:
    folder = root / label
    folder.mkdir()
    run_catalog(select(cases), RunConfig(worker, label), folder)
    write_run_report(folder)
    return folder


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(tmp_path_factory.mktemp("runs"), "reference", "reference")


@pytest.fixture(scope="session")
def locust_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if importlib.util.find_spec("locust") is None:  # never import it here: it monkey-patches threading (gevent)
        message = "the real Locust is not installed (pip install .[locust])"
        if os.environ.get("LC_REQUIRE_BROWSER") == "1":  # make test / CI: the browser test compares with it
            pytest.fail(message)
        pytest.skip(message)
    return _run(tmp_path_factory.mktemp("runs"), "locust", "locust")


@pytest.fixture(scope="session")
def broken_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(tmp_path_factory.mktemp("runs"), NOT_A_WORKER, "broken", "handshake/01-first-message")


def chromium_path() -> str | None:
    """Debian's chromium (``make`` installs it), or the browser named by LC_CHROMIUM."""
    named = os.environ.get("LC_CHROMIUM")
    if named:
        return named
    return next((p for name in ("chromium", "chromium-browser", "google-chrome") if (p := shutil.which(name))), None)


@pytest.fixture(scope="session")
def chromium() -> str:
    """The browser for the report's browser test: a failure, not a skip, where LC_REQUIRE_BROWSER=1 (make test, CI)."""
    path = chromium_path()
    if path is None:
        message = "no chromium: run 'make browser' (installs Debian's chromium) or set LC_CHROMIUM"
        if os.environ.get("LC_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    if importlib.util.find_spec("playwright") is None:  # the same rule: a failure where the browser test is required
        message = "Playwright is not installed (pip install .[dev])"
        if os.environ.get("LC_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path
