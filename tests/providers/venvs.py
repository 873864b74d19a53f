"""Virtualenvs holding provider instrumentations, for the duplicate-span tests (``tests/test_provider_spans.py``).

The provider instrumentations pin OpenTelemetry versions of their own (OpenLLMetry's needs semantic-conventions
>= 0.63b1, util-genai 1.3b0 needs the API ~= 1.43, openai-v2 2.4b0 imports only with util-genai <= 1.1b0), which the
project's floor environments cannot hold: each set lives in a virtualenv of its own under ``.venvs/providers/``,
made on first use and cached (a marker names what was installed; an interrupted install is redone). The test then
runs ``scenario.py`` with that virtualenv's interpreter. Nothing here is a dependency of the library.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
ROOT = REPO_ROOT / ".venvs" / "providers"
INSTALL_TIMEOUT_S = 900.0

# name -> the provider packages, pinned; the project itself and what the scenarios use come on top.
SETS: dict[str, tuple[str, ...]] = {
    # OpenLLMetry's OpenAI instrumentation and util-genai with its suppression key (1.3b0).
    "openllmetry": ("opentelemetry-instrumentation-openai==0.62.4", "opentelemetry-util-genai==1.3b0"),
    # The official openai-v2 instrumentation, with the newest util-genai it imports with.
    "openai-v2": ("opentelemetry-instrumentation-openai-v2==2.4b0", "opentelemetry-util-genai==1.1b0"),
}
_COMMON = ("langchain-openai", "langgraph")


class ProviderVenvError(RuntimeError):
    """The virtualenv could not be made; the message holds the install log's tail."""


def python(name: str) -> Path:
    """The interpreter of the virtualenv ``name`` (one of :data:`SETS`), created on first use."""
    venv = ROOT / name
    marker = venv / (".installed-" + "-".join(p.replace("==", "_") for p in SETS[name]))
    exe = venv / "bin" / "python"
    if marker.is_file() and exe.is_file():
        return exe
    ROOT.mkdir(parents=True, exist_ok=True)
    with open(ROOT / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file() and exe.is_file():
            return exe
        shutil.rmtree(venv, ignore_errors=True)
        log = ROOT / f"{name}.log"
        with open(log, "w") as out:
            steps = [
                [sys.executable, "-m", "venv", str(venv)],
                [str(exe), "-m", "pip", "install", "-q", "-e", str(REPO_ROOT), *_COMMON, *SETS[name]],
            ]
            for step in steps:
                done = subprocess.run(step, stdout=out, stderr=subprocess.STDOUT, timeout=INSTALL_TIMEOUT_S)
                if done.returncode != 0:
                    tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
                    raise ProviderVenvError(f"{' '.join(step[:4])} ... failed ({done.returncode}):\n{tail}")
        marker.write_text("ok\n")
    return exe
