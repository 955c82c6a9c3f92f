"""Merge stats reports with the real Locust master's code; run as a subprocess (Locust patches with gevent).

stdin: a msgpack array of W->M ``stats`` payloads. stdout: JSON {"total_requests": n, "entries": k}.
Any exception propagates: a non-zero exit with the traceback on stderr means the master could not merge.
"""

import json
import sys

import msgpack
from locust.env import Environment
from locust.stats import RequestStats, setup_distributed_stats_event_listeners

reports = msgpack.unpackb(sys.stdin.buffer.read(), raw=False, strict_map_key=False)
env = Environment()
stats = RequestStats()
setup_distributed_stats_event_listeners(env.events, stats)
# Call the master's listeners directly: EventHook.fire would swallow (and only log) their exceptions.
for data in reports:
    for handler in env.events.worker_report._handlers:
        handler(client_id="conformance-worker", data=data)
print(json.dumps({"total_requests": stats.total.num_requests, "entries": len(stats.entries)}))
