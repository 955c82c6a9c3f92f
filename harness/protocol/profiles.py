"""Master profiles: how Locust masters of different releases behave on the wire, as data.

Each ``MasterProfile`` is one row of ``../shared/reference/locust-versions.md`` §12 (a representative master for a
range of releases): one table of knobs that the fake master's core (``harness.protocol.master``), its spawn
payloads and the catalog read. Nothing else in the code asks "which version is this?": it asks a knob.

Pure data and pure functions: no I/O, no clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from enum import StrEnum
from typing import Any


class Ack(StrEnum):
    """What the master answers a ``client_ready`` with."""

    NONE = "none"  # before 2.10: nothing
    NIL = "nil"  # 2.10.x: ``ack`` with nil data
    INDEX = "index"  # 2.11+: ``ack {"index": n}``


class Unknown(StrEnum):
    """What the master does with a message from a worker it does not know."""

    CRASH = "crash"  # a KeyError kills client_listener: every later message is ignored, workers go missing
    WARN = "warn"  # logs a warning and goes on
    QUIT = "quit"  # logs a warning and sends the worker ``quit``


@dataclass(frozen=True)
class MasterProfile:
    """The knobs that set one master release range apart (each knob's doc names the release that changed it)."""

    name: str
    stands_for: str  # the release range this profile represents
    release: str  # a release of that range that installs on Python 3.11, to check the emulation against
    ack: Ack  # none < 2.10, nil 2.10.x, index 2.11+
    heartbeat_reply: bool  # 2.19+: a nil ``heartbeat`` for every heartbeat of a known worker
    parsed_options: bool  # 2.2+: ``spawn`` carries ``parsed_options`` (a 2.2+ worker needs it)
    stop_timeout_float: bool  # 2.13+: ``stop_timeout`` is always a float; before, nil (unset) or an int
    spawning_complete_broadcast: bool  # 2.29+: ``spawning_complete {"user_count"}`` to every worker after a ramp
    reconnect_on_bad_frame: bool  # 2.13.2+: ``reconnect`` to a known worker whose frame could not be decoded
    node_id_from_payload: bool  # 2.11.1+: handlers use the payload's node_id (before: the socket identity)
    version_slice_check: bool  # 2.5+: truthy client_ready data other than -1 that cannot be sliced kills client_listener
    unknown_spawning: Unknown  # crash < 2.15, quit 2.15+
    unknown_spawning_complete: Unknown  # crash < 2.47, quit 2.47
    unknown_client_stopped: Unknown  # crash < 2.10, warn 2.10+
    delete_missing: bool  # 2.8.4+: a missing worker is deleted at liveness -60 (about 65 s after its last heartbeat)
    post_ramp_wait: float  # seconds the master waits for reports after a ramp: 0.1 (2.0-2.6), 1.0 (2.7+)
    stop_wait_adds_60: bool  # 2.13+: stop waits stop_timeout + 60 s (before: stop_timeout, or 60 if unset)
    ext_hooks: bool  # 2.20+: __datetime__/__ObjectId__ maps decoded on receipt (a malformed one raises in the listener)

    @property
    def acks(self) -> bool:
        return self.ack is not Ack.NONE

    def ack_data(self, index: int) -> dict[str, int] | None:
        """The ``ack`` payload for the worker given ``index`` (call only when ``acks``)."""
        return {"index": index} if self.ack is Ack.INDEX else None

    def spawn_payload(
        self,
        user_classes_count: dict[str, int],
        *,
        timestamp: float,
        host: str | None = None,
        stop_timeout: float = 0.0,
        parsed_options: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A ``spawn`` payload as this master builds it (absolute per-class counts, 2.0+ schema)."""
        data: dict[str, Any] = {
            "timestamp": timestamp,
            "user_classes_count": dict(user_classes_count),
            "host": host,
            "stop_timeout": self.stop_timeout_value(stop_timeout),
        }
        if self.parsed_options:
            data["parsed_options"] = parsed_options if parsed_options is not None else {}
        return data

    def stop_timeout_value(self, seconds: float) -> float | int | None:
        """``stop_timeout`` on the wire: a float from 2.13; before, nil when unset (0) and otherwise an int (``--stop-timeout``
        took whole seconds: a fraction is rounded up, as a user of that release had to)."""
        if self.stop_timeout_float:
            return float(seconds)
        return math.ceil(seconds) if seconds else None

    def knobs(self) -> dict[str, Any]:
        """Every knob by name (plain values), for listings and reports."""
        skip = {"name", "stands_for", "release"}
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self) if f.name not in skip}


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, StrEnum) else value


_P20 = MasterProfile(
    name="2.0",
    stands_for="2.0.0-2.1.x",
    release="2.1.0",  # (2.0.0 installs too; 2.1.0 is the last of the range)
    ack=Ack.NONE,
    heartbeat_reply=False,
    parsed_options=False,
    stop_timeout_float=False,
    spawning_complete_broadcast=False,
    reconnect_on_bad_frame=False,
    node_id_from_payload=False,
    version_slice_check=False,
    unknown_spawning=Unknown.CRASH,
    unknown_spawning_complete=Unknown.CRASH,
    unknown_client_stopped=Unknown.CRASH,
    delete_missing=False,
    post_ramp_wait=0.1,
    stop_wait_adds_60=False,
    ext_hooks=False,
)
_P28 = replace(
    _P20,
    name="2.8",
    stands_for="2.2.0-2.9.0",
    release="2.8.6",
    parsed_options=True,
    version_slice_check=True,
    delete_missing=True,
    post_ramp_wait=1.0,
)
_P215 = replace(
    _P28,
    name="2.15",
    stands_for="2.11.1-2.18.x",
    release="2.15.1",
    ack=Ack.INDEX,
    stop_timeout_float=True,
    reconnect_on_bad_frame=True,
    node_id_from_payload=True,
    unknown_spawning=Unknown.QUIT,
    unknown_client_stopped=Unknown.WARN,
    stop_wait_adds_60=True,
)
_P220 = replace(
    _P215,
    name="2.20",
    stands_for="2.19.0-2.28.x",
    release="2.20.0",
    heartbeat_reply=True,
    ext_hooks=True,
)
_P247 = replace(
    _P220,
    name="2.47",
    stands_for="2.29.0-2.47.0",
    release="2.47.0",
    spawning_complete_broadcast=True,
    unknown_spawning_complete=Unknown.QUIT,
)

# What a master that never acks notes when it starts: the liveness oracles then count heartbeats from client_ready.
NO_ACK_NOTE = "never acks: heartbeats are due from client_ready"

PROFILES: dict[str, MasterProfile] = {p.name: p for p in (_P20, _P28, _P215, _P220, _P247)}
DEFAULT_PROFILE = _P247
ALL = "all"


class UnknownProfile(ValueError):
    """A profile name that is none of ``PROFILES`` (the user's input: a usage error, exit 3)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown master profile {name!r}: the known ones are {', '.join(PROFILES)} (or '{ALL}' for every one)")


def master_profile(name: str) -> MasterProfile:
    """The profile called ``name`` ("2.15"; a full release such as "2.15.1" is refused: profiles stand for ranges)."""
    try:
        return PROFILES[name]
    except KeyError:
        raise UnknownProfile(name) from None


def profiles_named(spec: str) -> list[MasterProfile]:
    """``all``, one name, or a comma-separated list of names, in the order of ``PROFILES`` for ``all``."""
    if spec.strip() == ALL:
        return list(PROFILES.values())
    return [master_profile(part.strip()) for part in spec.split(",") if part.strip()]
