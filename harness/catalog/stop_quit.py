"""Stop and quit cases (spec §3.5, §3.9, §4.1)."""

from __future__ import annotations

import signal

from harness.catalog.base import CaseContext, case
from harness.protocol.messages import MessageType


@case(
    "stop-quit/01-stop-then-ready",
    "stop-quit",
    "stop -> client_stopped -> client_ready",
    "users stop, client_stopped, then client_ready again (else the master never spawns it again); then heartbeats say ready",
    "§3.5, §7.1.6",
    12,
)
def stop_then_ready(ctx: CaseContext) -> None:
    ctx.handshake()
    ctx.spawn(2)
    ctx.master.send(MessageType.STOP)
    ctx.expect(MessageType.CLIENT_STOPPED, 4)
    ctx.expect(MessageType.CLIENT_READY, 4, what="after client_stopped")
    ctx.expect(MessageType.HEARTBEAT, 3, where=lambda d: isinstance(d, dict) and d.get("state") == "ready")


@case(
    "stop-quit/02-stop-timeout-honoured",
    "stop-quit",
    "client_ready waits out stop_timeout",
    "with stop_timeout = 2 intervals, client_ready comes about 2 intervals after client_stopped, not before",
    "§3.5",
    20,  # (a master before 2.13 sends whole seconds: 1 s, 5 intervals at 0.2 s)
)
def stop_timeout_honoured(ctx: CaseContext) -> None:
    ctx.handshake()
    # Masters before 2.13 send whole seconds: 2 intervals, rounded up to what this master can send.
    stop_timeout = float(ctx.master.profile.stop_timeout_value(ctx.s(2)) or 0.0)
    ctx.spawn(2, stop_timeout=stop_timeout)
    ctx.master.send(MessageType.STOP)
    stopped = ctx.expect(MessageType.CLIENT_STOPPED, 6)
    ready = ctx.expect(MessageType.CLIENT_READY, 6 + stop_timeout / ctx.interval, what="after stop_timeout")
    if ready.t - stopped.t < stop_timeout * 0.9:
        ctx.note(
            "stop.timeout",
            f"client_ready >= {stop_timeout:.2f} s after client_stopped",
            f"{ready.t - stopped.t:.3f} s",
        )


@case(
    "stop-quit/03-stop-when-ready",
    "stop-quit",
    "stop without users",
    "stop while ready -> client_stopped, client_ready (or no answer: the real master counts a ready worker as stopped)",
    "§3.5",
    10,
)
def stop_when_ready(ctx: CaseContext) -> None:
    ctx.handshake()
    ctx.master.send(MessageType.STOP)
    if ctx.master.wait_for(MessageType.CLIENT_STOPPED, ctx.s(4.5)) is not None:
        # The master deletes a worker that says client_stopped: only its client_ready brings it back.
        ctx.expect(MessageType.CLIENT_READY, 4, what="after client_stopped")
    # A stop left unanswered by a ready worker is the replies oracle's to grade (stop.when-ready).


@case(
    "stop-quit/04-respawn-after-stop",
    "stop-quit",
    "Spawning again after a stop",
    "after stop and client_ready the worker accepts a new spawn and runs the new count",
    "§3.5",
    14,
)
def respawn_after_stop(ctx: CaseContext) -> None:
    ctx.handshake()
    ctx.spawn(2)
    ctx.master.send(MessageType.STOP)
    ctx.expect(MessageType.CLIENT_READY, 6, what="after stop")
    ctx.spawn(3)


@case(
    "stop-quit/05-quit-while-running",
    "stop-quit",
    "quit while running",
    "users stop, a final stats report, quit, and the process exits by itself",
    "§3.9, §7.1.7",
    12,
)
def quit_while_running(ctx: CaseContext) -> None:
    ctx.handshake()
    ctx.spawn(3)
    ctx.observe(1)
    ctx.quit()


@case("stop-quit/06-quit-while-ready", "stop-quit", "quit while ready", "quit, and the process exits by itself", "§3.9", 10)
def quit_while_ready(ctx: CaseContext) -> None:
    ctx.handshake()
    ctx.quit()


@case(
    "stop-quit/07-sigterm-sends-quit",
    "stop-quit",
    "A worker told to stop by its OS says quit",
    "on SIGTERM the worker sends quit to the master before it exits",
    "§3.9, §7.1.7",
    10,
)
def sigterm_sends_quit(ctx: CaseContext) -> None:
    ctx.handshake()
    ctx.spawn(1)
    ctx.signal_worker(signal.SIGTERM)
    if ctx.master.wait_for(MessageType.QUIT, ctx.s(6)) is None:
        ctx.note(
            "shutdown.sigterm",
            "quit sent on SIGTERM",
            "no quit: the master only notices when it goes missing",
        )
    if ctx.process.wait(ctx.s(8)) is None:
        ctx.note("shutdown.sigterm-exit", "exit on SIGTERM", "still running")
