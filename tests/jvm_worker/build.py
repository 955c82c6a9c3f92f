"""Build and run LocustJvmWorker, a JVM Locust worker used as a foreign test peer (a fixture, not a product).

It compiles against Debian's JeroMQ and msgpack-core jars (``make jvm-peer`` installs them) with the JDK's
javac; nothing is downloaded.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parent
JEROMQ_JAR = Path("/usr/share/java/jeromq.jar")  # libjeromq-java (JeroMQ 0.3.6 on Debian 12)
MSGPACK_JAR = Path("/usr/share/java/msgpack-core.jar")  # libmsgpack-java (msgpack-core 0.9.3)
JARS = (JEROMQ_JAR, MSGPACK_JAR)
MAIN_CLASS = "LocustJvmWorker"


def available() -> str | None:
    """None when java, javac and both jars are there; else a one-line reason."""
    missing = [tool for tool in ("java", "javac") if shutil.which(tool) is None]
    missing += [str(jar) for jar in JARS if not jar.is_file()]
    if missing:
        return f"the JVM worker needs {', '.join(missing)} (make jvm-peer installs the jars; a JDK 17 gives java and javac)"
    return None


def _sources() -> list[Path]:
    return sorted(SOURCE_DIR.glob("*.java"))


def build(out_dir: Path) -> Path:
    """Compile the worker into ``out_dir`` (skipped when its class files are newer than the sources); returns it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = _sources()
    classes = list(out_dir.glob("*.class"))
    main_class = out_dir / f"{MAIN_CLASS}.class"
    if main_class.exists() and min(c.stat().st_mtime for c in classes) > max(s.stat().st_mtime for s in sources):
        return out_dir
    reason = available()
    if reason:
        raise RuntimeError(reason)
    classpath = ":".join(str(jar) for jar in JARS)
    result = subprocess.run(
        ["javac", "--release", "17", "-Xlint:all", "-cp", classpath, "-d", str(out_dir), *map(str, sources)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"javac failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return out_dir


def command(build_dir: Path, *flags: str) -> str:
    """The harness's command template: {host} and {port} are filled in; no {heartbeat_interval} (fixed pace)."""
    classpath = shlex.quote(":".join([str(build_dir), *(str(jar) for jar in JARS)]))
    tail = "".join(f" {shlex.quote(flag)}" for flag in flags)
    return f"java -cp {classpath} {MAIN_CLASS} --master-host {{host}} --master-port {{port}}{tail}"
