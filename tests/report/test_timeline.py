"""The heartbeat picture: a real matplotlib SVG with the gaps, the shaded fault windows, the threshold and the
missing marks; without matplotlib, a sentence saying what to install instead of a crash."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from harness.report.timeline import TimelineUnavailable, render_timeline

TIMELINE: dict[str, Any] = {
    "interval": 0.2,
    "tolerance": 0.32,
    "missing_after_min": 0.8,
    "missing_after_max": 1.0,
    "acked_at": 0.1,
    "quit_at": None,
    "end": 3.0,
    "heartbeats": [0.1, 0.3, 0.5, 1.9],
    "gaps": [[0.1, 0.2], [0.3, 0.2], [0.5, 1.4], [1.9, 1.1]],
    "fault_windows": [[0.6, 1.8, "storm#1"], [2.0, 2.5, "fault-plan"]],
    "excused": [[2.2, 2.4, "pause-reading"]],
    "liveness": [[1.5, "missing"], [1.9, "ready"]],
}


def test_the_picture_is_an_svg_with_every_element() -> None:
    svg = render_timeline(TIMELINE, "heartbeat/99 on test")
    assert svg.startswith("<svg") and "<?xml" not in svg and "DOCTYPE" not in svg
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    for text in (
        "fault: storm",
        "fault: fault-plan",
        "excused: harness could not hear",
        "marked missing",
        "missing threshold 0.8-1 s",
        "heartbeat gap",
        "heartbeat/99 on test",
        "ack",
    ):
        assert text in svg, text
    assert render_timeline(TIMELINE, "heartbeat/99 on test") == svg, "the same data draws the same file"


def test_without_matplotlib_the_report_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(TimelineUnavailable, match=r"locust-conformance\[report\]"):
        render_timeline(TIMELINE)


def test_a_label_with_dollar_signs_is_text_not_a_formula() -> None:
    assert "go$\\frac$" in render_timeline(TIMELINE, "go$\\frac$")
