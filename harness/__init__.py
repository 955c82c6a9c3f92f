"""locust-conformance: protocol core, trace, launcher, scenarios and CLI."""

__version__ = "0.1.0"
