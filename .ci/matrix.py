"""The tested matrix: the unit suite (integration tests excluded) on every environment the project declares.

Supported means tested: pyproject.toml's floors and its Python range are promises, so each run proves
- ``lowest``: Python 3.11 with every direct dependency at the floor pyproject.toml declares (the equivalent of
  ``uv pip install --resolution lowest-direct``, made from pyproject.toml itself, so a floor can never drift from
  what is tested);
- ``sdk-floor``: Python 3.11, newest everything but the OpenTelemetry SDK, API and exporters at their floor;
- ``py3.12`` and ``py3.13``: newest versions on each declared Python (3.11 with the newest is the default
  environment, which runs the full suite before this script).
A declared interpreter that is missing fails the run: nothing is skipped silently. Environments run two at a time
(the machine has two cores); each one's log is kept under ``.venvs/matrix/<name>.log``. These environments prove
compatibility, not depth: the fuzz suite runs a quarter of its examples there (all of them in the default one).

Usage: ``python .ci/matrix.py [NAME ...]`` (all environments when none is named).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".venvs" / "matrix"
# The OpenTelemetry distributions released together as 1.x / 0.yb0; pinned at the SDK floor as one set.
OTEL_SET = ("opentelemetry-api", "opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-grpc",
            "opentelemetry-exporter-otlp-proto-http")
OTEL_CONTRIB_SET = ("opentelemetry-instrumentation", "opentelemetry-distro")


def _requirements() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in ("demo", "test"):
        reqs += project["optional-dependencies"][extra]
    return [r for r in reqs if not r.startswith("otel-callbacks")]


def _floors() -> dict[str, str]:
    """Each direct dependency's declared floor (``>=X``), by distribution name."""
    floors = {}
    for req in _requirements():
        match = re.match(r"^([A-Za-z0-9_.\-\[\]]+?)(\[[^\]]*\])?\s*>=\s*([^,;\s]+)", req)
        if match is None:
            raise SystemExit(f"matrix: {req!r} has no '>=' floor; every direct dependency must declare one")
        floors[match.group(1).lower()] = match.group(3)
    return floors


def constraints(name: str) -> list[str]:
    floors = _floors()
    if name == "lowest":
        return [f"{dist}=={floor}" for dist, floor in floors.items()]
    if name == "sdk-floor":
        return [f"{dist}=={floors[dist]}" for dist in (*OTEL_SET, *OTEL_CONTRIB_SET)]
    return []


ENVIRONMENTS = {"lowest": "3.11", "sdk-floor": "3.11", "py3.12": "3.12", "py3.13": "3.13"}


def interpreter(version: str) -> str:
    """The declared interpreter, from PATH or pyenv; a missing one is an error, not a skip."""
    for candidate in (shutil.which(f"python{version}"), _pyenv(version)):
        if candidate and _reports(candidate, version):
            return candidate
    raise SystemExit(f"matrix: Python {version} is declared (requires-python) but not found on PATH or in pyenv")


def _pyenv(version: str) -> str | None:
    """The newest pyenv-installed ``version`` (pyenv only puts its selected versions on PATH)."""
    try:
        out = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return None
    root = Path(out.stdout.strip() or Path.home() / ".pyenv")
    found = sorted(root.glob(f"versions/{version}.*/bin/python{version}"),
                   key=lambda p: [int(x) for x in p.parent.parent.name.split(".") if x.isdigit()])
    return str(found[-1]) if found else None


def _reports(python: str, version: str) -> bool:
    out = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                         capture_output=True, text=True, check=False)
    return out.stdout.strip() == version


def run_env(name: str) -> tuple[str, bool, str, float]:
    started = time.monotonic()
    python = interpreter(ENVIRONMENTS[name])
    venv = WORK / name
    log_path = WORK / f"{name}.log"
    pins = WORK / f"{name}.constraints.txt"
    pins.write_text("".join(f"{line}\n" for line in constraints(name)))
    with log_path.open("w") as log:
        def step(*cmd: str) -> subprocess.CompletedProcess[str]:
            log.write(f"$ {' '.join(cmd)}\n")
            log.flush()
            return subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, text=True, cwd=ROOT, check=False,
                                  env={**os.environ, "OTEL_CALLBACKS_FUZZ_SCALE": "0.25"})

        if venv.exists():
            shutil.rmtree(venv)
        steps = [
            (python, "-m", "venv", str(venv)),
            (str(venv / "bin/pip"), "install", "-q", "-c", str(pins), "-e", ".[test]"),
            (str(venv / "bin/pip"), "check"),
            (str(venv / "bin/python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--durations=5",
             "--ignore=tests/integration",
             # Layout, not compatibility: imports every module in a fresh interpreter (a minute), once is enough.
             "--deselect", "tests/test_setup_layout.py::TestIsolatedImports",
             # The provider instrumentations run in virtualenvs of their own, whatever this environment holds.
             "--ignore=tests/test_provider_spans.py"),
        ]
        if name != "lowest":
            # The real LangGraph server's tests: the server runs in its own virtualenv; the client side's floors are
            # proven in `lowest`, its newest in the default run.
            steps[-1] += ("--ignore=tests/test_remote_graph.py", "--ignore=tests/test_signals_langgraph.py")
        if name == "lowest":  # the dev tools' floors are promises too
            steps[2:2] = [(str(venv / "bin/ruff"), "check", "."), (str(venv / "bin/mypy"),)]
        for cmd in steps:
            if step(*cmd).returncode != 0:
                return name, False, _summary(log_path), time.monotonic() - started
        versions = subprocess.run([str(venv / "bin/pip"), "freeze"], capture_output=True, text=True, check=False)
        log.write(versions.stdout)
    return name, True, _summary(log_path), time.monotonic() - started


def _summary(log_path: Path) -> str:
    lines = [line for line in log_path.read_text().splitlines() if line.strip()]
    counts = [line for line in lines if re.search(r"\d+ (passed|failed)", line)]
    return counts[-1] if counts else (lines[-1] if lines else "(no output)")


def main(names: list[str]) -> int:
    WORK.mkdir(parents=True, exist_ok=True)
    names = names or list(ENVIRONMENTS)
    for name in names:
        if name not in ENVIRONMENTS:
            raise SystemExit(f"matrix: unknown environment {name!r}; known: {', '.join(ENVIRONMENTS)}")
        interpreter(ENVIRONMENTS[name])  # fail before any work when a declared Python is missing
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run_env, names))
    failed = 0
    for name, ok, summary, seconds in results:
        print(f"matrix {name:10} {'ok  ' if ok else 'FAIL'} {seconds:6.0f} s  {summary}")
        if not ok:
            failed += 1
            print(f"    log: {WORK / name}.log")
    print(f"matrix: {len(results) - failed} of {len(results)} environments green")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
