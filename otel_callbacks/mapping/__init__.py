"""Pure mapping from LangChain callback arguments to span names, kinds and attribute dicts.

No spans, no context, no environment, no clock, no I/O: every function takes plain values and returns plain values,
and none raises on the odd shapes LangChain and providers pass.
"""
