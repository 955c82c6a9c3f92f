"""A locustfile that makes the real master send bad spawns (``LC_SPAWN_DEFECT``), by wrapping the master's socket
send (``locust.rpc.zmqrpc.Server.send_to_client``) before the runner exists:

- ``uneven``: the first worker to get a spawn gets every user (``LC_USERS_ASKED``), the others none;
- ``no-host``: spawns lack their ``host`` key;
- ``no-parsed-options``: spawns lack ``parsed_options``, as a master before 2.2 sent them;
- ``same-timestamp``: each spawn is sent twice, the second with the same timestamp.

Otherwise the harness's peers locustfile (the same user class)."""

import os
from typing import Any

from locust.rpc import Message, zmqrpc

from harness.peers.locustfile import ConformanceUser  # noqa: F401  (the master dispatches this class)

DEFECT = os.environ.get("LC_SPAWN_DEFECT", "")
_send = zmqrpc.Server.send_to_client
_first: list[str] = []


def send_to_client(self: Any, msg: Message) -> None:
    if msg.type != "spawn" or not isinstance(msg.data, dict):
        return _send(self, msg)
    data = dict(msg.data)
    if DEFECT == "uneven":
        _first[:] = _first or [msg.node_id]
        everyone = int(os.environ.get("LC_USERS_ASKED", "0"))  # the run's user count (-u), as the test passes it
        data["user_classes_count"] = {name: everyone if msg.node_id == _first[0] else 0 for name in data["user_classes_count"]}
    elif DEFECT in ("no-host", "no-parsed-options"):
        data.pop(DEFECT[3:].replace("-", "_"), None)
    _send(self, Message("spawn", data, msg.node_id))
    if DEFECT == "same-timestamp":
        _send(self, Message("spawn", data, msg.node_id))
    return None


zmqrpc.Server.send_to_client = send_to_client
