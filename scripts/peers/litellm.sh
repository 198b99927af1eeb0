#!/usr/bin/env bash
# LiteLLM proxy (litellm[proxy]) in front of the llama.cpp peer plus mock models, on 127.0.0.1.
# Usage: litellm.sh start|stop|status|restart [PORT]     (PORT defaults to 4000)
#   Base URL: http://127.0.0.1:PORT/v1 (also served without /v1); every call needs
#   "Authorization: Bearer $PEERS_LITELLM_MASTER_KEY" (default sk-peers-master).
#   Models (see litellm-config.yaml): smollm2, smollm2-fc, smollm2-embed, mock-gpt, mock-tools, mock-ratelimit,
#   mock-context-window, mock-internal-error, mock-stream-error.
#   env LLAMACPP_PORT (default 8081) / LLAMACPP_FC_PORT (default 8082) / LLAMACPP_EMBED_PORT
#   (default 8084, the embeddings instance): upstream llama.cpp ports;
#   start them with llamacpp.sh (the mock-* models need no upstream).
#   env LITELLM_CONFIG: another config file.
# Install first with install-litellm.sh. Log: $PEERS_ROOT/logs/litellm-PORT.log
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cmd="${1:-}"; port="${2:-4000}"
usage() { awk 'NR>1 && /^#/ {sub(/^# ?/, ""); print; next} NR>1 {exit}' "$0"; }
export PEERS_LITELLM_MASTER_KEY="${PEERS_LITELLM_MASTER_KEY:-sk-peers-master}"
export PEERS_LLAMACPP_API_BASE="http://$PEERS_HOST:${LLAMACPP_PORT:-8081}/v1"
export PEERS_LLAMACPP_FC_API_BASE="http://$PEERS_HOST:${LLAMACPP_FC_PORT:-8082}/v1"
export PEERS_LLAMACPP_EMBED_API_BASE="http://$PEERS_HOST:${LLAMACPP_EMBED_PORT:-8084}/v1"
# no internet here: use the bundled model cost map, no telemetry
export LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_TELEMETRY=False
case "$cmd" in
  start)
    [ -x "$PEERS_VENV/bin/litellm" ] || { echo "not installed; run $PEERS_DIR/install-litellm.sh" >&2; exit 1; }
    start_bg litellm "$port" "http://$PEERS_HOST:$port/health/liveliness" 180 \
      env -C / "$PEERS_VENV/bin/litellm" --config "${LITELLM_CONFIG:-$PEERS_DIR/litellm-config.yaml}" \
      --host "$PEERS_HOST" --port "$port" --num_workers 1
    echo "try: curl -s http://$PEERS_HOST:$port/v1/chat/completions -H 'Authorization: Bearer $PEERS_LITELLM_MASTER_KEY' -H 'Content-Type: application/json' -d '{\"model\":\"mock-gpt\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}'"
    ;;
  stop) stop_bg litellm "$port" ;;
  status) status_bg litellm "$port" "http://$PEERS_HOST:$port/health/liveliness" ;;
  restart) stop_bg litellm "$port"; "$0" start "$port" ;;
  *) usage; exit 2 ;;
esac
