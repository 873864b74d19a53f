"""An async, FastAPI-style request handler: the chain's root run joins the request's trace.

A web framework's instrumentation opens a server span per request; here a plain span stands in for it (no FastAPI
needed). Two requests run concurrently and each chain run nests under its own request span, because the handler
parents a root run on the span that is current when the run starts.

    python examples/async_request.py
"""

from __future__ import annotations

import asyncio

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable
from opentelemetry import trace
from opentelemetry.trace import SpanKind

import otel_callbacks
from otel_callbacks import OpenTelemetryCallbackHandler

otel_callbacks.setup_tracing(service_name="async-request-example")
handler = OpenTelemetryCallbackHandler()
tracer = trace.get_tracer("example.web")


def build_chain(answer: str) -> Runnable[dict[str, str], str]:
    model = GenericFakeChatModel(messages=iter([
        AIMessage(content=answer, usage_metadata={"input_tokens": 12, "output_tokens": 6, "total_tokens": 18}),
    ]))
    prompt = ChatPromptTemplate.from_messages([("human", "{question}")])
    return prompt | model | StrOutputParser()


async def handle_ask(question: str, answer: str) -> str:
    """What a `@app.post("/ask")` endpoint would do; the span below is what the server instrumentation creates."""
    with tracer.start_as_current_span("POST /ask", kind=SpanKind.SERVER,
                                      attributes={"http.request.method": "POST", "http.route": "/ask"}):
        await asyncio.sleep(0.01)  # e.g. auth, request parsing
        config = {"callbacks": [handler], "run_name": "answer_question"}
        return await build_chain(answer).ainvoke({"question": question}, config=config)


async def main() -> list[str]:
    return list(await asyncio.gather(
        handle_ask("What is OTLP?", "The OpenTelemetry protocol."),
        handle_ask("What is a span?", "One timed operation in a trace."),
    ))


if __name__ == "__main__":
    print(asyncio.run(main()))
