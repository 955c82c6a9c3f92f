"""``locust-conformance proxy``: between real workers and a real master, record and judge their traffic, with faults
in either direction; on Ctrl-C, SIGTERM, ``--seconds`` or when the last worker has left, the usual report."""

from __future__ import annotations

import argparse
import datetime
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from harness.errors import ScenarioError
from harness.owner import raise_open_file_limit
from harness.protocol.timing import LOCUST_TIMING
from harness.proxy.forwarder import Proxy, master_reachable
from harness.proxy.plan import ProxyPlan, load_plan
from harness.proxy.session import ProxyRunResult, run_proxy, write_report
from harness.report import write_run_report
from harness.verdicts import Verdict, judged_exit_code



FILES_PER_WORKER = 3  # the worker's TCP connection, its DEALER's connection to the master, and libzmq's own
MAX_WORKERS_EXPECTED = 5000  # the open-file limit is raised (up to the hard limit) for this many workers


def host_port(text: str, what: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``PORT`` alone, on 127.0.0.1); anything else is a usage error naming ``what``."""
    host, _, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise ScenarioError(f"{what}: expected HOST:PORT, got {text!r}") from None
    if not 0 <= number <= 65535:
        raise ScenarioError(f"{what}: port {number} is out of range")
    return host or "127.0.0.1", number


def add_proxy(sub: Any, fmt: type[argparse.HelpFormatter]) -> None:
    parser = sub.add_parser(
        "proxy",
        help="forward real workers to a real master: record, judge, and fault their traffic both ways",
        description="Workers connect to --listen as if it were the master; each gets a connection to --master with "
        "its own identity, and every frame is forwarded byte for byte and recorded. --faults: a JSON or TOML plan "
        "({'seed': n, 'faults': [{'direction': 'to-master'|'to-worker', 'kind': 'delay'|'drop'|'duplicate'|'hold'|"
        "'malformed'|'pause', ...}]}). Ends on Ctrl-C or SIGTERM, after --seconds, or once every worker has left; "
        "then writes results.json (one entry per worker connection), JUnit and HTML to --report.",
        formatter_class=fmt,
    )
    parser.add_argument("--listen", default="127.0.0.1:5557", help="where workers connect (HOST:PORT; port 0: any free one)")
    parser.add_argument("--master", required=True, help="the real master's HOST:PORT")
    parser.add_argument("--faults", type=Path, default=None, help="a fault plan file (JSON or TOML)")
    parser.add_argument("--report", type=Path, default=None, help="report folder (default: reports/<time>-proxy)")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    parser.add_argument(
        "--heartbeat-interval",
        type=float,
        default=LOCUST_TIMING.heartbeat_interval,
        help="the master's heartbeat interval (Locust's: 1 s)",
    )
    parser.add_argument("--keep-going", action="store_true", help="do not stop when the last worker has left")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def cmd_proxy(args: argparse.Namespace) -> int:
    """Exit 0 when every connection is OK (or lesser), 1 when one FAILED, 2 when nothing was judged or we failed."""
    master_host, master_port = host_port(args.master, "--master")
    listen_host, listen_port = host_port(args.listen, "--listen")
    if args.heartbeat_interval <= 0:
        raise ScenarioError(f"--heartbeat-interval: expected a positive number, got {args.heartbeat_interval}")
    plan = load_plan(args.faults) if args.faults is not None else ProxyPlan()
    raise_open_file_limit(FILES_PER_WORKER * MAX_WORKERS_EXPECTED)
    if not master_reachable(master_host, master_port):
        raise ScenarioError(f"--master {master_host}:{master_port}: nothing listens there (start the master first)")
    proxy = Proxy(
        master_host,
        master_port,
        listen_host=listen_host,
        listen_port=listen_port,
        plan=plan,
        timing=LOCUST_TIMING.compressed(args.heartbeat_interval),
        freeze_gc=True,
    )
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, _interrupt)

    def started(p: Proxy) -> None:
        print(f"proxy listening on tcp://{p.listen_host}:{p.port}, forwarding to {p.master_endpoint}", flush=True)

    result: ProxyRunResult | None = None
    try:
        result = run_proxy(proxy, stop, until_all_left=not args.keep_going, max_seconds=args.seconds, on_start=started)
    except KeyboardInterrupt:
        stop.set()
        result = _after_interrupt(proxy)
    finally:
        signal.signal(signal.SIGTERM, previous)
    folder = _folder(args.report)
    write_report(result, folder)
    write_run_report(folder)
    print(_summary(result, folder), flush=True)
    verdicts = {r.verdict for r in result.results}
    if not verdicts:
        print("no worker connected: nothing was judged", file=sys.stderr)
    return judged_exit_code(verdicts)


def _after_interrupt(proxy: Proxy) -> ProxyRunResult:
    """Ctrl-C while forwarding: stop the proxy (if it started) and judge what was recorded; nothing is lost."""
    from harness.proxy.session import judge_all

    end = proxy.clock.now()
    proxy.stop()
    return ProxyRunResult(
        proxy,
        judge_all(proxy, end) if proxy.started_at else [],
        datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        end - (proxy.started_at or end),
    )


def _folder(report: Path | None) -> Path:
    if report is None:
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        report = Path("reports") / f"{stamp}-proxy"
    report.mkdir(parents=True, exist_ok=True)
    return report


def _summary(run: ProxyRunResult, folder: Path) -> str:
    counts = ", ".join(f"{k} {v}" for k, v in run.counts().items() if v)
    frames = run.proxy.counts()
    lines = [
        f"proxy: {len(run.results)} worker connection(s): {counts or 'none'}; {run.duration:.1f} s; "
        f"to-master {frames['to-master']}, to-worker {frames['to-worker']}; report {folder}"
    ]
    if run.silent:
        lines.append(
            f"  warning: {len(run.silent)} connection(s) open at the end never sent a message that arrived (peers "
            f"{', '.join(run.silent)}): a worker whose identity another connection holds (the master's ROUTER, and "
            "so the proxy's, ignores the second connection for good), or one that never spoke"
        )
    for result in run.results:
        bad = [f for f in result.findings if f.verdict is not Verdict.OK]
        if bad:
            lines.append(f"  {result.connection.identity}: {result.verdict.value}: {bad[0]}"[:400])
    return "\n".join(lines)
