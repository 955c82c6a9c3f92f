"""Stack-dump parsing and runtime detection (harness.stacks).

The samples in ``stack_samples/`` are real dumps captured on a Debian 12 machine (OpenJDK 17.0.15, py-spy 0.4.3 on
CPython 3.11.7, Go 1.19.8) from small stuck programs:

- ``jvm_jcmd_thread_print.txt``: ``jcmd PID Thread.print`` of a JVM whose thread "stuck-thread" parks in ``waitForever``.
- ``jvm_jstack_deadlock.txt``: ``jstack PID`` of the same program with two threads "lock-a"/"lock-b" in a deadlock.
- ``jvm_sigquit_stdout.txt``: that JVM's stdout after SIGQUIT (its own line, the dump, the deadlock report, the heap).
- ``pyspy_dump.txt``: ``py-spy dump`` of a Python program: "stuck-worker" in ``wait_forever``, "zmq-receiver" polling.
- ``go_sigquit_output.txt``: the output of ``tests/go_peer`` (``--mode no-zmtp``) after SIGQUIT.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import stacks
from harness.stacks import (
    DumpResult,
    Runtime,
    StackDump,
    ThreadStack,
    app_frame,
    classify,
    detect,
    go_dump_from_output,
    is_go_binary,
    jvm_deadlocks,
    jvm_dump_from_output,
    parse,
    parse_go,
    parse_jvm,
    parse_pyspy,
)

SAMPLES = Path(__file__).parent / "stack_samples"


def sample(name: str) -> str:
    return (SAMPLES / name).read_text("utf-8")


def by_name(threads: list[ThreadStack], name: str) -> ThreadStack:
    return next(t for t in threads if t.name == name)


def dump_of(runtime: Runtime, text: str, method: str = "test") -> StackDump:
    return StackDump(runtime, 4242, method, text, parse(runtime, text), deadlocks=jvm_deadlocks(text))


# ---------------------------------------------------------------------------------------------------------------------
# JVM


def test_jcmd_thread_print_is_parsed() -> None:
    threads = parse_jvm(sample("jvm_jcmd_thread_print.txt"))
    names = [t.name for t in threads]
    assert names[:3] == ["main", "Reference Handler", "Finalizer"]
    assert {"stuck-thread", "VM Thread", "GC Thread#0", "C2 CompilerThread0"} <= set(names)
    stuck = by_name(threads, "stuck-thread")
    assert stuck.state == "WAITING (parking)"
    assert stuck.frames[0] == "jdk.internal.misc.Unsafe.park(java.base@17.0.15/Native Method)"
    assert stuck.frames[2] == "Stuck.waitForever(Stuck.java:9)"
    assert app_frame(Runtime.JVM, stuck) == "Stuck.waitForever(Stuck.java:9)"
    assert by_name(threads, "VM Thread").frames == [] and by_name(threads, "VM Thread").state == "runnable"
    assert jvm_deadlocks(sample("jvm_jcmd_thread_print.txt")) == []


def test_jcmd_summary_names_the_stuck_thread_and_skips_service_threads() -> None:
    summary = dump_of(Runtime.JVM, sample("jvm_jcmd_thread_print.txt"), "jcmd Thread.print").summary()
    assert summary.startswith("JVM pid 4242 (jcmd Thread.print): ")
    assert "'stuck-thread' WAITING (parking) in Stuck.waitForever(Stuck.java:9) [top: jdk.internal.misc.Unsafe.park]" in summary
    assert "'main' WAITING (on object monitor) in Stuck.main(Stuck.java:31) [top: java.lang.Object.wait]" in summary
    for service in ("Reference Handler", "Finalizer", "Signal Dispatcher", "Common-Cleaner", "Attach Listener", "Compiler"):
        assert service not in summary


def test_jstack_deadlock_is_named_first() -> None:
    text = sample("jvm_jstack_deadlock.txt")
    assert jvm_deadlocks(text) == [["lock-a", "lock-b"]]
    threads = parse_jvm(text)
    assert [t.name for t in threads].count("lock-a") == 1  # the deadlock report's stacks are not threads of their own
    assert by_name(threads, "lock-a").state == "BLOCKED (on object monitor)"
    summary = dump_of(Runtime.JVM, text, "jstack").summary()
    assert summary.startswith(
        "JVM pid 4242 (jstack): Java-level deadlock between 'lock-a' and 'lock-b'; "
        "'lock-a' BLOCKED (on object monitor) in Stuck.lockBoth(Stuck.java:17); "
        "'lock-b' BLOCKED (on object monitor) in Stuck.lockBoth(Stuck.java:17); "
    )
    assert "'stuck-thread' WAITING (parking) in Stuck.waitForever(" in summary


def test_sigquit_dump_is_cut_from_the_jvm_output() -> None:
    lines = sample("jvm_sigquit_stdout.txt").splitlines()
    assert lines[0] == "stuck: ready" and "Heap" in lines
    text = jvm_dump_from_output(lines)
    assert text is not None
    assert text.startswith("Full thread dump OpenJDK 64-Bit Server VM")
    assert "stuck: ready" not in text and "\nHeap" not in text and "Metaspace" not in text
    assert "JNI global refs" in text and text.rstrip().endswith("Found 1 deadlock.")
    assert jvm_deadlocks(text) == [["lock-a", "lock-b"]]
    summary = dump_of(Runtime.JVM, text, "SIGQUIT, from its output").summary()
    assert "Java-level deadlock between 'lock-a' and 'lock-b'" in summary
    assert "'stuck-thread' WAITING (parking) in Stuck.waitForever(Stuck.java:9)" in summary


def test_sigquit_dump_without_a_deadlock_ends_at_the_thread_list() -> None:
    dump_lines = sample("jvm_jcmd_thread_print.txt").splitlines()[1:]  # the same dump, as a JVM prints it
    lines = ["worker: started", *dump_lines, "", "Heap", " garbage-first heap   total 1K", "worker: still here"]
    text = jvm_dump_from_output(lines)
    assert text is not None and text.rstrip().endswith(dump_lines[-1].rstrip())
    assert "Heap" not in text and "worker:" not in text
    assert jvm_dump_from_output(["no dump here", "JNI global refs: 4"]) is None


# ---------------------------------------------------------------------------------------------------------------------
# Python (py-spy)


def test_py_spy_dump_is_parsed() -> None:
    threads = parse_pyspy(sample("pyspy_dump.txt"))
    assert [(t.name, t.state) for t in threads] == [("MainThread", "idle"), ("zmq-receiver", "idle"), ("stuck-worker", "idle")]
    stuck = by_name(threads, "stuck-worker")
    assert stuck.frames[0] == "Condition.wait (threading.py:327)"
    assert app_frame(Runtime.PYTHON, stuck) == "wait_forever (stuck_zmq.py:5)"
    assert app_frame(Runtime.PYTHON, by_name(threads, "zmq-receiver")) == "receive_loop (stuck_zmq.py:11)"


def test_py_spy_summary_names_the_stuck_thread() -> None:
    summary = dump_of(Runtime.PYTHON, sample("pyspy_dump.txt"), "py-spy dump").summary()
    assert summary == (
        "Python pid 4242 (py-spy dump): 'MainThread' idle in main (stuck_zmq.py:21); "
        "'zmq-receiver' idle in receive_loop (stuck_zmq.py:11) [top: Poller.poll]; "
        "'stuck-worker' idle in wait_forever (stuck_zmq.py:5) [top: Condition.wait]"
    )


def test_py_spy_locals_do_not_end_a_thread() -> None:
    text = (
        'Thread 0x7F12 (active+gil): "MainThread"\n    spin (app.py:3)\n        Arguments:\n            n: 1\n'
        "    <module> (app.py:9)\n"
    )
    [t] = parse_pyspy(text)
    assert t.frames == ["spin (app.py:3)", "<module> (app.py:9)"] and t.state == "active+gil"


# ---------------------------------------------------------------------------------------------------------------------
# Go


def test_go_sigquit_dump_is_parsed() -> None:
    lines = sample("go_sigquit_output.txt").splitlines()
    text = go_dump_from_output(lines)
    assert text is not None and text.startswith("SIGQUIT: quit\n") and "go-peer: connected" not in text
    goroutines = parse_go(text)
    assert [g.name for g in goroutines][:3] == ["goroutine 0", "goroutine 1", "goroutine 2"]
    waiter = by_name(goroutines, "goroutine 6")
    assert waiter.state == "chan receive"
    assert waiter.frames[0] == "runtime.gopark (/usr/lib/go-1.19/src/runtime/proc.go:363)"
    assert app_frame(Runtime.GO, waiter) == "main.waitForever (/work/main/tests/go_peer/main.go:26)"
    assert "main.startWaiter" not in waiter.frames[-1]  # "created by" is not a frame
    main = by_name(goroutines, "goroutine 1")
    assert main.state == "IO wait" and app_frame(Runtime.GO, main) == "main.main (/work/main/tests/go_peer/main.go:80)"


def test_go_summary_names_the_blocked_goroutine_first() -> None:
    text = go_dump_from_output(sample("go_sigquit_output.txt").splitlines())
    assert text is not None
    summary = dump_of(Runtime.GO, text, "SIGQUIT").summary()
    assert summary == (
        "Go pid 4242 (SIGQUIT): "
        "'goroutine 6' chan receive in main.waitForever (/work/main/tests/go_peer/main.go:26) [top: runtime.gopark]; "
        "'goroutine 1' IO wait in main.main (/work/main/tests/go_peer/main.go:80) [top: runtime.gopark]"
    )


def test_go_panic_output_and_new_headers() -> None:
    text = (
        "panic: locust worker broke on purpose\n\ngoroutine 1 gp=0xc000002380 m=0 mp=0x5c0 [running]:\n"
        "main.(*peer).run(0xc000012345, {0x4a0a20, 0x4f1b78})\n\t/src/main.go:86 +0x47f\n"
        "main.main()\n\t/src/main.go:90 +0x1\n"
    )
    [g] = parse_go(text)
    assert g.name == "goroutine 1" and g.state == "running"
    assert g.frames == ["main.(*peer).run (/src/main.go:86)", "main.main (/src/main.go:90)"]


# ---------------------------------------------------------------------------------------------------------------------
# Summaries of dumps that failed


def test_result_summaries() -> None:
    assert DumpResult(message=stacks.ENDED).summary() == "no stack dump: the process had already ended"
    failed = StackDump(Runtime.PYTHON, 7, "py-spy dump", error="py-spy could not attach: ptrace was refused")
    go = StackDump(Runtime.GO, 8, "none", error=stacks.GO_NOT_YET)
    result = DumpResult([failed, go], Path("stack.txt"))
    assert result.summary() == (
        "Python pid 7: py-spy could not attach: ptrace was refused; "
        "Go pid 8: not dumped: a Go dump (SIGQUIT) ends the process; it is taken at the end"
    )
    many = [ThreadStack(f"t{i}", "WAITING (parking)", [f"App.m{i}(App.java:{i})"]) for i in range(7)]
    line = StackDump(Runtime.JVM, 1, "jstack", "x", many).summary()
    assert "'t3'" in line and "'t4'" not in line and line.endswith("3 more")


# ---------------------------------------------------------------------------------------------------------------------
# Never an exception on garbage


PARSERS = [parse_jvm, parse_pyspy, parse_go, jvm_deadlocks]
ALL_SAMPLES = sorted(p.name for p in SAMPLES.glob("*.txt"))


def _everything(text: str) -> None:
    for runtime in Runtime:
        d = StackDump(runtime, 1, "m", text, parse(runtime, text), deadlocks=jvm_deadlocks(text))
        assert isinstance(d.summary(), str)
    for parser in PARSERS:
        parser(text)
    jvm_dump_from_output(text.splitlines())
    go_dump_from_output(text.splitlines())


@pytest.mark.parametrize("name", ALL_SAMPLES)
def test_truncated_samples_never_raise(name: str) -> None:
    text = sample(name)
    for cut in range(0, len(text), 13):
        _everything(text[:cut])
        _everything(text[cut:])
    lines = text.splitlines()
    rng = random.Random(name)
    for _ in range(20):
        rng.shuffle(lines)
        _everything("\n".join(lines))


@given(st.text(alphabet=st.sampled_from(list('"#:()[]\t\n -=.atgoroutine0123Thread@/')) | st.characters(), max_size=400))
def test_garbage_never_raises(text: str) -> None:
    _everything(text)


def test_random_bytes_never_raise() -> None:
    rng = random.Random(7)
    for _ in range(50):
        _everything(bytes(rng.randrange(256) for _ in range(2000)).decode("utf-8", "replace"))


# ---------------------------------------------------------------------------------------------------------------------
# Runtime detection


def _elf(tmp_path: Path, name: str, body: bytes, at: int = 64) -> Path:
    path = tmp_path / name
    with path.open("wb") as f:
        f.write(b"\x7fELF\x02\x01\x01" + b"\0" * 57)  # a 64-bit ELF header without section headers
        f.seek(at)
        f.write(body)
    return path


def test_go_binaries_are_recognised_by_their_build_info(tmp_path: Path) -> None:
    assert is_go_binary(str(_elf(tmp_path, "near", stacks.GO_MAGIC + b"go1.19.8")))
    straddling = stacks.SCAN_CHUNK - 5  # the magic spans two chunks of the scan
    assert is_go_binary(str(_elf(tmp_path, "straddle", stacks.GO_MAGIC, at=straddling)))
    beyond = _elf(tmp_path, "beyond", stacks.GO_MAGIC, at=stacks.GO_SCAN_LIMIT + 10)  # a sparse file
    assert not is_go_binary(str(beyond))
    assert not is_go_binary(str(_elf(tmp_path, "plain", b"nothing of Go")))
    text = tmp_path / "script"
    text.write_bytes(b"#!/bin/sh\n" + stacks.GO_MAGIC)  # not an ELF file
    assert not is_go_binary(str(text))
    assert not is_go_binary(str(tmp_path / "missing"))
    assert not is_go_binary(sys.executable) and not is_go_binary("/bin/sh")


def test_elf_section_headers_name_go_sections(tmp_path: Path) -> None:
    """A minimal 64-bit ELF with a section string table holding ``.go.buildinfo`` (and no magic bytes)."""
    import struct

    names = b"\0.shstrtab\0.go.buildinfo\0"
    shoff = 64 + len(names)
    header = bytearray(b"\x7fELF\x02\x01\x01" + b"\0" * 57)
    struct.pack_into("<Q", header, 0x28, shoff)
    struct.pack_into("<HHH", header, 0x3A, 64, 3, 1)
    null = b"\0" * 64
    shstr = struct.pack("<IIQQQQIIQQ", 1, 3, 0, 0, 64, len(names), 0, 0, 1, 0)
    build = struct.pack("<IIQQQQIIQQ", 11, 1, 0, 0, 0, 0, 0, 0, 1, 0)
    path = tmp_path / "sections"
    path.write_bytes(bytes(header) + names + null + shstr + build)
    with path.open("rb") as f:
        assert stacks._elf_sections(f, bytes(header)) == {b"", b".shstrtab", b".go.buildinfo"}
    assert is_go_binary(str(path))
    broken = tmp_path / "broken"
    broken.write_bytes(bytes(header) + names[:5])  # section headers point past the end
    assert not is_go_binary(str(broken))


def test_classify_by_executable(tmp_path: Path) -> None:
    jdk = tmp_path / "jdk"
    (jdk / "bin").mkdir(parents=True)
    (jdk / "lib" / "server").mkdir(parents=True)
    (jdk / "lib" / "server" / "libjvm.so").write_bytes(b"")
    (jdk / "bin" / "my-launcher").write_bytes(b"")
    assert classify(str(jdk / "bin" / "my-launcher")) is Runtime.JVM
    assert classify("/opt/whatever/bin/java") is Runtime.JVM
    assert classify("/usr/bin/python3.11") is Runtime.PYTHON
    assert classify("/usr/local/bin/node") is Runtime.NODE and classify("/usr/bin/nodejs") is Runtime.NODE
    assert classify("/usr/bin/dash") is Runtime.OTHER and classify("") is Runtime.OTHER
    go = _elf(tmp_path, "worker", stacks.GO_MAGIC)
    assert classify(str(go)) is Runtime.GO


def test_detect_walks_the_tree_root_first() -> None:
    [me] = detect(os.getpid())
    assert me.runtime is Runtime.PYTHON and me.pid == os.getpid() and os.path.isabs(me.exe)
    proc = subprocess.Popen(["/bin/sh", "-c", "sleep 30; exit 0"])
    try:
        for _ in range(100):  # until the shell has forked sleep and the child has exec'd it (a fork is "sh" a while)
            found = detect(proc.pid)
            if len(found) == 2 and found[1].name == "sleep":
                break
            subprocess.run(["sleep", "0.05"])
        assert [(p.runtime, p.name) for p in found] == [(Runtime.OTHER, "sh"), (Runtime.OTHER, "sleep")]
        assert found[0].pid == proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_detect_skips_processes_that_are_gone() -> None:
    proc = subprocess.Popen(["true"])
    while True:  # a zombie: ended, not yet reaped
        try:
            if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                break
        except ChildProcessError:
            break
    assert detect(proc.pid) == []
    proc.wait()
    assert detect(proc.pid) == []
    assert detect(2**22 + 12345) == []


def test_timer_loops_and_idle_threads_are_named_after_a_thread_that_waits_for_good() -> None:
    """A heartbeat thread sleeping between beats, a handler idle on its queue, a main thread joining: normal. The thread
    parked in application code is the one to name first (the JVM peer's stuck spawn handler)."""
    threads = [
        ThreadStack("heartbeat", "TIMED_WAITING (sleeping)", ["java.lang.Thread.sleep(Native Method)", "W.pause(W.java:9)"]),
        ThreadStack(
            "command-handler",
            "WAITING (parking)",
            [
                "jdk.internal.misc.Unsafe.park(Native Method)",
                "java.util.concurrent.LinkedBlockingQueue.take(X.java:1)",
                "W.loop(W.java:3)",
            ],
        ),
        ThreadStack(
            "spawn-handler", "WAITING (parking)", ["jdk.internal.misc.Unsafe.park(Native Method)", "W.applySpawn(W.java:7)"]
        ),
    ]
    assert [t.name for t in stacks.stuck_threads(stacks.Runtime.JVM, threads)] == [
        "spawn-handler",
        "heartbeat",
        "command-handler",
    ]
