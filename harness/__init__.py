"""locust-conformance: protocol core, trace, launcher, scenarios and CLI."""

import platform

__version__ = "0.1.0"


def host_facts() -> dict[str, str]:
    """Where a run ran, as every results document records it: the harness's version, Python, the OS and machine."""
    return {
        "harness_version": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": platform.node(),
    }
