#!/usr/bin/env bash
# Real clients for the tests of `mamba-llm serve`, installed once per machine:
#  * a Python venv in $PEERS_ROOT/serve-venv with the official `openai` SDK and `openapi-core`
#    (responses and SSE events validated against the OpenAI spec);
#  * Debian's chromium (apt-get, skipped when /usr/bin/chromium exists) and `playwright-core`
#    from npm in $PEERS_ROOT/npm-serve, to drive the chat page headless.
# Idempotent and cached. Usage: scripts/serve-venv.sh [python|browser]   (default: both)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/peers/common.sh"
OPENAI_VERSION="${SERVE_OPENAI_VERSION:-1.109.1}"
OPENAPI_CORE_VERSION="${SERVE_OPENAPI_CORE_VERSION:-0.19.5}"
PLAYWRIGHT_VERSION="${SERVE_PLAYWRIGHT_VERSION:-1.56.1}"
SERVE_VENV="$PEERS_ROOT/serve-venv"
SERVE_NPM="$PEERS_ROOT/npm-serve"
what="${1:-all}"

python_clients() {
  if [ -x "$SERVE_VENV/bin/python" ] && "$SERVE_VENV/bin/python" - "$OPENAI_VERSION" "$OPENAPI_CORE_VERSION" <<'PY' 2>/dev/null
import sys, importlib.metadata as m
assert m.version("openai") == sys.argv[1] and m.version("openapi-core") == sys.argv[2]
import yaml, openai, openapi_core  # noqa: F401
PY
  then
    echo "openai==$OPENAI_VERSION openapi-core==$OPENAPI_CORE_VERSION already in $SERVE_VENV"
    return 0
  fi
  [ -x "$SERVE_VENV/bin/python" ] || timed serve-venv python3 -m venv "$SERVE_VENV"
  timed pip-serve "$SERVE_VENV/bin/pip" install -q --no-cache-dir \
    "openai==$OPENAI_VERSION" "openapi-core==$OPENAPI_CORE_VERSION" "pyyaml>=6" \
    > "$PEERS_LOGS/pip-serve.log" 2>&1 \
    || { echo "pip install failed, see $PEERS_LOGS/pip-serve.log" >&2; tail -n 40 "$PEERS_LOGS/pip-serve.log" >&2; exit 1; }
  echo "openai $OPENAI_VERSION and openapi-core $OPENAPI_CORE_VERSION in $SERVE_VENV"
}

browser() {
  if [ ! -x /usr/bin/chromium ]; then
    timed apt-chromium bash -c 'DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium' \
      > "$PEERS_LOGS/apt-chromium.log" 2>&1 \
      || { echo "apt-get install chromium failed, see $PEERS_LOGS/apt-chromium.log" >&2; tail -n 40 "$PEERS_LOGS/apt-chromium.log" >&2; exit 1; }
  fi
  if [ -f "$SERVE_NPM/node_modules/playwright-core/package.json" ] \
    && grep -q "\"version\": \"$PLAYWRIGHT_VERSION\"" "$SERVE_NPM/node_modules/playwright-core/package.json"; then
    echo "playwright-core@$PLAYWRIGHT_VERSION already in $SERVE_NPM; $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
    return 0
  fi
  mkdir -p "$SERVE_NPM"
  timed npm-serve npm install --prefix "$SERVE_NPM" --no-audit --no-fund --silent "playwright-core@$PLAYWRIGHT_VERSION" \
    > "$PEERS_LOGS/npm-serve.log" 2>&1 \
    || { echo "npm install failed, see $PEERS_LOGS/npm-serve.log" >&2; tail -n 40 "$PEERS_LOGS/npm-serve.log" >&2; exit 1; }
  echo "playwright-core@$PLAYWRIGHT_VERSION in $SERVE_NPM"
}

case "$what" in
  python) python_clients ;;
  browser) browser ;;
  all) python_clients; browser ;;
  *) echo "usage: $0 [python|browser]" >&2; exit 2 ;;
esac
