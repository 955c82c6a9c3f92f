"""Starting a worker under test: a shell command in its own process group, always reaped.

The worker's stdout and stderr go to a file (a full pipe would stall the worker
and the harness would then blame it for our fault). Stopping escalates from
SIGTERM to SIGKILL for the whole group, with a deadline at every step.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from string import Formatter
from typing import IO

from harness.errors import LaunchError, ScenarioError

PEERS = Path(__file__).parent / "peers"

BUILTIN_WORKERS: dict[str, str] = {
    "reference": "{python} -m worker --master-host {host} --master-port {port} --heartbeat-interval {heartbeat_interval}",
    # Locust reads its interval constants from locust.runners at call time; the locustfile sets them from the env.
    "locust": "env LC_HEARTBEAT_INTERVAL={heartbeat_interval} {python} -m locust -f {peers}/locustfile.py --worker "
    "--master-host {host} --master-port {port} --loglevel INFO",
}
PLACEHOLDERS = {"host", "port", "heartbeat_interval", "python", "peers"}


def render_command(template: str, host: str, port: int, heartbeat_interval: float) -> str:
    """Fill a worker command template: ``reference``, ``locust`` or any shell text with {host} {port}."""
    template = BUILTIN_WORKERS.get(template, template)
    fields = {name for _, name, _, _ in Formatter().parse(template) if name is not None}
    unknown = fields - PLACEHOLDERS
    if unknown:
        raise ScenarioError(f"worker command has unknown placeholders {sorted(unknown)}; allowed: {sorted(PLACEHOLDERS)}")
    if "port" not in fields:
        raise ScenarioError(f"worker command must contain {{port}} so the worker can find the master: {template!r}")
    return template.format(
        host=host,
        port=port,
        heartbeat_interval=f"{heartbeat_interval:g}",
        python=shlex.quote(sys.executable),
        peers=shlex.quote(str(PEERS)),
    )


class WorkerProcess:
    """A worker command running in its own session; use as a context manager so it is always reaped."""

    def __init__(self, command: str, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.command = command
        self.log_path = log_path
        self.env = env
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.killed_by_harness = False

    def start(self) -> WorkerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        try:
            self._proc = subprocess.Popen(
                ["/bin/sh", "-c", f"exec {self.command}"],
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **(self.env or {})},
            )
        except OSError as exc:
            self._log.close()
            raise LaunchError("launch", f"a running process for {self.command!r}", repr(exc)) from exc
        return self

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self._proc is not None, "not started"
        return self._proc.pid

    def poll(self) -> int | None:
        """The exit code if the process has ended (negative: killed by that signal), else None."""
        return None if self._proc is None else self._proc.poll()

    def wait(self, timeout: float) -> int | None:
        """Wait at most ``timeout`` seconds for the process to end; its code, or None if still running."""
        assert self._proc is not None, "not started"
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def signal_group(self, sig: signal.Signals) -> None:
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, grace: float = 3.0) -> int:
        """End the whole process group: SIGTERM, then SIGKILL after ``grace`` s. Always reaps."""
        if self._proc is None:
            return 0
        code = self._proc.poll()
        if code is None:
            self.killed_by_harness = True
            self.signal_group(signal.SIGTERM)
            code = self.wait(grace)
        if code is None:
            self.signal_group(signal.SIGKILL)
            code = self.wait(5.0)
        self.signal_group(signal.SIGKILL)  # stragglers the worker may have forked
        if self._log is not None and not self._log.closed:
            self._log.close()
        if code is None:
            raise LaunchError("reap", f"process {self.pid} to end after SIGKILL", "still running")
        return code

    def output(self, tail_lines: int | None = None) -> str:
        """What the worker printed so far (the last ``tail_lines`` lines if given)."""
        if self._log is not None and not self._log.closed:
            self._log.flush()
        try:
            text = self.log_path.read_text("utf-8", "replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-tail_lines:]) if tail_lines else text


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    if code == 127:
        return "exit code 127 (command not found)"
    return f"exit code {code}"
