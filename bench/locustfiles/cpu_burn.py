"""Locustfile for ``bench/heartbeat_under_load.py``: users whose tasks burn CPU without pausing.

``BurnUser``'s task busy-loops ``LC_BURN_TIME`` seconds (0.2 by default) and records one request;
``wait_time = constant(0)``: the load of perf-anchors section 3 (``lf_burn.py``), under which the real
Locust 2.47 worker went 10.4 s without a heartbeat. ``LC_HEARTBEAT_INTERVAL`` compresses Locust's
intervals as ``harness/peers/locustfile.py`` does.

    LC_HEARTBEAT_INTERVAL=1 locust -f bench/locustfiles/cpu_burn.py --worker --master-port PORT
"""

from __future__ import annotations

import os
import time

from locust import User, constant, runners, task

BURN_SECONDS = float(os.environ.get("LC_BURN_TIME", "0.2"))

_INTERVALS = (
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
    for _name in _INTERVALS:  # Locust reads them from locust.runners at call time
        setattr(runners, _name, getattr(runners, _name) * _scale)


class BurnUser(User):
    wait_time = constant(0)

    @task
    def burn(self) -> None:
        start = time.perf_counter()
        while time.perf_counter() - start < BURN_SECONDS:
            pass
        self.environment.events.request.fire(
            request_type="GET",
            name="/BurnUser",
            response_time=(time.perf_counter() - start) * 1000,
            response_length=0,
            exception=None,
            context={},
        )
