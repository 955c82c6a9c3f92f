"""One run of the reference worker against a real Locust master of a release, and the same against the fake master
with that release's profile: the two recordings ``harness.trace_compare`` compares.

The run, both ways: the worker connects, the master acks (or not), heartbeats flow, the master spawns 2 users at
once, and after a few seconds of load it quits. The real master runs headless (``-u 2 -r 2 -t``) through
``tests.wire_tap``; the fake master runs the same steps itself.
"""

from __future__ import annotations

import importlib.metadata
import socket
import sys
import time
from pathlib import Path

from fakemaster.master import FakeMaster
from harness.launcher import PEERS, WorkerProcess
from harness.locust_release import ensure
from harness.mutation import REFERENCE
from harness.protocol.codec import decode
from harness.protocol.messages import MessageType
from harness.protocol.profiles import MasterProfile
from harness.protocol.timing import LOCUST_TIMING
from harness.trace_compare import WireMessage, from_messages, from_trace
from tests.wire_tap import WireTap

INTERVAL = 0.25
RUN_SECONDS = 3
USERS = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def installed_locust() -> str | None:
    """The Locust release installed beside the harness (read from its metadata: importing locust monkey-patches the
    whole process with gevent)."""
    try:
        return importlib.metadata.version("locust")
    except importlib.metadata.PackageNotFoundError:
        return None


def python_for(release: str) -> str:
    """The interpreter that runs ``release``: this one if it has that Locust, else a cached environment."""
    return sys.executable if installed_locust() == release else str(ensure(release))


def listening(port: int, master: WorkerProcess, within: float = 60.0) -> None:
    """Wait until the master's ROUTER accepts connections (a TCP connect, closed at once)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if master.poll() is not None:
            raise AssertionError(f"the real master exited before it listened:\n{master.output()}")
        with socket.socket() as probe:
            probe.settimeout(0.5)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"the real master did not listen on {port} within {within:g} s:\n{master.output()}")


def worker_command(profile: MasterProfile, port: int) -> str:
    """The reference worker as a good citizen of ``profile``'s masters (no ack wait before 2.10)."""
    command = REFERENCE.format(python=sys.executable, host="127.0.0.1", port=port, heartbeat_interval=INTERVAL)
    return command if profile.acks else f"{command} --locust-compat 2.8"


def real_recording(profile: MasterProfile, folder: Path) -> tuple[list[WireMessage], str]:
    """The worker against the real master of ``profile.release``: the decoded recording and the master's log."""
    folder.mkdir(parents=True, exist_ok=True)
    python = python_for(profile.release)
    port = free_port()
    master_cmd = (
        f"env LC_HEARTBEAT_INTERVAL={INTERVAL} {python} -m locust -f {PEERS}/locustfile.py --master "
        f"--master-bind-host 127.0.0.1 --master-bind-port {port} --headless -u {USERS} -r {USERS} -t {RUN_SECONDS}s "
        "--expect-workers 1 --loglevel INFO"
    )
    tap = WireTap(port)
    with WorkerProcess(master_cmd, folder / "master.log") as master:
        listening(port, master)  # its reply times are the master's, not its start-up's
        tap.start()
        with WorkerProcess(worker_command(profile, tap.port), folder / "worker.log") as worker:
            master.wait(60)
            worker.wait(10)
        records = tap.close()
    decoded = []
    for record in records:
        try:
            decoded.append((record.t, record.direction, decode(record.frames[-1])))
        except Exception:  # noqa: BLE001 - an undecodable frame is a difference the comparison shows by its absence
            continue
    return from_messages(decoded), master.output()


def fake_recording(profile: MasterProfile, folder: Path) -> list[WireMessage]:
    """The worker against the fake master with ``profile``, driven through the same steps as the real run."""
    folder.mkdir(parents=True, exist_ok=True)
    with FakeMaster(timing=LOCUST_TIMING.compressed(INTERVAL), profile=profile) as master:
        with WorkerProcess(worker_command(profile, master.port), folder / "worker.log", clock=master.clock.now) as worker:
            master.expect(MessageType.CLIENT_READY, 20)
            master.expect(MessageType.HEARTBEAT, 4 * INTERVAL)
            master.spawn({"ConformanceUser": USERS})
            master.expect(MessageType.SPAWNING_COMPLETE, 4 * INTERVAL)
            if profile.spawning_complete_broadcast:
                master.sleep(profile.post_ramp_wait * INTERVAL)
                master.broadcast(MessageType.SPAWNING_COMPLETE, {"user_count": USERS})
            master.sleep(RUN_SECONDS)
            master.send(MessageType.QUIT)
            worker.wait(10)
        return from_trace(master.trace.records())
