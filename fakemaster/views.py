"""What the fake master knows of its workers, read from any thread: each read is one call on the owner thread."""

from __future__ import annotations

from copy import deepcopy

from harness.errors import ScenarioError
from harness.owner import SocketOwner
from harness.protocol.master import MasterCore, WorkerView
from harness.trace import Kind, Trace


class WorkerViews:
    """Snapshots of the registered workers of one ``MasterCore``, whose state only the owner thread touches."""

    def __init__(self, owner: SocketOwner, core: MasterCore, trace: Trace) -> None:
        self._owner = owner
        self._core = core
        self._trace = trace

    def workers(self) -> dict[str, WorkerView]:
        """A snapshot of the registered workers, as the real master would see them."""
        return self._owner.call(lambda: deepcopy(self._core.workers))

    def worker_ids(self) -> list[str]:
        """The registered workers' ids, oldest registration first (cheap: no copy of their views)."""
        return self._owner.call(lambda: list(self._core.workers))

    def default_worker(self) -> str:
        """The worker a message goes to when none is named: the latest registered, else the latest heard."""
        ids = self.worker_ids()
        if ids:
            return ids[-1]
        last = next((r for r in reversed(self._trace.records()) if r.kind is Kind.RECV), None)
        if last is None:
            raise ScenarioError("no worker has connected yet, so there is nobody to send to")
        return last.message.node_id if last.message else last.identity
