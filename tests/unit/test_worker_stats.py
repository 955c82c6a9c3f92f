"""Tests of worker.stats: Locust's histogram buckets, delta reports, error keys, thread safety (spec §3.6)."""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.protocol.messages import Direction, Message
from harness.protocol.schema import check_payload
from worker.stats import RequestStats, bucket_response_time, error_key

T0 = 1_700_000_000.0  # a wall-clock epoch second, as the worker uses


def _schema_problems(report: dict[str, Any], counts: dict[str, int] | None = None) -> list[Any]:
    """Schema problems of ``report`` sent as a complete W->M ``stats`` message."""
    counts = {"A": 1} if counts is None else counts
    data = {**report, "user_classes_count": counts, "user_count": sum(counts.values())}
    return check_payload(Message("stats", data, "id"), Direction.WORKER_TO_MASTER)


def _locust_round(response_time: float) -> float:
    """``StatsEntry._log_response_time``'s rounding in locust/stats.py 2.47.0, verbatim."""
    if response_time < 100:
        return round(response_time)
    elif response_time < 1000:
        return round(response_time, -1)
    elif response_time < 10000:
        return round(response_time, -2)
    else:
        return round(response_time, -3)


# --------------------------------------------------------------------------------------------
# bucket_response_time
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response_time", "bucket"),
    [
        (147, 150),  # Locust's own comment: "147 becomes 150,
        (3432, 3400),  # 3432 becomes 3400
        (58760, 59000),  # and 58760 becomes 59000"
        (0, 0),
        (0.4, 0),
        (42, 42),
        (42.5, 42),  # Python's round(): half to even, as Locust
        (43.5, 44),
        (99.4, 99),
        (99.6, 100),  # rounds across the <100 boundary
        (100, 100),
        (104.9, 100),
        (145, 140),  # half to even at the tens too
        (155, 160),
        (999, 1000),
        (999.6, 1000),
        (1000, 1000),
        (1049, 1000),
        (1051, 1100),
        (9949, 9900),
        (9999, 10000),
        (10000, 10000),
        (10499, 10000),
        (123456, 123000),
    ],
)
def test_bucket_examples(response_time: float, bucket: int) -> None:
    """The histogram key keeps about two significant digits, exactly as Locust rounds."""
    got = bucket_response_time(response_time)
    assert got == bucket
    assert isinstance(got, int)


@settings(max_examples=300, database=None)
@given(st.floats(min_value=0, max_value=10_000_000, allow_nan=False, allow_infinity=False))
def test_bucket_matches_locust_rounding(response_time: float) -> None:
    """For any response time the key equals Locust's rounding (as an int) and is within 5 %."""
    got = bucket_response_time(response_time)
    assert got == int(_locust_round(response_time))
    if response_time >= 100:
        assert abs(got - response_time) <= 0.05 * response_time


# --------------------------------------------------------------------------------------------
# RequestStats reports
# --------------------------------------------------------------------------------------------


def test_report_contents_and_schema() -> None:
    """One entry per (name, method) with Locust's fields; the report passes the stats schema."""
    stats = RequestStats(T0)
    stats.log_request("GET", "/a", 147.0, 10, T0 + 1.2)
    stats.log_request("GET", "/a", 3432.0, 20, T0 + 1.7)
    stats.log_request("POST", "/a", 5.0, 1, T0 + 2.1)
    report = stats.take_report(T0 + 3)
    assert _schema_problems(report) == []
    by_key = {(e["name"], e["method"]): e for e in report["stats"]}
    assert set(by_key) == {("/a", "GET"), ("/a", "POST")}
    get = by_key[("/a", "GET")]
    assert get["num_requests"] == 2
    assert get["num_failures"] == 0
    assert get["num_none_requests"] == 0
    assert get["total_response_time"] == pytest.approx(147.0 + 3432.0)
    assert get["min_response_time"] == 147.0
    assert get["max_response_time"] == 3432.0
    assert get["total_content_length"] == 30
    assert get["response_times"] == {150: 1, 3400: 1}
    assert get["num_reqs_per_sec"] == {int(T0 + 1): 2}
    assert get["last_request_timestamp"] == T0 + 1.7
    assert get["start_time"] == T0 + 1.2  # an entry starts when its first request is logged, as Locust's
    total = report["stats_total"]
    assert (total["name"], total["method"]) == ("Aggregated", "")
    assert total["num_requests"] == 3
    assert total["num_reqs_per_sec"] == {int(T0 + 1): 2, int(T0 + 2): 1}
    assert total["response_times"] == {150: 1, 3400: 1, 5: 1}
    assert report["errors"] == {}


def test_reports_are_deltas() -> None:
    """A second report shows only what happened since the first (Locust's get_stripped_report)."""
    stats = RequestStats(T0)
    for i in range(3):
        stats.log_request("GET", "/a", 10.0 + i, 1, T0 + 0.5)
    stats.log_request("GET", "/b", 20.0, 1, T0 + 0.6)
    first = stats.take_report(T0 + 1)
    assert first["stats_total"]["num_requests"] == 4
    stats.log_request("GET", "/a", 99.0, 7, T0 + 1.5)
    second = stats.take_report(T0 + 2)
    assert _schema_problems(second) == []
    assert [(e["name"], e["num_requests"]) for e in second["stats"]] == [("/a", 1)]  # /b had nothing new
    entry = second["stats"][0]
    assert entry["min_response_time"] == entry["max_response_time"] == 99.0
    assert entry["total_content_length"] == 7
    assert entry["response_times"] == {99: 1}
    assert entry["start_time"] == T0 + 1  # the reset entry starts at the previous report
    assert second["stats_total"]["num_requests"] == 1
    assert second["stats_total"]["start_time"] == T0 + 1
    assert stats.requests_total == 5  # the lifetime counter is never reset


def test_empty_report() -> None:
    """Without new requests: no entries, an empty Aggregated total, no errors; still schema-valid."""
    stats = RequestStats(T0)
    stats.log_request("GET", "/a", 1.0, 0, T0)
    stats.take_report(T0 + 1)
    report = stats.take_report(T0 + 2)
    assert report["stats"] == []
    assert report["errors"] == {}
    total = report["stats_total"]
    assert (total["name"], total["method"], total["num_requests"], total["num_failures"]) == ("Aggregated", "", 0, 0)
    assert total["min_response_time"] is None
    assert total["last_request_timestamp"] is None
    assert total["response_times"] == {}
    assert _schema_problems(report, {}) == []


def test_errors_keyed_by_sha256() -> None:
    """errors: key = sha256 hex of f"{method}.{name}.{error!r}", occurrences counted, then reset."""
    stats = RequestStats(T0)
    err = "Failure('boom')"
    stats.log_error("GET", "/a", err, T0 + 1)
    stats.log_error("GET", "/a", err, T0 + 2)
    stats.log_error("POST", "/a", err, T0 + 2.5)
    report = stats.take_report(T0 + 3)
    assert _schema_problems(report) == []
    key = hashlib.sha256(f"GET./a.{err!r}".encode()).hexdigest()
    assert error_key("GET", "/a", err) == key
    assert set(report["errors"]) == {key, error_key("POST", "/a", err)}
    assert report["errors"][key] == {
        "name": "/a",
        "method": "GET",
        "error": err,
        "occurrences": 2,
        "first_seen": T0 + 1,
        "last_seen": T0 + 2,
    }
    # An entry with failures but no successful requests is still reported (Locust skips only all-zero entries).
    by_method = {e["method"]: e for e in report["stats"]}
    assert by_method["GET"]["num_failures"] == 2
    assert by_method["GET"]["num_requests"] == 0
    assert by_method["GET"]["num_fail_per_sec"] == {int(T0 + 1): 1, int(T0 + 2): 1}
    assert report["stats_total"]["num_failures"] == 3
    assert stats.failures_total == 3
    assert stats.take_report(T0 + 4)["errors"] == {}


def test_error_key_uses_repr() -> None:
    """The key hashes the repr of the error string (quotes included), not the bare string."""
    assert error_key("GET", "/x", "e") == hashlib.sha256(b"GET./x.'e'").hexdigest()
    assert error_key("GET", "/x", "e") != hashlib.sha256(b"GET./x.e").hexdigest()


def test_thread_safety() -> None:
    """8 threads x 1000 requests (and a failure every 10th) while reports are taken: totals are exact."""
    stats = RequestStats(T0)
    threads_n, per_thread = 8, 1000
    barrier = threading.Barrier(threads_n + 1)
    reports: list[dict[str, Any]] = []

    def user(i: int) -> None:
        barrier.wait()
        for k in range(per_thread):
            stats.log_request("GET", f"/u{i % 2}", float(k % 300), 1, T0 + k / 1000)
            if k % 10 == 0:
                stats.log_error("GET", f"/u{i % 2}", "Failure('x')", T0 + k / 1000)

    threads = [threading.Thread(target=user, args=(i,)) for i in range(threads_n)]
    for t in threads:
        t.start()
    barrier.wait()
    while any(t.is_alive() for t in threads):
        reports.append(stats.take_report(T0 + 5))
    for t in threads:
        t.join(10)
        assert not t.is_alive()
    reports.append(stats.take_report(T0 + 6))
    expected_requests = threads_n * per_thread
    expected_failures = threads_n * per_thread // 10
    assert sum(r["stats_total"]["num_requests"] for r in reports) == expected_requests
    assert sum(sum(e["num_requests"] for e in r["stats"]) for r in reports) == expected_requests
    assert sum(r["stats_total"]["num_failures"] for r in reports) == expected_failures
    assert sum(sum(r["stats_total"]["response_times"].values()) for r in reports) == expected_requests
    assert sum(sum(err["occurrences"] for err in r["errors"].values()) for r in reports) == expected_failures
    assert stats.requests_total == expected_requests
    assert stats.failures_total == expected_failures
    for r in reports:
        assert _schema_problems(r) == []


@settings(max_examples=100, database=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["GET", "POST"]),
            st.sampled_from(["/a", "/b", "/c"]),
            st.floats(min_value=0, max_value=100_000, allow_nan=False),
            st.booleans(),
            st.booleans(),
        ),
        max_size=40,
    )
)
def test_reports_sum_to_what_was_logged(ops: list[tuple[str, str, float, bool, bool]]) -> None:
    """However requests and reports interleave, every report is schema-valid and they add up."""
    stats = RequestStats(T0)
    now = T0
    reports: list[dict[str, Any]] = []
    for method, name, rt, failed, report_now in ops:
        now += 0.25
        stats.log_request(method, name, rt, 3, now)
        if failed:
            stats.log_error(method, name, "Failure('x')", now)
        if report_now:
            reports.append(stats.take_report(now))
    reports.append(stats.take_report(now + 1))
    for r in reports:
        assert _schema_problems(r) == []
        assert all(e["num_requests"] or e["num_failures"] for e in r["stats"])
        assert r["stats_total"]["num_requests"] == sum(e["num_requests"] for e in r["stats"])
    assert sum(r["stats_total"]["num_requests"] for r in reports) == len(ops)
    assert sum(r["stats_total"]["num_failures"] for r in reports) == sum(1 for op in ops if op[3])
    assert sum(r["stats_total"]["total_content_length"] for r in reports) == 3 * len(ops)
