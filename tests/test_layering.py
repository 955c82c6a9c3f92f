"""Import layering: the import-linter contracts hold, and the sans-IO modules import no I/O."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SANS_IO = [
    *sorted((ROOT / "harness" / "protocol").glob("*.py")),
    *sorted((ROOT / "harness" / "simulation").glob("*.py")),  # the in-memory simulation: no threads, sleeps or clock
    ROOT / "worker" / "session.py",
    *(ROOT / "harness" / name for name in ("output.py", "zmq_errors.py", "worker_timing.py")),
    *(ROOT / "harness" / "proxy" / name for name in ("plan.py", "liveness.py", "replay.py")),  # the proxy's pure parts
]
IO_MODULES = {"time", "threading", "socket", "select", "selectors", "asyncio", "subprocess", "zmq", "psutil", "os", "signal"}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", SANS_IO, ids=lambda p: str(p.relative_to(ROOT)))
def test_sans_io_module_imports_no_io(path: Path) -> None:
    assert imported_roots(path) & IO_MODULES == set()


def test_only_adapters_read_the_clock() -> None:
    """Within harness/, only the clock and the adapters that run processes and sockets (or time whole runs) import time."""
    readers = {p.name for p in (ROOT / "harness").rglob("*.py") if "time" in imported_roots(p) and "peers" not in p.parts}
    adapters = {
        "clock.py",
        "owner.py",
        "launcher.py",
        "scenario.py",
        "runner.py",
        "mutation.py",
        "explore.py",
        "pace.py",
        "stacks.py",
        "locust_release.py",
        "run.py",  # harness/master_catalog/run.py: starts a master per case, times the case
        "swarm.py",  # harness/master_catalog/swarm.py: starts the Locust swarm's processes
    }
    assert readers <= adapters, readers


def lint_imports() -> Path:
    """import-linter's command, next to this Python (a venv's bin/, which need not be on PATH), else on PATH."""
    beside = Path(sys.executable).with_name("lint-imports")
    found = beside if beside.is_file() else Path(shutil.which("lint-imports") or "/nonexistent")
    assert found.is_file(), "import-linter is missing: pip install .[dev] (it is a dependency of the tests, never skipped)"
    return found


def test_import_linter_contracts_hold() -> None:
    done = subprocess.run([lint_imports(), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "broken" not in done.stdout.split("Contracts:")[-1].replace("0 broken", "")
