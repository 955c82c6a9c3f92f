"""Stack dumps of a stuck worker, whatever language it is written in.

The runtime is read from the processes themselves (the worker and everything it
started), never from the command text: the executable's name for Python, a JVM
and Node.js, the Go build info inside the binary for Go. Then each process gets
the dump its runtime allows:

- Python: ``py-spy dump --pid``.
- JVM: ``jcmd PID Thread.print``, else ``jstack PID``, else SIGQUIT to that pid
  only (the JVM prints its thread dump to its own output and keeps running).
- Go: SIGQUIT makes it print every goroutine and exit, so only at the very end
  (``final=True``), once the harness has begun tearing the worker down.

Each dump is parsed into threads (``ThreadStack``) so a finding can say which
thread is stuck where (``DumpResult.summary``); the full text goes to a file.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import struct
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

import psutil

from harness.launcher import WorkerProcess

Note = Callable[[str], None]

GO_MAGIC = b"\xff Go buildinf:"
GO_SECTIONS = {b".go.buildinfo", b".gopclntab"}
GO_SCAN_LIMIT = 64 << 20  # bytes of a binary searched for the Go build info magic
SCAN_CHUNK = 1 << 20
QUIET = 0.5  # seconds without new output after which a dump printed to the output counts as complete
POLL = 0.05
MAX_THREADS = 4  # threads named per process in a summary
ENDED = "no stack dump: the process had already ended"
GO_NOT_YET = "not dumped: a Go dump (SIGQUIT) ends the process; it is taken at the end"
SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "busybox", "env", "timeout", "nohup", "tini", "dumb-init"}


class Runtime(StrEnum):
    """The language runtime a process runs."""

    PYTHON = "python"
    JVM = "jvm"
    GO = "go"
    NODE = "node"
    OTHER = "other"


LABELS = {Runtime.PYTHON: "Python", Runtime.JVM: "JVM", Runtime.GO: "Go", Runtime.NODE: "Node.js", Runtime.OTHER: "process"}


@dataclass(frozen=True)
class ProcessRuntime:
    """One process of the worker's tree and its runtime. ``started``: its creation time (guards against pid reuse)."""

    pid: int
    runtime: Runtime
    exe: str
    name: str
    started: float = 0.0


# ---------------------------------------------------------------------------------------------------------------------
# Runtime detection


def _elf_sections(f: BinaryIO, head: bytes) -> set[bytes]:
    """The section names of an ELF file (empty if the headers are missing or odd)."""
    if len(head) < 64 or head[4] not in (1, 2) or head[5] not in (1, 2):
        return set()
    end = "<" if head[5] == 1 else ">"
    if head[4] == 2:
        (shoff,) = struct.unpack_from(end + "Q", head, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from(end + "HHH", head, 0x3A)
        offset_fmt, offset_at = "QQ", 0x18
    else:
        (shoff,) = struct.unpack_from(end + "I", head, 0x20)
        shentsize, shnum, shstrndx = struct.unpack_from(end + "HHH", head, 0x2E)
        offset_fmt, offset_at = "II", 0x10
    if not shoff or not shnum or shstrndx >= shnum or shentsize < offset_at + struct.calcsize(offset_fmt) or shnum > 4096:
        return set()
    f.seek(shoff)
    table = f.read(shentsize * shnum)
    if len(table) < shentsize * shnum:
        return set()
    entries = []
    for i in range(shnum):
        base = i * shentsize
        (name,) = struct.unpack_from(end + "I", table, base)
        offset, size = struct.unpack_from(end + offset_fmt, table, base + offset_at)
        entries.append((name, offset, size))
    _, str_offset, str_size = entries[shstrndx]
    f.seek(str_offset)
    strings = f.read(min(str_size, 1 << 20))
    names = set()
    for name, _, _ in entries:
        if name < len(strings):
            stop = strings.find(b"\0", name)
            names.add(strings[name : stop if stop >= 0 else len(strings)])
    return names


def _scan(f: BinaryIO, needle: bytes, limit: int) -> bool:
    """True if ``needle`` occurs in the first ``limit`` bytes of ``f`` (read in chunks)."""
    f.seek(0)
    carry = b""
    read = 0
    while read < limit:
        chunk = f.read(min(SCAN_CHUNK, limit - read))
        if not chunk:
            return False
        if needle in carry + chunk:
            return True
        read += len(chunk)
        carry = chunk[-(len(needle) - 1) :]
    return False


_GO_FILES: dict[tuple[int, int, int, int], bool] = {}  # (device, inode, size, mtime) -> is a Go binary


def _go_file(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if head[:4] != b"\x7fELF":
                return False
            try:
                if _elf_sections(f, head) & GO_SECTIONS:
                    return True
            except (struct.error, ValueError, IndexError, OverflowError):
                pass
            return _scan(f, GO_MAGIC, GO_SCAN_LIMIT)
    except OSError:
        return False


def is_go_binary(path: str) -> bool:
    """True for an ELF file that carries Go build info (section ``.go.buildinfo`` or its magic bytes)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _GO_FILES:
        if len(_GO_FILES) > 256:
            _GO_FILES.clear()
        _GO_FILES[key] = _go_file(path)
    return _GO_FILES[key]


def _in_jdk(exe: str) -> bool:
    """True for a launcher inside a JDK/JRE tree (a ``libjvm.so`` next to its ``bin``)."""
    home = Path(exe).parent.parent
    candidates = [home / "lib" / "server", home / "lib" / "client"]
    if (home / "release").is_file() or home.name == "jre":  # Java 8 keeps it under lib/<arch>/ (of the jre)
        candidates += [*home.glob("lib/*/server"), *home.glob("jre/lib/*/server")]
    return any((c / "libjvm.so").is_file() for c in candidates)


def _maps_jvm(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as f:
            return any("/libjvm.so" in line for line in f)
    except OSError:
        return False


def classify(exe: str, pid: int | None = None) -> Runtime:
    """The runtime of an executable (``pid``: the running process, to read a deleted binary and its mappings)."""
    base = os.path.basename(exe)
    if not base:
        return Runtime.OTHER
    if base in ("java", "javaw") or _in_jdk(exe):
        return Runtime.JVM
    if base.startswith("python"):
        return Runtime.PYTHON
    if base in ("node", "nodejs"):
        return Runtime.NODE
    if base in SHELLS:
        return Runtime.OTHER
    image = f"/proc/{pid}/exe" if pid is not None and os.path.exists(f"/proc/{pid}/exe") else exe
    if is_go_binary(image):
        return Runtime.GO
    if pid is not None and _maps_jvm(pid):  # a custom launcher that embeds a JVM
        return Runtime.JVM
    return Runtime.OTHER


def detect(pid: int) -> list[ProcessRuntime]:
    """The runtime of process ``pid`` and of all its descendants, root first; vanished processes are skipped."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return []
    found = []
    for proc in procs:
        try:
            with proc.oneshot():
                name = proc.name()
                started = proc.create_time()
                try:
                    exe = proc.exe()
                except psutil.AccessDenied:
                    exe = ""
        except psutil.Error:  # NoSuchProcess (also a zombie), AccessDenied
            continue
        exe = os.path.realpath(exe) if exe else ""
        found.append(ProcessRuntime(proc.pid, classify(exe, proc.pid), exe, name, started))
    return found


# ---------------------------------------------------------------------------------------------------------------------
# Parsing dumps into threads


@dataclass
class ThreadStack:
    """One thread (or goroutine) of a dump: its name, its state as the dump says it, its frames (top first)."""

    name: str
    state: str
    frames: list[str] = field(default_factory=list)


JVM_HEADER = re.compile(r'^"(?P<name>.*)"\s+(?:#\d+\b|.*?\b(?:os_prio|prio|tid|nid)=)(?P<rest>.*)$')
JVM_HEADER_STATE = re.compile(r"\bnid=\S+\s+(?P<state>[^\[]*?)\s*(?:\[|$)")
JVM_DEADLOCK_THREAD = re.compile(r'^"(?P<name>.*)":\s*$')


def parse_jvm(text: str) -> list[ThreadStack]:
    """Threads of a HotSpot thread dump (``jcmd Thread.print``, ``jstack`` or SIGQUIT output)."""
    threads: list[ThreadStack] = []
    cur: ThreadStack | None = None
    for raw in text.splitlines():
        line = raw.rstrip()
        m = JVM_HEADER.match(line)
        if m:
            st = JVM_HEADER_STATE.search(line)
            cur = ThreadStack(m["name"], st["state"] if st else "")
            threads.append(cur)
            continue
        if cur is None:
            continue
        if not line or not line[0].isspace():
            cur = None
            continue
        s = line.strip()
        if s.startswith("java.lang.Thread.State:"):
            cur.state = s.partition(":")[2].strip()
        elif s.startswith("at "):
            cur.frames.append(s[3:].strip())
    return threads


def jvm_deadlocks(text: str) -> list[list[str]]:
    """The cycles of the JVM's own deadlock report (``Found one Java-level deadlock:``), as thread names."""
    cycles: list[list[str]] = []
    cur: list[str] | None = None
    for raw in text.splitlines():
        line = raw.rstrip()
        if line.startswith("Found one Java-level deadlock"):
            cur = []
            cycles.append(cur)
        elif line.startswith("Java stack information for the threads listed above") or line.startswith("Found "):
            cur = None
        elif cur is not None:
            m = JVM_DEADLOCK_THREAD.match(line)
            if m and m["name"] not in cur:
                cur.append(m["name"])
    return [c for c in cycles if c]


PYSPY_HEADER = re.compile(r'^Thread (?P<id>\S+) \((?P<state>[^)]*)\)(?::\s*"(?P<name>.*)")?\s*$')
PYSPY_FRAME = re.compile(r"^ {4}(?P<frame>\S.*?)\s*$")


def parse_pyspy(text: str) -> list[ThreadStack]:
    """Threads of a ``py-spy dump``."""
    threads: list[ThreadStack] = []
    cur: ThreadStack | None = None
    for raw in text.splitlines():
        m = PYSPY_HEADER.match(raw.rstrip())
        if m:
            cur = ThreadStack(m["name"] if m["name"] is not None else f"thread {m['id']}", m["state"])
            threads.append(cur)
            continue
        if cur is None:
            continue
        f = PYSPY_FRAME.match(raw)
        if f:
            cur.frames.append(f["frame"])
        elif raw.strip() and not raw.startswith(" " * 5):  # deeper indents are locals (--locals): part of the thread
            cur = None
    return threads


GO_HEADER = re.compile(r"^goroutine (?P<id>\d+)\b[^\[]*\[(?P<state>[^\]]*)\]:\s*$")
GO_FUNC = re.compile(r"^(?P<func>.+?)\((?:[^()]*|\.\.\.)\)$")


def parse_go(text: str) -> list[ThreadStack]:
    """Goroutines of a Go traceback (SIGQUIT or panic output)."""
    threads: list[ThreadStack] = []
    cur: ThreadStack | None = None
    pending: str | None = None  # a function whose location line has not come yet
    created = False  # after "created by": the rest is not a frame

    def flush(loc: str | None = None) -> None:
        nonlocal pending
        if cur is not None and pending is not None:
            cur.frames.append(f"{pending} ({loc})" if loc else pending)
        pending = None

    for raw in text.splitlines():
        line = raw.rstrip()
        m = GO_HEADER.match(line)
        if m:
            flush()
            cur = ThreadStack(f"goroutine {m['id']}", m["state"])
            threads.append(cur)
            created = False
            continue
        if cur is None:
            continue
        if not line:
            flush()
            cur = None
        elif line[0].isspace():
            if not created:
                flush(line.split()[0])
        elif line.startswith("created by "):
            flush()
            created = True
        elif not line.startswith("..."):
            flush()
            if not created:
                f = GO_FUNC.match(line)
                pending = f["func"] if f else line
    flush()
    return threads


def parse(runtime: Runtime, text: str) -> list[ThreadStack]:
    """Threads of a dump in the format of ``runtime``'s tool (empty for runtimes without one)."""
    if runtime is Runtime.JVM:
        return parse_jvm(text)
    if runtime is Runtime.PYTHON:
        return parse_pyspy(text)
    if runtime is Runtime.GO:
        return parse_go(text)
    return []


def jvm_dump_from_output(lines: Sequence[str]) -> str | None:
    """The thread dump a JVM printed on SIGQUIT: from ``Full thread dump`` to the end of the thread list.

    The end: the ``JNI global refs`` line, plus the deadlock report that may follow it (the heap summary is left out).
    """
    start = next((i for i, line in enumerate(lines) if "Full thread dump" in line), None)
    if start is None:
        return None
    out = [lines[start][lines[start].find("Full thread dump") :]]
    in_deadlock = False
    after_threads = False
    for line in lines[start + 1 :]:
        if after_threads:
            if line.startswith(("Found one Java-level deadlock", "Found a total of")):
                in_deadlock = True
            elif in_deadlock and re.match(r"^Found \d+ deadlocks?\.", line):
                out.append(line)
                in_deadlock = False
                continue
            elif not in_deadlock and line.strip():
                break
        elif line.startswith("JNI global refs"):
            after_threads = True
        out.append(line)
    return "\n".join(out).rstrip() + "\n"


def go_dump_from_output(lines: Sequence[str]) -> str | None:
    """A Go SIGQUIT dump from a process's output: from the ``SIGQUIT: quit`` line (else the first goroutine) to the end."""
    start = next((i for i, line in enumerate(lines) if "SIGQUIT: quit" in line), None)
    if start is not None:
        first = lines[start][lines[start].find("SIGQUIT: quit") :]  # it may follow an unfinished line of the worker's
        return "\n".join([first, *lines[start + 1 :]]).rstrip() + "\n"
    start = next((i for i, line in enumerate(lines) if GO_HEADER.match(line)), None)
    return None if start is None else "\n".join(lines[start:]).rstrip() + "\n"


# ---------------------------------------------------------------------------------------------------------------------
# Which thread looks stuck where

JVM_SERVICE = re.compile(
    r"^(Reference Handler|Finalizer|Signal Dispatcher|Common-Cleaner|Attach Listener|Notification Thread|Service Thread"
    r"|Monitor Deflation Thread|Sweeper thread|DestroyJavaVM|process reaper|C\d CompilerThread\d*|VM Thread"
    r"|VM Periodic Task Thread|GC Thread#\d+|G1 .*|GC .*|Gang worker.*|Z[A-Z][a-z]+.*|Shenandoah.*|Concurrent .*GC.*)$"
)
JVM_INTERNAL = ("java.", "javax.", "jdk.", "sun.", "com.sun.", "zmq.", "org.zeromq.")
PY_INTERNAL_FILES = {"threading.py", "selectors.py", "queue.py", "socket.py", "ssl.py", "subprocess.py", "socketserver.py"}
PY_INTERNAL_DIRS = ("zmq/", "gevent/", "greenlet/", "asyncio/", "concurrent/futures/", "eventlet/", "<frozen")
GO_STDLIB = {"runtime", "internal", "syscall", "os", "io", "net", "sync", "time", "bufio", "context", "reflect", "fmt"}


def _py_file(frame: str) -> str:
    m = re.search(r"\(([^()]*?)(?::\d+)?\)$", frame)
    return m.group(1) if m else ""


def _go_package(frame: str) -> str:
    func = frame.split(" (", 1)[0]
    slash = func.rfind("/")
    dot = func.find(".", slash + 1)
    return func[:dot] if dot > 0 else func


def is_internal(runtime: Runtime, frame: str) -> bool:
    """True for a frame of the runtime, its standard library's plumbing or ZeroMQ rather than of the application."""
    if runtime is Runtime.JVM:
        return frame.startswith(JVM_INTERNAL) or "$$Lambda" in frame
    if runtime is Runtime.PYTHON:
        path = _py_file(frame)
        return os.path.basename(path) in PY_INTERNAL_FILES or any(path.startswith(d) or "/" + d in path for d in PY_INTERNAL_DIRS)
    if runtime is Runtime.GO:
        package = _go_package(frame)
        return package.split("/")[0] in GO_STDLIB or "zmq" in package.lower()
    return False


def app_frame(runtime: Runtime, thread: ThreadStack) -> str | None:
    """The first frame of the application's own code (top first), if any."""
    return next((f for f in thread.frames if not is_internal(runtime, f)), None)


def short_frame(frame: str) -> str:
    """A frame's function without its location: ``jdk.internal.misc.Unsafe.park``."""
    return frame.split(" (", 1)[0] if " (" in frame else frame.split("(", 1)[0]


GO_BLOCKED = ("chan receive", "chan send", "select", "semacquire", "sync.")


def state_rank(runtime: Runtime, state: str) -> int:
    """0 blocked, 1 waiting, 2 waiting with a timeout (a timer loop), 3 running, 4 unknown: the order threads are named."""
    s = state.strip().lower()
    if runtime is Runtime.GO:
        s = s.split(",")[0]
        if s.startswith(GO_BLOCKED):
            return 0
        if s == "sleep":
            return 2
        if s in ("io wait", "syscall") or "wait" in s:
            return 1
        return 3 if s in ("running", "runnable") else 4
    if s.startswith("blocked") or "monitor entry" in s:
        return 0
    if "timed_waiting" in s or "sleep" in s:
        return 2
    if "wait" in s or "park" in s or "idle" in s:
        return 1
    return 3 if ("runnable" in s or "active" in s or "gil" in s) else 4


# Frames of a thread that is merely idle, waiting for work (a queue, a pool, a join): named after the others.
IDLE_FRAMES = (
    "BlockingQueue.take",
    "BlockingQueue.poll",
    "ThreadPoolExecutor.getTask",
    "java.lang.Thread.join",
    "get (queue.py",
    "_wait_for_tstate_lock",
    "join (threading.py",
)


def _idle(thread: ThreadStack) -> bool:
    return any(marker in frame for frame in thread.frames for marker in IDLE_FRAMES)


def stuck_threads(runtime: Runtime, threads: Sequence[ThreadStack], deadlocked: Sequence[str] = ()) -> list[ThreadStack]:
    """The threads worth naming, most suspicious first: deadlocked, blocked, waiting, then idle ones and timer loops;
    application code preferred.

    Runtime service threads and threads without frames are left out; so are threads that never leave runtime
    internals, unless no thread has application frames at all.
    """
    cands = [(i, t) for i, t in enumerate(threads) if t.frames and not (runtime is Runtime.JVM and JVM_SERVICE.match(t.name))]
    with_app = [(i, t) for i, t in cands if app_frame(runtime, t) is not None]
    chosen = with_app or cands
    chosen.sort(key=lambda it: (it[1].name not in deadlocked, _idle(it[1]), state_rank(runtime, it[1].state), it[0]))
    return [t for _, t in chosen]


def describe_thread(runtime: Runtime, thread: ThreadStack) -> str:
    """``'name' STATE in app-frame [top: function]``."""
    app = app_frame(runtime, thread)
    top = thread.frames[0] if thread.frames else "?"
    where = f"in {app} [top: {short_frame(top)}]" if app is not None and app != top else f"in {app or top}"
    return " ".join(p for p in (f"'{thread.name}'", thread.state, where) if p)


@dataclass
class StackDump:
    """One process's dump (or why there is none)."""

    runtime: Runtime
    pid: int
    method: str
    text: str = ""
    threads: list[ThreadStack] = field(default_factory=list)
    error: str | None = None
    exe: str = ""
    deadlocks: list[list[str]] = field(default_factory=list)
    seconds: float = 0.0
    exit_code: int | None = None  # for a dump that ended the process (Go), its exit code

    def summary(self, max_threads: int = MAX_THREADS) -> str:
        """One line: the threads that look stuck and where, deadlocks first."""
        head = f"{LABELS[self.runtime]} pid {self.pid}"
        if self.error is not None and not self.threads:
            return f"{head}: {self.error}"
        parts = [f"Java-level deadlock between {' and '.join(repr(n) for n in cycle)}" for cycle in self.deadlocks]
        deadlocked = [n for cycle in self.deadlocks for n in cycle]
        picked = stuck_threads(self.runtime, self.threads, deadlocked)
        parts += [describe_thread(self.runtime, t) for t in picked[:max_threads]]
        if len(picked) > max_threads:
            parts.append(f"{len(picked) - max_threads} more")
        if not parts:
            parts.append(f"{len(self.threads)} threads, none with frames")
        if self.error is not None:
            parts.append(self.error)
        return f"{head} ({self.method}): " + "; ".join(parts)


@dataclass
class DumpResult:
    """All dumps taken of a worker's process tree; ``path``: the file holding them (None if nothing was written)."""

    dumps: list[StackDump] = field(default_factory=list)
    path: Path | None = None
    seconds: float = 0.0
    message: str | None = None  # when there was nothing to dump at all

    def summary(self) -> str:
        """One line for a finding: which threads look stuck where, per process."""
        if not self.dumps:
            return self.message or "no stack dump: no process found"
        parts = [d.summary() for d in self.dumps]
        if self.path is not None and any(d.threads for d in self.dumps):
            parts.append(f"full dump in {self.path.name}")
        elif self.path is not None and any(d.text for d in self.dumps):
            parts.append(f"details in {self.path.name}")
        return "; ".join(parts)


# ---------------------------------------------------------------------------------------------------------------------
# Taking dumps


def find_py_spy() -> str | None:
    """py-spy next to the running interpreter (the venv's), else on PATH."""
    here = Path(sys.executable).parent / "py-spy"
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    return shutil.which("py-spy")


def _jdk_tool(name: str, exe: str) -> str | None:
    """A JDK tool from the target JVM's own JDK first (versions must match), else on PATH."""
    if exe:
        sibling = Path(exe).parent / name
        if sibling.is_file() and os.access(sibling, os.X_OK):
            return str(sibling)
    return shutil.which(name)


def _alive(proc: ProcessRuntime) -> psutil.Process | None:
    """The process if it still runs (and is the same one: same creation time), else None."""
    try:
        p = psutil.Process(proc.pid)
        if proc.started and abs(p.create_time() - proc.started) > 0.01:
            return None
        return None if p.status() == psutil.STATUS_ZOMBIE else p
    except psutil.Error:
        return None


def _run(cmd: list[str], timeout: float) -> tuple[int | None, str, str]:
    """Run a tool: (exit code or None on timeout, stdout, stderr)."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode("utf-8", "replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return None, out, f"no answer within {timeout:g} s"
    except OSError as exc:
        return 127, "", repr(exc)
    return done.returncode, done.stdout, done.stderr


def _gist(text: str, limit: int = 300) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return (" / ".join(lines[:3]))[:limit] or "no output"


PTRACE_REFUSED = ("permission denied", "operation not permitted", "os error 1)", "os error 13)", "ptrace")


def _dump_python(proc: ProcessRuntime, timeout: float, say: Note) -> StackDump:
    d = StackDump(Runtime.PYTHON, proc.pid, "py-spy dump", exe=proc.exe)
    spy = find_py_spy()
    if spy is None:
        d.error = "no stack dump: py-spy is not installed (pip install py-spy)"
        return d
    say(f"stack dump: py-spy dump on Python pid {proc.pid}")
    code, out, err = _run([spy, "dump", "--pid", str(proc.pid)], timeout)
    if code == 0 and out.strip():
        d.text = out
        d.threads = parse_pyspy(out)
        return d
    if _alive(proc) is None:
        d.error = ENDED
    elif code is None:
        d.error = f"py-spy did not answer within {timeout:g} s"
    elif any(k in (out + err).lower() for k in PTRACE_REFUSED):
        d.error = (
            f"py-spy could not attach: ptrace was refused (run as root, grant CAP_SYS_PTRACE, or set "
            f"kernel.yama.ptrace_scope=0): {_gist(err + out)}"
        )
    else:
        d.error = f"py-spy failed (exit code {code}): {_gist(err + out)}"
    d.text = out + err
    return d


def _wait_output(
    process: WorkerProcess,
    since: float,
    deadline: float,
    found: Callable[[list[str]], bool],
    give_up: Callable[[float], bool],
) -> list[str]:
    """Lines printed since ``since``: once ``found`` holds and the output was quiet for ``QUIET`` s, or at the deadline,
    or when ``give_up(seconds the output has been quiet)`` says the dump will not come."""
    seen = -1
    changed = time.monotonic()
    while True:
        texts = [line.text for line in process.lines(since=since)]
        now = time.monotonic()
        if len(texts) != seen:
            seen, changed = len(texts), now
        quiet = now - changed
        if (found(texts) and quiet >= QUIET) or now >= deadline or (not found(texts) and give_up(quiet)):
            return texts
        time.sleep(POLL)


def _dump_jvm(process: WorkerProcess, proc: ProcessRuntime, timeout: float, say: Note, tools: bool) -> StackDump:
    started = time.monotonic()
    deadline = started + timeout
    failures: list[str] = []
    attempts = [("jcmd Thread.print", "jcmd", ["Thread.print"]), ("jstack", "jstack", [])] if tools else []
    for method, tool, args in attempts:
        path = _jdk_tool(tool, proc.exe)
        if path is None:
            failures.append(f"{tool} not found")
            continue
        say(f"stack dump: {method} on JVM pid {proc.pid}")
        code, out, err = _run([path, str(proc.pid), *args], max(1.0, deadline - time.monotonic()))
        if code == 0 and "Full thread dump" in out:
            return StackDump(Runtime.JVM, proc.pid, method, out, parse_jvm(out), exe=proc.exe, deadlocks=jvm_deadlocks(out))
        if _alive(proc) is None:
            return StackDump(Runtime.JVM, proc.pid, method, error=ENDED, exe=proc.exe)
        failures.append(f"{tool} failed: {_gist(err + out, 160)}" if code is not None else f"{tool}: {err}")
    method = "SIGQUIT, from its output"
    d = StackDump(Runtime.JVM, proc.pid, method, exe=proc.exe)
    p = _alive(proc)
    if p is None:
        d.error = ENDED
        return d
    say(f"stack dump: SIGQUIT to JVM pid {proc.pid} (it prints its thread dump and keeps running)")
    since = process.clock()
    try:
        p.send_signal(signal.SIGQUIT)
    except psutil.Error:
        d.error = ENDED
        return d
    lines = _wait_output(
        process,
        since,
        max(deadline, time.monotonic() + 2.0),
        lambda ls: any("Full thread dump" in x for x in ls),
        lambda _quiet: _alive(proc) is None,  # a JVM that died of the signal prints nothing more
    )
    text = jvm_dump_from_output(lines)
    if text is None and _alive(proc) is None:
        d.error = "the JVM ended on SIGQUIT without printing a thread dump"
    elif text is None:
        d.error = f"no thread dump appeared in its output within {timeout:g} s after SIGQUIT (started with -Xrs?)"
    else:
        d.text, d.threads, d.deadlocks = text, parse_jvm(text), jvm_deadlocks(text)
    if failures:
        d.method = f"{method}; {'; '.join(failures)}"
    return d


def _wait_gone(process: WorkerProcess, proc: ProcessRuntime, deadline: float) -> tuple[bool, int | None]:
    """Wait for the process to end: (ended, exit code when it is the group leader, whose code we can read)."""
    if proc.pid == process.pid:
        code = process.wait(max(0.0, deadline - time.monotonic()))
        return code is not None, code
    while time.monotonic() < deadline:
        if _alive(proc) is None:
            return True, None
        time.sleep(POLL)
    return _alive(proc) is None, None


def _dump_go(process: WorkerProcess, proc: ProcessRuntime, timeout: float, say: Note) -> StackDump:
    d = StackDump(Runtime.GO, proc.pid, "SIGQUIT (ends the process), from its output", exe=proc.exe)
    p = _alive(proc)
    if p is None:
        d.error = ENDED
        return d
    deadline = time.monotonic() + timeout
    process.begin_teardown()
    say(f"stack dump: SIGQUIT to Go pid {proc.pid} (it prints every goroutine and exits)")
    since = process.clock()
    try:
        p.send_signal(signal.SIGQUIT)
    except psutil.Error:
        d.error = ENDED
        return d
    ended, d.exit_code = _wait_gone(process, proc, deadline)
    lines = _wait_output(
        process,
        since,
        max(deadline, time.monotonic() + 1.0) if ended else time.monotonic() + 2 * QUIET,
        lambda ls: go_dump_from_output(ls) is not None,
        lambda quiet: ended and quiet >= 2 * QUIET,  # it ended and printed no dump
    )
    text = go_dump_from_output(lines)
    if text is not None:
        d.text, d.threads = text, parse_go(text)
    if not ended:
        d.error = f"it did not exit within {timeout:g} s after SIGQUIT (does it catch the signal?)"
    elif text is None:
        d.error = "it exited after SIGQUIT but printed no goroutine dump (GOTRACEBACK=none, or output elsewhere?)"
    return d


def _header(d: StackDump) -> str:
    exe = d.exe or "?"
    return f"===== pid {d.pid} | {d.runtime} | {exe} | method: {d.method} | {d.seconds:.2f} s =====\n"


def dump(
    process: WorkerProcess,
    out: Path,
    *,
    final: bool,
    note: Note | None = None,
    timeout: float = 15.0,
    jvm_tools: bool = True,
) -> DumpResult:
    """Take a stack dump of every process of the worker's tree that has a known runtime; write them all to ``out``.

    ``final``: the worker is about to be killed anyway, so Go processes may be dumped (SIGQUIT ends them).
    ``note``: called with a line for each action taken (for the trace). ``timeout``: seconds per process.
    ``jvm_tools``: False skips jcmd and jstack and goes straight to SIGQUIT.
    """
    say: Note = note or (lambda _text: None)
    started = time.monotonic()
    result = DumpResult()
    if process.poll() is not None:
        result.message = ENDED
        return result
    procs = detect(process.pid)
    if not procs:
        result.message = ENDED
        return result
    say("stack dump: worker processes " + ", ".join(f"pid {p.pid} {p.name} ({p.runtime})" for p in procs))
    known = [p for p in procs if p.runtime is not Runtime.OTHER]
    for proc in known or procs[:3]:
        t0 = time.monotonic()
        if proc.runtime is Runtime.PYTHON:
            d = _dump_python(proc, timeout, say)
        elif proc.runtime is Runtime.JVM:
            d = _dump_jvm(process, proc, timeout, say, jvm_tools)
        elif proc.runtime is Runtime.GO:
            continue  # last: the dump ends the process
        else:
            what = "Node.js" if proc.runtime is Runtime.NODE else f"{proc.name} ({proc.exe or 'executable unknown'})"
            d = StackDump(proc.runtime, proc.pid, "none", error=f"no stack dump method for {what}", exe=proc.exe)
        d.seconds = time.monotonic() - t0
        result.dumps.append(d)
    for proc in (p for p in known if p.runtime is Runtime.GO):
        t0 = time.monotonic()
        if final:
            d = _dump_go(process, proc, timeout, say)
        else:
            d = StackDump(Runtime.GO, proc.pid, "none", error=GO_NOT_YET, exe=proc.exe)
        d.seconds = time.monotonic() - t0
        result.dumps.append(d)
    result.seconds = time.monotonic() - started
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8") as f:
            for d in result.dumps:
                f.write(_header(d))
                if d.error:
                    f.write(f"[{d.error}]\n")
                f.write(d.text if d.text.endswith("\n") or not d.text else d.text + "\n")
                f.write("\n")
        result.path = out
    except OSError as exc:
        result.dumps.append(StackDump(Runtime.OTHER, process.pid, "none", error=f"could not write {out}: {exc}"))
    return result
