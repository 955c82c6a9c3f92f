"""harness.locust_release without the network: names, the cache's completeness rule, cleanup and the lock's deadline."""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest

from harness import locust_release
from harness.locust_release import LocustReleaseError, ensure, installed, is_release, version_of


def test_release_names() -> None:
    for bad in ("", "..", "2.15"):  # never a folder name that could be the cache itself or above it
        with pytest.raises(LocustReleaseError):
            ensure(bad, root=Path("/nonexistent-cache"), say=lambda _: None)
    assert is_release("locust@2.15.1") and not is_release("locust") and not is_release("reference")
    assert version_of("locust@2.15.1") == "2.15.1"
    for bad in ("locust@2.15", "locust@latest", "locust@", "locust@2.15.1; rm -rf /"):
        with pytest.raises(LocustReleaseError, match="locust@MAJOR.MINOR.PATCH"):
            version_of(bad)


def test_a_failed_install_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(version: str, folder: Path, timeout: float) -> None:
        (folder / "bin").mkdir(parents=True)
        (folder / "bin" / "python").write_text("half")
        raise LocustReleaseError(f"locust {version} does not install here")

    monkeypatch.setattr(locust_release, "_install", broken)
    with pytest.raises(LocustReleaseError, match="does not install"):
        ensure("2.15.1", root=tmp_path, say=lambda _: None)
    assert [p.name for p in tmp_path.iterdir()] == [".install.lock"]
    assert not installed("2.15.1", tmp_path)


def test_an_install_killed_half_way_is_made_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "2.15.1" / "bin").mkdir(parents=True)  # no marker: never trusted
    made: list[str] = []

    def install(version: str, folder: Path, timeout: float) -> None:
        assert not folder.exists()  # the leftover was removed first
        (folder / "bin").mkdir(parents=True)
        (folder / "bin" / "python").symlink_to(Path(locust_release.sys.executable).resolve())
        made.append(version)

    monkeypatch.setattr(locust_release, "_install", install)
    assert ensure("2.15.1", root=tmp_path, say=lambda _: None) == tmp_path / "2.15.1" / "bin" / "python"
    assert made == ["2.15.1"] and installed("2.15.1", tmp_path)
    ensure("2.15.1", root=tmp_path, say=lambda _: None)
    assert made == ["2.15.1"]  # reused


def test_waiting_for_another_install_has_a_deadline(tmp_path: Path) -> None:
    tmp_path.mkdir(exist_ok=True)
    said: list[str] = []
    with (tmp_path / ".install.lock").open("a") as other:
        fcntl.flock(other, fcntl.LOCK_EX)
        with pytest.raises(LocustReleaseError, match="another process has been installing"):
            ensure("2.15.1", root=tmp_path, say=said.append, lock_timeout=1.0)
    assert said == [f"waiting for another process's install in {tmp_path} to finish"]
