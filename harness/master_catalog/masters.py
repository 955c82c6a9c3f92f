"""The master under test: its command (``locust@VERSION``, ``fake@PROFILE`` or a template), its process, its log.

A master case asks for a launch (``Launch``: how many workers the master waits for, how many users it runs and for
how long). ``locust@VERSION`` is that release's real master, started headless with the harness's locustfile in the
release's cached environment (harness.locust_release). ``fake@PROFILE`` is our fake master serving on its own
(``locust-conformance master --serve``), which behaves like that profile's release. Any other text is a shell
template with ``{port}`` (required) and optionally ``{host} {workers} {users} {rate} {run_time} {csv} {locustfile}
{python}``; a template without ``{users}`` cannot start a load test, so the cases that need one are not run.
"""

from __future__ import annotations

import shlex
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from string import Formatter

import psutil

from harness.errors import ScenarioError
from harness.launcher import PEERS, WorkerProcess
from harness.locust_release import is_release, quoted_python, version_of
from harness.protocol.profiles import DEFAULT_PROFILE, UnknownProfile, master_profile

HOST = "127.0.0.1"
FAKE = "fake@"
USER_CLASS = "ConformanceUser"  # the locustfile's (harness/peers/locustfile.py) one user class
LOCUST_MASTER = (
    "{python} -m locust -f {locustfile} --master --master-bind-host {host} --master-bind-port {port} --headless "
    "--expect-workers {workers} -u {users} -r {rate} {run_time_option} --csv {csv} --loglevel INFO"
)
FAKE_MASTER = "{python} -m harness.cli master --serve --host {host} --port {port} --master-profile {profile}"
PLACEHOLDERS = {"host", "port", "workers", "users", "rate", "run_time", "csv", "locustfile", "python"}
RUN = "run"  # the capability to start a load test (dispatch users, merge stats, quit at the end)
LISTEN_TIMEOUT = 60.0  # seconds a master may take to bind (an old release's first start compiles its bytecode)
NEVER = 1_000_000  # workers a master waits for when a case wants no load test: it never starts one


@dataclass(frozen=True)
class Launch:
    """What a case needs the master to do: wait for ``workers`` (NEVER: wait forever), then run ``users`` for
    ``run_time`` seconds (None: until stopped)."""

    workers: int = NEVER
    users: int = 1
    rate: float = 100.0
    run_time: int | None = None
    report_wait: float | None = None  # seconds the master waits for its workers' spawn reports after a ramp (every 2.x)

    def env(self) -> dict[str, str] | None:
        """The master's environment for this launch: Locust's own knob for the report wait, where one is set (a
        master that does not know it ignores it)."""
        if self.report_wait is None:
            return None
        return {"LOCUST_WAIT_FOR_WORKERS_REPORT_AFTER_RAMP_UP": f"{self.report_wait:g}"}


@dataclass(frozen=True)
class MasterCommand:
    """A ``--master`` value, checked: what it is called, and what it can do."""

    text: str

    @property
    def label(self) -> str:
        return self.text if is_release(self.text) or self.text.startswith(FAKE) else "custom"

    @property
    def capabilities(self) -> frozenset[str]:
        if self.text.startswith(FAKE):
            return frozenset()  # the fake master serves workers; it starts no load test of its own
        if is_release(self.text) or "users" in _fields(self.text):
            return frozenset({RUN})
        return frozenset()

    def profile_name(self) -> str:
        """The master profile of ``fake@PROFILE`` (``fake@`` alone: the default one)."""
        name = self.text[len(FAKE) :] or DEFAULT_PROFILE.name
        try:
            return master_profile(name).name
        except UnknownProfile as exc:
            raise ScenarioError(f"--master {self.text}: {exc}") from None

    def check(self) -> MasterCommand:
        """Raise ScenarioError for a command that cannot work (before any case starts)."""
        if self.text.startswith(FAKE):
            self.profile_name()
        elif is_release(self.text):
            version_of(self.text)
        else:
            fields = _fields(self.text)
            unknown = fields - PLACEHOLDERS
            if unknown:
                raise ScenarioError(f"master command has unknown placeholders {sorted(unknown)}; allowed: {sorted(PLACEHOLDERS)}")
            if "port" not in fields:
                raise ScenarioError(f"master command must contain {{port}} so workers can find the master: {self.text!r}")
        return self

    def render(self, port: int, launch: Launch, csv: Path) -> str:
        """The shell command for one case's master on ``port``."""
        python = shlex.quote(sys.executable)
        if self.text.startswith(FAKE):
            return FAKE_MASTER.format(python=python, host=HOST, port=port, profile=self.profile_name())
        template = self.text
        if is_release(self.text):
            python = quoted_python(version_of(self.text))
            template = LOCUST_MASTER
        run_time = "" if launch.run_time is None else f"{launch.run_time}s"
        return template.format(
            python=python,
            host=HOST,
            port=port,
            workers=launch.workers,
            users=launch.users,
            rate=f"{launch.rate:g}",
            run_time=run_time,
            run_time_option=f"-t {run_time}" if run_time else "",
            csv=shlex.quote(str(csv)),
            locustfile=shlex.quote(str(PEERS / "locustfile.py")),
        )


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in Formatter().parse(template) if name is not None}


def free_port() -> int:
    """A port nobody listens on now (bound to port 0 and released: the master binds it next)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def listening(process: WorkerProcess, port: int) -> bool:
    """True once a process of the master's group listens on ``port`` (read from the kernel: nothing connects)."""
    try:
        parent = psutil.Process(process.pid)
        family = [parent, *parent.children(recursive=True)]
        return any(
            c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
            for p in family
            for c in p.net_connections(kind="tcp")
        )
    except psutil.Error:
        return False
