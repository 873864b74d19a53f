#!/usr/bin/env bash
# Create one virtualenv per tracer under benchmarks/.venvs/ so that the peers, which instrument LangChain globally
# (and two of which share the module name opentelemetry.instrumentation.langchain), never meet in one interpreter
# and never become dependencies of the project.
#
# Usage: bash benchmarks/setup_peers.sh [NAME ...]   (names: ours openllmetry openinference official langfuse;
# default all)
# PYTHON=/path/to/python3.11 picks the interpreter (default: python3).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
venvs="$here/.venvs"
python="${PYTHON:-python3}"
constraints="$here/constraints.txt"

# Every venv gets the same LangChain / LangGraph / OTel SDK / OTLP exporter versions (constraints.txt) plus its
# tracer; the exporters are for the real-export table (worker.py --export), which encodes and sends OTLP.
common=(langchain-core langchain langgraph opentelemetry-api opentelemetry-sdk
  opentelemetry-exporter-otlp-proto-http opentelemetry-exporter-otlp-proto-grpc)

peer_requirement() {
  case "$1" in
    ours) echo "-e $repo" ;;
    openllmetry) echo "opentelemetry-instrumentation-langchain==0.62.4" ;;
    openinference) echo "openinference-instrumentation-langchain==0.1.80" ;;
    official) echo "opentelemetry-instrumentation-genai-langchain==1.3b0" ;;
    langfuse) echo "langfuse==5.2.0" ;;
    *) echo "unknown tracer venv: $1" >&2; return 1 ;;
  esac
}

names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  names=(ours openllmetry openinference official langfuse)
fi

mkdir -p "$venvs"
for name in "${names[@]}"; do
  req="$(peer_requirement "$name")"
  dir="$venvs/$name"
  echo "== $name: $req -> $dir"
  if [ ! -x "$dir/bin/python" ]; then
    "$python" -m venv "$dir"
  fi
  # shellcheck disable=SC2086  # $req is "-e PATH" for ours and must split into two arguments.
  # This machine's pip config lists local mirrors that may be absent; their warnings are noise, errors still fail.
  "$dir/bin/python" -m pip install --quiet -c "$constraints" "${common[@]}" $req 2>&1 \
    | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
  "$dir/bin/python" -m pip freeze > "$dir/freeze.txt"
  grep -iE '^(langchain-core|langgraph|opentelemetry-sdk|opentelemetry-instrumentation-|openinference-instrumentation-langchain|langfuse|-e )' \
    "$dir/freeze.txt" | sed 's/^/   /' || true
done
