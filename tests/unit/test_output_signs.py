"""Reading output for crash signs: one sign per event, named for what it is (harness.output, harness.zmq_errors)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.output import crash_signs, signs
from harness.zmq_errors import HAUSNUMERO, Flavour, describe, errno_name, name_from_text

JAVA_ETERM = [
    'Exception in thread "zmq-receiver" org.zeromq.ZMQException: Errno 156384765 : Context was terminated',
    "\tat org.zeromq.ZMQ$Socket.mayRaise(ZMQ.java:2541)",
    "\tat org.zeromq.ZMQ$Socket.recv(ZMQ.java:2010)",
    "\tat LocustJvmWorker.receive(LocustJvmWorker.java:100)",
    "\tat java.base/java.lang.Thread.run(Thread.java:840)",
    "Caused by: zmq.ZError$CtxTerminatedException",
    "\tat zmq.SocketBase.recv(SocketBase.java:900)",
    "\t... 3 more",
]
GO_PANIC = [
    "panic: runtime error: index out of range [3] with length 3",
    "",
    "goroutine 7 [running]:",
    "main.(*Worker).handle(0xc000010000, {0xc00001c000, 0x3, 0x8})",
    "\t/src/worker.go:88 +0x1d",
    "created by main.main",
    "\t/src/worker.go:20 +0x2a",
    "exit status 2",
]
PY_CHAINED = [
    "Traceback (most recent call last):",
    '  File "w.py", line 3, in recv',
    "    sock.recv()",
    "zmq.error.ZMQError: Socket operation on non-socket",
    "",
    "During handling of the above exception, another exception occurred:",
    "",
    "Traceback (most recent call last):",
    '  File "w.py", line 9, in run',
    "    loop()",
    "RuntimeError: receive loop died",
    "2024-01-02T03:04:05Z <Greenlet at 0x7f0000: loop> failed with RuntimeError",
]


def test_a_java_stack_trace_is_one_sign_named_by_its_errno() -> None:
    (sign,) = crash_signs(["[12:00] INFO quitting", *JAVA_ETERM, "[12:00] INFO bye"])
    assert (sign.kind, sign.first, sign.last) == ("zmq.ETERM", 1, 8)
    assert sign.what.startswith("ZMQ ETERM (errno 156384765, 'Context was terminated': another thread terminated")
    assert "an uncaught exception that ended a thread" in sign.what
    assert sign.headline == JAVA_ETERM[0]


def test_a_go_panic_is_one_sign_with_its_goroutines() -> None:
    (sign,) = crash_signs(["starting", *GO_PANIC, "next line"])
    assert (sign.kind, sign.first, sign.last) == ("go.panic", 1, 8)


def test_a_chained_python_traceback_is_one_sign_with_its_greenlet_line() -> None:
    (sign,) = crash_signs(PY_CHAINED)
    assert (sign.first, sign.last) == (0, len(PY_CHAINED) - 1)
    assert sign.kind == "zmq.ENOTSOCK"  # the chain mentions the ZeroMQ error: that is what it is about


def test_a_logged_exception_unrelated_to_zeromq_is_no_crash() -> None:
    lines = ["java.net.ConnectException: Connection refused", "\tat java.base/sun.nio.ch.Net.connect0(Native Method)"]
    assert crash_signs(lines) == []
    assert [s.kind for s in signs(lines)] == [""]  # seen as a block, so its frames are not read one by one


def test_an_exception_thrown_inside_jeromq_is_a_zeromq_sign() -> None:
    lines = ["java.lang.ArrayIndexOutOfBoundsException: Index 3", "\tat zmq.pipe.YQueue.push(YQueue.java:90)"]
    assert [s.kind for s in crash_signs(lines)] == ["zmq.error"]


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("Assertion failed: !_more (src/fq.cpp:80)", "libzmq.assertion"),
        ("zmq.error.ZMQError: Resource temporarily unavailable", "zmq.EAGAIN"),
        ("2024/01/01 12:00:00 recv: Operation cannot be accomplished in current state", "zmq.EFSM"),
        ("error: Context was terminated", "zmq.ETERM"),
        ("ZMQError(156384764)", "zmq.ENOCOMPATPROTO"),
        ("fatal error: concurrent map writes", "go.fatal"),
    ],
)
def test_single_lines(line: str, kind: str) -> None:
    assert [s.kind for s in crash_signs([line])] == [kind]


@pytest.mark.parametrize(
    "line",
    [
        "OSError: [Errno 98] Address already in use",  # an errno that is not ZeroMQ's
        "Received reconnect message from master. Resetting RPC connection.",
        "the worker logged errno 11 somewhere",
        "assertion: fine",
        "[2024] INFO Shutting down (exit code 0)",
    ],
)
def test_harmless_lines(line: str) -> None:
    assert crash_signs([line]) == []


def test_errno_tables() -> None:
    assert errno_name(HAUSNUMERO + 53) == "ETERM" == errno_name(156384765, Flavour.JEROMQ)
    assert errno_name(156384763) == "EFSM"
    assert errno_name(11) == "EAGAIN" and errno_name(35, Flavour.JEROMQ) == "EAGAIN"
    assert errno_name(113) == "EHOSTUNREACH" and errno_name(65, Flavour.JEROMQ) == "EHOSTUNREACH"
    assert errno_name(156384717, Flavour.JEROMQ) == "ENOTSOCK"
    assert errno_name(156384819, Flavour.JEROMQ) == "EMFILE"
    assert errno_name(999999) is None
    assert name_from_text("zmq.error.ZMQError: Context was terminated") == "ETERM"
    assert describe("ETERM", 156384765).startswith("ETERM (errno 156384765, 'Context was terminated': another thread")


@given(st.lists(st.text(max_size=80), max_size=30))
def test_never_raises_and_blocks_never_overlap(lines: list[str]) -> None:
    found = signs(lines)
    for a, b in zip(found, found[1:], strict=False):
        assert a.first <= a.last < b.first
    assert all(0 <= s.first <= s.last < len(lines) for s in found)
