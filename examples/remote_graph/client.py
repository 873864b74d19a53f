"""A traced application that calls the graph a LangGraph server serves: one trace across both processes.

    cd examples/remote_graph && langgraph dev --no-browser --port 2024     # the server (graph.py)
    python examples/remote_graph/client.py http://127.0.0.1:2024          # this client

The client's own graph has one node, the remote graph. Nothing is passed to the remote calls: with our handler
(``instrument()`` here) each request to the server carries the trace context of the run that makes it, and the
server's runs are started under it. The second call creates a background run and joins it, with the SDK client.
"""

from __future__ import annotations

import sys

from langchain_core.runnables import RunnableLambda
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.pregel.remote import RemoteGraph
from langgraph_sdk import get_sync_client

import otel_callbacks

QUESTION = {"messages": [{"role": "human", "content": "How much is 120 EUR in USD?"}]}


def main(url: str) -> list[str]:
    otel_callbacks.setup_tracing(service_name="remote-graph-client")
    otel_callbacks.instrument()

    remote = RemoteGraph("fx", url=url)
    builder = StateGraph(MessagesState)
    builder.add_node("fx", remote)
    builder.add_edge(START, "fx")
    app = builder.compile(name="client")
    answers = [str(app.invoke(QUESTION)["messages"][-1].content)]

    sdk = get_sync_client(url=url)

    def create_and_join(question: dict[str, object]) -> str:
        thread = sdk.threads.create()
        run = sdk.runs.create(thread["thread_id"], "fx", input=question)
        state = sdk.runs.join(thread["thread_id"], run["run_id"])
        return str(state["messages"][-1]["content"])

    answers.append(RunnableLambda(create_and_join, name="background_run").invoke(QUESTION))
    return answers


if __name__ == "__main__":
    for answer in main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:2024"):
        print(answer)
