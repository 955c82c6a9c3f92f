"""A swarm of fake workers run by Locust's own distributed mode: each Locust user is one fake worker.

The master catalog's fake workers run in one thread of one process. Beyond that (thousands of workers, several
machines) the swarm runs on an existing distributed engine rather than a home-made one: Locust itself. Each user of
this locustfile owns one green ZeroMQ DEALER (``zmq.green``: the user's greenlet is the socket's only user) connected
to the master under test (``LC_TARGET``, e.g. ``tcp://127.0.0.1:5557``), registers with ``client_ready`` and
heartbeats every second through ``harness.protocol.fake_worker.FakeWorkerCore`` (the same sans-IO core the master
catalog uses). Each heartbeat reply is reported to Locust as a request named ``heartbeat-reply`` with its round trip
as the response time; a heartbeat unanswered for ``LC_REPLY_TIMEOUT`` seconds (default 2) is a failure. So the
swarm's own master (its CSV, its web UI) aggregates the reply latency of every fake worker on every machine.

    locust -f swarm_locustfile.py --master --headless -u 1000 -r 200 -t 60s --expect-workers 2 --csv swarm
    LC_TARGET=tcp://master-under-test:5557 locust -f swarm_locustfile.py --worker --master-host swarm-master   # x2

docs/master-swarm.md has the plan and what was measured here.
"""

import os
import time
import uuid

import zmq.green as zmq
from locust import User, constant, task

from harness.protocol.codec import decode, encode
from harness.protocol.fake_worker import FakeWorkerCore

TARGET = os.environ.get("LC_TARGET", "tcp://127.0.0.1:5557")
REPLY_TIMEOUT = float(os.environ.get("LC_REPLY_TIMEOUT", "2"))
SLICE = 0.25  # seconds one task call pumps the socket (the user's greenlet yields between calls)
_context = zmq.Context.instance()


class FakeWorkerUser(User):
    """One fake worker of the swarm."""

    wait_time = constant(0)

    def on_start(self) -> None:
        self.core = FakeWorkerCore(f"swarm-{uuid.uuid4().hex[:12]}")
        self.socket = _context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.IDENTITY, self.core.node_id.encode())
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(TARGET)
        self.unanswered: list[float] = []  # heartbeat send times, oldest first
        self._send(self.core.start(time.monotonic()))

    def on_stop(self) -> None:
        self.socket.close(0)

    def _send(self, messages: list) -> None:
        for message in messages:
            self.socket.send(encode(message), zmq.NOBLOCK)
            if message.type == "heartbeat":
                self.unanswered.append(time.monotonic())

    @task
    def pump(self) -> None:
        end = time.monotonic() + SLICE
        while (now := time.monotonic()) < end:
            self._send(self.core.due(now))
            if self.socket.poll(max(1, int((end - now) * 1000)), zmq.POLLIN):
                message = decode(self.socket.recv_multipart(zmq.NOBLOCK)[-1])
                arrived = time.monotonic()
                self._send(self.core.receive(message, arrived))
                if message.type == "heartbeat" and self.unanswered:
                    sent = self.unanswered.pop(0)
                    self._report((arrived - sent) * 1000, None)
        while self.unanswered and time.monotonic() - self.unanswered[0] > REPLY_TIMEOUT:
            self.unanswered.pop(0)
            self._report(REPLY_TIMEOUT * 1000, TimeoutError(f"no heartbeat reply within {REPLY_TIMEOUT:g} s"))

    def _report(self, milliseconds: float, exception: Exception | None) -> None:
        self.environment.events.request.fire(
            request_type="ZMQ",
            name="heartbeat-reply",
            response_time=milliseconds,
            response_length=0,
            exception=exception,
            context={},
        )
