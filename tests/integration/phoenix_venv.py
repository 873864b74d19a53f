"""Create the private virtualenv that holds Arize Phoenix, the OTLP backend of the end-to-end tests.

Phoenix is large (~850 MB installed) and is never a dependency of the library or of its test extra: it lives in its
own virtualenv, by default ``<repo>/.venv-phoenix`` (gitignored by ``.venv-*/``), and runs as a separate process.

The install is idempotent: a marker file naming the pinned version is written only after ``pip`` succeeded and the
``phoenix`` command is present, so an interrupted install is redone from scratch on the next call. Concurrent callers
(two pytest runs, xdist workers) serialise on a lock file next to the venv. Output goes to a log file, and a failed
install raises :class:`PhoenixInstallError` with the log's tail.

Usage: ``python tests/integration/phoenix_venv.py [VENV_DIR]`` prints the path of the ``phoenix`` executable.
The environment variable ``OTEL_CALLBACKS_PHOENIX_VENV`` overrides the default location.

``<phoenix venv>/bin/python tests/integration/phoenix_venv.py serve`` runs ``phoenix serve`` with its gRPC receiver
bound to ``$PHOENIX_HOST`` instead of every interface: Phoenix 20.x binds HTTP to ``PHOENIX_HOST`` but hard-codes
``[::]`` for gRPC, and the tests must listen on loopback only. This module imports nothing outside the standard
library at top level, so either interpreter can run it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PHOENIX_VERSION = "20.26.1"
PHOENIX_REQUIREMENT = f"arize-phoenix=={PHOENIX_VERSION}"
VENV_ENV_VAR = "OTEL_CALLBACKS_PHOENIX_VENV"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VENV = REPO_ROOT / ".venv-phoenix"
INSTALL_TIMEOUT_S = 1800.0
_LOG_TAIL_LINES = 40
_LOG_TAIL_CHARS = 6000


class PhoenixInstallError(RuntimeError):
    """Raised when the Phoenix virtualenv cannot be created or ``arize-phoenix`` cannot be installed into it."""


def venv_dir() -> Path:
    """Return the Phoenix virtualenv directory: ``$OTEL_CALLBACKS_PHOENIX_VENV`` or ``<repo>/.venv-phoenix``."""
    override = os.environ.get(VENV_ENV_VAR)
    return Path(override).expanduser().resolve() if override else DEFAULT_VENV


def phoenix_executable(venv: Path) -> Path:
    """Return the path of the ``phoenix`` console script inside ``venv``."""
    return venv / "bin" / "phoenix"


def _marker(venv: Path) -> Path:
    return venv / f".installed-arize-phoenix-{PHOENIX_VERSION}"


def _log_tail(log: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    tail = "\n".join(text.splitlines()[-lines:])
    return tail if len(tail) <= _LOG_TAIL_CHARS else "..." + tail[-_LOG_TAIL_CHARS:]


def _clear(directory: Path, keep: set[Path]) -> None:
    leftovers = [child for child in directory.iterdir() if child not in keep and child.name != "install.log"]
    if leftovers and not (directory / "pyvenv.cfg").is_file():
        # Never wipe a directory that is not (the remains of) a virtualenv: the location can come from the env.
        raise PhoenixInstallError(
            f"{directory} exists, is not empty and is not a virtualenv; remove it or point {VENV_ENV_VAR} elsewhere"
        )
    for child in directory.iterdir():
        if child in keep:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
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
        remaining = max(1.0, deadline - time.monotonic())
        try:
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=remaining, check=False)
        except subprocess.TimeoutExpired as exc:
            raise PhoenixInstallError(
                f"installing {PHOENIX_REQUIREMENT} timed out after {INSTALL_TIMEOUT_S:.0f} s while running "
                f"{cmd[:3]}; log {log}:\n{_log_tail(log)}"
            ) from exc
        except OSError as exc:
            raise PhoenixInstallError(f"cannot run {cmd[0]}: {exc}") from exc
    if proc.returncode != 0:
        raise PhoenixInstallError(
            f"installing {PHOENIX_REQUIREMENT} failed: {' '.join(cmd[:4])} ... exited {proc.returncode}; "
            f"log {log}, last lines:\n{_log_tail(log)}"
        )


def is_installed(venv: Path | None = None) -> bool:
    """Tell whether ``venv`` already holds a complete install of the pinned Phoenix version."""
    venv = venv or venv_dir()
    return _marker(venv).is_file() and phoenix_executable(venv).is_file()


def ensure_phoenix_venv(venv: Path | None = None, python: str | None = None) -> Path:
    """Create ``venv`` with the pinned ``arize-phoenix`` if it is missing; return the ``phoenix`` executable.

    Quiet on success; raises :class:`PhoenixInstallError` naming the failing step and the log tail otherwise.
    """
    venv = venv or venv_dir()
    exe = phoenix_executable(venv)
    if is_installed(venv):
        return exe
    # Lock and log live inside the venv directory (gitignored with it); clearing keeps the lock file itself.
    venv.mkdir(parents=True, exist_ok=True)
    lock = venv / ".install.lock"
    log = venv / "install.log"
    with _locked(lock):
        if is_installed(venv):  # another process finished the install while we waited
            return exe
        _clear(venv, keep={lock})  # a half-made venv from an interrupted run is wiped, not patched
        log.write_text(f"# installing {PHOENIX_REQUIREMENT} into {venv}\n", encoding="utf-8")
        deadline = time.monotonic() + INSTALL_TIMEOUT_S
        _run_logged([python or sys.executable, "-m", "venv", str(venv)], log, deadline)
        venv_python = str(venv / "bin" / "python")
        pip = [venv_python, "-m", "pip", "--disable-pip-version-check", "--no-input"]
        _run_logged([*pip, "install", "--quiet", "--upgrade", "pip"], log, deadline)
        _run_logged([*pip, "install", "--quiet", PHOENIX_REQUIREMENT], log, deadline)
        if not exe.is_file():
            raise PhoenixInstallError(
                f"{PHOENIX_REQUIREMENT} installed but {exe} is missing; log {log}:\n{_log_tail(log)}"
            )
        _marker(venv).write_text(PHOENIX_REQUIREMENT + "\n", encoding="utf-8")
    return exe


def serve_on_loopback() -> None:
    """Run ``phoenix serve`` (in Phoenix's venv) with the gRPC receiver bound to ``$PHOENIX_HOST`` only."""
    host = os.environ.get("PHOENIX_HOST", "127.0.0.1")
    from grpc.aio import _server  # type: ignore[import-untyped,import-not-found,unused-ignore]

    original = _server.Server.add_insecure_port

    def add_insecure_port(self: object, address: str) -> int:
        bind_host, _, port = address.rpartition(":")
        if bind_host in ("[::]", "0.0.0.0", ""):
            address = f"{host}:{port}"
        return int(original(self, address))

    _server.Server.add_insecure_port = add_insecure_port
    from phoenix.server.main import main as phoenix_main  # type: ignore[import-not-found]

    sys.argv = ["phoenix", "serve"]
    phoenix_main()


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: install if needed and print the ``phoenix`` executable's path, or ``serve``."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["serve"]:
        serve_on_loopback()
        return 0
    venv = Path(args[0]).resolve() if args else None
    try:
        exe = ensure_phoenix_venv(venv)
    except PhoenixInstallError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(exe)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
