"""Payload schemas for every built-in message type, with validators that name the exact field.

A check returns ``Problem``s. ``Severity.ERROR`` means the real Locust peer
would crash, drop the message or misbehave on it; ``Severity.DEVIATION`` means
the real peer accepts it but Locust's own implementation never sends it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from harness.errors import InvalidPayload
from harness.protocol.messages import Direction, Message, MessageType, known_types


class Severity(enum.StrEnum):
    ERROR = "error"
    DEVIATION = "deviation"


@dataclass(frozen=True)
class Problem:
    """One field that does not match its schema."""

    path: str
    expected: str
    observed: str
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        return f"{self.path}: expected {self.expected}, got {self.observed}"


Check = Callable[[Any, str, list[Problem]], None]


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _kind(name: str, test: Callable[[Any], bool]) -> Check:
    def check(value: Any, path: str, out: list[Problem]) -> None:
        if not test(value):
            out.append(Problem(path, name, _describe(value)))

    return check


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


INT = _kind("int", _is_int)
NUMBER = _kind("number", _is_number)
STR = _kind("str", lambda v: isinstance(v, str))
NIL = _kind("nil", lambda v: v is None)
ANY: Check = lambda value, path, out: None  # noqa: E731


def optional(inner: Check) -> Check:
    def check(value: Any, path: str, out: list[Problem]) -> None:
        if value is not None:
            inner(value, path, out)

    return check


def one_of_values(*allowed: Any) -> Check:
    def check(value: Any, path: str, out: list[Problem]) -> None:
        if value not in allowed:
            out.append(Problem(path, f"one of {', '.join(map(repr, allowed))}", _describe(value)))

    return check


def list_of(item: Check) -> Check:
    def check(value: Any, path: str, out: list[Problem]) -> None:
        if not isinstance(value, list):
            out.append(Problem(path, "array", _describe(value)))
            return
        for i, v in enumerate(value):
            item(v, f"{path}[{i}]", out)

    return check


def map_of(key: Check, val: Check) -> Check:
    def check(value: Any, path: str, out: list[Problem]) -> None:
        if not isinstance(value, dict):
            out.append(Problem(path, "map", _describe(value)))
            return
        for k, v in value.items():
            key(k, f"{path} key {k!r}", out)
            val(v, f"{path}[{k!r}]", out)

    return check


@dataclass(frozen=True)
class Field:
    check: Check
    required: bool = True
    # How bad a missing field is: ERROR when the real peer reads it with [], DEVIATION with .get().
    missing: Severity = Severity.ERROR


def record(fields: Mapping[str, Field | Check]) -> Check:
    spec = {k: f if isinstance(f, Field) else Field(f) for k, f in fields.items()}

    def check(value: Any, path: str, out: list[Problem]) -> None:
        if not isinstance(value, dict):
            out.append(Problem(path, "map", _describe(value)))
            return
        for name, field in spec.items():
            if name in value:
                field.check(value[name], f"{path}[{name!r}]", out)
            elif field.required:
                out.append(Problem(f"{path}[{name!r}]", "a present key", "no such key", field.missing))

    return check


COUNTS = map_of(STR, INT)
WORKER_STATES = ("ready", "spawning", "running")

STATS_ENTRY = record(
    {
        "name": STR,
        "method": optional(STR),
        "last_request_timestamp": optional(NUMBER),
        "start_time": NUMBER,
        "num_requests": INT,
        "num_none_requests": INT,
        "num_failures": INT,
        "total_response_time": NUMBER,
        "max_response_time": NUMBER,
        "min_response_time": optional(NUMBER),
        "total_content_length": INT,
        "response_times": map_of(NUMBER, INT),
        "num_reqs_per_sec": map_of(INT, INT),
        "num_fail_per_sec": map_of(INT, INT),
    }
)
STATS_ERROR = record(
    {
        "name": STR,
        "method": optional(STR),
        "error": STR,
        "occurrences": INT,
        "first_seen": Field(optional(NUMBER), missing=Severity.DEVIATION),
        "last_seen": Field(optional(NUMBER), missing=Severity.DEVIATION),
    }
)


def _client_ready(value: Any, path: str, out: list[Problem]) -> None:
    # Master: falsy -> "old (pre 2.0) worker" and no ack; an int other than -1 -> TypeError in the listener.
    if _is_number(value) and value == -1:  # Locust compares with != -1, so -1.0 passes too
        return
    if not isinstance(value, str) or not value:
        out.append(Problem(path, "a non-empty version string or the int -1", _describe(value)))


def _ack(value: Any, path: str, out: list[Problem]) -> None:
    # The worker reads it as `if data is not None and "index" in data`: anything that survives that is accepted.
    if value is None:
        return
    if not isinstance(value, (dict, list, str, bytes)):  # `"index" in 0` raises TypeError in the worker's loop
        out.append(Problem(path, "nil or a map {'index': int}", _describe(value)))
    elif not isinstance(value, dict):
        out.append(Problem(path, "nil or a map {'index': int}", _describe(value), Severity.DEVIATION))
    elif "index" not in value:
        out.append(Problem(f"{path}['index']", "a present key", "no such key", Severity.DEVIATION))
    else:
        INT(value["index"], f"{path}['index']", out)


WORKER_SCHEMAS: dict[str, Check] = {
    MessageType.CLIENT_READY: _client_ready,
    MessageType.HEARTBEAT: record(
        {
            "state": one_of_values(*WORKER_STATES),
            "current_cpu_usage": NUMBER,
            "current_memory_usage": Field(NUMBER, missing=Severity.DEVIATION),
        }
    ),
    MessageType.SPAWNING: NIL,
    MessageType.SPAWNING_COMPLETE: record({"user_classes_count": COUNTS, "user_count": Field(INT, missing=Severity.DEVIATION)}),
    MessageType.STATS: record(
        {
            "stats": list_of(STATS_ENTRY),
            "stats_total": STATS_ENTRY,
            "errors": map_of(STR, STATS_ERROR),
            "user_classes_count": COUNTS,
            # The 2.47 master never reads a report's user_count (it sums user_classes_count): a deviation, not an error.
            "user_count": Field(INT, missing=Severity.DEVIATION),
        }
    ),
    MessageType.EXCEPTION: record({"msg": STR, "traceback": STR}),
    MessageType.LOGS: record({"worker_id": STR, "logs": list_of(STR)}),
    MessageType.CLIENT_STOPPED: NIL,
    MessageType.QUIT: NIL,
    MessageType.LOCUSTFILE: record({"version": STR}),
}

MASTER_SCHEMAS: dict[str, Check] = {
    MessageType.ACK: _ack,
    MessageType.HEARTBEAT: NIL,
    MessageType.SPAWN: record(
        {
            "timestamp": NUMBER,
            "user_classes_count": COUNTS,
            "host": optional(STR),
            "stop_timeout": optional(NUMBER),
            # Masters before 2.2 send none: a deviation from 2.47, which a worker can do without.
            "parsed_options": Field(map_of(STR, ANY), missing=Severity.DEVIATION),
        }
    ),
    MessageType.SPAWNING_COMPLETE: record({"user_count": INT}),
    MessageType.STOP: NIL,
    MessageType.QUIT: NIL,
    MessageType.RECONNECT: NIL,
    MessageType.UPDATE_USER_CLASS: record({"user_class_name": STR}),
    MessageType.LOCUSTFILE: ANY,
}

# Nil-payload types whose other payloads are only a deviation (the real peer never reads them).
LENIENT_NIL: dict[Direction, set[str]] = {
    Direction.WORKER_TO_MASTER: {MessageType.SPAWNING, MessageType.CLIENT_STOPPED, MessageType.QUIT},
    Direction.MASTER_TO_WORKER: {MessageType.STOP, MessageType.QUIT, MessageType.RECONNECT, MessageType.HEARTBEAT},
}


# The heartbeat fast path of check_payload: exact types only (msgpack decodes numbers to int and float, never
# to subclasses; bool is not in the list), so whatever it accepts, the full WORKER_SCHEMAS check accepts too,
# and anything else still gets the full check. Module constants: a StrEnum member read off its class, or
# compared with a str, costs several times a plain global and str comparison.
_NUMBER_TYPES = (int, float)
_HEARTBEAT = MessageType.HEARTBEAT.value
_W2M = Direction.WORKER_TO_MASTER


def _may_fail(schemas: dict[str, Check], direction: Direction) -> frozenset[str]:
    return frozenset(
        t for t, check in schemas.items() if check is not ANY and t not in LENIENT_NIL[direction] and t in known_types(direction)
    )


# The types whose payload check can find an ERROR (the rest: no schema, any payload, or lenient nil): a receiver's
# fast path skips check_payload for the others, since no problem it could find would stop the message.
MAY_FAIL: dict[Direction, frozenset[str]] = {
    Direction.WORKER_TO_MASTER: _may_fail(WORKER_SCHEMAS, Direction.WORKER_TO_MASTER),
    Direction.MASTER_TO_WORKER: _may_fail(MASTER_SCHEMAS, Direction.MASTER_TO_WORKER),
}


def well_formed_heartbeat(data: Any) -> bool:
    """True only for a worker heartbeat's data the full schema accepts without any problem (the fast path)."""
    return (
        type(data) is dict
        and data.get("state") in WORKER_STATES
        and type(data.get("current_cpu_usage")) in _NUMBER_TYPES
        and type(data.get("current_memory_usage")) in _NUMBER_TYPES
    )


def check_payload(message: Message, direction: Direction) -> list[Problem]:
    """All schema problems of ``message`` as sent in ``direction``; [] for custom types."""
    if message.type == _HEARTBEAT and direction is _W2M and well_formed_heartbeat(message.data):
        return []  # the fast path: most frames are heartbeats
    schemas = WORKER_SCHEMAS if direction is Direction.WORKER_TO_MASTER else MASTER_SCHEMAS
    schema = schemas.get(message.type)
    if schema is None or message.type not in known_types(direction):
        return []
    problems: list[Problem] = []
    schema(message.data, f"{message.type}.data", problems)
    if message.type in LENIENT_NIL[direction]:
        problems = [Problem(p.path, p.expected, p.observed, Severity.DEVIATION) for p in problems]
    if message.type == MessageType.SPAWNING_COMPLETE and direction is Direction.WORKER_TO_MASTER and not problems:
        data = message.data
        # The master never reads user_count, but Locust's worker asserts it equals the sum.
        if "user_count" in data and data["user_count"] != sum(data["user_classes_count"].values()):
            problems.append(
                Problem(
                    "spawning_complete.data['user_count']",
                    f"the sum of user_classes_count ({sum(data['user_classes_count'].values())})",
                    repr(data["user_count"]),
                    Severity.DEVIATION,
                )
            )
    return problems


def validate(message: Message, direction: Direction) -> None:
    """Raise InvalidPayload for the first ERROR-severity problem of ``message``."""
    for problem in check_payload(message, direction):
        if problem.severity is Severity.ERROR:
            raise InvalidPayload(f"schema.{message.type}", f"{problem.path} as {problem.expected}", problem.observed)
