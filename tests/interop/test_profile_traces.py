"""Each master profile checked against the real master of its release: the reference worker's traffic with the real
``locust --master`` and with the fake master behaving like it, compared message by message (``harness.trace_compare``).

The five releases run side by side (each pair is mostly waiting on its master's run time). Their environments come
from the cache (``make test`` fills it while the unit tests run; ``harness.locust_release``).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from harness.profile_docs import KNOWN_DIFFERENCES
from harness.protocol.profiles import PROFILES, MasterProfile
from harness.trace_compare import Difference, WireMessage, compare
from tests.foreign_peers import locust_or_skip
from tests.profile_traces import INTERVAL, fake_recording, real_recording

locust_or_skip()

pytestmark = [pytest.mark.interop]
TOLERANCE = INTERVAL / 2  # reply times of the two masters may differ by half a heartbeat interval


def _pair(profile: MasterProfile, root: Path) -> tuple[list[WireMessage], str, list[WireMessage]]:
    real, log = real_recording(profile, root / profile.name / "real")
    return real, log, fake_recording(profile, root / profile.name / "fake")


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[list[WireMessage], str, list[WireMessage]]]:
    root = tmp_path_factory.mktemp("profile-traces")
    pool = ThreadPoolExecutor(max_workers=len(PROFILES))
    try:  # every step of a pair has its own deadline; this one bounds the whole (a stuck pair fails, never hangs)
        futures = {name: pool.submit(_pair, profile, root) for name, profile in PROFILES.items()}
        return {name: future.result(timeout=300) for name, future in futures.items()}
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _undocumented(name: str, differences: list[Difference]) -> list[str]:
    known = KNOWN_DIFFERENCES.get(name, {})
    return [str(d) for d in differences if (d.rule, d.what) not in known]


@pytest.mark.parametrize("name", list(PROFILES))
def test_the_profile_behaves_as_its_real_master(
    name: str, recordings: dict[str, tuple[list[WireMessage], str, list[WireMessage]]]
) -> None:
    real, log, fake = recordings[name]
    assert any(m.type == "spawning_complete" and m.direction == "W->M" for m in real), log  # the real run did happen
    assert "Traceback" not in log, log
    differences = compare(real, fake, tolerance=TOLERANCE)
    assert _undocumented(name, differences) == [], "document each in harness/profile_docs.py KNOWN_DIFFERENCES"


def test_the_comparison_tells_neighbouring_releases_apart(
    recordings: dict[str, tuple[list[WireMessage], str, list[WireMessage]]],
) -> None:
    """The check can fail: the real 2.15 master against the fake 2.20 one (heartbeat replies), and the real 2.20
    against the fake 2.47 (the spawning_complete broadcast), and the real 2.8 against the fake 2.15 (the ack)."""
    for real_name, fake_name, rule, what in (
        ("2.15", "2.20", "presence", "M->W heartbeat"),
        ("2.20", "2.47", "order", "non-periodic messages"),
        ("2.8", "2.15", "order", "non-periodic messages"),
    ):
        differences = compare(recordings[real_name][0], recordings[fake_name][2], tolerance=TOLERANCE)
        assert (rule, what) in {(d.rule, d.what) for d in differences}, (real_name, fake_name, differences)
