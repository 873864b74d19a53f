"""Emission: the one seam between the callbacks and OpenTelemetry.

``emitter`` chooses, once per tracer, how spans are made: the SDK's public API (``sdk``) or lean spans (``fast``)
on the SDK versions CI proves them on (``compat``, which holds every probe of a private SDK or CPython internal).
``metrics`` records the GenAI client metrics, ``sampling`` asks the configured sampler what it lets us skip.
"""
