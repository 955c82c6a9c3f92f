"""The launcher: command templates, process groups, output capture, reaping."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from harness.errors import ScenarioError
from harness.launcher import WorkerProcess, describe_exit, render_command


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
