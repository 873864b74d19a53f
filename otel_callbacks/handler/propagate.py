"""Trace context for remote graphs: the requests a traced run makes to a LangGraph server carry its span context.

``RemoteGraph`` (invoke, stream, batch, sync and async) and the ``langgraph_sdk`` clients send every request
through one of two classes, ``langgraph_sdk._sync.http.SyncHttpClient`` and ``langgraph_sdk._async.http.HttpClient``.
Their request methods are wrapped so that each request carries the context current when it is made (inside a traced
run: that run's span), written by the propagators the application configured (``opentelemetry.propagate.inject``;
``OTEL_PROPAGATORS``, default W3C ``traceparent`` / ``tracestate`` and ``baggage``; ``none`` turns it off):

* as headers, for a server whose web layer reads them (the ASGI middleware in ``http.app``);
* in the metadata of each run it creates (``POST .../runs``, ``/runs/stream``, ``/runs/wait``, ``/runs/batch``), under
  ``runs.handoff.HANDOFF_KEY``, so that a server that only runs our handler joins the trace as well: run metadata
  reaches the graph's root run there, whose span is started under the caller's (``runs.handoff``).

Headers the caller set (per call or as the client's defaults) win: if one of the propagators' trace headers is there
already, none is added, and the run metadata carries the caller's values; baggage members are merged, the caller's
first. Outside a trace (no valid span and no baggage current) no header is added; a run-creating request whose
own headers carry a trace context hands that one over.

Nothing here imports ``langgraph_sdk``: :func:`install` wraps the classes at once if the modules are loaded, else the
moment they are, through an import hook that looks only at those two module names and removes itself once both
are wrapped. A process that never uses the SDK pays one string lookup per new import.
"""

from __future__ import annotations

import functools
import importlib.machinery
import logging
import re
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any

from otel_callbacks.runs.handoff import HANDOFF_KEY

# module -> the class whose request methods every SDK call goes through
_TARGETS = {"langgraph_sdk._sync.http": "SyncHttpClient", "langgraph_sdk._async.http": "HttpClient"}
_METHODS = ("get", "post", "put", "patch", "delete", "request_reconnect", "stream")
# Paths whose JSON body creates runs: threads/{id}/runs, runs, .../runs/stream, .../runs/wait, runs/batch (a list).
_RUN_CREATE = re.compile(r"(?:^|/)runs(?:/stream|/wait|/batch)?/?$")
_WRAPPED = "__otel_callbacks_wrapped__"
_LOCK = threading.Lock()
_logger = logging.getLogger("otel_callbacks")
_hook: _PatchOnImport | None = None


def install() -> None:
    """Called once per handler made; makes outgoing remote-graph requests carry the current trace context.

    Idempotent and thread-safe. Not undone by ``uninstrument()``: an explicitly passed handler needs it as well,
    and it only ever forwards what is current (:func:`uninstall` exists for tests).
    """
    global _hook
    with _LOCK:
        missing = False
        for name in _TARGETS:
            module = sys.modules.get(name)
            if module is None:
                missing = True
            else:
                _wrap_module(module)
        if missing and _hook is None:
            _hook = _PatchOnImport()
            sys.meta_path.insert(0, _hook)


def uninstall() -> None:
    """Put the SDK's own methods back and remove the import hook."""
    global _hook
    with _LOCK:
        if _hook is not None:
            if _hook in sys.meta_path:
                sys.meta_path.remove(_hook)
            _hook = None
        for name, cls_name in _TARGETS.items():
            cls = getattr(sys.modules.get(name), cls_name, None)
            for method in _METHODS:
                wrapper = cls.__dict__.get(method) if cls is not None else None
                original = getattr(wrapper, _WRAPPED, None)
                if original is not None:
                    setattr(cls, method, original)


def _wrap_module(module: ModuleType) -> None:
    cls = getattr(module, _TARGETS[module.__name__], None)
    if not isinstance(cls, type):
        return  # an SDK whose layout we do not know: left as it is
    for method in _METHODS:
        original = cls.__dict__.get(method)
        if callable(original) and not hasattr(original, _WRAPPED):
            setattr(cls, method, _wrapped(original))


def _wrapped(original: Callable[..., Any]) -> Callable[..., Any]:
    # A plain function for coroutine and generator methods alike: the context is read when the request is made
    # (the call), which is in the caller's context; what the SDK method returns is returned untouched.
    @functools.wraps(original)
    def request(self: Any, path: str, *args: Any, **kwargs: Any) -> Any:
        try:
            _add_context(self, path, kwargs)
        except Exception:  # tracing must never break a request
            _logger.debug("otel-callbacks: no trace context added to a LangGraph request", exc_info=True)
        return original(self, path, *args, **kwargs)

    setattr(request, _WRAPPED, original)
    return request


def _add_context(http: Any, path: object, kwargs: dict[str, Any]) -> None:
    # Imported here: loading the propagators (entry points) is left to the first request.
    from opentelemetry.propagate import get_global_textmap, inject

    carrier: dict[str, str] = {}
    inject(carrier)
    client = getattr(http, "client", None)
    defaults = getattr(client, "headers", None)
    headers, handoff = outgoing_headers(kwargs.get("headers"), defaults if isinstance(defaults, Mapping) else {},
                                        carrier, get_global_textmap().fields)
    if carrier:
        kwargs["headers"] = headers
    body = kwargs.get("json")
    # Outside a trace the hand-off is the trace context the caller's own headers carry, if any.
    if handoff and body is not None and isinstance(path, str) and _RUN_CREATE.search(path.partition("?")[0]):
        kwargs["json"] = with_handoff(body, handoff)


def outgoing_headers(headers: Mapping[str, str] | None, defaults: Mapping[str, str], carrier: Mapping[str, str],
                     fields: Sequence[str] | set[str]) -> tuple[dict[str, str], dict[str, str]]:
    """The request's headers with the trace context added, and the trace context the request then carries.

    ``headers`` are the call's own, ``defaults`` the client's, ``carrier`` what the propagators injected, ``fields``
    every header name they may write.
    """
    out = dict(headers or {})
    given = {key.lower(): value for key, value in defaults.items()}
    given.update((key.lower(), value) for key, value in out.items())
    trace_keys = [key for key in carrier if key.lower() != "baggage"]
    if not any(key.lower() in given for key in trace_keys):
        for key in trace_keys:
            out[key] = carrier[key]
            given[key.lower()] = carrier[key]
    ours = carrier.get("baggage")
    if ours:
        theirs = given.get("baggage")
        merged = merge_baggage(theirs, ours) if theirs else ours
        if merged != theirs:
            # the call's own value replaces the client's default in httpx, so the merge includes the default
            for key in [k for k in out if k.lower() == "baggage"]:
                del out[key]
            out["baggage"] = merged
            given["baggage"] = merged
    handoff = {name: given[name.lower()] for name in fields if name.lower() in given}
    return out, handoff


def merge_baggage(theirs: str, ours: str) -> str:
    """W3C baggage lists joined: the caller's members first, ours only for keys it does not set."""
    keys = {member.split("=", 1)[0].strip() for member in theirs.split(",") if member.strip()}
    extra = [member for member in ours.split(",") if member.strip() and member.split("=", 1)[0].strip() not in keys]
    return ",".join([theirs, *extra]) if extra else theirs


def with_handoff(body: Any, handoff: dict[str, str]) -> Any:
    """A run-create payload (or a batch of them) whose run metadata carries ``handoff``; other bodies unchanged.

    The caller's dicts are copied, never changed: the SDK may reuse them (reconnects) and they are the user's.
    """
    if not handoff:
        return body
    if isinstance(body, list):
        return [with_handoff(item, handoff) for item in body]
    if not isinstance(body, dict) or "assistant_id" not in body:
        return body
    metadata = body.get("metadata")
    return {**body, "metadata": {**(metadata if isinstance(metadata, Mapping) else {}), HANDOFF_KEY: handoff}}


class _PatchOnImport:
    """Wraps the SDK's HTTP classes right after their module is executed, wherever it is imported from (a
    ``sys.meta_path`` finder; importlib.abc's base classes are left out, as importing importlib.abc costs more
    than the rest of this module)."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None,
                  ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _TARGETS:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        loader = spec.loader if spec is not None else None
        if spec is None or loader is None or not hasattr(loader, "exec_module"):
            return None  # let the other finders do it; the module stays unwrapped
        # a Loader by duck typing (class docstring of _PatchOnImport)
        spec.loader = _WrappingLoader(loader)  # type: ignore[assignment]
        return spec


class _WrappingLoader:
    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)  # type: ignore[no-any-return]

    def exec_module(self, module: ModuleType) -> None:
        global _hook
        # The module's loader is the real one from here on (importlib.resources, reloads, tracebacks).
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        with _LOCK:
            _wrap_module(module)
            if all(name in sys.modules or name == module.__name__ for name in _TARGETS) and _hook is not None:
                if _hook in sys.meta_path:
                    sys.meta_path.remove(_hook)
                _hook = None
