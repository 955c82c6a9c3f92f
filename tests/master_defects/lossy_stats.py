"""A locustfile that makes the real master lose its workers' stats: its worker_report listener, registered before
the master's own (the runner's), empties each report before the master merges it. Otherwise the harness's peers
locustfile (the same user class)."""

from typing import Any

from locust import events

from harness.peers.locustfile import ConformanceUser  # noqa: F401  (the master dispatches this class)


@events.worker_report.add_listener
def lose_the_report(client_id: str, data: dict[str, Any]) -> None:
    data["stats"] = []
    for key in ("num_requests", "num_failures"):
        data["stats_total"][key] = 0
    data["errors"] = {}
