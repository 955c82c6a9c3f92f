"""A recording forwarder between workers and a real Locust master, for the tests that compare traces.

Workers connect to the tap's ROUTER as if it were the master; for each worker identity the tap opens a DEALER to the
real master with the same identity and forwards frames both ways, recording each with a monotonic time. One thread
owns every socket (the project's rule); the test reads ``records`` after ``close``. Not the product's proxy (that is a
later issue): just enough to see what a real master sends.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import zmq

POLL_MS = 20


@dataclass(frozen=True)
class TapRecord:
    t: float
    direction: str  # "W->M" or "M->W"
    identity: bytes
    frames: tuple[bytes, ...]


@dataclass
class WireTap:
    master_port: int
    host: str = "127.0.0.1"
    records: list[TapRecord] = field(default_factory=list)
    port: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _ready: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _error: BaseException | None = None

    def start(self) -> WireTap:
        self._thread = threading.Thread(target=self._run, name="wire-tap", daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self._error is not None:
            self._stop.set()
            raise RuntimeError(f"the wire tap did not start within 10 s: {self._error!r}")
        return self

    def close(self) -> list[TapRecord]:
        """Stop the owner thread and hand over the recording (only once the thread, which owns it, has ended)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            if self._thread.is_alive():
                raise RuntimeError("the wire tap's thread did not end within 10 s")
        if self._error is not None:
            raise RuntimeError(f"the wire tap failed: {self._error!r}")
        return self.records

    def _run(self) -> None:
        context = zmq.Context()
        sockets: list[zmq.Socket[bytes]] = []
        try:
            front = context.socket(zmq.ROUTER)
            sockets.append(front)
            front.setsockopt(zmq.LINGER, 0)
            self.port = front.bind_to_random_port(f"tcp://{self.host}")
            self._ready.set()
            poller = zmq.Poller()
            poller.register(front, zmq.POLLIN)
            backs: dict[bytes, zmq.Socket[bytes]] = {}
            owners: dict[zmq.Socket[bytes], bytes] = {}
            while not self._stop.is_set():
                for sock, _ in poller.poll(POLL_MS):
                    if sock is front:
                        identity, *frames = front.recv_multipart()
                        back = backs.get(identity)
                        if back is None:
                            back = context.socket(zmq.DEALER)
                            sockets.append(back)
                            back.setsockopt(zmq.IDENTITY, identity)
                            back.setsockopt(zmq.LINGER, 0)
                            back.connect(f"tcp://{self.host}:{self.master_port}")
                            backs[identity], owners[back] = back, identity
                            poller.register(back, zmq.POLLIN)
                        self.records.append(TapRecord(time.monotonic(), "W->M", identity, tuple(frames)))
                        back.send_multipart(frames, zmq.NOBLOCK)  # a full queue drops (recorded), never blocks
                    else:
                        frames = sock.recv_multipart()
                        identity = owners[sock]
                        self.records.append(TapRecord(time.monotonic(), "M->W", identity, tuple(frames)))
                        front.send_multipart([identity, *frames], zmq.NOBLOCK)
        except BaseException as exc:  # noqa: BLE001 - reported to the test by start/close
            self._error = exc
            self._ready.set()
        finally:
            for sock in sockets:
                sock.close(0)
            context.term()
