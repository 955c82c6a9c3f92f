"""The proxy between real workers and the real Locust 2.47 master: nothing lost, the same load counted, and the
missing rule checked against the real master's own verdict on the same traffic."""

from __future__ import annotations

import csv
import datetime
import json
import re
import sys
import threading
import time
from pathlib import Path

import pytest

from harness.launcher import PEERS, WorkerProcess
from harness.master_catalog.masters import free_port
from harness.proxy.forwarder import Proxy
from harness.proxy.plan import ProxyPlan
from harness.proxy.session import ProxyRunResult, run_proxy, write_report
from harness.report import write_run_report
from harness.report.schema import schema_errors
from harness.verdicts import Verdict
from tests.foreign_peers import locust_or_skip

locust_or_skip()

pytestmark = [pytest.mark.interop]
USERS, PER_USER = 4, 15
LOG_SLACK = 0.5  # the master writes its log line a little after its tick (the master catalog's slack)


def master_command(port: int, csv_prefix: Path, run_time: str, workers: int, users: int = USERS) -> str:
    return (
        f"env LC_REQUESTS_PER_USER={PER_USER} LC_WAIT_TIME=0.05 LC_TASK_TIME=0.01 {sys.executable} -m locust "
        f"-f {PEERS}/locustfile.py --master --master-bind-host 127.0.0.1 --master-bind-port {port} --headless "
        f"-u {users} -r {users} -t {run_time} --expect-workers {workers} --csv {csv_prefix} --loglevel INFO --stop-timeout 0"
    )


def locust_worker(port: int) -> str:
    return (
        f"env LC_REQUESTS_PER_USER={PER_USER} LC_WAIT_TIME=0.05 LC_TASK_TIME=0.01 {sys.executable} -m locust "
        f"-f {PEERS}/locustfile.py --worker --master-host 127.0.0.1 --master-port {port}"
    )


def _passing(verdict: Verdict) -> bool:
    """OK, or a heartbeat gap past 1.5 intervals at most (NON-STRICT): at Locust's 1 s pace on a loaded 2-core CI
    machine a worker's 1 s heartbeat can come 0.5 s late, which the master tolerates; nothing FAILED or UNKNOWN."""
    return verdict in (Verdict.OK, Verdict.INFORMATIONAL, Verdict.NON_STRICT)


def aggregated(csv_prefix: Path) -> int:
    with open(f"{csv_prefix}_stats.csv", newline="") as handle:
        row = next(r for r in csv.DictReader(handle) if r["Name"] == "Aggregated")
    return int(row["Request Count"])


def proxied_run(
    tmp: Path, master_cmd: str, workers: list[str], plan: ProxyPlan | None = None
) -> tuple[ProxyRunResult, str, float]:
    """The master, the proxy in front of it (in this process), the workers on the proxy; the judged run, the
    master's log and the proxy's clock offset (wall time = the proxy's clock + offset)."""
    port = free_port()
    stop = threading.Event()
    out: dict[str, ProxyRunResult] = {}
    proxy = Proxy("127.0.0.1", port, plan=plan)
    offset = proxy.clock.wall() - proxy.clock.now()
    with WorkerProcess(master_cmd.format(port=port), tmp / "master.log") as master:
        _wait_listening(port)
        thread = threading.Thread(target=lambda: out.setdefault("run", run_proxy(proxy, stop, max_seconds=90)), daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not proxy.port or not proxy.started_at:
            assert time.monotonic() < deadline, "the proxy did not start"
            time.sleep(0.02)
        procs = [WorkerProcess(cmd.format(port=proxy.port), tmp / f"worker{i}.log") for i, cmd in enumerate(workers)]
        try:
            for p in procs:
                p.__enter__()
            assert master.wait(80) is not None, "the master did not end its run"
            for p in procs:
                p.wait(15)
        finally:
            for p in procs:
                p.__exit__(None, None, None)
        thread.join(20)
        stop.set()
        thread.join(10)
    assert "run" in out, "the proxy's run did not end"
    write_report(out["run"], tmp / "report")
    return out["run"], master.output(), offset


def _wait_listening(port: int) -> None:
    from harness.proxy.forwarder import master_reachable

    deadline = time.monotonic() + 20
    while not master_reachable("127.0.0.1", port, timeout=0.5):
        assert time.monotonic() < deadline, "the master did not listen within 20 s"
        time.sleep(0.1)


def test_a_fixed_load_through_the_proxy_counts_as_without_it(tmp_path: Path) -> None:
    """Locust's own worker, the same fixed load (USERS x PER_USER requests) with and without the proxy: the master's
    CSV counts the same; every message is forwarded (in = out per direction); nobody goes missing; both OK."""
    direct_port = free_port()
    direct = tmp_path / "direct"
    direct.mkdir()
    with (
        WorkerProcess(master_command(direct_port, direct / "run", "8s", 1), direct / "master.log") as master,
        WorkerProcess(locust_worker(direct_port), direct / "worker.log") as worker,
    ):
        assert master.wait(40) is not None
        worker.wait(15)
    assert aggregated(direct / "run") == USERS * PER_USER, master.output()

    proxied = tmp_path / "proxied"
    proxied.mkdir()
    cmd = master_command(0, proxied / "run", "8s", 1).replace("--master-bind-port 0", "--master-bind-port {port}")
    run, log, _ = proxied_run(proxied, cmd, [locust_worker(0).replace("--master-port 0", "--master-port {port}")])
    assert aggregated(proxied / "run") == USERS * PER_USER == aggregated(direct / "run"), log
    assert "missing" not in log, log
    counts = run.proxy.counts()
    for direction, n in counts.items():
        assert n["read"] == n["forwarded"] > 0 and n["refused"] == 0, (direction, counts)
    assert [_passing(r.verdict) for r in run.results] == [True], [str(f) for r in run.results for f in r.findings]


def test_the_reference_worker_through_the_proxy_loses_nothing(tmp_path: Path) -> None:
    """Our worker beside Locust's through the proxy: the master's CSV has every request both made (the reference
    worker logs its count; Locust's makes USERS/2 x PER_USER), frames in = frames out, both connections OK."""
    cmd = master_command(0, tmp_path / "run", "8s", 2).replace("--master-bind-port 0", "--master-bind-port {port}")
    reference = f"{sys.executable} -m worker --master-port {{port}}"
    run, log, _ = proxied_run(tmp_path, cmd, [reference, locust_worker(0).replace("--master-port 0", "--master-port {port}")])
    made = re.search(r"requests made: (\d+)", (tmp_path / "worker0.log").read_text())
    assert made, (tmp_path / "worker0.log").read_text()
    assert aggregated(tmp_path / "run") == int(made.group(1)) + USERS // 2 * PER_USER, log
    assert "missing" not in log, log
    for direction, n in run.proxy.counts().items():
        assert n["read"] == n["forwarded"] > 0 and n["refused"] == 0, direction
    assert [_passing(r.verdict) for r in run.results] == [True, True], [str(f) for r in run.results for f in r.findings]
    doc = json.loads((tmp_path / "report" / "results.json").read_text())
    assert schema_errors(doc) == [] and doc["run"]["role"] == "proxy" and len(doc["cases"]) == 2
    files = write_run_report(tmp_path / "report")  # junit.xml and the HTML pages, as for every run
    assert files.junit.exists() and files.index.exists()


MISSING_LINE = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\].*Worker (\S+) failed to send heartbeat, setting state to missing"
)


def test_heartbeats_held_back_six_seconds_the_real_master_and_the_proxy_agree_on_missing(tmp_path: Path) -> None:
    """The proxy drops one worker's heartbeats to the master for 6 s (a second worker keeps the test running: a master
    whose last worker goes missing stops the test). The real master logs that worker missing; the proxy's master-view
    rule says so too, within one tick (the rule's window) of the master's own line, and 4-5 intervals after the last
    heartbeat the master got; the worker is not blamed (its heartbeats were on time: proxy.missing-by-fault is said,
    no heartbeat finding); the master hears it again once the drops end."""
    plan = ProxyPlan.from_dict(
        {
            "seed": 1,
            "faults": [
                {"direction": "to-master", "workers": ["victim_*"], "kind": "drop", "types": ["heartbeat"], "start": 4, "end": 10}
            ],
        }
    )
    cmd = master_command(0, tmp_path / "run", "14s", 2, users=2).replace("--master-bind-port 0", "--master-bind-port {port}")
    workers = [f"{sys.executable} -m worker --master-port {{port}} --node-id {name}_1" for name in ("victim", "healthy")]
    run, log, offset = proxied_run(tmp_path, cmd, workers, plan)
    by_name = {r.connection.identity: r for r in run.results}
    victim, healthy = by_name["victim_1"], by_name["healthy_1"]
    lines = [m for m in (MISSING_LINE.match(line) for line in log.splitlines()) if m]
    assert [m.group(2) for m in lines] == ["victim_1"], log
    stamp = datetime.datetime.strptime(lines[0].group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()  # local time, as Locust logs
    master_missing = stamp - offset - run.proxy.started_at  # on the proxy's clock, seconds since it started
    views = victim.measurements["master_view"]
    predicted = [t for t, change in views if change == "missing"]
    assert len(predicted) == 1, views
    interval = run.proxy.timing.heartbeat_interval
    assert abs(predicted[0] - master_missing) <= interval + LOG_SLACK, (predicted, master_missing)
    records = run.proxy.trace.records()
    first_drop = next(r.seq for r in records if r.kind.value == "fault" and r.identity == "victim_1" and "drop" in r.note)
    beats = [r.t for r in records if r.kind.value == "recv" and r.identity == "victim_1" and r.type == "heartbeat"]
    before = [
        r.t
        for r in records
        if r.seq < first_drop and r.kind.value == "recv" and r.identity == "victim_1" and r.type == "heartbeat"
    ]
    assert len(before) >= 2 and len(beats) > len(before), beats
    last = before[-2] - run.proxy.started_at  # the last heartbeat the master got: the one before the first dropped
    assert 4 * interval <= master_missing - last <= 5 * interval + LOG_SLACK, (master_missing, last)
    assert any(change == "healed" for _, change in views), views
    oracles = {f.oracle: f.verdict for f in victim.findings}
    assert oracles.get("proxy.missing-by-fault") is Verdict.INFORMATIONAL, oracles
    assert not any(o.startswith("heartbeat.") for o in oracles), oracles
    assert victim.verdict in (Verdict.OK, Verdict.INFORMATIONAL), [str(f) for f in victim.findings]
    assert healthy.verdict is Verdict.OK and not healthy.measurements["master_view"], [str(f) for f in healthy.findings]
