"""The real Locust of any release as a peer: ``--worker locust@2.15.1``.

Each release gets its own virtual environment under the user's cache folder (``$LC_CACHE_DIR``, else
``$XDG_CACHE_HOME/locust-conformance/locust``, else ``~/.cache/locust-conformance/locust``), created on first use
with pip from the package index and reused after. An environment counts as complete only once ``import locust``
reports the version asked for and a marker file is written last: an install that fails is removed, and one killed
half-way is removed and made again on the next use. Concurrent first uses (pytest-xdist) wait on a lock file.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.errors import ScenarioError

PREFIX = "locust@"
_VERSION = re.compile(r"\d+\.\d+\.\d+")
INSTALL_TIMEOUT = 600.0  # seconds pip may take for one release (about 25 s here for 2.15.1)
QUERY_TIMEOUT = 60.0
READY = ".ready"  # written last, inside the environment: its presence means complete


class LocustReleaseError(ScenarioError):
    """``locust@VERSION`` that is malformed, does not exist, or does not install here (a usage error: exit 3)."""


def is_release(worker: str) -> bool:
    """True for ``locust@VERSION`` (well-formed or not: a malformed one is an error, not a shell command)."""
    return worker.startswith(PREFIX)


def version_of(worker: str) -> str:
    """The release in ``locust@VERSION``; a malformed one is a LocustReleaseError."""
    version = worker[len(PREFIX) :]
    if not _VERSION.fullmatch(version):
        raise LocustReleaseError(f"{worker!r}: expected locust@MAJOR.MINOR.PATCH, e.g. locust@2.15.1")
    return version


def cache_dir() -> Path:
    """Where the environments live (see the module docstring)."""
    explicit = os.environ.get("LC_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "locust-conformance" / "locust"


def python_of(version: str, root: Path | None = None) -> Path:
    """The interpreter of ``version``'s environment (whether or not it exists yet)."""
    return (root or cache_dir()) / version / "bin" / "python"


def installed(version: str, root: Path | None = None) -> bool:
    """True if ``version``'s environment is complete (its marker written, its interpreter still there: a Python
    upgrade can remove the base interpreter a venv links to)."""
    root = root or cache_dir()
    return (root / version / READY).is_file() and python_of(version, root).resolve().is_file()


Say = Callable[[str], None]


def _to_stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def ensure(
    version: str,
    *,
    root: Path | None = None,
    say: Say = _to_stderr,
    timeout: float = INSTALL_TIMEOUT,
    lock_timeout: float | None = None,
) -> Path:
    """The interpreter of a complete environment with ``locust==version``, created now if need be (``timeout``: the
    most the install may take; ``lock_timeout``: the most to wait for other processes' installs, default a few).

    Raises:
        LocustReleaseError: the release does not exist on the package index, or does not install on this Python
            (the message says which, and lists the releases the index has).
    """
    version_of(PREFIX + version)  # a malformed one never names a folder (an empty one would be the cache itself)
    root = root or cache_dir()
    if installed(version, root):
        return python_of(version, root)
    root.mkdir(parents=True, exist_ok=True)
    waits = LOCK_WAITS * (timeout + QUERY_TIMEOUT) if lock_timeout is None else lock_timeout
    with _locked(root / ".install.lock", waits, say):  # one install at a time: they share the network and the CPU
        if installed(version, root):  # another process finished it while this one waited
            return python_of(version, root)
        say(f"locust@{version}: first use, installing locust=={version} into {root / version} (once; reused after)")
        final = root / version
        if final.exists():
            shutil.rmtree(final)  # an install that was killed before it finished: never trusted
        try:
            _install(version, final, timeout)  # in place: a venv's scripts name the folder they were made in
            (final / READY).write_text(version + "\n")
        except BaseException:
            shutil.rmtree(final, ignore_errors=True)
            raise
    say(f"locust@{version}: ready")
    return python_of(version, root)


def _install(version: str, folder: Path, timeout: float) -> None:
    base = getattr(sys, "_base_executable", sys.executable)
    deadline = time.monotonic() + timeout
    what = f"locust {version}"
    _run([base, "-m", "venv", str(folder)], deadline, f"creating a virtual environment for {what}")
    python = str(folder / "bin" / "python")
    code, output = _run_until(
        [python, "-m", "pip", "install", "--disable-pip-version-check", "--quiet", f"locust=={version}"], deadline, what
    )
    if code != 0:
        raise _install_failed(version, output)
    code, output = _run_until([python, "-c", "import locust; print(locust.__version__)"], deadline, what)
    if code != 0 or output.strip().splitlines()[-1:] != [version]:
        reason = output.strip().splitlines()[-1:] or ["no output"]
        raise LocustReleaseError(
            f"locust {version} installed but does not import on Python {_python()}: {reason[0]} (nothing was kept)"
        )


def _run_until(command: list[str], deadline: float, what: str) -> tuple[int, str]:
    """Run ``command`` in its own process group until ``deadline``; past it, the whole group is killed (pip's own
    build processes too) and the install is an error."""
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, start_new_session=True
    )
    try:
        output, _ = process.communicate(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        _kill(process)
        raise LocustReleaseError(f"installing {what} did not finish in time; it was stopped and nothing was kept") from None
    except BaseException:  # an interrupt: pip and its builds end before the caller removes their folder
        _kill(process)
        raise
    return process.returncode, output


def _kill(process: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.communicate()


def _install_failed(version: str, output: str) -> LocustReleaseError:
    known = known_releases()
    lines = [line.strip() for line in output.splitlines() if line.strip() and not line.startswith("WARNING: Location")]
    last = lines[-1] if lines else "no output"
    listing = _listing(known)
    if known and version not in known:
        return LocustReleaseError(f"locust {version} does not exist on the package index; {listing}")
    return LocustReleaseError(
        f"locust {version} does not install on Python {_python()} here: {last[:300]} (nothing was kept); {listing}"
    )


def known_releases(timeout: float = QUERY_TIMEOUT) -> list[str]:
    """The releases of locust the package index offers, newest first ([] if it cannot be asked)."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "index", "versions", "locust", "--disable-pip-version-check"],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    for line in done.stdout.splitlines():
        if line.startswith("Available versions:"):
            return [v.strip() for v in line.split(":", 1)[1].split(",") if v.strip()]
    return []


def _listing(known: list[str]) -> str:
    if not known:
        return "the package index could not be asked which releases exist"
    shown = ", ".join(known[:15])
    return f"the index has {len(known)} releases, newest first: {shown}{', ...' if len(known) > 15 else ''}"


def _python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _run(command: list[str], deadline: float, what: str) -> None:
    code, output = _run_until(command, deadline, what)
    if code != 0:
        raise LocustReleaseError(f"{what} failed: {output.strip()[-300:]}")


LOCK_POLL = 0.5
LOCK_WAITS = 4  # installs another process may finish (each with its failure query) before this one gives up


@contextmanager
def _locked(path: Path, timeout: float, say: Say) -> Iterator[None]:
    """Hold the install lock; another process's install is waited for (saying so) until ``timeout``, then an error."""
    with path.open("a") as handle:
        deadline = time.monotonic() + timeout
        told = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LocustReleaseError(
                        f"another process has been installing a Locust release into {path.parent} for over {timeout:g} s"
                    ) from None
                if not told:
                    say(f"waiting for another process's install in {path.parent} to finish")
                    told = True
                time.sleep(LOCK_POLL)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def quoted_python(version: str) -> str:
    """The interpreter that runs locust ``version``, quoted for a shell command: this one if it has that release
    installed, else ``ensure(version)``'s."""
    try:
        if importlib.metadata.version("locust") == version:
            return shlex.quote(sys.executable)
    except importlib.metadata.PackageNotFoundError:
        pass
    return shlex.quote(str(ensure(version)))


def main(argv: list[str] | None = None) -> int:
    """``python -m harness.locust_release 2.15.1 2.20.0``: make sure those releases' environments exist (CI warms
    the cache with it while the unit tests run)."""
    versions = sys.argv[1:] if argv is None else argv
    code = 0
    for version in versions:
        try:
            _to_stderr(f"locust@{version}: {ensure(version)}")
        except LocustReleaseError as exc:
            _to_stderr(f"locust@{version}: {exc}")
            code = 3
    return code


if __name__ == "__main__":
    sys.exit(main())
