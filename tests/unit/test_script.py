"""Tests of fakemaster.script: parsing and loading scripts, ``where`` matching, substitution, and run_script.

run_script and substitution run against a real FakeMaster on 127.0.0.1 (port 0), with a raw pyzmq DEALER
playing the worker. Every receive has a deadline; every socket closes with ``linger=0``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fakemaster import FakeMaster
from fakemaster.script import (
    DEFAULT_WITHIN,
    STEP_KINDS,
    Script,
    Step,
    first_message_or_exit,
    load_script,
    parse_script,
    run_script,
    substitute,
    where_matches,
)
from harness.clock import FakeClock
from harness.errors import ExpectationFailed, HarnessFault, ScenarioError
from harness.protocol.timing import LOCUST_TIMING
from harness.trace import Kind
from tests.peers import PeerFactory

pytestmark = pytest.mark.timeout(30)

TIMING = LOCUST_TIMING.compressed(0.1)
RECV_TIMEOUT = 2.0
HEARTBEAT_DATA = {"state": "ready", "current_cpu_usage": 12.5, "current_memory_usage": 1000}


# --------------------------------------------------------------------------------------------
# parse_script / load_script: malformed scripts
# --------------------------------------------------------------------------------------------

BAD_STEPS: list[tuple[str, list[Any], int, str]] = [
    ("no-kind", [{"note": "ok"}, {"within": 1}], 2, "needs exactly one of"),
    ("two-kinds", [{"expect": "heartbeat", "send": "stop"}], 1, "needs exactly one of"),
    ("unknown-key-only", [{"note": "a"}, {"note": "b"}, {"expectt": "x"}], 3, "needs exactly one of"),
    ("not-an-object", [{"note": "a"}, "expect"], 2, "expected an object"),
    ("negative-within", [{"note": "a"}, {"note": "b"}, {"expect": "heartbeat", "within": -1}], 3, "'within'"),
    ("string-within", [{"expect": "heartbeat", "within": "5"}], 1, "'within'"),
    ("negative-sleep", [{"note": "a"}, {"sleep": -0.5}], 2, "'sleep'"),
    ("bad-hex", [{"note": "a"}, {"send_raw": ["zz"]}], 2, "send_raw"),
    ("odd-hex", [{"send_raw": ["abc"]}], 1, "send_raw"),
    ("hex-not-a-list", [{"send_raw": 5}], 1, "send_raw"),
    ("hex-item-not-str", [{"send_raw": ["00", 1]}], 1, "send_raw"),
    ("where-list", [{"note": "a"}, {"expect": "stats", "where": ["user_count"]}], 2, "'where'"),
    ("where-str", [{"expect": "stats", "where": "user_count > 0"}], 1, "'where'"),
]


@pytest.mark.parametrize(
    ("steps", "number", "words"), [(s, n, w) for _, s, n, w in BAD_STEPS], ids=[name for name, _, _, _ in BAD_STEPS]
)
def test_malformed_step_names_its_number(steps: list[Any], number: int, words: str) -> None:
    """Every malformed step raises ScenarioError starting with 'step N:' (1-based)."""
    with pytest.raises(ScenarioError) as info:
        parse_script({"steps": steps})
    message = str(info.value)
    assert message.startswith(f"step {number}: "), message
    assert words in message


@pytest.mark.parametrize("interval", [0, -1, -0.5, "1", None])
def test_bad_heartbeat_interval(interval: Any) -> None:
    """heartbeat_interval must be a positive number."""
    with pytest.raises(ScenarioError, match="heartbeat_interval must be a positive number"):
        parse_script({"heartbeat_interval": interval, "steps": []})


@pytest.mark.parametrize("raw", [{}, {"steps": {"note": "x"}}, "steps", 5, None], ids=repr)
def test_script_without_a_steps_list(raw: Any) -> None:
    with pytest.raises(ScenarioError, match="'steps' list"):
        parse_script(raw, name="broken")


def test_parse_accepts_a_bare_list_and_every_kind() -> None:
    """A bare list is the steps; each step keeps its index, kind and spec; defaults are filled in."""
    specs: dict[str, Any] = {
        "sleep": 0.5,
        "send_raw": ["00ff"],
        "auto": {"ack": False},
        "spawn": {"UserA": 1},
        "expect_connection": True,
    }
    steps = [{kind: specs.get(kind)} for kind in STEP_KINDS]
    script = parse_script(steps)
    assert [s.kind for s in script.steps] == list(STEP_KINDS)
    assert [s.index for s in script.steps] == list(range(len(STEP_KINDS)))
    assert script.heartbeat_interval == 1.0 and script.name == "script"
    assert str(script.steps[0]) == 'step 1 {"expect": null}'
    assert parse_script({"steps": [], "heartbeat_interval": 2, "name": 7}).heartbeat_interval == 2.0
    assert parse_script({"steps": [], "name": 7}).name == "7"


JSON_SCRIPT = {
    "heartbeat_interval": 0.25,
    "steps": [
        {"expect": "client_ready", "within": 2},
        {"send": "custom", "data": {"a": 1}},
        {"expect": "heartbeat", "where": {"state": "ready", "stats_total.num_requests": {">": 0}}},
        {"send_raw": ["c1", ""]},
    ],
}
TOML_SCRIPT = """\
heartbeat_interval = 0.25

[[steps]]
expect = "client_ready"
within = 2

[[steps]]
send = "custom"
data = { a = 1 }

[[steps]]
expect = "heartbeat"
where = { state = "ready", "stats_total.num_requests" = { ">" = 0 } }

[[steps]]
send_raw = ["c1", ""]
"""


def test_load_json_and_toml_agree(tmp_path: Path) -> None:
    """The same script in JSON and TOML loads to the same steps; the name is the file stem."""
    json_path = tmp_path / "lifecycle.json"
    json_path.write_text(json.dumps(JSON_SCRIPT), "utf-8")
    toml_path = tmp_path / "lifecycle-toml.toml"
    toml_path.write_text(TOML_SCRIPT, "utf-8")
    from_json, from_toml = load_script(json_path), load_script(toml_path)
    assert from_json.name == "lifecycle" and from_toml.name == "lifecycle-toml"
    assert from_json.steps == from_toml.steps
    assert from_json.heartbeat_interval == from_toml.heartbeat_interval == 0.25
    assert [s.kind for s in from_json.steps] == ["expect", "send", "expect", "send_raw"]


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_load_reports_the_bad_step(tmp_path: Path, suffix: str) -> None:
    """Step errors in files name the step as well."""
    path = tmp_path / f"bad{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps({"steps": [{"note": "a"}, {"sleep": -1}]}), "utf-8")
    else:
        path.write_text('[[steps]]\nnote = "a"\n\n[[steps]]\nsleep = -1\n', "utf-8")
    with pytest.raises(ScenarioError, match=r"^step 2: 'sleep'"):
        load_script(path)


@pytest.mark.parametrize("problem", ["missing", "directory", "bad-json", "bad-toml", "not-utf8"])
def test_unreadable_file(tmp_path: Path, problem: str) -> None:
    """A file that cannot be read or parsed is a ScenarioError naming the file."""
    path = {
        "missing": tmp_path / "nope.json",
        "directory": tmp_path / "dir.json",
        "bad-json": tmp_path / "bad.json",
        "bad-toml": tmp_path / "bad.toml",
        "not-utf8": tmp_path / "latin.json",
    }[problem]
    if problem == "directory":
        path.mkdir()
    elif problem == "bad-json":
        path.write_text('{"steps": [', "utf-8")
    elif problem == "bad-toml":
        path.write_text("[[steps]\nnote = ", "utf-8")
    elif problem == "not-utf8":
        path.write_bytes(b'{"steps": [{"note": "\xe9"}]}')
    with pytest.raises(ScenarioError) as info:
        load_script(path)
    assert str(info.value).startswith(f"cannot read script {path}: ")


# --------------------------------------------------------------------------------------------
# where_matches
# --------------------------------------------------------------------------------------------

DATA: dict[Any, Any] = {
    "state": "running",
    "user_count": 5,
    "cpu": 12.5,
    "none": None,
    "stats_total": {"num_requests": 10, "name": "Aggregated", "response_times": {100: 3, -1: 2}},
    "user_classes_count": {"UserA": 2, "UserB": 3},
    "both": {"1": "str-key", 1: "int-key"},
    "tags": ["a", "b"],
}


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({}, True),
        ({"state": "running"}, True),
        ({"state": "ready"}, False),
        ({"none": None}, True),
        ({"tags": ["a", "b"]}, True),
        ({"user_classes_count": {"UserA": 2, "UserB": 3}}, True),  # a dict that is no operator: equality
        ({"user_classes_count": {"UserA": 2}}, False),
        ({"stats_total.num_requests": 10}, True),
        ({"stats_total.name": "Aggregated", "user_count": 5}, True),
        ({"stats_total.name": "Aggregated", "user_count": 6}, False),  # every condition must hold
        ({"user_classes_count.UserB": 3}, True),
        ({"stats_total.response_times.100": 3}, True),  # int keys from msgpack
        ({"stats_total.response_times.-1": 2}, True),
        ({"both.1": "str-key"}, True),  # an existing str key wins over the int
    ],
)
def test_where_equality_and_paths(where: dict[str, Any], expected: bool) -> None:
    assert where_matches(where, DATA) is expected


@pytest.mark.parametrize(
    ("op", "operand", "value", "expected"),
    [
        ("==", 5, 5, True),
        ("==", 5, 6, False),
        ("!=", 5, 6, True),
        ("!=", 5, 5, False),
        (">", 4, 5, True),
        (">", 5, 5, False),
        (">=", 5, 5, True),
        (">=", 6, 5, False),
        ("<", 6, 5, True),
        ("<", 5, 5, False),
        ("<=", 5, 5, True),
        ("<=", 4, 5, False),
        ("in", [1, 5], 5, True),
        ("in", [1, 2], 5, False),
        ("in", "running spawning", "spawning", True),
        ("in", {"a": 1}, "b", False),
    ],
)
def test_where_operators(op: str, operand: Any, value: Any, expected: bool) -> None:
    assert where_matches({"x.y": {op: operand}}, {"x": {"y": value}}) is expected


@pytest.mark.parametrize(
    ("where", "data"),
    [
        ({"missing": None}, DATA),
        ({"stats_total.missing": 1}, DATA),
        ({"state.deeper": "x"}, DATA),  # through a non-map
        ({"tags.0": "a"}, DATA),  # lists are not indexed
        ({"stats_total.response_times.200": 3}, DATA),
        ({"a": 1}, None),
        ({"a": 1}, [1]),
        ({"missing": {"!=": 1}}, DATA),  # an operator on a missing path is still False
    ],
)
def test_where_missing_paths_are_false(where: dict[str, Any], data: Any) -> None:
    assert where_matches(where, data) is False


@pytest.mark.parametrize(
    "where",
    [
        {"state": {">": 3}},
        {"user_count": {"<": "10"}},
        {"user_count": {"in": 5}},
        {"none": {">=": 0}},
    ],
)
def test_where_type_errors_are_false(where: dict[str, Any]) -> None:
    """An operator that cannot compare its operands is a mismatch, not a crash."""
    assert where_matches(where, DATA) is False


# --------------------------------------------------------------------------------------------
# Real sockets: a FakeMaster and a raw DEALER worker
# --------------------------------------------------------------------------------------------


@pytest.fixture
def master() -> Iterator[FakeMaster]:
    with FakeMaster(timing=TIMING) as m:
        m.set_auto(liveness=False)  # keep traces free of liveness records
        yield m


def notes(m: FakeMaster) -> list[str]:
    return [r.note for r in m.trace.records() if r.kind is Kind.NOTE]


# --------------------------------------------------------------------------------------------
# substitute
# --------------------------------------------------------------------------------------------


def test_substitute_now_and_worker(make_peer: PeerFactory) -> None:
    """$now is the master clock's wall time, $worker the default worker, at any depth; nothing else changes."""
    clock = FakeClock(start=50.0, wall_start=1_700_000_000.0)
    with FakeMaster(timing=TIMING, clock=clock) as m:
        with pytest.raises(ScenarioError, match="no worker"):
            substitute("$worker", m)
        peer = make_peer(m, "w-subst")
        peer.register()
        value = {"at": "$now", "who": ["$worker", {"deep": "$worker"}], "keep": ["$nowx", "now", 3, None, "$WORKER"]}
        assert substitute(value, m) == {
            "at": 1_700_000_000.0,
            "who": ["w-subst", {"deep": "w-subst"}],
            "keep": ["$nowx", "now", 3, None, "$WORKER"],
        }
        clock.advance(2.5)
        assert substitute("$now", m) == 1_700_000_002.5
        assert substitute({"$now": 1}, m) == {"$now": 1}  # keys are not substituted


# --------------------------------------------------------------------------------------------
# run_script
# --------------------------------------------------------------------------------------------


def test_run_script_passes(master: FakeMaster, make_peer: PeerFactory) -> None:
    """Every kind of step runs; what the script sends reaches the worker in order, with substitutions."""
    peer = make_peer(master, "w-script")
    peer.send("client_ready", "2.47.0")
    peer.send("heartbeat", HEARTBEAT_DATA)
    script = parse_script(
        {
            "steps": [
                {"expect": "client_ready", "within": 2},
                {"expect": "heartbeat", "within": 2, "where": {"state": "ready", "current_cpu_usage": {"<": 50}}},
                {"send": "custom_ping", "data": {"at": "$now", "to": ["$worker", 1]}},
                {"spawn": {"UserA": 2, "UserB": 0}, "stop_timeout": 1.5},
                {"send_raw": ["c1", ""]},
                {"auto": {"heartbeat": False}},
                {"note": "hello from the script"},
                {"sleep": 0.01},
                {"expect_none": "stats", "within": 0.1},
            ]
        }
    )
    before = time.time()
    result = run_script(master, script)
    assert result.ok, result.error
    assert result.steps_run == len(script.steps) and result.failed_step is None

    assert peer.recv() == ["ack", {"index": 0}, "w-script"]
    assert peer.recv() == ["heartbeat", None, "w-script"]
    kind, data, node_id = peer.recv()
    assert (kind, node_id, data["to"]) == ("custom_ping", "w-script", ["w-script", 1])
    assert before - 1 <= data["at"] <= time.time() + 1
    kind, data, _ = peer.recv()
    assert kind == "spawn" and data["user_classes_count"] == {"UserA": 2, "UserB": 0} and data["stop_timeout"] == 1.5
    assert peer.recv_frames() == [b"\xc1", b""]

    since = len(master.trace)
    peer.send("heartbeat", HEARTBEAT_DATA)  # auto heartbeat is off now
    assert master.wait_for("heartbeat", RECV_TIMEOUT, after=since) is not None
    assert peer.recv_frames(0.2) is None
    assert "hello from the script" in notes(master)
    assert sum(n.startswith("step ") for n in notes(master)) == len(script.steps)


def test_run_script_stops_at_a_failed_expect(master: FakeMaster, make_peer: PeerFactory) -> None:
    """A missed expect: ExpectationFailed naming what was seen, the failed step's index, nothing after it run."""
    peer = make_peer(master, "w-fail")
    peer.send("client_ready", "2.47.0")
    peer.send("heartbeat", HEARTBEAT_DATA)
    script = parse_script(
        [
            {"expect": "client_ready", "within": 2},
            {"expect": "heartbeat", "within": 0.3, "where": {"state": "running"}},
            {"note": "never reached"},
        ]
    )
    result = run_script(master, script)
    assert not result.ok
    assert isinstance(result.error, ExpectationFailed)
    assert result.failed_step is script.steps[1] and result.failed_step.index == 1
    assert result.steps_run == 1
    assert result.error.rule == "expect.heartbeat"
    assert '{"state": "running"}' in result.error.expected
    assert result.error.observed == "1 messages: heartbeat"
    assert "never reached" not in notes(master)
    assert any(n.startswith("step 2 ") and "failed" in n for n in notes(master))


def test_run_script_expect_none_fails_when_the_message_comes(master: FakeMaster, make_peer: PeerFactory) -> None:
    peer = make_peer(master, "w-chatty")
    peer.send("heartbeat", HEARTBEAT_DATA)
    result = run_script(master, parse_script([{"note": "first"}, {"expect_none": "heartbeat", "within": 2}]))
    assert isinstance(result.error, ExpectationFailed) and result.error.rule == "expect-none.heartbeat"
    assert result.failed_step is not None and result.failed_step.index == 1


def test_expect_connection_waits_for_a_new_connection_after_the_last_send(master: FakeMaster, make_peer: PeerFactory) -> None:
    """After a reconnect: a worker that keeps its connection fails the step; one that connects again passes it, and
    a later expect reads only what came once the new connection was up."""
    old = make_peer(master, "w-old")
    old.send("client_ready", "2.47.0")
    old.send("heartbeat", HEARTBEAT_DATA)
    steps = [
        {"expect": "client_ready", "within": 2},
        {"send": "reconnect", "to": "w-old"},
        {"expect_connection": True, "within": 0.5},
    ]
    kept = run_script(master, parse_script(steps))
    assert isinstance(kept.error, ExpectationFailed) and kept.error.rule == "expect.connection"
    assert kept.error.observed == "none: the worker kept its old connection"
    master.send("reconnect", None, to="w-old")
    before = len(master.trace)
    old.send("heartbeat", HEARTBEAT_DATA)  # over the old connection, before the new one is up: not what counts
    assert master.wait_for("heartbeat", within=2, after=before) is not None
    new = make_peer(master, "w-new")  # a new connection after the master's last send
    found = master.expect_connection(within=3)
    new.send("heartbeat", HEARTBEAT_DATA)
    assert found.kind is Kind.NOTE and master.expect("heartbeat", within=2).identity == "w-new"


@pytest.mark.parametrize(
    ("steps", "error"),
    [
        ([{"send": "custom", "to": "nobody"}], HarnessFault),  # ROUTER_MANDATORY refuses it
        ([{"send_raw": ["00"], "to": "nobody"}], HarnessFault),
        ([{"spawn": {"UserA": -1}, "to": "nobody"}], ScenarioError),
        ([{"spawn": ["UserA"], "to": "nobody"}], ScenarioError),
        ([{"send": "custom", "data": "$worker"}], ScenarioError),  # nobody connected
        ([{"expect_exit": 0}], ScenarioError),  # no process
    ],
)
def test_run_script_errors_say_whose_fault(master: FakeMaster, steps: list[Any], error: type[Exception]) -> None:
    result = run_script(master, parse_script(steps))
    assert type(result.error) is error, result.error
    assert result.failed_step is not None and result.failed_step.index == 0 and result.steps_run == 0


class FakeProcess:
    """A worker process stand-in whose ``wait`` returns a fixed exit code (None: still running)."""

    def __init__(self, code: int | None) -> None:
        self.code = code
        self.waits: list[float] = []

    def wait(self, timeout: float) -> int | None:
        self.waits.append(timeout)
        return self.code


@pytest.mark.parametrize(
    ("wanted", "code", "ok", "observed"),
    [
        (0, 0, True, None),
        (None, 3, True, None),
        (0, 255, False, "exit code 255"),
        (1, 0, False, "exit code 0"),
        (0, None, False, "still running"),
        (None, None, False, "still running"),
    ],
)
def test_expect_exit(master: FakeMaster, wanted: int | None, code: int | None, ok: bool, observed: str | None) -> None:
    """expect_exit waits ``within`` for the process and compares its exit code (null: any)."""
    process = FakeProcess(code)
    result = run_script(master, parse_script([{"expect_exit": wanted, "within": 0.5}]), process)
    assert process.waits == [0.5]
    assert result.exit_code == code
    assert result.ok is ok
    if not ok:
        assert isinstance(result.error, ExpectationFailed) and result.error.rule == "expect.exit"
        assert result.error.observed == observed
        assert result.failed_step is not None and result.failed_step.index == 0


def test_expect_exit_default_within(master: FakeMaster) -> None:
    process = FakeProcess(0)
    assert run_script(master, parse_script([{"expect_exit": 0}]), process).ok
    assert process.waits == [DEFAULT_WITHIN]


def test_expect_exit_without_process(master: FakeMaster) -> None:
    """Asking for an exit code without a process is the script's fault."""
    result = run_script(master, Script((Step(0, "expect_exit", {"expect_exit": 0}),)))
    assert isinstance(result.error, ScenarioError) and "needs a worker process" in str(result.error)


def test_first_message_or_exit(master: FakeMaster, make_peer: PeerFactory) -> None:
    """None at once if the process has died silently; the first record once the worker speaks."""
    started = time.monotonic()
    assert first_message_or_exit(master, FakeProcess(1), 5.0) is None
    assert time.monotonic() - started < 1.0
    peer = make_peer(master, "w-first")
    peer.send("client_ready", "2.47.0")
    record = first_message_or_exit(master, FakeProcess(None), 5.0)
    assert record is not None and record.type == "client_ready" and record.identity == "w-first"


def test_malformed_auto_step_is_a_scenario_error(master: FakeMaster) -> None:
    """{"auto": true} is a malformed script: ScenarioError at parse time or as run_script's result."""
    try:
        script = parse_script([{"auto": True}])
    except ScenarioError as exc:
        assert str(exc).startswith("step 1: ")
        return
    result = run_script(master, script)
    assert isinstance(result.error, ScenarioError)
