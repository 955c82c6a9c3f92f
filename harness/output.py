"""Reading a worker's output for signs of a crash: one sign per event, named for what it is.

A worker's output is a list of lines. A crash usually spans several: a Python traceback, a Java stack trace
with ``Caused by:`` chains, a Go panic with its goroutines, a JVM fatal-error banner. ``signs`` groups each
such block and names it once (a ZeroMQ errno first, by its name: 156384765 is ETERM, not EFSM), so one event
is one sign however many of its lines mention ZeroMQ. Lines outside any block are read one by one.

Pure: lines in, signs out. When a sign happened (and so what it means) is the oracle's business.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from harness.zmq_errors import HAUSNUMERO, Flavour, describe, errno_name, name_from_text


@dataclass(frozen=True)
class OutputLine:
    """One line a worker printed, with when the harness read it (the trace's clock)."""

    t: float
    text: str


@dataclass(frozen=True)
class Sign:
    """One crash sign in the output: lines ``first..last`` (indexes), named by ``kind``."""

    kind: str  # "zmq.ETERM", "zmq.error", "go.panic", "python.traceback", ... (see KINDS)
    what: str  # what it means, for a person
    first: int
    last: int
    headline: str  # the most telling line of the block


KINDS: dict[str, str] = {
    "libzmq.assertion": "a libzmq assertion failure (the signature of two threads using one socket)",
    "heap-corruption": "heap corruption (double free or corrupted allocator state)",
    "segfault": "a segmentation fault",
    "python.fatal": "a fatal Python runtime error",
    "python.traceback": "an uncaught Python traceback",
    "python.task-traceback": "a user task raised (Locust logs it and the user carries on)",
    "thread.uncaught": "an uncaught exception that ended a thread",
    "greenlet.uncaught": "an uncaught exception in a greenlet",
    "jvm.fatal": "a fatal error of the Java runtime (hs_err banner)",
    "jvm.error": "a Java Error (OutOfMemoryError, StackOverflowError, ...)",
    "go.panic": "a Go panic",
    "go.fatal": "a fatal Go runtime error",
    "zmq.error": "a ZeroMQ error",
}

_PY_HEADER = "Traceback (most recent call last):"
_PY_THREAD = re.compile(r"^Exception in thread \S")
_PY_CHAIN = ("During handling of the above exception", "The above exception was the direct cause")
_GREENLET_FAILED = re.compile(r"<Greenlet at 0x[0-9a-fA-F]+.*> failed with \w+")
_USER_TASK = re.compile(r"locust/user/task\.py")
_JAVA_EXC = re.compile(
    r"^(?:Exception in thread \"(?P<thread>[^\"]*)\" )?"
    r"(?P<cls>(?:[a-zA-Z_$][\w$]*\.)+[A-Z][\w$]*(?:Exception|Error|Throwable))(?::\s?(?P<msg>.*))?$"
)
_JAVA_MORE = re.compile(r"^\s+at |^\s*\.\.\. \d+ (?:more|common frames omitted)|^Caused by: |^\s+Suppressed: ")
_JVM_FATAL = "# A fatal error has been detected by the Java Runtime Environment"
_GO_START = re.compile(r"^(?P<kind>panic|fatal error): ")
_GO_MORE = re.compile(
    r"^$|^goroutine \d+ |^\t|^\s|^created by |^\[signal |^exit status \d+$|^panic: |^fatal error: "
    r"|^[\w./()*\[\]{}\-]+\(.*\)(?: \{\.\.\.\})?$"  # a function frame: main.worker(0x0)
)
_PY_FATAL = "Fatal Python error"
_PY_FATAL_MORE = re.compile(r"^$|^\s|^Current thread |^Thread 0x|^Extension modules:")
_ZMQ_WORDS = re.compile(r"ZMQError|zmq\.error|ZMQException|org\.zeromq|zmq\.ZError|\bzmq\.[A-Z]\w+\(|\bat zmq\.[a-z]")
_ERRNO_NUMBER = re.compile(r"(?:[Ee]rrno|errno=|error code)\s*:?\s*(\d+)|\b(1563847\d\d|1563848\d\d)\b")
_SINGLE: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"Assertion failed"), "libzmq.assertion"),
    (re.compile(r"double free|corrupted (?:size|double-linked)|malloc\(\)|free\(\): invalid"), "heap-corruption"),
    (re.compile(r"Segmentation fault|SIGSEGV"), "segfault"),
    (re.compile(r"Unhandled exception in greenlet"), "greenlet.uncaught"),
)
_ZMQ_TEXTS = re.compile(
    r"Context was terminated|Operation cannot be accomplished in current state|not compatible with the socket type"
)
HEADLINE_CHARS = 240


def signs(lines: Sequence[str]) -> list[Sign]:
    """Every crash sign in ``lines``, one per block, in order."""
    out: list[Sign] = []
    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        end: int | None = None
        kind = ""
        headline = line
        if line.startswith(_PY_HEADER) or (_PY_THREAD.match(line) and i + 1 < n and lines[i + 1].startswith(_PY_HEADER)):
            end, headline = _python_block(lines, i)
            block = lines[i : end + 1]
            kind = "python.task-traceback" if any(_USER_TASK.search(x) for x in block) else "python.traceback"
            if _PY_THREAD.match(line):
                kind = "thread.uncaught" if kind == "python.traceback" else kind
        elif (match := _JAVA_EXC.match(line)) and (
            match.group("thread") is not None or (i + 1 < n and _JAVA_MORE.match(lines[i + 1]))
        ):
            end = _extend(lines, i, _JAVA_MORE)
            cls = match.group("cls")
            kind = "thread.uncaught" if match.group("thread") is not None else ""
            if cls.endswith("Error") and cls.startswith("java."):
                kind = "jvm.error"
        elif line.startswith(_JVM_FATAL) or (line.strip() == "#" and i + 1 < n and lines[i + 1].startswith(_JVM_FATAL)):
            end = _extend(lines, i, re.compile(r"^#"))
            kind = "jvm.fatal"
            headline = next((x for x in lines[i : end + 1] if re.match(r"^#\s+(SIG\w+|Internal Error|Out of Memory)", x)), line)
        elif go := _GO_START.match(line):
            end = _extend(lines, i, _GO_MORE)
            kind = "go.panic" if go.group("kind") == "panic" else "go.fatal"
        elif _PY_FATAL in line:
            end = _extend(lines, i, _PY_FATAL_MORE)
            kind = "python.fatal"
        if end is None:
            sign = _single(line, i)
            if sign is not None:
                out.append(sign)
            i += 1
            continue
        block = lines[i : end + 1]
        out.append(_classify(kind, block, i, end, headline))
        i = end + 1
    return out


def _extend(lines: Sequence[str], start: int, more: re.Pattern[str]) -> int:
    """The last index of the block starting at ``start`` whose following lines match ``more`` (trailing blanks left out)."""
    end = start
    j = start + 1
    while j < len(lines) and more.match(lines[j]):
        if lines[j].strip():
            end = j
        j += 1
    return end


def _python_block(lines: Sequence[str], start: int) -> tuple[int, str]:
    """A Python traceback (with chained ones and gevent's "failed with" line): its last index and exception line."""
    n = len(lines)
    j = start + (1 if not lines[start].startswith(_PY_HEADER) else 0) + 1
    last = start
    headline = lines[start]
    while j < n:
        while j < n and (lines[j].startswith((" ", "\t")) or not lines[j].strip() and j + 1 < n and lines[j + 1].startswith(" ")):
            j += 1
        if j < n:  # the exception line
            headline, last = lines[j], j
            j += 1
        # "During handling of the above exception..." chains another traceback on
        k = j
        while k < n and not lines[k].strip():
            k += 1
        if k < n and lines[k].startswith(_PY_CHAIN):
            k += 1
            while k < n and not lines[k].strip():
                k += 1
            if k < n and lines[k].startswith(_PY_HEADER):
                j = k + 1
                continue
        break
    if last + 1 < n and _GREENLET_FAILED.search(lines[last + 1]):
        last += 1
    return last, headline


def _single(line: str, index: int) -> Sign | None:
    for pattern, kind in _SINGLE:
        if pattern.search(line):
            return _classify(kind, [line], index, index, line)
    if _ZMQ_WORDS.search(line) or _ZMQ_TEXTS.search(line) or _ERRNO_NUMBER.search(line) and _zmq_errno(line):
        return _classify("zmq.error", [line], index, index, line)
    return None


def _zmq_errno(text: str) -> tuple[str, int | None] | None:
    """The ZeroMQ error a block names: by number (libzmq or JeroMQ numbering, told apart by the text) or by strerror."""
    jeromq = "org.zeromq" in text or "zmq.ZError" in text or "ZMQException" in text
    flavour = Flavour.JEROMQ if jeromq else Flavour.LIBZMQ
    for match in _ERRNO_NUMBER.finditer(text):
        code = int(match.group(1) or match.group(2))
        if code > HAUSNUMERO or jeromq or _ZMQ_WORDS.search(text):
            name = errno_name(code, flavour)
            if name is not None:
                return name, code
    name = name_from_text(text) if (_ZMQ_WORDS.search(text) or _ZMQ_TEXTS.search(text)) else None
    return (name, None) if name else None


def _classify(kind: str, block: Sequence[str], first: int, last: int, headline: str) -> Sign:
    text = "\n".join(block)
    zmq = _zmq_errno(text)
    zmq_involved = zmq is not None or _ZMQ_WORDS.search(text) is not None
    if kind in ("", "thread.uncaught", "python.traceback", "go.panic", "zmq.error", "jvm.error") and zmq_involved:
        if zmq is not None:
            name, code = zmq
            what = f"ZMQ {describe(name, code)}"
            if kind in ("thread.uncaught", "python.traceback", "go.panic"):
                what += f" ({KINDS[kind]})"
            return Sign(f"zmq.{name}", what, first, last, headline[:HEADLINE_CHARS])
        kind = kind or "zmq.error"
        what = KINDS[kind] + (" inside ZeroMQ" if kind != "zmq.error" else "")
        return Sign(kind, what, first, last, headline[:HEADLINE_CHARS])
    if not kind:  # a logged Java exception that has nothing to do with ZeroMQ: not a crash sign
        return Sign("", "", first, last, headline[:HEADLINE_CHARS])
    return Sign(kind, KINDS[kind], first, last, headline[:HEADLINE_CHARS])


def crash_signs(lines: Sequence[str]) -> list[Sign]:
    """``signs`` without the blocks that are no crash (a handled, logged Java exception unrelated to ZeroMQ)."""
    return [s for s in signs(lines) if s.kind]
