"""Building the Go test peer (``main.go``, stdlib only) with the local Go toolchain; nothing is downloaded."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

SOURCE = Path(__file__).with_name("main.go")
BINARY = "go-peer"
BUILD_TIMEOUT = 300.0  # a first build compiles the standard library into the empty cache


def available() -> str | None:
    """The ``go`` command to build with (PATH, then the usual install places), or None without a Go toolchain."""
    for candidate in (shutil.which("go"), "/usr/lib/go/bin/go", "/usr/local/go/bin/go"):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def build(out_dir: Path) -> Path:
    """``go build -o out_dir/go-peer main.go`` with a private cache under ``out_dir``; skipped if the binary is newer."""
    out_dir.mkdir(parents=True, exist_ok=True)
    binary = out_dir / BINARY
    if binary.is_file() and binary.stat().st_mtime > SOURCE.stat().st_mtime:
        return binary
    go = available()
    if go is None:
        raise FileNotFoundError("no Go toolchain: install golang-go (make go-peer)")
    home = out_dir / ".go"
    env = {
        **os.environ,
        "HOME": str(home),
        "GOCACHE": str(home / "cache"),
        "GOPATH": str(home / "path"),
        "GOTMPDIR": "",
        "GOFLAGS": "",
        "GOPROXY": "off",  # stdlib only: never reach for the network
        "GOTOOLCHAIN": "local",
        "CGO_ENABLED": "0",  # no C compiler needed; a static binary
    }
    done = subprocess.run(
        [go, "build", "-o", str(binary), SOURCE.name],
        cwd=SOURCE.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
    )
    if done.returncode != 0:
        raise RuntimeError(f"go build failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return binary
