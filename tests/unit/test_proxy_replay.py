"""Tests of harness.proxy.replay (a recorded trace -> a fake-master script, pure) and of the parts of the replay
command that need no process: reading TRACE, --as-script, bad inputs as usage errors, the reconnect judgement."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from fakemaster.script import load_script, parse_script
from harness.cli import main
from harness.errors import ScenarioError
from harness.protocol.messages import Message
from harness.proxy import replay_cli
from harness.proxy.replay import connections, parse_trace, pick_connection, records_from_json, to_script
from harness.trace import Kind, TraceRecord

pytestmark = pytest.mark.timeout(30)

W = "vm_0123456789abcdef"
OTHER = "vm_fedcba9876543210"


def rec(
    seq: int, t: float, kind: str, type_: str | None = None, data: Any = None, identity: str = W, **extra: Any
) -> dict[str, Any]:
    out: dict[str, Any] = {"seq": seq, "t": t, "kind": kind}
    if identity:
        out["identity"] = identity
    if type_ is not None:
        out.update(type=type_, data=data, node_id=identity)
    out.update(extra)
    return out


SPAWN = {"timestamp": 1796683451.72, "user_classes_count": {"U": 3}, "host": None, "stop_timeout": 1.0, "parsed_options": {}}
BEAT = {"state": "running", "current_cpu_usage": 0.0, "current_memory_usage": 1000}


def conversation(identity: str = W, start: int = 0) -> list[dict[str, Any]]:
    """client_ready, ack, heartbeats and replies, spawn, spawning_complete, stats, reconnect, quit and the worker's quit."""
    rows = [
        ("recv", "client_ready", "2.47.0", 0.10),
        ("send", "ack", {"index": 0}, 0.11),
        ("recv", "heartbeat", {**BEAT, "state": "ready"}, 0.12),
        ("send", "heartbeat", None, 0.13),
        ("send", "spawn", SPAWN, 0.50),
        ("recv", "spawning", None, 0.51),
        ("recv", "spawning_complete", {"user_classes_count": {"U": 3}, "user_count": 3}, 0.52),
        ("recv", "heartbeat", BEAT, 1.12),
        ("send", "heartbeat", None, 1.13),
        ("recv", "stats", {"stats": [], "user_count": 3}, 1.20),
        ("send", "reconnect", None, 2.00),
        ("recv", "heartbeat", BEAT, 3.12),
        ("send", "heartbeat", None, 3.13),
        ("send", "quit", None, 4.00),
        ("recv", "stats", {"stats": [], "user_count": 0}, 4.05),
        ("recv", "quit", None, 4.10),
    ]
    return [rec(start + i, t, kind, type_, data, identity) for i, (kind, type_, data, t) in enumerate(rows)]


EXPECTED_STEPS = [
    {"expect": "client_ready", "within": 10.0},
    {"sleep": 0.4},
    {"send": "spawn", "data": {**SPAWN, "timestamp": "$now"}},
    {"expect": "spawning_complete", "within": 2.02, "where": {"user_count": 3}},
    {"sleep": 1.48},
    {"send": "reconnect"},
    {"expect_connection": True, "within": 2.0},  # the worker's answer: a new connection, and a heartbeat over it
    {"expect": "heartbeat", "within": 2.0},
    {"sleep": 2.0},
    {"send": "quit"},
    {"expect": "quit", "within": 3.1},  # 0.1 s recorded + 2 s slack + the spawn's stop_timeout
    {"expect_exit": None, "within": 6.0},
]


def test_a_conversation_becomes_expectations_sleeps_and_sends() -> None:
    records = [rec(0, 0.0, "note", identity="", note="proxy listening"), *conversation(start=1)]
    script = to_script(records, heartbeat_interval=0.5, source="rec/trace.jsonl")
    assert script["steps"] == EXPECTED_STEPS
    assert script["heartbeat_interval"] == 0.5
    assert script["replay"]["connection"] == W
    assert script["replay"]["master_messages"] == ["spawn", "reconnect", "quit"]  # acks and replies are the fake master's
    parsed = parse_script(json.loads(json.dumps(script)))  # a script run --script reads back, as it is
    assert parsed.heartbeat_interval == 0.5 and len(parsed.steps) == len(EXPECTED_STEPS)


def test_the_recorded_interval_sets_the_slack_and_defaults_to_one_second() -> None:
    script = to_script(conversation())
    assert script["heartbeat_interval"] == 1.0
    assert script["steps"][3] == {"expect": "spawning_complete", "within": 3.02, "where": {"user_count": 3}}


def test_a_master_without_replies_or_acks_switches_them_off() -> None:
    records = [r for r in conversation() if r["kind"] == "recv" or r["type"] not in ("ack", "heartbeat")]
    steps = to_script(records, heartbeat_interval=0.5)["steps"]
    assert steps == [{"auto": {"heartbeat": False}}, {"auto": {"ack": False}}, *EXPECTED_STEPS]


def test_stop_waits_for_client_stopped_and_the_new_client_ready_and_a_retried_client_ready_once() -> None:
    records = [
        rec(0, 0.1, "recv", "client_ready", "2.47.0"),
        rec(1, 1.1, "recv", "client_ready", "2.47.0"),  # retried: no ack within the connect timeout
        rec(2, 1.2, "send", "ack", {"index": 0}),
        rec(3, 2.0, "send", "stop"),
        rec(4, 2.1, "recv", "client_stopped"),
        rec(5, 2.2, "recv", "client_ready", "2.47.0"),
        rec(6, 2.3, "send", "ack", {"index": 1}),
        rec(7, 3.0, "send", "quit"),
    ]
    assert to_script(records)["steps"] == [
        {"expect": "client_ready", "within": 10.0},
        {"sleep": 1.9},
        {"send": "stop"},
        {"expect": "client_stopped", "within": 3.1},
        {"expect": "client_ready", "within": 3.1},
        {"sleep": 0.8},
        {"send": "quit"},
        {"expect_exit": None, "within": 5.0},
    ]


def test_undecodable_frames_node_ids_undelivered_messages_and_the_tail() -> None:
    records = [
        rec(0, 0.1, "recv", "client_ready", "2.47.0"),
        rec(1, 0.2, "send", None, frames_hex=["c1ff"], size=2),
        rec(2, 0.3, "send", "custom", {"to": W, "ids": [W, "x"], "at": 1.5}),
        rec(3, 0.4, "send-failed", "custom", {"lost": True}, note="Host unreachable"),
        rec(4, 1.0, "recv", "heartbeat", BEAT),
        rec(5, 1.01, "send", "ack", {"index": 0}),  # late, but there: the fake master's to make
        rec(6, 1.02, "send", "heartbeat", None),
        rec(7, 2.5, "recv", "heartbeat", BEAT),
    ]
    script = to_script(records)
    assert script["steps"] == [
        {"expect": "client_ready", "within": 10.0},
        {"sleep": 0.1},
        {"send_raw": ["c1ff"]},
        {"sleep": 0.1},
        {"send": "custom", "data": {"to": "$worker", "ids": ["$worker", "x"], "at": 1.5}},
        {"sleep": 2.2},  # the recording went on to 2.5 s: so does the replay
    ]
    assert script["replay"]["undelivered"] == ["custom"]
    assert script["replay"]["master_messages"] == ["undecodable", "custom"]


def test_a_last_reconnect_leaves_the_worker_time_to_connect_again() -> None:
    records = [*conversation()[:11]]  # up to the master's reconnect at 2.0 s: the recording ends there
    assert records[-1]["type"] == "reconnect"
    assert to_script(records, heartbeat_interval=0.5)["steps"][-3:] == [
        {"send": "reconnect"},
        {"expect_connection": True, "within": 2.0},
        {"expect": "heartbeat", "within": 2.0},
    ]
    longer = [*records, rec(20, 2.5, "recv", "heartbeat", BEAT), rec(21, 7.0, "recv", "heartbeat", BEAT)]
    assert to_script(longer, heartbeat_interval=0.5)["steps"][-1] == {"sleep": 5.0}


def test_the_connection_is_the_first_with_a_client_ready_unless_named() -> None:
    silent = [rec(0, 0.05, "recv", "heartbeat", BEAT, identity="stray"), rec(1, 0.06, "send", "quit", identity="stray")]
    records = [*silent, *conversation(OTHER, start=2), *conversation(W, start=40)]
    assert connections(records) == ["stray", OTHER, W]
    assert pick_connection(records) == OTHER
    assert pick_connection(records, W) == W
    assert pick_connection(records, "3") == W
    assert pick_connection(records, "proxy/02-vm-fedcba9876543210") == OTHER
    assert pick_connection(records, "proxy__03-vm-0123456789abcdef") == W
    assert to_script(records, "3")["replay"]["connection"] == W
    with pytest.raises(ScenarioError, match=r"no such connection.*1: stray, 2: vm_fedcba9876543210"):
        pick_connection(records, "vm_nobody")
    with pytest.raises(ScenarioError, match="no connection of the trace sent a client_ready"):
        pick_connection(silent)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "holds no records"),
        ("not json\n", "line 1"),
        ('{"heartbeat_interval": 1, "steps": []}\n', "'kind' must be one of"),  # a script, not a trace
        ("[1, 2]\n", "expected an object"),
        ('{"seq": 0, "t": "soon", "kind": "recv"}\n', "'t' must be a number"),
        ('{"seq": 0, "t": 0.1, "kind": "recv", "frames_hex": "c1"}\n', "'frames_hex' must be a list"),
    ],
)
def test_what_is_not_a_trace_is_a_usage_error(text: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse_trace(text, "x.jsonl")


def test_no_connection_or_nothing_to_replay_is_a_usage_error() -> None:
    with pytest.raises(ScenarioError, match="no worker connection"):
        to_script([rec(0, 0.0, "note", identity="", note="proxy listening")])
    only_auto = [r for r in conversation() if r["kind"] == "recv" or r["type"] in ("ack", "heartbeat")]
    with pytest.raises(ScenarioError, match=r"no message to replay \(only its automatic replies: ack, heartbeat\)"):
        to_script(only_auto)
    with pytest.raises(ScenarioError, match="heartbeat interval"):
        to_script(conversation(), heartbeat_interval=0)


def test_records_read_back_keep_messages_and_notes() -> None:
    [note, ready] = records_from_json(
        [
            rec(0, 0.5, "note", identity="", note="connection accepted fd=3 peer=a:1"),
            rec(1, 0.6, "recv", "client_ready", "2.47.0"),
        ]
    )
    assert note == TraceRecord(0, 0.5, Kind.NOTE, note="connection accepted fd=3 peer=a:1")
    assert ready.message == Message("client_ready", "2.47.0", W) and ready.identity == W


def test_the_replay_module_is_pure() -> None:
    tree = ast.parse(Path(replay_cli.__file__).with_name("replay.py").read_text("utf-8"))
    roots = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    roots |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert roots & {"time", "socket", "zmq", "threading", "subprocess", "os", "fakemaster", "select", "asyncio"} == set()


# -- the command, without a worker ---------------------------------------------------------------------------


def proxy_report(folder: Path, interval: float = 0.5) -> Path:
    """A proxy report's shape: results.json, proxy-trace.jsonl (two connections) and a case folder per connection."""
    first, second = conversation(OTHER, start=1), conversation(W, start=40)
    head = rec(0, 0.0, "note", identity="", note="proxy listening")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps({"run": {"heartbeat_interval": interval}}))
    (folder / "proxy-trace.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [head, *first, *second]))
    for number, rows in ((1, first), (2, second)):
        case = folder / "cases" / f"proxy__0{number}-{rows[0]['identity'].replace('_', '-')}"
        case.mkdir(parents=True)
        (case / "trace.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [head, *rows]))
    return folder


def test_as_script_writes_a_script_run_script_loads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = proxy_report(tmp_path / "rep")
    out = tmp_path / "kept" / "regression.json"
    assert main(["replay", str(report), "--connection", "2", "--as-script", str(out)]) == 0
    assert f"script: {out} (12 steps, connection '{W}')" in capsys.readouterr().out
    script = load_script(out)
    assert script.heartbeat_interval == 0.5  # the recorded interval, from results.json
    assert [s.spec for s in script.steps] == EXPECTED_STEPS
    case_trace = next((report / "cases").glob("proxy__02-*")) / "trace.jsonl"
    assert main(["replay", str(case_trace), "--as-script", str(tmp_path / "from-case.json")]) == 0
    assert json.loads((tmp_path / "from-case.json").read_text())["heartbeat_interval"] == 0.5  # two folders up
    assert json.loads(out.read_text())["steps"] == json.loads((tmp_path / "from-case.json").read_text())["steps"]


def test_without_worker_or_file_the_script_is_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = proxy_report(tmp_path / "rep", interval=1.0)
    assert main(["replay", str(report / "proxy-trace.jsonl")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["replay"]["connection"] == OTHER and printed["heartbeat_interval"] == 1.0


@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        (lambda d: d / "missing.jsonl", [], "no such trace file or folder"),
        (lambda d: d, [], "a folder without proxy-trace.jsonl"),
        (lambda d: _write(d / "summary.json", '{\n  "verdict": "OK"\n}\n'), [], "not a trace"),
        (lambda d: _write(d / "script.json", '{"steps": []}\n'), [], "not a trace"),
        (
            lambda d: _write(d / "t.jsonl", json.dumps(rec(0, 0.0, "note", identity="", note="x")) + "\n"),
            [],
            "no worker connection",
        ),
        (lambda d: proxy_report(d / "rep"), ["--connection", "7"], "no such connection"),
        (lambda d: proxy_report(d / "rep"), ["--as-script", "s.toml"], "only JSON is written"),
        (lambda d: proxy_report(d / "rep"), ["--worker", "./w --no-port"], "must contain {port}"),
        (lambda d: proxy_report(d / "rep"), ["--worker", "reference", "--master-profile", "9.9"], "profile"),
    ],
)
def test_bad_input_is_a_usage_error_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: Any, args: list[str], message: str
) -> None:
    target = make(tmp_path)
    code = main(
        ["replay", str(target), *args, "--report", str(tmp_path / "out")]
        if "--worker" in args
        else ["replay", str(target), *args]
    )
    err = capsys.readouterr().err
    assert code == 3, err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_results_json_without_an_interval_means_one_second(tmp_path: Path) -> None:
    report = proxy_report(tmp_path / "rep")
    (report / "results.json").write_text("[]")
    assert replay_cli.recorded_interval(report / "proxy-trace.jsonl") == 1.0
    assert replay_cli.trace_file(report / "results.json") == report / "proxy-trace.jsonl"
