"""The package layout holds: every module imports on its own, the module import graph has no cycle, and
``import otel_callbacks`` loads neither set-up, the CLI, the exporters nor the metrics SDK (those load on first use).

The graph is read from the source (ast), so it also sees imports inside functions: a lazy import still closes a cycle
when it runs, and two modules that need each other are one job split in the wrong place. Imports under
``if TYPE_CHECKING:`` never run and are left out.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "otel_callbacks"
# Importing it runs the CLI (it ends in `raise SystemExit(main())`); test_cli runs it as `python -m otel_callbacks`.
ENTRY_POINTS = frozenset({"otel_callbacks.__main__"})
# The handler emits content events through the logs API (opentelemetry._logs); the logs SDK is set-up's business.
NOT_AT_IMPORT = ("otel_callbacks.setup", "otel_callbacks.cli", "opentelemetry.exporter", "opentelemetry.proto", "grpc",
                 "google.protobuf", "opentelemetry.sdk.metrics", "opentelemetry.sdk._logs")

Graph = dict[str, set[str]]


def package_modules() -> dict[str, Path]:
    """Dotted module name -> source file, for every module and package of ``otel_callbacks``."""
    modules: dict[str, Path] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


class _Imports(ast.NodeVisitor):
    """The package modules one source file imports, at any depth except under ``if TYPE_CHECKING:``."""

    def __init__(self, name: str, is_package: bool, modules: dict[str, Path]) -> None:
        self.name, self.is_package, self.modules = name, is_package, modules
        self.found: set[str] = set()

    def _known(self, dotted: str) -> str | None:
        # `import a.b.c` where c is a function or constant: the module is the longest known prefix.
        while dotted and dotted not in self.modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if (module := self._known(alias.name)) is not None:
                self.found.add(module)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.name.split(".") if self.is_package else self.name.split(".")[:-1]
            base = base[: len(base) - node.level + 1]
            source = ".".join([*base, node.module] if node.module else base)
        else:
            source = node.module or ""
        for alias in node.names:
            submodule = f"{source}.{alias.name}"  # `from pkg import module` imports the submodule
            module = submodule if submodule in self.modules else self._known(source)
            if module is not None:
                self.found.add(module)


def import_graph() -> Graph:
    modules = package_modules()
    graph: Graph = {}
    for name, path in modules.items():
        visitor = _Imports(name, path.name == "__init__.py", modules)
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        graph[name] = visitor.found - {name}
    return graph


def cycles(graph: Graph) -> list[list[str]]:
    """The import cycles: strongly connected groups of modules that import each other (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, ()):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph.get(node, ()):
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(found)


def python(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter of this venv, without OTEL_* settings from the shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)


class TestImportGraph:
    def test_the_package_has_no_import_cycle(self) -> None:
        """No module of the package imports itself back through others, eagerly or lazily."""
        assert cycles(import_graph()) == []

    def test_graph_sees_module_and_function_level_imports(self) -> None:
        """The graph is not vacuous: it has known eager and lazy edges and leaves TYPE_CHECKING imports out."""
        graph = import_graph()
        assert "otel_callbacks.setup.env" in graph["otel_callbacks.setup.tracing"]  # module level
        assert "otel_callbacks.setup.metrics" in graph["otel_callbacks.setup.tracing"]  # inside setup_tracing
        assert "otel_callbacks.cli.commands" in graph["otel_callbacks.cli"]  # inside main
        assert "otel_callbacks.setup.tracing" not in graph["otel_callbacks"]  # only under TYPE_CHECKING

    def test_cycles_finds_every_group(self) -> None:
        """The checker itself finds each cycle (and a module importing itself); an acyclic graph has none."""
        assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "d"}, "e": set()}) == [["a", "b", "c"], ["d"]]
        assert cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []

    def test_setup_and_metrics_share_lifecycle_not_each_other(self) -> None:
        """Metrics set-up takes the resource and the bounded shutdown from lifecycle, never from tracing."""
        graph = import_graph()
        assert "otel_callbacks.setup.tracing" not in graph["otel_callbacks.setup.metrics"]
        assert "otel_callbacks.setup.lifecycle" in graph["otel_callbacks.setup.metrics"]
        assert not {m for m in graph["otel_callbacks.setup.lifecycle"] if m.startswith("otel_callbacks.")}

    def test_logs_set_up_shares_lifecycle_and_one_sdk_seam(self) -> None:
        """The logger provider takes its bounded life from lifecycle, not from tracing, and the logs SDK from the one
        seam, setup.logs, which needs nothing of set-up but the OTLP construction helpers."""
        graph = import_graph()
        provider = graph["otel_callbacks.setup.log_provider"]
        assert {"otel_callbacks.setup.lifecycle", "otel_callbacks.setup.logs"} <= provider
        assert not provider & {"otel_callbacks.setup.tracing", "otel_callbacks.setup.tracer_provider"}
        assert {m for m in graph["otel_callbacks.setup.logs"] if m.startswith("otel_callbacks.")} <= {
            "otel_callbacks.setup.exporters", "otel_callbacks.setup.exporters.otlp", "otel_callbacks.setup.sdk_env"}

    def test_cli_tree_and_cli_package_stay_import_light(self) -> None:
        """The console exporter imports cli.tree, so cli.tree needs nothing of ours and cli/__init__ loads nothing
        of ours at import (its one import is inside main)."""
        graph = import_graph()
        assert graph["otel_callbacks.cli.tree"] == set()
        init = ast.parse((PACKAGE / "cli" / "__init__.py").read_text(encoding="utf-8"))
        eager = [node for node in init.body if isinstance(node, ast.Import | ast.ImportFrom)
                 and (isinstance(node, ast.Import) or (node.module or "").startswith("otel_callbacks"))]
        assert eager == []


class TestIsolatedImports:
    def test_every_module_imports_alone(self) -> None:
        """Each module imports in a fresh interpreter on its own: no module relies on another having been imported
        first (what a cycle or a missing import hides when the whole suite runs in one process)."""
        names = sorted(set(package_modules()) - ENTRY_POINTS)
        assert len(names) > 20  # the walk found the package

        def attempt(name: str) -> tuple[str, subprocess.CompletedProcess[str]]:
            return name, python(f"import {name}")

        with ThreadPoolExecutor(max_workers=os.cpu_count() or 4) as pool:
            results = list(pool.map(attempt, names))
        failed = {name: result.stderr.strip().splitlines()[-1:] for name, result in results if result.returncode}
        assert failed == {}


class TestImportCost:
    def test_import_loads_no_setup_cli_exporters_or_metrics_sdk(self) -> None:
        """``import otel_callbacks`` loads only what the handler needs (not the metrics or logs SDK); setup_tracing
        still resolves, lazily."""
        result = python(f"""
            import sys
            import otel_callbacks
            loaded = sorted(m for m in sys.modules if any(m == p or m.startswith(p + ".") for p in {NOT_AT_IMPORT!r}))
            assert loaded == [], loaded
            setup = otel_callbacks.setup_tracing
            assert setup.__module__ == "otel_callbacks.setup.tracing", setup.__module__
            assert callable(otel_callbacks.setup_metrics)
            print("ok")
        """)
        assert (result.returncode, result.stdout.strip()) == (0, "ok"), result.stderr
