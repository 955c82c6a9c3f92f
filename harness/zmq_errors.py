"""ZeroMQ error numbers by name, for libzmq (and the bindings on it: pyzmq, pebbe/zmq4, jzmq) and for JeroMQ.

libzmq uses the platform's errno values where the platform has them (Linux: EAGAIN 11, EHOSTUNREACH 113,
ENOTSOCK 88 ...) and numbers above ``HAUSNUMERO`` (156384712) for its own: EFSM = +51, ENOCOMPATPROTO = +52,
ETERM = +53, EMTHREAD = +54. JeroMQ (pure Java) shares those four but numbers the POSIX ones as BSD does
(EAGAIN 35, EHOSTUNREACH 65) and adds EIOEXC, ESOCKET and EMFILE above HAUSNUMERO (``zmq.ZError``). So the
same number means different things to the two: ``errno_name`` asks which one printed it.

Pure data and lookups: no zmq import, usable from the sans-IO layers.
"""

from __future__ import annotations

import enum
import errno as _posix

HAUSNUMERO = 156384712


class Flavour(enum.StrEnum):
    LIBZMQ = "libzmq"
    JEROMQ = "jeromq"


# libzmq's own numbers (zmq.h); the POSIX-looking ones above HAUSNUMERO are only used where the OS lacks them.
_LIBZMQ_OWN = {
    HAUSNUMERO + 1: "ENOTSUP",
    HAUSNUMERO + 2: "EPROTONOSUPPORT",
    HAUSNUMERO + 3: "ENOBUFS",
    HAUSNUMERO + 4: "ENETDOWN",
    HAUSNUMERO + 5: "EADDRINUSE",
    HAUSNUMERO + 6: "EADDRNOTAVAIL",
    HAUSNUMERO + 7: "ECONNREFUSED",
    HAUSNUMERO + 8: "EINPROGRESS",
    HAUSNUMERO + 9: "ENOTSOCK",
    HAUSNUMERO + 10: "EMSGSIZE",
    HAUSNUMERO + 11: "EAFNOSUPPORT",
    HAUSNUMERO + 12: "ENETUNREACH",
    HAUSNUMERO + 13: "ECONNABORTED",
    HAUSNUMERO + 14: "ECONNRESET",
    HAUSNUMERO + 15: "ENOTCONN",
    HAUSNUMERO + 16: "ETIMEDOUT",
    HAUSNUMERO + 17: "EHOSTUNREACH",
    HAUSNUMERO + 18: "ENETRESET",
    HAUSNUMERO + 51: "EFSM",
    HAUSNUMERO + 52: "ENOCOMPATPROTO",
    HAUSNUMERO + 53: "ETERM",
    HAUSNUMERO + 54: "EMTHREAD",
}
# JeroMQ's zmq.ZError (read off jeromq 0.3.6 and 0.5.x): BSD numbering for the POSIX ones.
_JEROMQ = {
    4: "EINTR",
    13: "EACCESS",
    14: "EFAULT",
    22: "EINVAL",
    35: "EAGAIN",
    36: "EINPROGRESS",
    43: "EPROTONOSUPPORT",
    45: "ENOTSUP",
    48: "EADDRINUSE",
    49: "EADDRNOTAVAIL",
    50: "ENETDOWN",
    55: "ENOBUFS",
    56: "EISCONN",
    57: "ENOTCONN",
    61: "ECONNREFUSED",
    65: "EHOSTUNREACH",
    HAUSNUMERO + 5: "ENOTSOCK",
    HAUSNUMERO + 51: "EFSM",
    HAUSNUMERO + 52: "ENOCOMPATPROTO",
    HAUSNUMERO + 53: "ETERM",
    HAUSNUMERO + 54: "EMTHREAD",
    HAUSNUMERO + 105: "EIOEXC",
    HAUSNUMERO + 106: "ESOCKET",
    HAUSNUMERO + 107: "EMFILE",
}

# What each error says about the worker that hit it (the strerror text first, as libzmq and JeroMQ print it).
MEANINGS: dict[str, tuple[str, str]] = {
    "ETERM": ("Context was terminated", "another thread terminated the context while this one was in a socket call"),
    "EFSM": (
        "Operation cannot be accomplished in current state",
        "the socket's send/receive sequence was broken, typically by two threads using one socket",
    ),
    "ENOTSOCK": ("Socket operation on non-socket", "a call on a socket that was already closed, often by another thread"),
    "EAGAIN": (
        "Resource temporarily unavailable",
        "a non-blocking call found nothing to do, or a timeout or high-water mark was hit",
    ),
    "EHOSTUNREACH": ("Host unreachable", "a send to a peer that is not connected"),
    "EINTR": ("Interrupted system call", "a signal interrupted a socket call"),
    "EMTHREAD": ("No thread available", "the context has no I/O thread left"),
    "ENOCOMPATPROTO": ("The protocol is not compatible with the socket type", "a socket of the wrong type"),
    "EMFILE": ("Too many open files", "the process ran out of file descriptors"),
    "EIOEXC": ("I/O exception", "JeroMQ hit a Java I/O exception on the connection"),
    "ESOCKET": ("Socket error", "JeroMQ hit a socket-level error"),
    "ECONNREFUSED": ("Connection refused", "nothing listens at the master's address"),
    "EADDRINUSE": ("Address already in use", "a bind to a port that is taken"),
    "EPROTO": ("Protocol error", "the ZMTP handshake broke (not a ZeroMQ peer, or a version or mechanism mismatch)"),
}
# strerror texts as they appear in output, for errors printed without a number (pyzmq, pebbe/zmq4).
_BY_TEXT = {text.lower(): name for name, (text, _) in MEANINGS.items()}
_BY_TEXT["no route to host"] = "EHOSTUNREACH"


def errno_name(code: int, flavour: Flavour = Flavour.LIBZMQ) -> str | None:
    """The symbolic name of ``code`` as the given implementation numbers it (None if unknown)."""
    if flavour is Flavour.JEROMQ:
        return _JEROMQ.get(code)
    return _LIBZMQ_OWN.get(code) or _posix.errorcode.get(code)


def name_from_text(text: str) -> str | None:
    """The error named by a strerror text found in ``text`` ("Context was terminated" -> ETERM), if any."""
    lowered = text.lower()
    return next((name for phrase, name in _BY_TEXT.items() if phrase in lowered), None)


def describe(name: str, code: int | None = None) -> str:
    """``"ETERM (errno 156384765, 'Context was terminated': another thread terminated ...)"``."""
    number = f"errno {code}, " if code is not None else ""
    text, meaning = MEANINGS.get(name, ("", ""))
    if not text:
        return f"{name} ({number.rstrip(', ')})" if number else name
    return f"{name} ({number}{text!r}: {meaning})"
