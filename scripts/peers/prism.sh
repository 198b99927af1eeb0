#!/usr/bin/env bash
# Stoplight Prism mock server for the official OpenAI OpenAPI spec, bound to 127.0.0.1.
# Usage: prism.sh start|stop|status|restart [PORT]     (PORT defaults to 4010)
#   By default it serves a patched copy of tests/data/openai-openapi/openapi.yaml made by
#   prism-patch-spec.py (kept at $PEERS_ROOT/prism/openapi.prism.yaml): with the verbatim spec
#   Prism validates NO /chat/completions request body (every body gets 200), see that script.
#   env PRISM_RAW=1       serve the verbatim spec instead (no body validation on chat)
#   env PRISM_SPEC=path   source spec (default: tests/data/openai-openapi/openapi.yaml)
#   env PRISM_ARGS="..."  extra `prism mock` flags, e.g. "-d" (dynamic examples) or "--errors"
# Paths are served WITHOUT the /v1 prefix of the spec's server URL, exactly as the
# official SDKs' tests use it: base URL http://127.0.0.1:PORT, POST /chat/completions.
# Requests are validated against the spec: invalid ones get 422 (missing/malformed
# Authorization header -> 401). Valid ones get 200 with the spec's example body.
# Install first with install-prism.sh. Log: $PEERS_ROOT/logs/prism-PORT.log
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
PRISM_BIN="$PEERS_NPM/node_modules/.bin/prism"
PRISM_SPEC="${PRISM_SPEC:-$(cd "$PEERS_DIR/../.." && pwd)/crates/mamba-backends/tests/data/openai-openapi/openapi.yaml}"
PATCHED="$PEERS_ROOT/prism/openapi.prism.yaml"

yaml_python() { # a python that has PyYAML
  local py
  for py in python3 "$PEERS_VENV/bin/python"; do
    if command -v "$py" >/dev/null && "$py" -c 'import yaml' 2>/dev/null; then echo "$py"; return; fi
  done
  echo "no python with PyYAML found (pip install pyyaml, or run install-llamacpp.sh)" >&2; return 1
}

served_spec() { # prints the spec path prism should serve, patching it when needed
  if [ "${PRISM_RAW:-0}" = 1 ]; then echo "$PRISM_SPEC"; return; fi
  mkdir -p "$(dirname "$PATCHED")"
  local stamp="$PATCHED.source"
  local want; want="$(sha256sum "$PRISM_SPEC" "$PEERS_DIR/prism-patch-spec.py" | cut -c1-64 | tr '\n' ' ')"
  if ! [ -s "$PATCHED" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "$(yaml_python)" "$PEERS_DIR/prism-patch-spec.py" "$PRISM_SPEC" "$PATCHED" >&2
    echo "$want" > "$stamp"
  fi
  echo "$PATCHED"
}
cmd="${1:-}"; port="${2:-4010}"
usage() { awk 'NR>1 && /^#/ {sub(/^# ?/, ""); print; next} NR>1 {exit}' "$0"; }
case "$cmd" in
  start)
    [ -x "$PRISM_BIN" ] || { echo "prism not installed; run $PEERS_DIR/install-prism.sh" >&2; exit 1; }
    [ -f "$PRISM_SPEC" ] || { echo "spec not found: $PRISM_SPEC" >&2; exit 1; }
    is_running prism "$port" || spec="$(served_spec)"
    # shellcheck disable=SC2086
    start_bg prism "$port" "http://$PEERS_HOST:$port/models" 240 \
      "$PRISM_BIN" mock "${spec:-$PATCHED}" -h "$PEERS_HOST" -p "$port" ${PRISM_ARGS:-}
    echo "try: curl -s http://$PEERS_HOST:$port/chat/completions -H 'Authorization: Bearer sk-test' -H 'Content-Type: application/json' -d '{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}'"
    ;;
  stop) stop_bg prism "$port" ;;
  status) status_bg prism "$port" "http://$PEERS_HOST:$port/models" ;;
  restart) stop_bg prism "$port"; "$0" start "$port" ;;
  *) usage; exit 2 ;;
esac
