"""Stack dumps of real stuck processes in three languages, started the way the harness starts workers.

A toolchain that is missing skips its part, unless LC_REQUIRE_PEERS=1 (CI, make test): then it fails.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from harness import stacks
from harness.launcher import WorkerProcess
from harness.stacks import GO_NOT_YET, Runtime, app_frame, detect, dump, find_py_spy
from tests.foreign_peers import need as foreign_need

pytestmark = [pytest.mark.timeout(120)]

READY = "stuck: ready"

PY_STUCK = """
import threading, time

def wait_forever():
    threading.Event().wait()

threading.Thread(target=wait_forever, name="stuck-worker", daemon=True).start()
print("stuck: ready", flush=True)
while True:
    time.sleep(3600)
"""

# PR_SET_DUMPABLE = 4: a non-dumpable process refuses ptrace from a tracer without CAP_SYS_PTRACE, even of its own uid
NOT_DUMPABLE = """
import ctypes
ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)
"""

JAVA_STUCK = """
import java.util.concurrent.locks.LockSupport;

public class Stuck {
    static void waitForever() {
        while (true) {
            LockSupport.park();
        }
    }

    public static void main(String[] args) throws Exception {
        Thread t = new Thread(Stuck::waitForever, "stuck-thread");
        t.start();
        System.out.println("stuck: ready");
        System.out.flush();
        t.join();
    }
}
"""


def need(tool: str, what: str) -> None:
    """Skip (or, with LC_REQUIRE_PEERS=1, fail) when a toolchain is missing."""
    foreign_need(f"{what} is not available here: {tool}")


def wait_for_line(proc: WorkerProcess, text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(text in line.text for line in proc.lines()):
            return
        assert proc.poll() is None, f"the process ended before printing {text!r}: {proc.output()[-2000:]}"
        time.sleep(0.05)
    pytest.fail(f"no {text!r} within {timeout} s: {proc.output()[-2000:]}")


# ---------------------------------------------------------------------------------------------------------------------
# Python


def test_python_thread_is_named_by_py_spy(tmp_path: Path) -> None:
    if find_py_spy() is None:
        need("py-spy", "py-spy (pip install py-spy)")
    script = tmp_path / "stuck.py"
    script.write_text(PY_STUCK)
    notes: list[str] = []
    with WorkerProcess(f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}", tmp_path / "worker.log") as proc:
        wait_for_line(proc, READY)
        found = detect(proc.pid)
        assert [p.runtime for p in found] == [Runtime.PYTHON]
        assert found[0].pid == proc.pid
        result = dump(proc, tmp_path / "stack.txt", final=False, note=notes.append)
        assert proc.poll() is None, "a Python dump must not end the worker"
    [d] = result.dumps
    assert d.error is None, d.error
    assert d.runtime is Runtime.PYTHON and d.method == "py-spy dump"
    stuck = next(t for t in d.threads if t.name == "stuck-worker")
    assert (app_frame(Runtime.PYTHON, stuck) or "").startswith("wait_forever (")
    summary = result.summary()
    assert "'stuck-worker' idle in wait_forever (" in summary and summary.endswith("full dump in stack.txt")
    assert "stuck-worker" in (tmp_path / "stack.txt").read_text()
    assert any("py-spy dump on Python pid" in n for n in notes)
    print(f"\nPYTHON ({d.seconds:.2f} s): {summary}")


def test_py_spy_refused_by_ptrace_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real py-spy refused by the kernel's ptrace check, whoever runs the suite: as root, py-spy runs as nobody
    against our process; otherwise the target makes itself non-dumpable (prctl), which an unprivileged tracer
    may not attach to."""
    spy = find_py_spy()
    assert spy is not None, "py-spy is missing: pip install -e . (it is a dependency)"
    script = tmp_path / "stuck.py"
    public = Path(tempfile.mkdtemp(prefix="lc-pyspy-"))  # pytest's tmp_path is private to root
    try:
        if os.geteuid() == 0:
            setpriv = shutil.which("setpriv")
            assert setpriv is not None, "setpriv (util-linux) is missing: it runs py-spy as nobody"
            public.chmod(0o755)
            shutil.copy(spy, public / "py-spy")
            wrapper = public / "py-spy-as-nobody"
            wrapper.write_text(f'#!/bin/sh\nexec {setpriv} --reuid=65534 --regid=65534 --clear-groups {public / "py-spy"} "$@"\n')
            wrapper.chmod(0o755)
            monkeypatch.setattr(stacks, "find_py_spy", lambda: str(wrapper))
            script.write_text(PY_STUCK)
        else:
            script.write_text(NOT_DUMPABLE + PY_STUCK)
        with WorkerProcess(f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}", tmp_path / "worker.log") as proc:
            wait_for_line(proc, READY)
            result = dump(proc, tmp_path / "stack.txt", final=False)
    finally:
        shutil.rmtree(public)
    [d] = result.dumps
    assert d.error is not None and d.error.startswith("py-spy could not attach: ptrace was refused"), d.error
    assert "Permission Denied" in d.error
    assert result.summary().startswith(f"Python pid {proc.pid}: py-spy could not attach: ptrace was refused")
    print(f"\nPYTHON refused: {result.summary()}")


def test_a_process_that_has_ended_gets_no_dump(tmp_path: Path) -> None:
    with WorkerProcess(f"{shlex.quote(sys.executable)} -c pass", tmp_path / "worker.log") as proc:
        assert proc.wait(30) == 0
        result = dump(proc, tmp_path / "stack.txt", final=True)
    assert result.summary() == "no stack dump: the process had already ended"
    assert not result.dumps


# ---------------------------------------------------------------------------------------------------------------------
# JVM


@pytest.fixture(scope="module")
def stuck_class(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("java") is None or shutil.which("javac") is None:
        need("java/javac", "a JDK (make jvm-peer)")
    folder = tmp_path_factory.mktemp("jvm")
    (folder / "Stuck.java").write_text(JAVA_STUCK)
    subprocess.run(["javac", "-d", str(folder), str(folder / "Stuck.java")], check=True, timeout=120, capture_output=True)
    return folder


@pytest.fixture
def wrapped_jvm(stuck_class: Path, tmp_path: Path) -> Iterator[WorkerProcess]:
    """A JVM behind a shell wrapper: the process-group leader is the shell, the JVM its child."""
    inner = f"java -cp {shlex.quote(str(stuck_class))} Stuck; exit $?"  # a list, so the shell stays and waits
    with WorkerProcess(f"sh -c {shlex.quote(inner)}", tmp_path / "worker.log") as proc:
        wait_for_line(proc, READY)
        yield proc


def jvm_child(proc: WorkerProcess) -> int:
    found = detect(proc.pid)
    assert found[0].pid == proc.pid and found[0].runtime is Runtime.OTHER, found  # the wrapper shell
    jvms = [p for p in found if p.runtime is Runtime.JVM]
    assert len(jvms) == 1, found
    assert os.path.basename(jvms[0].exe) == "java" and jvms[0].pid != proc.pid
    return jvms[0].pid


def test_jvm_behind_a_wrapper_is_dumped_with_jcmd(wrapped_jvm: WorkerProcess, tmp_path: Path) -> None:
    if shutil.which("jcmd") is None:
        need("jcmd", "a JDK's jcmd")
    pid = jvm_child(wrapped_jvm)
    notes: list[str] = []
    result = dump(wrapped_jvm, tmp_path / "stack.txt", final=False, note=notes.append)
    [d] = result.dumps
    assert d.error is None and d.method == "jcmd Thread.print" and d.pid == pid, d
    stuck = next(t for t in d.threads if t.name == "stuck-thread")
    assert stuck.state == "WAITING (parking)"
    assert (app_frame(Runtime.JVM, stuck) or "").startswith("Stuck.waitForever(Stuck.java:")
    summary = result.summary()
    assert f"JVM pid {pid} (jcmd Thread.print): " in summary
    assert "'stuck-thread' WAITING (parking) in Stuck.waitForever(Stuck.java:" in summary
    assert "[top: jdk.internal.misc.Unsafe.park]" in summary
    assert "Reference Handler" not in summary and "Signal Dispatcher" not in summary
    assert f"stack dump: jcmd Thread.print on JVM pid {pid}" in notes
    assert psutil.pid_exists(pid) and wrapped_jvm.poll() is None
    print(f"\nJVM jcmd ({d.seconds:.2f} s): {summary}")


def test_jvm_falls_back_to_jstack_when_jcmd_fails(
    wrapped_jvm: WorkerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("jstack") is None:
        need("jstack", "a JDK's jstack")
    real = stacks._jdk_tool
    monkeypatch.setattr(stacks, "_jdk_tool", lambda name, exe: "/bin/false" if name == "jcmd" else real(name, exe))
    pid = jvm_child(wrapped_jvm)
    notes: list[str] = []
    result = dump(wrapped_jvm, tmp_path / "stack.txt", final=False, note=notes.append)
    [d] = result.dumps
    assert d.error is None and d.method == "jstack", d
    assert "'stuck-thread' WAITING (parking) in Stuck.waitForever(Stuck.java:" in result.summary()
    assert notes[-2:] == [f"stack dump: jcmd Thread.print on JVM pid {pid}", f"stack dump: jstack on JVM pid {pid}"]


def test_jvm_sigquit_fallback_reads_the_dump_from_the_output(wrapped_jvm: WorkerProcess, tmp_path: Path) -> None:
    pid = jvm_child(wrapped_jvm)
    notes: list[str] = []
    result = dump(wrapped_jvm, tmp_path / "stack.txt", final=False, note=notes.append, jvm_tools=False)
    [d] = result.dumps
    assert d.error is None and d.method.startswith("SIGQUIT") and d.pid == pid, d
    assert d.text.startswith("Full thread dump") and "JNI global refs" in d.text and "\nHeap" not in d.text
    assert READY not in d.text
    stuck = next(t for t in d.threads if t.name == "stuck-thread")
    assert (app_frame(Runtime.JVM, stuck) or "").startswith("Stuck.waitForever(Stuck.java:")
    summary = result.summary()
    assert "'stuck-thread' WAITING (parking) in Stuck.waitForever(Stuck.java:" in summary
    assert any(f"SIGQUIT to JVM pid {pid}" in n for n in notes)
    time.sleep(0.5)
    assert psutil.Process(pid).status() != psutil.STATUS_ZOMBIE, "the JVM must survive SIGQUIT"
    assert wrapped_jvm.poll() is None, "the wrapper shell must not get the signal"
    again = dump(wrapped_jvm, tmp_path / "stack2.txt", final=False, jvm_tools=False)  # and it still answers
    assert "'stuck-thread'" in again.summary()
    print(f"\nJVM SIGQUIT ({d.seconds:.2f} s): {summary}")


# ---------------------------------------------------------------------------------------------------------------------
# Go


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP port that accepts connections and never speaks (the Go peer only needs somewhere to connect)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server


def test_go_is_dumped_only_at_the_end(go_binary: Path, listener: socket.socket, tmp_path: Path) -> None:
    port = listener.getsockname()[1]
    command = f"{shlex.quote(str(go_binary))} --master-host 127.0.0.1 --master-port {port} --mode no-zmtp"
    notes: list[str] = []
    with WorkerProcess(command, tmp_path / "worker.log") as proc:
        wait_for_line(proc, "go-peer: connected")
        found = detect(proc.pid)
        assert [(p.pid, p.runtime) for p in found] == [(proc.pid, Runtime.GO)]

        early = dump(proc, tmp_path / "stack.txt", final=False, note=notes.append)
        [d] = early.dumps
        assert d.error == GO_NOT_YET and not d.text
        assert GO_NOT_YET in early.summary()
        time.sleep(0.3)
        assert proc.poll() is None and proc.teardown_at is None, "final=False must leave a Go worker alone"

        result = dump(proc, tmp_path / "stack.txt", final=True, note=notes.append)
        assert proc.teardown_at is not None
        assert proc.poll() == 2, "a Go process exits with code 2 after its SIGQUIT dump"
    [d] = result.dumps
    assert d.error is None and d.exit_code == 2, d
    assert d.text.startswith("SIGQUIT: quit")
    waiter = next(t for t in d.threads if any(f.startswith("main.waitForever ") for f in t.frames))
    assert waiter.state == "chan receive"
    summary = result.summary()
    assert (
        f"Go pid {proc.pid} (SIGQUIT (ends the process), from its output): '{waiter.name}' chan receive in main.waitForever ("
        in summary
    )
    assert "[top: runtime.gopark]" in summary and "'goroutine 2'" not in summary
    assert any(f"SIGQUIT to Go pid {proc.pid}" in n for n in notes)
    assert "main.waitForever" in (tmp_path / "stack.txt").read_text()
    print(f"\nGO ({d.seconds:.2f} s): {summary}")


def test_go_peer_panics_on_purpose(go_binary: Path, listener: socket.socket, tmp_path: Path) -> None:
    port = listener.getsockname()[1]
    command = f"{shlex.quote(str(go_binary))} --master-host 127.0.0.1 --master-port {port} --mode panic"
    with WorkerProcess(command, tmp_path / "worker.log") as proc:
        assert proc.wait(30) == 2
    assert "panic: locust worker broke on purpose" in proc.output()


def test_go_dump_survives_garbage_output(go_binary: Path, tmp_path: Path) -> None:
    """50 MB of random bytes and a 10 MB line without a newline come first; the goroutine dump is still found."""
    with WorkerProcess(f"{shlex.quote(str(go_binary))} --mode garbage-output", tmp_path / "worker.log") as proc:
        deadline = time.monotonic() + 60
        while proc.drain is not None and proc.drain.total_bytes < 60 << 20 and time.monotonic() < deadline:
            assert proc.poll() is None
            time.sleep(0.1)
        assert proc.drain is not None and proc.drain.total_bytes >= 60 << 20
        time.sleep(0.3)
        assert proc.poll() is None, "it waits forever after the garbage"
        result = dump(proc, tmp_path / "stack.txt", final=True)
        assert proc.poll() == 2
    [d] = result.dumps
    assert d.error is None, d
    assert "in main.waitForever (" in result.summary()
    print(f"\nGO after garbage ({d.seconds:.2f} s): {result.summary()}")
