"""Cases that need a quiet machine run alone, across every run in the process (harness.runner.QuietLock)."""

from __future__ import annotations

import threading
import time

from harness.runner import QuietLock


def test_an_exclusive_case_waits_for_the_others_and_then_runs_alone() -> None:
    lock = QuietLock()
    events: list[str] = []
    shared_in = threading.Event()

    def shared(name: str, hold: float) -> None:
        with lock.hold(exclusive=False):
            events.append(f"{name} in")
            shared_in.set()
            time.sleep(hold)
            events.append(f"{name} out")

    def exclusive() -> None:
        with lock.hold(exclusive=True):
            events.append("flood in")
            time.sleep(0.1)
            events.append("flood out")

    first = threading.Thread(target=shared, args=("a", 0.3))
    first.start()
    assert shared_in.wait(5)
    flood = threading.Thread(target=exclusive)
    flood.start()
    time.sleep(0.05)  # the flood is waiting now: a case that comes later waits behind it
    late = threading.Thread(target=shared, args=("b", 0.0))
    late.start()
    for thread in (first, flood, late):
        thread.join(5)
    assert events == ["a in", "a out", "flood in", "flood out", "b in", "b out"]


def test_shared_cases_run_side_by_side() -> None:
    lock = QuietLock()
    inside = threading.Barrier(3, timeout=5)

    def shared() -> None:
        with lock.hold(exclusive=False):
            inside.wait()  # all three inside at once, or the barrier breaks

    threads = [threading.Thread(target=shared) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert not inside.broken


def test_the_thread_holding_it_alone_may_take_it_again() -> None:
    """A case re-run alone (its first attempt's harness was overloaded) takes the lock inside the scheduler's hold."""
    lock = QuietLock()
    done = threading.Event()

    def rerun() -> None:
        with lock.hold(exclusive=True), lock.hold(exclusive=False), lock.hold(exclusive=True):
            pass
        with lock.hold(exclusive=False):  # and it is free again afterwards
            done.set()

    thread = threading.Thread(target=rerun)
    thread.start()
    thread.join(5)
    assert done.is_set()
