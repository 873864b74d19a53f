"""Session fixture: a real Arize Phoenix OTLP backend on 127.0.0.1, started once, stopped by its pid.

Phoenix lives in its own virtualenv (``phoenix_venv.py`` creates it on first use, pinned); it is never imported
here, only run as a subprocess. A missing or broken Phoenix fails the tests with the install or server log: nothing
is skipped.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from . import phoenix_venv

LOOPBACK = "127.0.0.1"
STARTUP_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 15.0
POLL_TIMEOUT_S = 30.0
_LOG_TAIL_LINES = 60
_START_ATTEMPTS = 3  # a free port can be taken between picking it and Phoenix binding it: then retry on new ports
_PR_SET_PDEATHSIG = 1

# Phoenix reads these; keep it offline, quiet and self-contained. Everything else PHOENIX_* or OTEL_* from the
# caller's environment is dropped so a developer's own settings (a Postgres URL, an OTLP collector) cannot leak in.
_PHOENIX_FIXED_ENV = {
    "PHOENIX_TELEMETRY_ENABLED": "false",
    "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
    "PHOENIX_DISABLE_AGENT_ASSISTANT": "true",
    "PHOENIX_ENABLE_MCP_SERVER": "false",
    "PHOENIX_ALLOWED_SANDBOX_PROVIDERS": "NONE",
    "PHOENIX_LOG_MIGRATIONS": "false",
    "PHOENIX_DB_LOGGING_LEVEL": "warning",
}


# Filled by the fixture, printed at the end of the run (install/start time, spans read back per project).
_MEASURED: dict[str, Any] = {}


def _venv_size_mb(venv: Path) -> float:
    total = 0
    for path in venv.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
        except OSError:
            continue
    return total / 1e6


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print what the Phoenix fixture measured, when it ran."""
    if not _MEASURED:
        return
    server: PhoenixServer | None = _MEASURED.get("server")
    tr = terminalreporter
    tr.section("Phoenix OTLP backend")
    tr.write_line(f"venv: {_MEASURED['venv']} ({_MEASURED['venv_mb']:.0f} MB, {_MEASURED['install']})")
    if server is not None:
        tr.write_line(f"server: pid {server.pid}, ready in {server.startup_seconds:.1f} s, log {server.log_path}")
        total = sum(server.spans_read.values())
        tr.write_line(
            f"spans read back (each test asserts: = spans sent): {total} in {len(server.spans_read)} project(s)"
        )
        for project, count in sorted(server.spans_read.items()):
            tr.write_line(f"  {project}: {count}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _log_tail(log: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if pytest dies without running the fixture's teardown (Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class PhoenixServer:
    """A running Phoenix: its endpoints, pid, log and a bounded reader of its span REST API."""

    pid: int
    http_port: int
    grpc_port: int
    log_path: Path
    working_dir: Path
    install_seconds: float
    startup_seconds: float
    spans_read: dict[str, int] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"

    @property
    def http_traces_endpoint(self) -> str:
        """OTLP/HTTP traces URL, as given to the HTTP exporter's ``endpoint``."""
        return f"{self.base_url}/v1/traces"

    @property
    def grpc_endpoint(self) -> str:
        """OTLP/gRPC endpoint, as given to the gRPC exporter's ``endpoint`` (with ``insecure=True``)."""
        return f"http://{LOOPBACK}:{self.grpc_port}"

    def log_tail(self) -> str:
        return _log_tail(self.log_path)

    def get_json(self, path: str, params: dict[str, str] | None = None) -> tuple[int, Any]:
        """GET ``path`` on the REST API; return ``(status, parsed JSON or text)`` without raising on 4xx."""
        url = self.base_url + path + ("?" + urllib.parse.urlencode(params) if params else "")
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                status, body = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read()
        text = body.decode("utf-8", errors="replace")
        try:
            return status, json.loads(text)
        except json.JSONDecodeError:
            return status, text

    def project_spans(self, project: str) -> list[dict[str, Any]]:
        """All spans of ``project`` (every page), or ``[]`` while the project does not exist yet."""
        spans: list[dict[str, Any]] = []
        params = {"limit": "1000", "sort": "start_time", "order": "asc"}
        while True:
            status, body = self.get_json(f"/v1/projects/{urllib.parse.quote(project, safe='')}/spans", params)
            if status == 404:
                return []
            if status != 200 or not isinstance(body, dict):
                raise AssertionError(f"GET spans of {project!r}: HTTP {status}: {body!r}")
            spans.extend(body["data"])
            if not body.get("next_cursor"):
                return spans
            params["cursor"] = body["next_cursor"]

    def wait_for_spans(self, project: str, count: int, timeout: float = POLL_TIMEOUT_S) -> list[dict[str, Any]]:
        """Poll until ``project`` holds at least ``count`` spans (bounded by ``timeout``); return them.

        Phoenix inserts spans in batches, so after the count is reached one more read confirms nothing else came.
        """
        deadline = time.monotonic() + timeout
        spans: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            spans = self.project_spans(project)
            if len(spans) >= count:
                time.sleep(0.3)
                spans = self.project_spans(project)
                self.spans_read[project] = len(spans)
                return spans
            time.sleep(0.2)
        raise AssertionError(
            f"Phoenix project {project!r} had {len(spans)} span(s) after {timeout:.0f} s, expected {count}; "
            f"names: {sorted(s['name'] for s in spans)}\nPhoenix log tail:\n{self.log_tail()}"
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop Phoenix by its pid: SIGTERM, then SIGKILL if it has not exited within ``STOP_TIMEOUT_S``."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT_S)


def _start(
    venv_python: Path, working_dir: Path, install_seconds: float
) -> tuple[subprocess.Popen[bytes], PhoenixServer, str]:
    """Start ``phoenix serve`` on two free loopback ports; wait (bounded) until HTTP and gRPC both answer.

    Returns the process, the server and ``""`` when ready, or a failure message with the log's tail.
    """
    log_path = working_dir / "phoenix.log"
    http_port, grpc_port = _free_port(), _free_port()
    while grpc_port == http_port:
        grpc_port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PHOENIX_", "OTEL_"))}
    env.update(_PHOENIX_FIXED_ENV)
    env.update(
        PHOENIX_HOST=LOOPBACK,
        PHOENIX_PORT=str(http_port),
        PHOENIX_GRPC_PORT=str(grpc_port),
        PHOENIX_WORKING_DIR=str(working_dir),
        PYTHONUNBUFFERED="1",
    )
    cmd = [str(venv_python), str(Path(phoenix_venv.__file__).resolve()), "serve"]
    started = time.monotonic()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
    server = PhoenixServer(
        pid=proc.pid,
        http_port=http_port,
        grpc_port=grpc_port,
        log_path=log_path,
        working_dir=working_dir,
        install_seconds=install_seconds,
        startup_seconds=0.0,
    )
    try:
        return proc, server, _wait_ready(proc, server, started)
    except BaseException:  # Ctrl-C or a bug while waiting: never leave the server behind
        _stop(proc)
        raise


def _wait_ready(proc: subprocess.Popen[bytes], server: PhoenixServer, started: float) -> str:
    """Poll until both ports answer (return ``""``) or the process exits or the deadline passes (return why)."""
    deadline = started + STARTUP_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            return (
                f"phoenix serve exited with code {proc.returncode} before it was ready; "
                f"log {server.log_path}:\n{server.log_tail()}"
            )
        if _port_open(server.grpc_port):
            try:
                status, _ = server.get_json("/healthz")
            except OSError:
                status = 0
            if status == 200:
                server.startup_seconds = time.monotonic() - started
                return ""
        if time.monotonic() > deadline:
            return (
                f"phoenix serve (pid {proc.pid}) not ready on {LOOPBACK}:{server.http_port} (HTTP) and "
                f":{server.grpc_port} (gRPC) after {STARTUP_TIMEOUT_S:.0f} s; "
                f"log {server.log_path}:\n{server.log_tail()}"
            )
        time.sleep(0.2)


@pytest.fixture(scope="session")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PhoenixServer]:
    """Install Phoenix in its own venv if needed, start ``phoenix serve`` on loopback, yield it, stop it."""
    started = time.monotonic()
    try:
        exe = phoenix_venv.ensure_phoenix_venv()
    except phoenix_venv.PhoenixInstallError as exc:
        pytest.fail(f"cannot provide the Phoenix OTLP backend: {exc}", pytrace=False)
    install_seconds = time.monotonic() - started
    _MEASURED["venv"] = exe.parent.parent
    _MEASURED["venv_mb"] = _venv_size_mb(exe.parent.parent)
    _MEASURED["install"] = f"installed in {install_seconds:.0f} s" if install_seconds > 2 else "already installed"
    venv_python = exe.parent / "python"

    for attempt in range(1, _START_ATTEMPTS + 1):
        proc, server, failure = _start(venv_python, tmp_path_factory.mktemp("phoenix"), install_seconds)
        if not failure:
            break
        _stop(proc)
        if attempt == _START_ATTEMPTS or "address already in use" not in failure.lower():
            pytest.fail(failure, pytrace=False)
    _MEASURED["server"] = server
    try:
        yield server
    finally:
        _stop(proc)
