"""``locust-conformance replay`` on recordings of the real Locust 2.47 master, made by the proxy (``locust-conformance
proxy``) between it and the reference worker: a plain run replayed against the reference worker passes; a run in
which the master sent ``reconnect`` (the proxy made one of the worker's heartbeats undecodable, and Locust 2.47's
master answers such a frame with a reconnect) passes against the reference worker and FAILS against the worker that
ignores reconnects.

Every process runs in its own session and is always reaped (``WorkerProcess``), every wait has a deadline, ports come
from binding port 0, and all output goes to files in the test's folder.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from harness.launcher import PEERS, WorkerProcess
from harness.master_catalog.masters import free_port
from harness.proxy.forwarder import master_reachable
from tests.foreign_peers import locust_or_skip

locust_or_skip()

pytestmark = [pytest.mark.integration, pytest.mark.interop, pytest.mark.timeout(240)]

REFERENCE = "{python} -m worker --master-host {host} --master-port {port} --heartbeat-interval {heartbeat_interval}"
IGNORES_RECONNECT = REFERENCE + " --defect ignores-reconnect"
# One heartbeat, 3 s in, reaches the master with trailing bytes: Locust 2.47's master cannot decode it and sends
# the worker a reconnect (runners.py, MasterRunner.client_listener: RPCReceiveError).
RECONNECT_PLAN = {
    "seed": 1,
    "faults": [
        {
            "direction": "to-master",
            "kind": "malformed",
            "malformed": "trailing-bytes",
            "types": ["heartbeat"],
            "count": 1,
            "start": 3,
        }
    ],
}
LISTENING = re.compile(r"proxy listening on tcp://127\.0\.0\.1:(\d+)")


def _wait_until(what: str, done: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, f"{what} within {seconds:g} s"
        time.sleep(0.1)


def record(folder: Path, run_time: str, plan: dict[str, Any] | None = None) -> Path:
    """A real Locust master (2 users, one worker expected, ``run_time`` long), the proxy in front of it, the reference
    worker on the proxy; returns the proxy's report folder once all three have ended."""
    folder.mkdir(parents=True, exist_ok=True)
    report = folder / "recording"
    port = free_port()
    master_cmd = (
        f"{sys.executable} -m locust -f {PEERS}/locustfile.py --master --headless --master-bind-host 127.0.0.1 "
        f"--master-bind-port {port} --expect-workers 1 -u 2 -r 2 -t {run_time} --stop-timeout 0 "
        f"--csv {folder}/csv --loglevel INFO"
    )
    proxy_cmd = (
        f"{sys.executable} -m harness.cli proxy --listen 127.0.0.1:0 --master 127.0.0.1:{port} --report {report} --seconds 60"
    )
    if plan is not None:
        (folder / "plan.json").write_text(json.dumps(plan))
        proxy_cmd += f" --faults {folder / 'plan.json'}"
    found: dict[str, int] = {}
    listening = threading.Event()

    def on_line(t: float, text: str) -> None:
        match = LISTENING.search(text)
        if match:
            found["port"] = int(match.group(1))
            listening.set()

    with WorkerProcess(master_cmd, folder / "master.log") as master:
        _wait_until("the real master listens", lambda: master_reachable("127.0.0.1", port, timeout=0.5), 30)
        with WorkerProcess(proxy_cmd, folder / "proxy.log", on_line=on_line) as proxy:
            assert listening.wait(20), proxy.output()
            worker_cmd = f"{sys.executable} -m worker --master-host 127.0.0.1 --master-port {found['port']}"
            with WorkerProcess(worker_cmd, folder / "worker.log") as worker:
                assert master.wait(60) is not None, "the master did not end its run"
                assert worker.wait(20) is not None, "the worker did not leave after the master's quit"
            assert proxy.wait(30) is not None, "the proxy did not end after the worker left"
    assert (report / "proxy-trace.jsonl").is_file(), (folder / "proxy.log").read_text()
    return report


def replay(folder: Path, trace: Path, worker: str, name: str) -> tuple[int, dict[str, Any]]:
    """``locust-conformance replay TRACE --worker CMD``: its exit code and summary.json."""
    out = folder / name
    cmd = (
        f"{shlex.quote(sys.executable)} -m harness.cli replay {shlex.quote(str(trace))} --worker {shlex.quote(worker)} "
        f"--report {shlex.quote(str(out))} --as-script {shlex.quote(str(folder / f'{name}.json'))}"
    )
    with WorkerProcess(cmd, folder / f"{name}.log") as process:
        code = process.wait(90)
        assert code is not None, f"replay did not end within 90 s:\n{process.output()}"
    return code, json.loads((out / "summary.json").read_text())


def proxy_records(report: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (report / "proxy-trace.jsonl").read_text().splitlines() if line.strip()]


def test_a_recording_of_the_real_master_replayed_against_the_reference_worker_passes(tmp_path: Path) -> None:
    report = record(tmp_path, "5s")
    sent = [r["type"] for r in proxy_records(report) if r["kind"] == "send"]
    assert "spawn" in sent and "quit" in sent, sent
    [case] = sorted((report / "cases").iterdir())
    code, summary = replay(tmp_path, case / "trace.jsonl", REFERENCE, "reference")
    assert code == 0, (tmp_path / "reference.log").read_text()
    assert summary["verdict"] == "OK" and summary["steps_run"] == summary["steps_total"], summary
    script = json.loads((tmp_path / "reference.json").read_text())
    kinds = [next(k for k in ("expect", "send", "sleep", "expect_exit") if k in s) for s in script["steps"]]
    assert kinds[0] == "expect" and kinds[-1] == "expect_exit" and "send" in kinds, script["steps"]
    assert script["heartbeat_interval"] == 1.0  # the proxy's recorded interval (results.json)


def test_a_recording_with_a_reconnect_fails_the_worker_that_ignores_it(tmp_path: Path) -> None:
    report = record(tmp_path, "7s", RECONNECT_PLAN)
    records = proxy_records(report)
    assert any(r["kind"] == "fault" and "trailing-bytes" in r.get("note", "") for r in records), "the fault never fired"
    assert any(r["kind"] == "send" and r.get("type") == "reconnect" for r in records), (
        "the real master sent no reconnect:\n" + (tmp_path / "master.log").read_text()
    )
    code, summary = replay(tmp_path, report, IGNORES_RECONNECT, "ignores-reconnect")
    assert code == 1, (tmp_path / "ignores-reconnect.log").read_text()
    assert summary["verdict"] == "FAILED"
    failed = [f for f in summary["findings"] if f["verdict"] == "FAILED"]
    assert [f["oracle"] for f in failed] == ["expect.connection"], summary  # the script's expect_connection step
    assert "a new connection" in failed[0]["expected"] and "kept its old connection" in failed[0]["observed"], failed
    code, summary = replay(tmp_path, report, REFERENCE, "reference")
    assert code == 0, (tmp_path / "reference.log").read_text()
    assert summary["verdict"] == "OK", summary
    script = json.loads((tmp_path / "reference.json").read_text())
    at = script["steps"].index({"send": "reconnect"})
    assert script["steps"][at + 1]["expect_connection"] is True and script["steps"][at + 2]["expect"] == "heartbeat"
