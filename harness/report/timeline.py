"""The heartbeat picture of a case: matplotlib, rendered to SVG text for embedding in the case page.

Each judged silence between heartbeats is a stem at the moment it ended, as tall as it lasted; fault windows
are shaded, windows in which the harness itself could not hear the worker are hatched, and the tolerance
and the real master's missing threshold are drawn across. matplotlib is an optional extra
(``pip install locust-conformance[report]``); without it, ``render_timeline`` says so instead of drawing.
"""

from __future__ import annotations

import io
import re
from typing import Any

FAULT_COLOURS = {
    "fault-plan": "#f4a259",
    "pause-reading": "#9aa5b1",
    "master-silence": "#c39bd3",
    "master-down": "#7f8c8d",
    "master-death": "#34495e",
    "storm": "#e9c46a",
}
GAP_COLOUR = "#2a6f97"


class TimelineUnavailable(Exception):
    """The picture cannot be drawn here (no plotting library); the message says what to install."""


def render_timeline(timeline: dict[str, Any], title: str = "") -> str:
    """An ``<svg>`` element (no XML prolog) picturing ``timeline`` (a case's ``timeline`` in results.json)."""
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError as exc:  # optional extra
        raise TimelineUnavailable("heartbeat pictures need matplotlib: pip install 'locust-conformance[report]'") from exc
    # stable element ids (reports diff cleanly); text stays text (smaller, searchable); nobody else's settings touched
    with matplotlib.rc_context({"svg.hashsalt": "locust-conformance", "svg.fonttype": "none"}):
        return _draw(Figure, timeline, title)


def _draw(figure: Any, timeline: dict[str, Any], title: str) -> str:
    interval = float(timeline["interval"])
    end = float(timeline["end"])
    fig = figure(figsize=(10, 3.4), dpi=100)
    fig.subplots_adjust(left=0.065, right=0.74, bottom=0.15, top=0.9)  # fixed: a layout engine doubles the cost
    ax = fig.add_subplot()
    windows = [(float(a), float(b), str(label)) for a, b, label in timeline["fault_windows"]]
    for i, (a, b, label) in enumerate(windows):
        base = label.split("#", 1)[0]
        ax.axvspan(
            a,
            max(b, a + end / 400),
            color=FAULT_COLOURS.get(base, "#f4a259"),
            alpha=0.3,
            lw=0,
            label=f"fault: {base}" if base not in {w[2].split("#", 1)[0] for w in windows[:i]} else None,
        )
    for i, (a, b, _label) in enumerate(timeline["excused"]):
        ax.axvspan(
            float(a),
            float(b),
            facecolor="none",
            edgecolor="#555",
            hatch="//",
            lw=0,
            label="excused: harness could not hear" if i == 0 else None,
        )
    gaps = [(float(s), float(n)) for s, n in timeline["gaps"]]
    if gaps:
        ends = [s + n for s, n in gaps]
        lengths = [n for _, n in gaps]
        ax.vlines(ends, 0, lengths, color=GAP_COLOUR, lw=1.4, gid="gaps")
        ax.plot(ends, lengths, "o", color=GAP_COLOUR, ms=3.5, label="heartbeat gap (ends at a heartbeat)")
    beats = [float(t) for t in timeline["heartbeats"]]
    if beats:
        ax.plot(beats, [0.0] * len(beats), "|", color="#444", ms=7, label="heartbeat received")
    ax.axhline(interval, color="#2d6a4f", ls=":", lw=1, label=f"interval {interval:g} s")
    ax.axhline(float(timeline["tolerance"]), color="#e76f51", ls="--", lw=1, label="tolerance (NON-STRICT above)")
    ax.axhline(
        float(timeline["missing_after_min"]),
        color="#c1121f",
        ls="-",
        lw=1.3,
        label=f"missing threshold {float(timeline['missing_after_min']):g}-{float(timeline['missing_after_max']):g} s",
    )
    ax.axhspan(float(timeline["missing_after_min"]), float(timeline["missing_after_max"]), color="#c1121f", alpha=0.08, lw=0)
    for j, (t, change) in enumerate(timeline["liveness"]):
        if change == "missing":
            ax.axvline(float(t), color="#c1121f", lw=2, label="marked missing" if j == 0 else None)
    for key, text in (("acked_at", "ack"), ("quit_at", "quit")):
        if timeline.get(key) is not None:
            ax.axvline(float(timeline[key]), color="#888", ls="-.", lw=0.8)
            ax.annotate(
                text,
                (float(timeline[key]), 1.0),
                xycoords=("data", "axes fraction"),
                fontsize=8,
                color="#555",
                ha="left",
                va="top",
                xytext=(2, -2),
                textcoords="offset points",
            )
    top = max([*(n for _, n in gaps), float(timeline["missing_after_max"])]) * 1.12
    ax.set_ylim(0, top)
    ax.set_xlim(0, max(end, *(s + n for s, n in gaps), 1e-3) * 1.01)
    ax.set_xlabel("seconds since the fake master (or the proxy) started")
    ax.set_ylabel("heartbeat gap (s)")
    if title:
        ax.set_title(title, fontsize=10, loc="left", parse_math=False)  # a label may hold a dollar sign
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7.5, frameon=False)
    out = io.StringIO()
    fig.savefig(out, format="svg", metadata={"Date": None})
    return _strip_prolog(out.getvalue())


def _strip_prolog(svg: str) -> str:
    """The ``<svg>`` element alone: the XML declaration and DOCTYPE are not allowed inside HTML."""
    start = svg.find("<svg")
    return re.sub(r"\s+$", "", svg[start:]) if start >= 0 else svg
