"""``python -m worker --master-host H --master-port P [--heartbeat-interval S] ...``: the reference worker."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from dataclasses import replace
from types import FrameType

from harness.protocol.messages import LOCUST_VERSION
from harness.protocol.timing import LOCUST_TIMING, Timing
from worker.defects import DEFECTS, listing, threading_defect
from worker.runtime import WorkerRuntime
from worker.runtime_setup import default_node_id
from worker.session import WorkerConfig
from worker.threaded_runtime import ThreadedRuntime
from worker.users import TaskProfile


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m worker",
        description="Reference Locust 2.47 worker. Intervals not given are scaled from --heartbeat-interval "
        "in Locust's proportions (report = 3x, master timeout = 60x, connect timeout = 5x ...).",
    )
    p.add_argument("--master-host", default="127.0.0.1")
    p.add_argument("--master-port", type=int, default=5557)
    p.add_argument("--node-id", default=None, help="socket identity (default: <hostname>_<uuid hex>)")
    p.add_argument("--version-string", default=LOCUST_VERSION, help="client_ready payload ('-1' sends the int -1)")
    t = p.add_argument_group("Locust intervals (seconds)")
    t.add_argument("--heartbeat-interval", type=float, default=LOCUST_TIMING.heartbeat_interval)
    t.add_argument("--master-heartbeat-timeout", type=float)
    t.add_argument("--connect-timeout", type=float)
    t.add_argument("--connect-retry-count", type=int, default=LOCUST_TIMING.connect_retry_count)
    t.add_argument("--report-interval", type=float, help="stats period")
    t.add_argument("--log-report-interval", type=float)
    t.add_argument(
        "--additional-wait-after-stop", type=float, default=0.0, help="LOCUST_WORKER_ADDITIONAL_WAIT_BEFORE_READY_AFTER_STOP"
    )
    u = p.add_argument_group("simulated users")
    u.add_argument("--task-time", type=float, default=0.05, help="duration of one simulated request")
    u.add_argument("--wait-time", type=float, default=0.1, help="pause between requests")
    u.add_argument("--fail-every", type=int, default=0, help="every Nth request of a user fails")
    u.add_argument("--raise-every", type=int, default=0, help="every Nth task of a user raises (sent as 'exception')")
    u.add_argument("--busy-task", action="store_true", help="burn CPU during a request instead of sleeping")
    p.add_argument("--no-logs", action="store_true", help="do not send 'logs' messages")
    p.add_argument(
        "--locust-compat",
        default=None,
        metavar="VERSION",
        type=compat_version,
        help="behave as a Locust worker of this release where that keeps older masters working: below 2.10 (masters "
        "that never ack), heartbeats start with client_ready instead of after the ack",
    )
    p.add_argument("--loglevel", default="INFO")
    d = p.add_argument_group("defects (for testing the harness; never on by default)")
    d.add_argument(
        "--defect",
        action="append",
        choices=list(DEFECTS),
        metavar="NAME",
        help="switch on a named bug (repeatable; see --list-defects)",
    )
    d.add_argument("--list-defects", action="store_true", help="list the defects with a one-line description and exit")
    return p


ACK_SINCE = (2, 10)  # the first Locust release whose master acks client_ready


def compat_version(text: str) -> tuple[int, ...]:
    """``2.8`` or ``2.8.6`` as a tuple of ints (argparse type: a bad value is a usage error)."""
    parts = text.split(".")
    if not 2 <= len(parts) <= 3 or not all(part.isdigit() for part in parts):
        raise argparse.ArgumentTypeError(f"expected a Locust release such as 2.8 or 2.8.6, got {text!r}")
    return tuple(int(part) for part in parts)


def timing_from(args: argparse.Namespace) -> Timing:
    base = LOCUST_TIMING.compressed(args.heartbeat_interval)
    overrides = {
        "master_heartbeat_timeout": args.master_heartbeat_timeout,
        "connect_timeout": args.connect_timeout,
        "report_interval": args.report_interval,
        "log_report_interval": args.log_report_interval,
    }
    return replace(base, connect_retry_count=args.connect_retry_count, **{k: v for k, v in overrides.items() if v is not None})


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_defects:
        print(listing())
        return 0
    defects = frozenset(args.defect or ())
    try:
        design = threading_defect(defects)
    except ValueError as exc:
        parser.error(str(exc))
    node_id = args.node_id or default_node_id()
    logging.basicConfig(
        level=args.loglevel.upper(),
        stream=sys.stderr,
        format=f"[%(asctime)s] {node_id.split('_')[0]}/%(levelname)s/%(name)s: %(message)s",
    )
    version: str | int = -1 if args.version_string == "-1" else args.version_string
    waits_for_ack = args.locust_compat is None or args.locust_compat >= ACK_SINCE
    config = WorkerConfig(
        node_id, timing_from(args), version, args.additional_wait_after_stop, not args.no_logs, defects, waits_for_ack
    )
    profile = TaskProfile(args.task_time, args.wait_time, "GET", args.fail_every, args.raise_every, args.busy_task)
    runtime: WorkerRuntime | ThreadedRuntime = (
        WorkerRuntime(args.master_host, args.master_port, config, profile)
        if design is None
        else ThreadedRuntime(args.master_host, args.master_port, config, profile, design)
    )

    def on_signal(signum: int, frame: FrameType | None) -> None:
        runtime.request_shutdown(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    logger = logging.getLogger("worker")
    logger.info("Starting reference worker %s -> tcp://%s:%d", node_id, args.master_host, args.master_port)
    if defects:
        logger.warning("DEFECTS switched on (this worker is broken on purpose): %s", ", ".join(sorted(defects)))
    code = runtime.run()
    if isinstance(runtime, ThreadedRuntime):  # threads may be stuck inside the socket: do not wait for them
        logging.shutdown()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
