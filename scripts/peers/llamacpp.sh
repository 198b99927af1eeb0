#!/usr/bin/env bash
# llama-cpp-python's OpenAI-compatible server (python -m llama_cpp.server) with
# SmolLM2-135M-Instruct (Q4_1 GGUF), bound to 127.0.0.1.
# Usage: llamacpp.sh start|stop|status|restart [PORT]    (PORT defaults to 8081)
#   Base URL: http://127.0.0.1:PORT/v1   model id: $LLAMACPP_ALIAS (default smollm2-135m-instruct)
#   env LLAMACPP_CHAT_FORMAT  default chat_template.default = the model's own Jinja template
#                             from the GGUF; use chatml-function-calling for OpenAI-style tools
#                             (run a second instance on another port for that)
#   env LLAMACPP_N_CTX        context length, default 2048 (longer prompts get HTTP 400)
#   env LLAMACPP_THREADS      default 2;  env LLAMACPP_API_KEY  if set, Bearer key required
#   env LLAMACPP_EMBEDDING    1: serve /v1/embeddings (--embedding true); llama-cpp-python
#                             answers it only with that flag (and then chat still works)
#   env LLAMACPP_ALIAS        model id served by /v1/models (any other model name is ignored:
#                             the one loaded model answers every request)
# Install first with install-llamacpp.sh. Log: $PEERS_ROOT/logs/llamacpp-PORT.log
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
MODEL="${LLAMACPP_MODEL:-$PEERS_MODELS/SmolLM2-135M-Instruct.Q4_1.gguf}"
cmd="${1:-}"; port="${2:-8081}"
usage() { awk 'NR>1 && /^#/ {sub(/^# ?/, ""); print; next} NR>1 {exit}' "$0"; }
case "$cmd" in
  start)
    [ -x "$PEERS_VENV/bin/python" ] && [ -s "$MODEL" ] \
      || { echo "not installed; run $PEERS_DIR/install-llamacpp.sh" >&2; exit 1; }
    args=(--model "$MODEL" --model_alias "${LLAMACPP_ALIAS:-smollm2-135m-instruct}"
          --chat_format "${LLAMACPP_CHAT_FORMAT:-chat_template.default}"
          --n_ctx "${LLAMACPP_N_CTX:-2048}"
          --n_threads "${LLAMACPP_THREADS:-2}" --n_threads_batch "${LLAMACPP_THREADS:-2}"
          --host "$PEERS_HOST" --port "$port")
    [ -n "${LLAMACPP_API_KEY:-}" ] && args+=(--api_key "$LLAMACPP_API_KEY")
    # A chat model has no pooling of its own (one vector per token): mean pooling gives one
    # vector per input, as /v1/embeddings promises.
    [ "${LLAMACPP_EMBEDDING:-}" = 1 ] && args+=(--embedding true --kv_overrides "llama.pooling_type=int:1")
    # run from / so no llama_cpp.py in the working directory can shadow the package
    start_bg llamacpp "$port" "http://$PEERS_HOST:$port/v1/models" 120 \
      env -C / "$PEERS_VENV/bin/python" -m llama_cpp.server "${args[@]}"
    echo "try: curl -s http://$PEERS_HOST:$port/v1/chat/completions -H 'Content-Type: application/json' -d '{\"model\":\"${LLAMACPP_ALIAS:-smollm2-135m-instruct}\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}'"
    ;;
  stop) stop_bg llamacpp "$port" ;;
  status) status_bg llamacpp "$port" "http://$PEERS_HOST:$port/v1/models" ;;
  restart) stop_bg llamacpp "$port"; "$0" start "$port" ;;
  *) usage; exit 2 ;;
esac
