"""Locustfile for running the real Locust worker (and master) as our reference peer.

``LC_HEARTBEAT_INTERVAL`` compresses Locust's timing the way the harness does:
every interval constant in ``locust.runners`` is scaled by the same factor
(Locust reads them at call time). ``ConformanceUser`` is the user class the
harness's scenarios spawn; its task records one simulated request.
"""

import os
import time

from locust import User, constant, runners, task

_scale = float(os.environ.get("LC_HEARTBEAT_INTERVAL", "1")) / runners.HEARTBEAT_INTERVAL
if _scale != 1:
    runners.HEARTBEAT_INTERVAL = runners.HEARTBEAT_INTERVAL * _scale
    runners.MASTER_HEARTBEAT_TIMEOUT = runners.MASTER_HEARTBEAT_TIMEOUT * _scale
    runners.CONNECT_TIMEOUT = runners.CONNECT_TIMEOUT * _scale
    runners.WORKER_REPORT_INTERVAL = runners.WORKER_REPORT_INTERVAL * _scale
    runners.FALLBACK_INTERVAL = runners.FALLBACK_INTERVAL * _scale
    runners.CPU_MONITOR_INTERVAL = runners.CPU_MONITOR_INTERVAL * _scale
    runners.WORKER_LOG_REPORT_INTERVAL = runners.WORKER_LOG_REPORT_INTERVAL * _scale


class ConformanceUser(User):
    wait_time = constant(float(os.environ.get("LC_WAIT_TIME", "0.1")))

    @task
    def request(self) -> None:
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
