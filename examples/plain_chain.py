"""A prompt | model | parser chain, traced. Runs offline on a fake model; swap in a real chat model to use it.

    python examples/plain_chain.py                      # prints the trace tree
    OTEL_TRACES_EXPORTER=otlp python examples/plain_chain.py   # sends it to localhost:4317 (see jaeger.md)
"""

from __future__ import annotations

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

import otel_callbacks
from otel_callbacks import OpenTelemetryCallbackHandler


def main() -> str:
    # One line: console tree by default, or whatever OTEL_TRACES_EXPORTER / OTEL_EXPORTER_OTLP_* say.
    otel_callbacks.setup_tracing(service_name="plain-chain-example")
    handler = OpenTelemetryCallbackHandler()  # uses the global provider installed above

    # With a real provider: model = ChatOpenAI(model="gpt-4o-mini")
    model = GenericFakeChatModel(messages=iter([
        AIMessage(content="Otters hold hands while sleeping so they do not drift apart.",
                  usage_metadata={"input_tokens": 21, "output_tokens": 13, "total_tokens": 34}),
    ]))
    prompt = ChatPromptTemplate.from_messages([("system", "You share one fun fact."), ("human", "{topic}")])
    chain = prompt | model | StrOutputParser()
    return chain.invoke({"topic": "otters"}, config={"callbacks": [handler], "run_name": "fun_fact"})


if __name__ == "__main__":
    print(main())
