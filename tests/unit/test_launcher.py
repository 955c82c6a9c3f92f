"""The launcher: command templates, process groups, output capture, reaping."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from harness.errors import ScenarioError
from harness.launcher import OutputLimits, WorkerProcess, describe_exit, render_command, takes_interval


def test_render_builtin_reference() -> None:
    cmd = render_command("reference", "127.0.0.1", 5557, 0.25)
    assert cmd.endswith("-m worker --master-host 127.0.0.1 --master-port 5557 --heartbeat-interval 0.25")


def test_render_custom_template() -> None:
    assert render_command("java -jar w.jar {host}:{port}", "127.0.0.1", 9, 1.0) == "java -jar w.jar 127.0.0.1:9"


@pytest.mark.parametrize("template", ["w --port {prot}", "w --host {host}"])
def test_render_rejects_bad_templates(template: str) -> None:
    with pytest.raises(ScenarioError):
        render_command(template, "127.0.0.1", 1, 1.0)


def test_output_goes_to_a_file_and_big_output_never_stalls(tmp_path: Path) -> None:
    """1 MB of output would fill a pipe; it must go to the file while the process runs to the end."""
    script = "import sys; sys.stdout.write('x' * 1_000_000); sys.stderr.write('done')"
    with WorkerProcess(f'{sys.executable} -c "{script}"', tmp_path / "out.log") as proc:
        assert proc.wait(10) == 0
    text = proc.output()
    assert text.count("x") == 1_000_000 and text.endswith("done")


def test_command_not_found_is_reported(tmp_path: Path) -> None:
    with WorkerProcess("no-such-command-anywhere --port 1", tmp_path / "out.log") as proc:
        code = proc.wait(5)
    assert code == 127
    assert "not found" in proc.output()
    assert describe_exit(code) == "exit code 127 (command not found)"


def test_stop_kills_the_whole_group_including_children(tmp_path: Path) -> None:
    """A worker that ignores SIGTERM and forks a child is still reaped, child included."""
    child_pid_file = tmp_path / "child.pid"
    script = (
        "import os, signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        f"open({str(child_pid_file)!r}, 'w').write(str(p.pid)); "
        "time.sleep(60)"
    )
    proc = WorkerProcess(f'{sys.executable} -c "{script}"', tmp_path / "out.log").start()
    deadline = time.monotonic() + 10
    while not child_pid_file.exists() or not child_pid_file.read_text():
        assert time.monotonic() < deadline, proc.output()
        time.sleep(0.05)
    child = int(child_pid_file.read_text())
    started = time.monotonic()
    code = proc.stop(grace=0.5)
    assert code == -9  # SIGTERM was ignored, so SIGKILL ended it
    assert time.monotonic() - started < 6
    assert proc.killed_by_harness
    for _ in range(100):  # the child is reaped by init once killed; wait until it is gone
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"child {child} of the worker survived the group kill")


def test_describe_exit_by_signal() -> None:
    assert describe_exit(-6) == "killed by SIGABRT"
    assert describe_exit(None) == "still running"


def test_output_lines_are_timed_on_the_callers_clock(tmp_path: Path) -> None:
    """Each line gets the time it was read (here a fake clock), and is handed on as it comes."""
    clock = iter(range(1000, 100000)).__next__
    seen: list[tuple[float, str]] = []
    script = "import sys, time; print('first', flush=True); time.sleep(0.3); print('second', flush=True)"
    with WorkerProcess(
        f'{sys.executable} -c "{script}"', tmp_path / "out.log", clock=clock, on_line=lambda t, s: seen.append((t, s))
    ) as proc:
        assert proc.wait(10) == 0
    proc.stop()
    lines = proc.lines()
    assert [line.text for line in lines] == ["first", "second"]
    assert lines[0].t < lines[1].t  # read at two moments
    assert seen == [(line.t, line.text) for line in lines]
    assert proc.output() == "first\nsecond\n"


def test_garbage_endless_lines_and_floods_are_bounded_and_never_stall(tmp_path: Path) -> None:
    """Binary garbage, a line with no end and more output than is kept: the worker runs to its end, the harness keeps a
    bounded head and tail (timed), the file is capped and says so."""
    script = (
        "import os, sys; w = sys.stdout.buffer.write; "
        "w(os.urandom(200_000).replace(b'\\n', b'.')); w(b'\\n' + b'x' * 300_000 + b'\\n'); "
        "[w(b'line %d\\n' % i) for i in range(50_000)]; w(b'the end\\n'); sys.stdout.flush()"
    )
    limits = OutputLimits(head_lines=100, head_bytes=1 << 20, tail_bytes=10_000, line_bytes=1000, file_bytes=500_000)
    with WorkerProcess(f'{sys.executable} -c "{script}"', tmp_path / "out.log", limits=limits) as proc:
        assert proc.wait(20) == 0
    proc.stop()
    drain = proc.drain
    assert drain is not None and drain.error is None
    lines = proc.lines()
    assert len(drain.head) == 100
    assert all(len(line.text) <= 1100 for line in lines)  # cut, and said so
    assert any("line cut by the harness" in line.text for line in lines)
    assert lines[-1].text == "the end"  # the tail is kept: a crash at the end is still judged
    assert not drain.kept_everything and drain.lines_not_kept > 40_000
    assert drain.total_bytes > 600_000
    log = (tmp_path / "out.log").read_bytes()
    assert 500_000 < len(log) < 501_000 and b"output beyond 500000 bytes not kept" in log


def test_stop_records_teardown_and_sigkill(tmp_path: Path) -> None:
    script = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    proc = WorkerProcess(f'{sys.executable} -c "{script}"', tmp_path / "out.log").start()
    deadline = time.monotonic() + 10
    while not proc.lines():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    before = time.monotonic()
    assert proc.stop(grace=0.3) == -9
    assert proc.teardown_at is not None and proc.teardown_at >= before
    assert proc.needed_sigkill and proc.killed_by_harness


def test_a_process_that_ends_by_itself_is_not_torn_down(tmp_path: Path) -> None:
    with WorkerProcess(f"{sys.executable} -c pass", tmp_path / "out.log") as proc:
        assert proc.wait(10) == 0
    assert proc.teardown_at is None and not proc.needed_sigkill and not proc.killed_by_harness


def test_takes_interval() -> None:
    assert takes_interval("reference") and takes_interval("locust")
    assert not takes_interval("java -jar w.jar --master-port {port}")
