"""Error types that say whose fault a problem is.

* ``ProtocolViolation``: the peer under test (a worker, or a master) broke the
  protocol. A conformance failure.
* ``ScenarioError``: the scenario or script asked the harness for something
  impossible (a bad step, an unknown worker). The scenario author's fault.
* ``HarnessError`` subclasses below ``HarnessFault``: the harness itself failed
  (a socket error, a worker command that could not be launched). Never a pass.

Every message states what was expected and what was seen.
"""

from __future__ import annotations


class ConformanceError(Exception):
    """Base class of every error this project raises on purpose."""


class ProtocolViolation(ConformanceError):
    """The peer under test broke the protocol.

    Attributes:
        rule: a short stable name of the rule broken (``"codec.arity"``).
        expected: what the protocol requires.
        observed: what the peer did.
    """

    def __init__(self, rule: str, expected: str, observed: str) -> None:
        self.rule = rule
        self.expected = expected
        self.observed = observed
        super().__init__(f"[{rule}] expected {expected}; observed {observed}")


class MalformedFrame(ProtocolViolation):
    """A frame that could not be decoded into a Locust message."""


class InvalidPayload(ProtocolViolation):
    """A message whose ``data`` does not match the schema of its type."""


class ExpectationFailed(ProtocolViolation):
    """A scripted expectation was not met within its deadline (the peer's fault)."""


class ScenarioError(ConformanceError):
    """The scenario asked the harness for something impossible or ill-formed."""


class HarnessFault(ConformanceError):
    """The harness itself failed; the peer under test is not to blame."""


class TransportError(HarnessFault):
    """A socket-level failure inside the harness's own adapters."""


class LaunchError(HarnessFault):
    """A worker command could not be started, or died before it could be judged."""
