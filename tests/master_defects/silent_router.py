"""A 'master' that binds a ROUTER and never reads it: no ack, no log line, nothing (bounded: it exits after 120 s).

    python silent_router.py HOST PORT
"""

import sys
import time

import zmq

socket = zmq.Context().socket(zmq.ROUTER)
socket.bind(f"tcp://{sys.argv[1]}:{sys.argv[2]}")
print("bound, reading nothing", flush=True)
time.sleep(120)
