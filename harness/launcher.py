"""Starting a worker under test: a shell command in its own process group, always reaped.

The worker's stdout and stderr go to one pipe that a drain thread reads all the
time (a full pipe would stall the worker, and the harness would then blame it for
our fault). Every line gets the time it was read on the caller's clock (the
trace's, so output can be judged by when it happened) and is written to the
log file as it came. What is kept is bounded, so a worker that prints binary
garbage, endless lines or gigabytes can neither stall nor exhaust the harness:
the first lines are kept with their times, then a tail of the most recent
output; the log file keeps everything up to a size cap; whatever is not kept is
counted and said so in the log (``OutputLimits``).

Stopping escalates from SIGTERM to SIGKILL for the whole group, with a deadline
at every step; the moment the harness began tearing the worker down and whether
it needed SIGKILL are recorded.
"""

from __future__ import annotations

import collections
import os
import select
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from string import Formatter

from harness.errors import LaunchError, ScenarioError
from harness.locust_release import is_release, quoted_python, version_of
from harness.output import OutputLine

PEERS = Path(__file__).parent / "peers"

BUILTIN_WORKERS: dict[str, str] = {
    "reference": "{python} -m worker --master-host {host} --master-port {port} --heartbeat-interval {heartbeat_interval}",
    # Locust reads its interval constants from locust.runners at call time; the locustfile sets them from the env.
    "locust": "env LC_HEARTBEAT_INTERVAL={heartbeat_interval} {python} -m locust -f {peers}/locustfile.py --worker "
    "--master-host {host} --master-port {port} --loglevel INFO",
}
PLACEHOLDERS = {"host", "port", "heartbeat_interval", "python", "peers"}
DRAIN_POLL = 0.2  # seconds the drain thread waits for output before it checks whether it should stop
DRAIN_JOIN = 5.0  # seconds stop() waits for the drain to read what is left in the pipe
READ_CHUNK = 1 << 20

OnLine = Callable[[float, str], None]


def _builtin(template: str) -> str:
    """The command template behind a built-in name; ``locust@VERSION`` is the ``locust`` one (run by that release)."""
    if is_release(template):
        version_of(template)  # a malformed one is a usage error here
        return BUILTIN_WORKERS["locust"]
    return BUILTIN_WORKERS.get(template, template)


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in Formatter().parse(_builtin(template)) if name is not None}


def takes_interval(template: str) -> bool:
    """True if the worker command passes the harness's heartbeat interval on (``{heartbeat_interval}``)."""
    return "heartbeat_interval" in _fields(template)


def render_command(template: str, host: str, port: int, heartbeat_interval: float) -> str:
    """Fill a worker command template: ``reference``, ``locust``, ``locust@VERSION`` (that release of Locust, installed
    into a cached environment on first use: ``harness.locust_release``) or any shell text with {host} {port}."""
    python = shlex.quote(sys.executable)
    if is_release(template):
        python = quoted_python(version_of(template))
    template = _builtin(template)
    fields = _fields(template)
    unknown = fields - PLACEHOLDERS
    if unknown:
        raise ScenarioError(f"worker command has unknown placeholders {sorted(unknown)}; allowed: {sorted(PLACEHOLDERS)}")
    if "port" not in fields:
        raise ScenarioError(f"worker command must contain {{port}} so the worker can find the master: {template!r}")
    return template.format(
        host=host,
        port=port,
        heartbeat_interval=f"{heartbeat_interval:g}",
        python=python,
        peers=shlex.quote(str(PEERS)),
    )


@dataclass(frozen=True)
class OutputLimits:
    """What the drain keeps of a worker's output.

    ``head_lines`` / ``head_bytes``: the first lines, each with its time, handed to ``on_line`` (the trace).
    ``tail_bytes``: after that, the most recent output (split into lines at the end, each with its read time).
    ``line_bytes``: a longer line is cut (and says so). ``file_bytes``: the log file keeps this much.
    """

    head_lines: int = 20_000
    head_bytes: int = 8 << 20
    tail_bytes: int = 1 << 20
    line_bytes: int = 16 << 10
    file_bytes: int = 256 << 20


class OutputDrain:
    """Reads a pipe until EOF (or ``stop``), timestamps lines, writes the log file, keeps a bounded record."""

    def __init__(self, fd: int, log_path: Path, clock: Callable[[], float], on_line: OnLine | None, limits: OutputLimits):
        self._fd = fd
        self._log = log_path.open("wb")
        self._clock = clock
        self._on_line = on_line
        self.limits = limits
        self._lock = threading.Lock()
        self.head: list[OutputLine] = []
        self._head_bytes = 0
        self._head_full = False
        self._partial = b""  # an unfinished line (head phase)
        self._partial_t = 0.0
        self._tail: collections.deque[tuple[float, bytes]] = collections.deque()
        self._tail_size = 0
        self.total_bytes = 0
        self.total_lines = 0
        self.lines_not_kept = 0  # between the head and the kept tail
        self.file_bytes = 0
        self.bytes_not_written = 0
        self.cut_lines = 0
        self.error: str | None = None
        self._stop = threading.Event()
        self._stop_by = 0.0
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"output-drain-{fd}", daemon=True)

    def start(self) -> OutputDrain:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while True:
                ready, _, _ = select.select([self._fd], [], [], DRAIN_POLL)
                if self._stop.is_set() and (not ready or time.monotonic() > self._stop_by):
                    break  # asked to stop: read on while output still flows, but not past the deadline
                if not ready:
                    continue
                chunk = os.read(self._fd, READ_CHUNK)
                if not chunk:
                    break
                self._take(self._clock(), chunk)
        except Exception as exc:  # never let the drain die silently: the worker would stall on a full pipe
            self.error = repr(exc)
        finally:
            self._finish()

    def _take(self, t: float, chunk: bytes) -> None:
        self.total_bytes += len(chunk)
        self.total_lines += chunk.count(b"\n")
        room = self.limits.file_bytes - self.file_bytes
        if room > 0:
            self._log.write(chunk[:room])
            self._log.flush()
            self.file_bytes += min(room, len(chunk))
        self.bytes_not_written += max(0, len(chunk) - max(room, 0))
        if not self._head_full:
            self._take_head(t, chunk)
        else:
            self._take_tail(t, chunk)

    def _take_head(self, t: float, chunk: bytes) -> None:
        if not self._partial:
            self._partial_t = t
        data = self._partial + chunk
        parts = data.split(b"\n")
        self._partial = parts.pop()
        for i, raw in enumerate(parts):
            if self._head_full:  # the rest of this chunk goes to the tail
                rest = b"\n".join(parts[i:]) + b"\n" + self._partial
                self._partial = b""
                self._take_tail(t, rest)
                return
            self._keep(self._partial_t if i == 0 else t, raw)
        if len(self._partial) > self.limits.line_bytes:  # an endless line: keep its start, cut the rest
            self._keep(self._partial_t, self._partial)
            self._partial = b""

    def _keep(self, t: float, raw: bytes) -> None:
        if len(raw) > self.limits.line_bytes:
            self.cut_lines += 1
            raw = _cut(raw, self.limits.line_bytes)
        text = raw.rstrip(b"\r").decode("utf-8", "replace")
        line = OutputLine(t, text)
        with self._lock:
            self.head.append(line)
        self._head_bytes += len(raw)
        if self._on_line is not None:
            self._on_line(t, text)
        if len(self.head) >= self.limits.head_lines or self._head_bytes >= self.limits.head_bytes:
            self._head_full = True

    def _take_tail(self, t: float, chunk: bytes) -> None:
        with self._lock:
            self._tail.append((t, chunk))
            self._tail_size += len(chunk)
            while self._tail_size - len(self._tail[0][1]) >= self.limits.tail_bytes:
                _, dropped = self._tail.popleft()
                self._tail_size -= len(dropped)
                self.lines_not_kept += dropped.count(b"\n")

    def _finish(self) -> None:
        if self._partial and not self._head_full:
            self._keep(self._partial_t, self._partial)
            self._partial = b""
        notes = []
        if self.bytes_not_written:
            notes.append(f"output beyond {self.limits.file_bytes} bytes not kept in this file: {self.bytes_not_written} bytes")
        if self.error:
            notes.append(f"the output drain failed: {self.error}")
        try:
            for note in notes:
                self._log.write(f"\n[locust-conformance: {note}]\n".encode())
            self._log.close()
        except OSError:
            pass
        self._finished.set()

    def stop(self, timeout: float) -> bool:
        """Ask the drain to end once the pipe is quiet; True if it finished within ``timeout`` seconds."""
        self._stop_by = time.monotonic() + timeout / 2
        self._stop.set()
        return self._finished.wait(timeout)

    def wait_quiet(self, quiet: float, timeout: float) -> None:
        """Return once no output arrived for ``quiet`` seconds (or the pipe closed), at most after ``timeout``."""
        deadline = time.monotonic() + timeout
        seen = -1
        while time.monotonic() < deadline and not self._finished.is_set():
            if self.total_bytes == seen:
                return
            seen = self.total_bytes
            self._finished.wait(quiet)

    def lines(self, since: float | None = None) -> list[OutputLine]:
        """The kept lines (the head, then the tail split into lines), oldest first; from ``since`` if given."""
        with self._lock:
            head = list(self.head)
            tail = list(self._tail)
        out = head + _tail_lines(tail, self.limits.line_bytes)
        return out if since is None else [line for line in out if line.t >= since]

    @property
    def kept_everything(self) -> bool:
        return not self._head_full or self.lines_not_kept == 0


def _tail_lines(chunks: list[tuple[float, bytes]], line_bytes: int) -> list[OutputLine]:
    """The tail's chunks as lines; the first (probably partial) line is dropped, each line gets its chunk's time."""
    out: list[OutputLine] = []
    pending = b""
    pending_t = 0.0
    for i, (t, chunk) in enumerate(chunks):
        if not pending:
            pending_t = t
        parts = (pending + chunk).split(b"\n")
        pending = parts.pop()
        for j, raw in enumerate(parts):
            if i == 0 and j == 0:
                continue  # the chunk before it was dropped: this line's start is gone
            out.append(OutputLine(pending_t if j == 0 else t, _cut(raw, line_bytes).rstrip(b"\r").decode("utf-8", "replace")))
    if pending:
        out.append(OutputLine(pending_t, _cut(pending, line_bytes).decode("utf-8", "replace")))
    return out


def _cut(raw: bytes, line_bytes: int) -> bytes:
    """A line no longer than ``line_bytes``, saying so when it was cut."""
    if len(raw) <= line_bytes:
        return raw
    return raw[:line_bytes] + f" [... line cut by the harness: {len(raw)} bytes]".encode()


class WorkerProcess:
    """A worker command running in its own session; use as a context manager so it is always reaped.

    Args:
        command: the shell command (already rendered).
        log_path: the file its output goes to.
        env: extra environment variables.
        clock: the clock output lines are timestamped with (the trace's, so they can be judged by time).
        on_line: called with ``(t, text)`` for each kept line as it is read (from the drain thread).
        limits: what of the output is kept (see ``OutputLimits``).
    """

    def __init__(
        self,
        command: str,
        log_path: Path,
        env: dict[str, str] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_line: OnLine | None = None,
        limits: OutputLimits | None = None,
    ) -> None:
        self.command = command
        self.log_path = log_path
        self.env = env
        self.clock = clock
        self._on_line = on_line
        self.limits = limits or OutputLimits()
        self._proc: subprocess.Popen[bytes] | None = None
        self.drain: OutputDrain | None = None
        self.killed_by_harness = False
        self.needed_sigkill = False
        self.teardown_at: float | None = None  # when the harness began tearing the worker down (the clock's time)
        self.exited_at: float | None = None  # when the harness first saw the process ended

    def start(self) -> WorkerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        read_end, write_end = os.pipe()
        try:
            self._proc = subprocess.Popen(
                ["/bin/sh", "-c", f"exec {self.command}"],
                stdin=subprocess.DEVNULL,
                stdout=write_end,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **(self.env or {})},
            )
        except OSError as exc:
            os.close(read_end)
            raise LaunchError("launch", f"a running process for {self.command!r}", repr(exc)) from exc
        finally:
            os.close(write_end)
        self.drain = OutputDrain(read_end, self.log_path, self.clock, self._on_line, self.limits).start()
        return self

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self._proc is not None, "not started"
        return self._proc.pid

    def _seen(self, code: int | None) -> int | None:
        if code is not None and self.exited_at is None:
            self.exited_at = self.clock()
        return code

    def poll(self) -> int | None:
        """The exit code if the process has ended (negative: killed by that signal), else None."""
        return None if self._proc is None else self._seen(self._proc.poll())

    def wait(self, timeout: float) -> int | None:
        """Wait at most ``timeout`` seconds for the process to end; its code, or None if still running."""
        assert self._proc is not None, "not started"
        try:
            return self._seen(self._proc.wait(max(0.0, timeout)))
        except subprocess.TimeoutExpired:
            return None

    def signal_group(self, sig: signal.Signals) -> None:
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass

    def begin_teardown(self) -> None:
        """Mark the moment the harness started ending the worker (output from then on is the harness's doing)."""
        if self.teardown_at is None:
            self.teardown_at = self.clock()

    def stop(self, grace: float = 3.0) -> int:
        """End the whole process group: SIGTERM, then SIGKILL after ``grace`` s. Always reaps."""
        if self._proc is None:
            return 0
        code = self.poll()
        if code is None:
            self.killed_by_harness = True
            self.begin_teardown()
            self.signal_group(signal.SIGTERM)
            code = self.wait(grace)
        if code is None:
            self.needed_sigkill = True
            self.signal_group(signal.SIGKILL)
            code = self.wait(5.0)
        self.signal_group(signal.SIGKILL)  # stragglers the worker may have forked
        if self.drain is not None:
            self.drain.stop(DRAIN_JOIN)
        if code is None:
            raise LaunchError("reap", f"process {self.pid} to end after SIGKILL", "still running")
        return code

    def output(self, tail_lines: int | None = None) -> str:
        """What the worker printed so far, as the log file holds it (the last ``tail_lines`` lines if given)."""
        try:
            text = self.log_path.read_text("utf-8", "replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-tail_lines:]) if tail_lines else text

    def lines(self, since: float | None = None) -> list[OutputLine]:
        """The kept output lines with their times (see ``OutputLimits``)."""
        return [] if self.drain is None else self.drain.lines(since)


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    if code == 127:
        return "exit code 127 (command not found)"
    return f"exit code {code}"
