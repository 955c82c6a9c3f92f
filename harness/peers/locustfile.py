"""Locustfile for running the real Locust worker (and master) as our reference peer.

``LC_REQUESTS_PER_USER`` (if set) makes the load fixed: each user stops after that many requests, so two runs of
the same user count make the same number of requests whatever their timing.

``LC_HEARTBEAT_INTERVAL`` compresses Locust's timing the way the harness does: every interval constant in
``locust.runners`` is scaled by the same factor (Locust reads them at call time). ``ConformanceUser`` is the user class the
harness's scenarios spawn; its task records one simulated request.
"""

import os
import time

from locust import User, constant, runners, task
from locust.exception import StopUser

# Every interval constant the running release has (older ones lack some: WORKER_LOG_REPORT_INTERVAL is 2.29+).
_CONSTANTS = (
    "HEARTBEAT_INTERVAL",
    "MASTER_HEARTBEAT_TIMEOUT",
    "CONNECT_TIMEOUT",
    "WORKER_REPORT_INTERVAL",
    "FALLBACK_INTERVAL",
    "CPU_MONITOR_INTERVAL",
    "WORKER_LOG_REPORT_INTERVAL",
)
_scale = float(os.environ.get("LC_HEARTBEAT_INTERVAL", "1")) / runners.HEARTBEAT_INTERVAL
if _scale != 1:
    for _name in _CONSTANTS:
        if hasattr(runners, _name):
            setattr(runners, _name, getattr(runners, _name) * _scale)


class ConformanceUser(User):
    wait_time = constant(float(os.environ.get("LC_WAIT_TIME", "0.1")))

    made = 0

    @task
    def request(self) -> None:
        limit = int(os.environ.get("LC_REQUESTS_PER_USER", "0"))  # >0: a fixed load, each user stops after that many
        if limit and self.made >= limit:
            raise StopUser()
        self.made += 1
        start = time.perf_counter()
        time.sleep(float(os.environ.get("LC_TASK_TIME", "0.05")))
        self.environment.events.request.fire(
            request_type="GET",
            name="/ConformanceUser",
            response_time=(time.perf_counter() - start) * 1000,
            response_length=42,
            exception=None,
            context={},
        )
