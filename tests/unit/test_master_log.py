"""Reading a master's log: Locust's phrases of 2.0-2.47, and the fake master's serving mode, which must print them."""

from __future__ import annotations

from fakemaster.serve import CRASH_LINE, MISSING_LINE, READY_LINE
from harness.master_catalog.master_log import crash_excerpt, events, first
from harness.output import OutputLine

PREFIX = "[2026-12-07 19:20:01,123] host/INFO/locust.runners: "


def lines(*texts: str) -> list[OutputLine]:
    return [OutputLine(float(i), text) for i, text in enumerate(texts)]


def test_registrations_in_each_release_wording() -> None:
    found = events(
        lines(
            PREFIX + "ready-1a2b (index 0) reported as ready. 1 workers connected.",  # 2.12+
            PREFIX + "Worker w-2 (index 1) reported as ready. 2 workers connected.",  # 2.11
            PREFIX + "Client 'host_3f' reported as ready. Currently 3 clients ready to swarm.",  # 2.0-2.10
        )
    )
    assert [(e.kind, e.node) for e in found] == [("ready", "ready-1a2b"), ("ready", "w-2"), ("ready", "host_3f")]


def test_missing_and_a_dead_listener() -> None:
    found = events(
        lines(
            PREFIX + "Worker silent07-abc failed to send heartbeat, setting state to missing.",
            "[x] host/CRITICAL/locust.runners: Unhandled exception in greenlet: <Greenlet at 0x7f: <bound method",
            "MasterRunner.client_listener of <locust.runners.MasterRunner object at 0x7f>>>",
            "Traceback (most recent call last):",
            "KeyError: 'stranger-1'",
        )
    )
    assert [(e.kind, e.node) for e in found] == [("missing", "silent07-abc"), ("listener-crashed", "")]
    assert first(found, "missing", "silent07-abc") is not None and first(found, "missing", "other") is None


def test_another_greenlet_dying_is_not_the_listener() -> None:
    found = events(lines("CRITICAL Unhandled exception in greenlet: <Greenlet spawning_greenlet>", "ValueError: x"))
    assert found == []


def test_the_crash_excerpt_ends_with_the_exception() -> None:
    text = lines("Unhandled exception in greenlet: <Greenlet: client_listener>", "Traceback", "  File x", "TypeError: 'int'")
    excerpt = crash_excerpt(text)
    assert excerpt.startswith("Unhandled exception") and excerpt.endswith("TypeError: 'int'")


def test_the_fake_master_says_it_in_words_the_reader_understands() -> None:
    found = events(
        lines(
            PREFIX + READY_LINE.format(node="probe-9f", index=3, count=4),
            PREFIX + MISSING_LINE.format(node="silent-1"),
            PREFIX + CRASH_LINE.format(why="spawning_complete from an unknown worker"),
        )
    )
    assert [(e.kind, e.node) for e in found] == [("ready", "probe-9f"), ("missing", "silent-1"), ("listener-crashed", "")]
