"""Root pytest configuration: Hypothesis profiles, chosen with HYPOTHESIS_PROFILE (default 'dev').

'ci' is derandomized (the same examples every run, so real-time tests cannot
flake between runs) and prints statistics; 'dev' explores new examples each run.
Deadlines are off everywhere: several properties drive real processes, whose
timing we measure rather than bound per example.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# raw-DEALER peers (context, make_peer); the JVM and Go test workers (jvm_build, go_binary); pytester for the plugin tests
pytest_plugins = ["tests.peers", "tests.foreign_peers", "pytester"]

settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
