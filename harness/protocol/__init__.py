"""The sans-IO Locust protocol core: messages, codec, schemas, states, timing.

Nothing in this package touches a socket, a thread or the clock.
"""

from harness.protocol.codec import ObjectIdRef, decode, encode, encode_parts, unpack
from harness.protocol.messages import LOCUST_VERSION, Direction, Message, MessageType
from harness.protocol.schema import Problem, Severity, check_payload, validate
from harness.protocol.states import REPORTED_STATES, TRANSITIONS, Event, Phase, next_phase
from harness.protocol.timing import LOCUST_TIMING, LivenessChange, LivenessCounter, Timing, liveness_history

__all__ = [
    "LOCUST_TIMING",
    "LOCUST_VERSION",
    "REPORTED_STATES",
    "TRANSITIONS",
    "Direction",
    "Event",
    "LivenessChange",
    "LivenessCounter",
    "Message",
    "MessageType",
    "ObjectIdRef",
    "Phase",
    "Problem",
    "Severity",
    "Timing",
    "check_payload",
    "decode",
    "encode",
    "encode_parts",
    "liveness_history",
    "next_phase",
    "unpack",
    "validate",
]
