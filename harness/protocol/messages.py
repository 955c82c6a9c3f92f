"""The Locust message vocabulary (2.47.0): types, directions and typed payload views."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, TypedDict

LOCUST_VERSION = "2.47.0"


class MessageType(enum.StrEnum):
    """Every built-in message type, in both directions."""

    CLIENT_READY = "client_ready"
    ACK = "ack"
    HEARTBEAT = "heartbeat"
    SPAWN = "spawn"
    SPAWNING = "spawning"
    SPAWNING_COMPLETE = "spawning_complete"
    STATS = "stats"
    EXCEPTION = "exception"
    LOGS = "logs"
    STOP = "stop"
    CLIENT_STOPPED = "client_stopped"
    QUIT = "quit"
    RECONNECT = "reconnect"
    UPDATE_USER_CLASS = "update_user_class"
    LOCUSTFILE = "locustfile"


class Direction(enum.StrEnum):
    """Who sent a message."""

    WORKER_TO_MASTER = "w2m"
    MASTER_TO_WORKER = "m2w"


WORKER_TO_MASTER_TYPES = frozenset(
    {
        MessageType.CLIENT_READY,
        MessageType.HEARTBEAT,
        MessageType.SPAWNING,
        MessageType.SPAWNING_COMPLETE,
        MessageType.STATS,
        MessageType.EXCEPTION,
        MessageType.LOGS,
        MessageType.CLIENT_STOPPED,
        MessageType.QUIT,
        MessageType.LOCUSTFILE,
    }
)
MASTER_TO_WORKER_TYPES = frozenset(
    {
        MessageType.ACK,
        MessageType.HEARTBEAT,
        MessageType.SPAWN,
        MessageType.SPAWNING_COMPLETE,
        MessageType.STOP,
        MessageType.QUIT,
        MessageType.RECONNECT,
        MessageType.UPDATE_USER_CLASS,
        MessageType.LOCUSTFILE,
    }
)


def known_types(direction: Direction) -> frozenset[MessageType]:
    """The built-in types a sender in ``direction`` may use."""
    return WORKER_TO_MASTER_TYPES if direction is Direction.WORKER_TO_MASTER else MASTER_TO_WORKER_TYPES


@dataclass(frozen=True, slots=True)
class Message:
    """One Locust message: ``[type, data, node_id]``.

    In master-to-worker messages ``node_id`` is the recipient worker's id.
    """

    type: str
    data: Any
    node_id: str


# Typed payload views. ``data`` of a validated message can be read through these.


class AckData(TypedDict):
    index: int


class HeartbeatData(TypedDict):
    state: str
    current_cpu_usage: float
    current_memory_usage: int


class SpawnData(TypedDict):
    timestamp: float
    user_classes_count: dict[str, int]
    host: str | None
    stop_timeout: float | None
    parsed_options: dict[str, Any]


class SpawningCompleteData(TypedDict):
    user_classes_count: dict[str, int]
    user_count: int


class MasterSpawningCompleteData(TypedDict):
    user_count: int


class StatsEntryData(TypedDict):
    name: str
    method: str
    last_request_timestamp: float | None
    start_time: float
    num_requests: int
    num_none_requests: int
    num_failures: int
    total_response_time: float
    max_response_time: float
    min_response_time: float | None
    total_content_length: int
    response_times: dict[int, int]
    num_reqs_per_sec: dict[int, int]
    num_fail_per_sec: dict[int, int]


class StatsErrorData(TypedDict):
    name: str
    method: str
    error: str
    occurrences: int
    first_seen: float | None
    last_seen: float | None


class StatsData(TypedDict):
    stats: list[StatsEntryData]
    stats_total: StatsEntryData
    errors: dict[str, StatsErrorData]
    user_classes_count: dict[str, int]
    user_count: int


class ExceptionData(TypedDict):
    msg: str
    traceback: str


class LogsData(TypedDict):
    worker_id: str
    logs: list[str]
