"""A real LangGraph server (``langgraph dev``) for the cross-service tests: its own virtualenv, started and stopped
by its pid.

``langgraph-api`` is Elastic-2.0 licensed, so it is a test tool, never a dependency: ``langgraph-cli[inmem]`` lives
in a private virtualenv, by default ``<repo>/.venv-langgraph`` (gitignored by ``.venv-*/``), made on first use with
pinned versions, with this repository installed editable into it (the server process runs our handler and
``setup_tracing``). As for the Phoenix venv (``tests/integration/phoenix_venv.py``): a marker naming the pins and the
repository path is written only after every install step succeeded, so an interrupted install is redone from
scratch; concurrent callers serialise on a lock file; a failed install raises with its log's tail.

``langgraph dev --host 127.0.0.1 --port P --no-browser --no-reload`` then serves a project directory offline
(no license key, no LangSmith: ``LANGGRAPH_CLI_NO_ANALYTICS=1``, ``LANGSMITH_TRACING=false``). Only the standard
library is imported here.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
VENV_ENV_VAR = "OTEL_CALLBACKS_LANGGRAPH_VENV"
DEFAULT_VENV = REPO_ROOT / ".venv-langgraph"
# The versions the cross-service behaviour was measured on (langgraph_api/otel_context.py as read there).
PINS = (
    "langgraph-cli[inmem]==0.4.40",
    "langgraph-api==0.16.7",
    "langgraph-runtime-inmem==0.36.7",
    # the ASGI middleware of the http.app set-up (examples/remote_graph/webapp.py)
    "opentelemetry-instrumentation-asgi==0.66b2",
)
INSTALL_TIMEOUT_S = 1200.0
STARTUP_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0
LOOPBACK = "127.0.0.1"
_PR_SET_PDEATHSIG = 1
_LOG_TAIL_LINES = 60


class LangGraphInstallError(RuntimeError):
    """The server virtualenv could not be created, or a package could not be installed into it."""


def venv_dir() -> Path:
    override = os.environ.get(VENV_ENV_VAR)
    return Path(override).expanduser().resolve() if override else DEFAULT_VENV


def _marker_text() -> str:
    return "\n".join([*PINS, f"-e {REPO_ROOT}"]) + "\n"


def _marker(venv: Path) -> Path:
    return venv / ".installed-otel-callbacks-langgraph"


def langgraph_executable(venv: Path) -> Path:
    return venv / "bin" / "langgraph"


def is_installed(venv: Path | None = None) -> bool:
    """Whether ``venv`` holds a complete install of exactly these pins and this repository."""
    venv = venv or venv_dir()
    marker = _marker(venv)
    return (marker.is_file() and marker.read_text(encoding="utf-8") == _marker_text()
            and langgraph_executable(venv).is_file())


def log_tail(log: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    with lock_path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run_logged(cmd: list[str], log: Path, deadline: float) -> None:
    with log.open("a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        try:
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False,
                                  timeout=max(1.0, deadline - time.monotonic()))
        except (subprocess.TimeoutExpired, OSError) as exc:
            raise LangGraphInstallError(f"{cmd[:4]} failed: {exc}; log {log}:\n{log_tail(log)}") from exc
    if proc.returncode != 0:
        raise LangGraphInstallError(f"{' '.join(cmd[:5])} ... exited {proc.returncode}; log {log}:\n{log_tail(log)}")


def _clear(venv: Path, keep: set[Path]) -> None:
    leftovers = [c for c in venv.iterdir() if c not in keep and c.name != "install.log"]
    if leftovers and not (venv / "pyvenv.cfg").is_file():
        # Never wipe a directory that is not (the remains of) a virtualenv: the location can come from the env.
        raise LangGraphInstallError(f"{venv} exists, is not empty and is not a virtualenv; remove it or set "
                                    f"{VENV_ENV_VAR}")
    for child in venv.iterdir():
        if child in keep:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def ensure_venv(venv: Path | None = None) -> Path:
    """Create the server virtualenv if it is missing or stale; return its ``langgraph`` executable."""
    venv = venv or venv_dir()
    exe = langgraph_executable(venv)
    if is_installed(venv):
        return exe
    venv.mkdir(parents=True, exist_ok=True)
    lock, log = venv / ".install.lock", venv / "install.log"
    with _locked(lock):
        if is_installed(venv):
            return exe
        _clear(venv, keep={lock})
        log.write_text(f"# installing {' '.join(PINS)} and {REPO_ROOT} into {venv}\n", encoding="utf-8")
        deadline = time.monotonic() + INSTALL_TIMEOUT_S
        _run_logged([sys.executable, "-m", "venv", str(venv)], log, deadline)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
        # One resolution for the server and our package, so neither downgrades what the other needs.
        _run_logged([*pip, "install", *PINS, "-e", str(REPO_ROOT)], log, deadline)
        if not exe.is_file():
            raise LangGraphInstallError(f"installed, but {exe} is missing; log {log}:\n{log_tail(log)}")
        _marker(venv).write_text(_marker_text(), encoding="utf-8")
    return exe


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM if pytest dies without stopping the server (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class LangGraphServer:
    """A running ``langgraph dev``: its URL, pid and log."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    startup_seconds: float = 0.0
    stop_seconds: float = 0.0

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def log_tail(self) -> str:
        return log_tail(self.log_path)

    def stop(self) -> int:
        """SIGTERM by pid (then SIGKILL past the bound); the exit status."""
        if self.proc.poll() is None:
            started = time.monotonic()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            self.stop_seconds = time.monotonic() - started
        return int(self.proc.returncode)


def _ready(server: LangGraphServer) -> bool:
    try:
        with urllib.request.urlopen(server.url + "/ok", timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start(project: Path, env: Mapping[str, str], log_path: Path, *, config: str = "langgraph.json",
          venv: Path | None = None) -> LangGraphServer:
    """Start ``langgraph dev`` on a free loopback port in ``project`` and wait (bounded) until ``/ok`` answers.

    ``env`` is added to a copy of this process's environment without any ``OTEL_*``, ``LANGSMITH_*`` or
    ``LANGCHAIN_*`` variable (a developer's own settings must not leak in). A port taken between choosing it and
    the server binding it is retried on another.
    """
    exe = ensure_venv(venv)
    for attempt in range(3):
        try:
            return _start(exe, project, env, log_path, config)
        except RuntimeError as exc:
            if attempt == 2 or "address already in use" not in str(exc).lower():
                raise
    raise AssertionError("unreachable")


def start_reloading(project: Path, env: Mapping[str, str], log_path: Path, *, config: str = "langgraph.json",
                    venv: Path | None = None) -> LangGraphServer:
    """As :func:`start`, but with ``langgraph dev``'s default file watching (no ``--no-reload``): uvicorn's reloader
    then serves from a child process of its own, which it stops with SIGTERM when it is stopped itself."""
    exe = ensure_venv(venv)
    for attempt in range(3):
        try:
            return _start(exe, project, env, log_path, config, reload=True)
        except RuntimeError as exc:
            if attempt == 2 or "address already in use" not in str(exc).lower():
                raise
    raise AssertionError("unreachable")


def _start(exe: Path, project: Path, env: Mapping[str, str], log_path: Path, config: str, *,
           reload: bool = False) -> LangGraphServer:
    child_env = {k: v for k, v in os.environ.items()
                 if not k.startswith(("OTEL_", "LANGSMITH_", "LANGCHAIN_", "LANGGRAPH_", "VIRTUAL_ENV"))}
    child_env.update(LANGGRAPH_CLI_NO_ANALYTICS="1", LANGSMITH_TRACING="false", PYTHONUNBUFFERED="1",
                     PATH=f"{exe.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    child_env.update(env)
    port = _free_port()
    cmd = [str(exe), "dev", "--host", LOOPBACK, "--port", str(port), "--no-browser",
           *(() if reload else ("--no-reload",)), "--config", config]
    started = time.monotonic()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=project, env=child_env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
    server = LangGraphServer(proc, port, log_path)
    try:
        while not _ready(server):
            if proc.poll() is not None:
                raise RuntimeError(f"langgraph dev exited with {proc.returncode} before it was ready; "
                                   f"log {log_path}:\n{server.log_tail()}")
            if time.monotonic() - started > STARTUP_TIMEOUT_S:
                raise RuntimeError(f"langgraph dev (pid {proc.pid}) not ready on {server.url} after "
                                   f"{STARTUP_TIMEOUT_S:.0f} s; log {log_path}:\n{server.log_tail()}")
            time.sleep(0.1)
    except BaseException:
        server.stop()
        raise
    server.startup_seconds = time.monotonic() - started
    return server


if __name__ == "__main__":
    print(ensure_venv())
