"""Tests of harness.protocol.schema: real payloads pass, broken ones name the exact field."""

from __future__ import annotations

from typing import Any

import pytest

from harness.errors import InvalidPayload
from harness.protocol.messages import Direction, Message
from harness.protocol.schema import MASTER_SCHEMAS, WORKER_SCHEMAS, Problem, Severity, check_payload, validate

W2M = Direction.WORKER_TO_MASTER
M2W = Direction.MASTER_TO_WORKER
NODE = "vm_fef595e9872f48ce9f832bbaf11b7bae"
ERROR_KEY = "5f54408d0c1e4b6a9f7d2e3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a2d90"


def _entry(name: str, method: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "method": method, **fields}


def stats_example() -> dict[str, Any]:
    """The complete stats payload of spec §8.2 (run A, 6.215), with int keys as on the wire."""
    ok = _entry(
        "/ok",
        "GET",
        last_request_timestamp=1795736688.3428364,
        start_time=1795736686.8370788,
        num_requests=4,
        num_none_requests=0,
        num_failures=0,
        total_response_time=49.2,
        max_response_time=12.3,
        min_response_time=12.3,
        total_content_length=168,
        response_times={12: 4},
        num_reqs_per_sec={1795736686: 1, 1795736687: 1, 1795736688: 2},
        num_fail_per_sec={},
    )
    fail = _entry(
        "/fail",
        "GET",
        last_request_timestamp=1795736687.3381326,
        start_time=1795736687.33813,
        num_requests=1,
        num_none_requests=0,
        num_failures=1,
        total_response_time=5,
        max_response_time=5,
        min_response_time=5,
        total_content_length=0,
        response_times={5: 1},
        num_reqs_per_sec={1795736687: 1},
        num_fail_per_sec={1795736687: 1},
    )
    total = _entry(
        "Aggregated",
        "",
        last_request_timestamp=1795736688.3428364,
        start_time=1795736686.8370788,
        num_requests=5,
        num_none_requests=0,
        num_failures=1,
        total_response_time=54.2,
        max_response_time=12.3,
        min_response_time=5,
        total_content_length=168,
        response_times={12: 4, 5: 1},
        num_reqs_per_sec={1795736686: 1, 1795736687: 2, 1795736688: 2},
        num_fail_per_sec={1795736687: 1},
    )
    return {
        "stats": [ok, fail],
        "stats_total": total,
        "errors": {
            ERROR_KEY: {
                "name": "/fail",
                "method": "GET",
                "error": "Exception('boom')",
                "occurrences": 1,
                "first_seen": 1795736687.338239,
                "last_seen": 1795736687.338239,
            }
        },
        "user_classes_count": {"DemoUser": 2},
        "user_count": 2,
    }


def empty_stats_example() -> dict[str, Any]:
    """The first stats report right after the ack (spec §8.2, 3.214): no requests yet."""
    total = _entry(
        "Aggregated",
        "",
        last_request_timestamp=None,
        start_time=1795736685.77,
        num_requests=0,
        num_none_requests=0,
        num_failures=0,
        total_response_time=0,
        max_response_time=0,
        min_response_time=None,
        total_content_length=0,
        response_times={},
        num_reqs_per_sec={},
        num_fail_per_sec={},
    )
    return {"stats": [], "stats_total": total, "errors": {}, "user_classes_count": {"DemoUser": 0}, "user_count": 0}


PARSED_OPTIONS: dict[str, Any] = {
    "locustfile": "lf.py",
    "host": None,
    "num_users": 2,
    "spawn_rate": 2.0,
    "run_time": 10,
    "headless": True,
    "master_bind_port": 15558,
    "tags": [],
    "exclude_tags": None,
    "stop_timeout": 0.0,
    "user_classes": [],
    "custom": {"nested": [1, "x", None]},
}

# The spawn of spec §8.2 (run A, 4.198).
SPAWN: dict[str, Any] = {
    "timestamp": 1795736686.756561,
    "user_classes_count": {"DemoUser": 2},
    "host": None,
    "stop_timeout": 0.0,
    "parsed_options": PARSED_OPTIONS,
}

VALID: list[tuple[Direction, str, Any]] = [
    (W2M, "client_ready", "2.47.0"),
    (W2M, "client_ready", -1),
    (W2M, "client_ready", "2.46.3"),  # another version is only warned about
    (W2M, "heartbeat", {"state": "ready", "current_cpu_usage": 0.0, "current_memory_usage": 0}),
    (W2M, "heartbeat", {"state": "running", "current_cpu_usage": 0.0, "current_memory_usage": 55275520}),
    (W2M, "heartbeat", {"state": "spawning", "current_cpu_usage": 3, "current_memory_usage": 1.5e8}),
    (W2M, "spawning", None),
    (W2M, "spawning_complete", {"user_classes_count": {"DemoUser": 2}, "user_count": 2}),
    (W2M, "spawning_complete", {"user_classes_count": {"DemoUser": 0}, "user_count": 0}),
    (W2M, "spawning_complete", {"user_classes_count": {"A": 1, "B": 3}, "user_count": 4}),
    (W2M, "stats", stats_example()),
    (W2M, "stats", empty_stats_example()),
    (W2M, "exception", {"msg": "task crashed on purpose", "traceback": '  File "…/locust/user/task.py", line 363, in run\n'}),
    (W2M, "logs", {"worker_id": NODE, "logs": ["[2026-11-26 12:44:45,770] vm/INFO/locust.main: Starting Locust 2.47.0"]}),
    (W2M, "logs", {"worker_id": NODE, "logs": []}),
    (W2M, "client_stopped", None),
    (W2M, "quit", None),
    (W2M, "locustfile", {"version": "2.47.0"}),
    (M2W, "ack", {"index": 0}),
    (M2W, "ack", None),  # masters < 2.11
    (M2W, "heartbeat", None),
    (M2W, "spawn", SPAWN),
    (
        M2W,
        "spawn",
        {
            "timestamp": 1795736686,
            "user_classes_count": {"DemoUser": 0},
            "host": "http://example.invalid",
            "stop_timeout": None,
            "parsed_options": {},
        },
    ),
    (M2W, "spawning_complete", {"user_count": 2}),
    (M2W, "stop", None),
    (M2W, "quit", None),
    (M2W, "reconnect", None),
    (
        M2W,
        "update_user_class",
        {"user_class_name": "DemoUser", "host": "http://example.invalid", "weight": 1, "fixed_count": 0, "tasks": ["ok", "fail"]},
    ),
    (M2W, "locustfile", {"locustfiles": [{"filename": "lf.py", "contents": "import datetime\n"}]}),
    (M2W, "locustfile", {"error": "locustfile must be a full path to a single locustfile"}),
]


def _id(direction: Direction, message_type: str) -> str:
    return f"{direction.value}-{message_type}"


@pytest.mark.parametrize(("direction", "message_type", "data"), VALID, ids=[_id(d, t) for d, t, _ in VALID])
def test_valid_payloads_have_no_problems(direction: Direction, message_type: str, data: Any) -> None:
    """Real payloads from the spec give no problems and validate() accepts them."""
    message = Message(message_type, data, NODE)
    assert check_payload(message, direction) == []
    validate(message, direction)


def test_every_schema_has_a_valid_example() -> None:
    """The table covers every type of both schema maps."""
    assert {t for d, t, _ in VALID if d is W2M} == set(WORKER_SCHEMAS)
    assert {t for d, t, _ in VALID if d is M2W} == set(MASTER_SCHEMAS)


def _broken_stats(mutate: Any) -> dict[str, Any]:
    data = stats_example()
    mutate(data)
    return data


def _without(data: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != key}


HB = {"state": "running", "current_cpu_usage": 1.5, "current_memory_usage": 100}
ERR, DEV = Severity.ERROR, Severity.DEVIATION

# (direction, type, data, path, expected (substring), severity)
BROKEN: list[tuple[Direction, str, Any, str, str, Severity]] = [
    # client_ready
    (W2M, "client_ready", None, "client_ready.data", "version", ERR),
    (W2M, "client_ready", "", "client_ready.data", "version", ERR),
    (W2M, "client_ready", 0, "client_ready.data", "version", ERR),
    (W2M, "client_ready", 5, "client_ready.data", "version", ERR),
    (W2M, "client_ready", True, "client_ready.data", "version", ERR),
    (W2M, "client_ready", {"version": "2.47.0"}, "client_ready.data", "version", ERR),
    # heartbeat
    (W2M, "heartbeat", _without(HB, "current_cpu_usage"), "heartbeat.data['current_cpu_usage']", "a present key", ERR),
    (W2M, "heartbeat", {**HB, "current_cpu_usage": "12%"}, "heartbeat.data['current_cpu_usage']", "number", ERR),
    (W2M, "heartbeat", {**HB, "current_cpu_usage": True}, "heartbeat.data['current_cpu_usage']", "number", ERR),
    (W2M, "heartbeat", {**HB, "current_cpu_usage": None}, "heartbeat.data['current_cpu_usage']", "number", ERR),
    (W2M, "heartbeat", _without(HB, "state"), "heartbeat.data['state']", "a present key", ERR),
    (W2M, "heartbeat", {**HB, "state": "stopped"}, "heartbeat.data['state']", "'ready'", ERR),
    (W2M, "heartbeat", {**HB, "state": "missing"}, "heartbeat.data['state']", "'running'", ERR),
    (W2M, "heartbeat", _without(HB, "current_memory_usage"), "heartbeat.data['current_memory_usage']", "a present key", DEV),
    (W2M, "heartbeat", {**HB, "current_memory_usage": "1MB"}, "heartbeat.data['current_memory_usage']", "number", ERR),
    (W2M, "heartbeat", None, "heartbeat.data", "map", ERR),
    (W2M, "heartbeat", ["ready", 0.0, 0], "heartbeat.data", "map", ERR),
    # nil payloads the real peer never reads
    (W2M, "spawning", {"x": 1}, "spawning.data", "nil", DEV),
    (W2M, "client_stopped", 0, "client_stopped.data", "nil", DEV),
    (W2M, "quit", "bye", "quit.data", "nil", DEV),
    (M2W, "stop", [], "stop.data", "nil", DEV),
    (M2W, "quit", {}, "quit.data", "nil", DEV),
    (M2W, "reconnect", 1, "reconnect.data", "nil", DEV),
    # spawning_complete (W->M)
    (W2M, "spawning_complete", {"user_count": 2}, "spawning_complete.data['user_classes_count']", "a present key", ERR),
    (
        W2M,
        "spawning_complete",
        {"user_classes_count": {"DemoUser": 2}},
        "spawning_complete.data['user_count']",
        "a present key",
        DEV,
    ),
    (
        W2M,
        "spawning_complete",
        {"user_classes_count": {"DemoUser": "2"}, "user_count": 2},
        "spawning_complete.data['user_classes_count']['DemoUser']",
        "int",
        ERR,
    ),
    (
        W2M,
        "spawning_complete",
        {"user_classes_count": {"DemoUser": 2.0}, "user_count": 2},
        "spawning_complete.data['user_classes_count']['DemoUser']",
        "int",
        ERR,
    ),
    (
        W2M,
        "spawning_complete",
        {"user_classes_count": {7: 2}, "user_count": 2},
        "spawning_complete.data['user_classes_count'] key 7",
        "str",
        ERR,
    ),
    (
        W2M,
        "spawning_complete",
        {"user_classes_count": [2], "user_count": 2},
        "spawning_complete.data['user_classes_count']",
        "map",
        ERR,
    ),
    (
        W2M,
        "spawning_complete",
        {"user_classes_count": {"DemoUser": 2}, "user_count": "2"},
        "spawning_complete.data['user_count']",
        "int",
        ERR,
    ),
    # stats
    (W2M, "stats", _without(stats_example(), "stats_total"), "stats.data['stats_total']", "a present key", ERR),
    (W2M, "stats", _without(stats_example(), "user_classes_count"), "stats.data['user_classes_count']", "a present key", ERR),
    # the 2.47 master never reads a report's user_count (it sums user_classes_count): a deviation
    (W2M, "stats", _without(stats_example(), "user_count"), "stats.data['user_count']", "a present key", DEV),
    (W2M, "stats", _broken_stats(lambda d: d.update(stats={})), "stats.data['stats']", "array", ERR),
    (
        W2M,
        "stats",
        _broken_stats(lambda d: d["stats"][0].update(response_times={"12": 4})),
        "stats.data['stats'][0]['response_times'] key '12'",
        "number",
        ERR,
    ),
    (
        W2M,
        "stats",
        _broken_stats(lambda d: d["stats"][1].update(num_requests=1.5)),
        "stats.data['stats'][1]['num_requests']",
        "int",
        ERR,
    ),
    (
        W2M,
        "stats",
        _broken_stats(lambda d: d["stats"][1].pop("start_time")),
        "stats.data['stats'][1]['start_time']",
        "a present key",
        ERR,
    ),
    (
        W2M,
        "stats",
        _broken_stats(lambda d: d["stats"][0].update(num_reqs_per_sec={1795736686.5: 1})),
        "stats.data['stats'][0]['num_reqs_per_sec'] key 1795736686.5",
        "int",
        ERR,
    ),
    (
        W2M,
        "stats",
        _broken_stats(lambda d: d["stats"][0].update(num_fail_per_sec={1795736687: "1"})),
        "stats.data['stats'][0]['num_fail_per_sec'][1795736687]",
        "int",
        ERR,
    ),
    (
        W2M,
        "stats",
        _broken_stats(lambda d: d["stats_total"].update(name=None)),
        "stats.data['stats_total']['name']",
        "str",
        ERR,
    ),
    (
        W2M,
        "stats",
        _broken_stats(lambda d: d["stats_total"].update(min_response_time="fast")),
        "stats.data['stats_total']['min_response_time']",
        "number",
        ERR,
    ),
    (
        W2M,
        "stats",
        _broken_stats(lambda d: d["errors"][ERROR_KEY].update(occurrences="1")),
        f"stats.data['errors'][{ERROR_KEY!r}]['occurrences']",
        "int",
        ERR,
    ),
    (
        W2M,
        "stats",
        _broken_stats(lambda d: d["errors"][ERROR_KEY].pop("occurrences")),
        f"stats.data['errors'][{ERROR_KEY!r}]['occurrences']",
        "a present key",
        ERR,
    ),
    (
        W2M,
        "stats",
        _broken_stats(lambda d: d["errors"][ERROR_KEY].pop("first_seen")),
        f"stats.data['errors'][{ERROR_KEY!r}]['first_seen']",
        "a present key",
        DEV,
    ),
    (
        W2M,
        "stats",
        _broken_stats(lambda d: d["errors"][ERROR_KEY].update(last_seen="now")),
        f"stats.data['errors'][{ERROR_KEY!r}]['last_seen']",
        "number",
        ERR,
    ),
    (W2M, "stats", _broken_stats(lambda d: d.update(errors=[])), "stats.data['errors']", "map", ERR),
    # exception, logs, locustfile
    (W2M, "exception", {"msg": "boom"}, "exception.data['traceback']", "a present key", ERR),
    (W2M, "exception", {"msg": None, "traceback": ""}, "exception.data['msg']", "str", ERR),
    (W2M, "logs", {"worker_id": NODE, "logs": ["ok", 1]}, "logs.data['logs'][1]", "str", ERR),
    (W2M, "logs", {"worker_id": NODE, "logs": "line"}, "logs.data['logs']", "array", ERR),
    (W2M, "logs", {"logs": []}, "logs.data['worker_id']", "a present key", ERR),
    (W2M, "locustfile", {}, "locustfile.data['version']", "a present key", ERR),
    (W2M, "locustfile", {"version": 2}, "locustfile.data['version']", "str", ERR),
    # master -> worker
    (M2W, "ack", {"index": "0"}, "ack.data['index']", "int", ERR),
    (M2W, "ack", {"index": False}, "ack.data['index']", "int", ERR),
    (M2W, "ack", 0, "ack.data", "map", ERR),
    # Masters before 2.2 send no parsed_options: a deviation from 2.47, which a worker can do without.
    (M2W, "spawn", _without(SPAWN, "parsed_options"), "spawn.data['parsed_options']", "a present key", DEV),
    (M2W, "spawn", _without(SPAWN, "host"), "spawn.data['host']", "a present key", ERR),
    (M2W, "spawn", _without(SPAWN, "stop_timeout"), "spawn.data['stop_timeout']", "a present key", ERR),
    (M2W, "spawn", _without(SPAWN, "timestamp"), "spawn.data['timestamp']", "a present key", ERR),
    (M2W, "spawn", {**SPAWN, "timestamp": "now"}, "spawn.data['timestamp']", "number", ERR),
    (M2W, "spawn", {**SPAWN, "host": 80}, "spawn.data['host']", "str", ERR),
    (M2W, "spawn", {**SPAWN, "parsed_options": []}, "spawn.data['parsed_options']", "map", ERR),
    (M2W, "spawn", {**SPAWN, "parsed_options": {1: "x"}}, "spawn.data['parsed_options'] key 1", "str", ERR),
    (
        M2W,
        "spawn",
        {**SPAWN, "user_classes_count": {"DemoUser": -0.5}},
        "spawn.data['user_classes_count']['DemoUser']",
        "int",
        ERR,
    ),
    (M2W, "spawning_complete", {}, "spawning_complete.data['user_count']", "a present key", ERR),
    (M2W, "spawning_complete", {"user_count": None}, "spawning_complete.data['user_count']", "int", ERR),
    (M2W, "update_user_class", {"weight": 2}, "update_user_class.data['user_class_name']", "a present key", ERR),
]


@pytest.mark.parametrize(
    ("direction", "message_type", "data", "path", "expected", "severity"),
    BROKEN,
    ids=[f"{_id(b[0], b[1])}-{b[3]}-{i}" for i, b in enumerate(BROKEN)],
)
def test_broken_payload_names_the_field(
    direction: Direction, message_type: str, data: Any, path: str, expected: str, severity: Severity
) -> None:
    """A targeted breakage gives exactly one Problem at the exact path, with the right severity."""
    problems = check_payload(Message(message_type, data, NODE), direction)
    assert len(problems) == 1, problems
    (problem,) = problems
    assert problem.path == path
    assert expected in problem.expected
    assert problem.severity is severity
    assert problem.observed


@pytest.mark.parametrize(
    ("direction", "message_type", "data", "path", "expected", "severity"),
    BROKEN,
    ids=[f"{_id(b[0], b[1])}-{b[3]}-{i}" for i, b in enumerate(BROKEN)],
)
def test_validate_raises_only_for_errors(
    direction: Direction, message_type: str, data: Any, path: str, expected: str, severity: Severity
) -> None:
    """validate() raises InvalidPayload (naming the field) for ERROR, and stays silent for DEVIATION."""
    message = Message(message_type, data, NODE)
    if severity is Severity.ERROR:
        with pytest.raises(InvalidPayload) as info:
            validate(message, direction)
        assert info.value.rule == f"schema.{message_type}"
        assert path in info.value.expected
    else:
        validate(message, direction)


def test_several_problems_are_all_reported() -> None:
    """Every broken field is reported, not only the first."""
    data = {"state": "bogus", "current_cpu_usage": "x"}
    paths = {p.path: p.severity for p in check_payload(Message("heartbeat", data, NODE), W2M)}
    assert paths == {
        "heartbeat.data['state']": Severity.ERROR,
        "heartbeat.data['current_cpu_usage']": Severity.ERROR,
        "heartbeat.data['current_memory_usage']": Severity.DEVIATION,
    }


def test_validate_ignores_deviation_when_an_error_is_also_present() -> None:
    """validate() raises for the ERROR even if a DEVIATION comes first."""
    data = {"user_classes_count": {"DemoUser": "x"}}  # user_count missing (DEVIATION) + bad count (ERROR)
    problems = check_payload(Message("spawning_complete", data, NODE), W2M)
    assert {p.severity for p in problems} == {Severity.ERROR, Severity.DEVIATION}
    with pytest.raises(InvalidPayload) as info:
        validate(Message("spawning_complete", data, NODE), W2M)
    assert "['DemoUser']" in info.value.expected


def test_extra_keys_are_accepted() -> None:
    """Unknown extra keys in a record are not problems (Locust ignores them)."""
    data = {**HB, "extra": {"anything": [1, 2]}}
    assert check_payload(Message("heartbeat", data, NODE), W2M) == []


@pytest.mark.parametrize(
    ("classes", "user_count"),
    [({"DemoUser": 2}, 3), ({"A": 1, "B": 2}, 2), ({}, 1), ({"DemoUser": 0}, -1)],
)
def test_spawning_complete_user_count_must_be_the_sum(classes: dict[str, int], user_count: int) -> None:
    """W->M spawning_complete whose user_count differs from sum(user_classes_count) is flagged."""
    problems = check_payload(Message("spawning_complete", {"user_classes_count": classes, "user_count": user_count}, NODE), W2M)
    assert len(problems) == 1
    assert problems[0].path == "spawning_complete.data['user_count']"
    assert str(sum(classes.values())) in problems[0].expected
    assert problems[0].observed == repr(user_count)
    assert problems[0].severity is Severity.DEVIATION  # the master never reads it; Locust's worker asserts it


def test_client_ready_minus_one_float_is_accepted() -> None:
    """The master compares with `!= -1`, so -1.0 bypasses the version check like -1."""
    assert check_payload(Message("client_ready", -1.0, NODE), W2M) == []
    assert check_payload(Message("client_ready", -2, NODE), W2M) != []


def test_master_spawning_complete_has_no_sum_rule() -> None:
    """The M->W spawning_complete only carries user_count; no sum to compare with."""
    assert check_payload(Message("spawning_complete", {"user_count": 99}, NODE), M2W) == []


@pytest.mark.parametrize(
    ("direction", "message_type", "data"),
    [
        (W2M, "demo_to_master", {"echo": 1}),
        (M2W, "demo_to_worker", {"hello": [1, 2.5, "x"], "none": None}),
        (W2M, "custom", None),
        (M2W, "", 123),
        # built-in types sent in the wrong direction are custom (unknown) types for the receiver
        (W2M, "ack", "whatever"),
        (W2M, "spawn", None),
        (M2W, "stats", 5),
        (M2W, "client_ready", None),
    ],
)
def test_unknown_and_custom_types_give_no_problems(direction: Direction, message_type: str, data: Any) -> None:
    """Custom or unknown types are not schema-checked."""
    message = Message(message_type, data, NODE)
    assert check_payload(message, direction) == []
    validate(message, direction)


def test_problem_str() -> None:
    """A Problem renders as 'path: expected X, got Y' and defaults to ERROR."""
    problem = Problem("heartbeat.data['state']", "one of 'ready'", "str 'x'")
    assert problem.severity is Severity.ERROR
    assert str(problem) == "heartbeat.data['state']: expected one of 'ready', got str 'x'"


def test_long_observed_values_are_truncated() -> None:
    """A huge wrong value is abbreviated in the report."""
    (problem,) = check_payload(Message("exception", {"msg": ["x" * 500], "traceback": ""}, NODE), W2M)
    assert problem.path == "exception.data['msg']"
    assert problem.observed.endswith("...")
    assert len(problem.observed) < 80


# ---------------------------------------------------------------------------------------------
# Severities that follow what Locust's peers actually read (regressions of bugs found earlier).
# ---------------------------------------------------------------------------------------------


def test_ack_without_index_is_only_a_deviation() -> None:
    """A worker tolerates {"index"}-less acks, so this must not be an ERROR."""
    message = Message("ack", {}, NODE)
    assert [p.severity for p in check_payload(message, M2W)] == [Severity.DEVIATION]
    validate(message, M2W)


def test_master_heartbeat_with_data_is_only_a_deviation() -> None:
    """The worker ignores the master heartbeat's data, so extra data is a DEVIATION."""
    message = Message("heartbeat", {"x": 1}, NODE)
    assert [p.severity for p in check_payload(message, M2W)] == [Severity.DEVIATION]
    validate(message, M2W)
