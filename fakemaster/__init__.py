"""A scriptable fake Locust master (ZeroMQ ROUTER)."""

from fakemaster.master import FakeMaster

__all__ = ["FakeMaster"]
