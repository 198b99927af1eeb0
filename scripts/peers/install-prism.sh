#!/usr/bin/env bash
# Install Stoplight Prism (npm @stoplight/prism-cli) under $PEERS_ROOT/npm (never globally).
# Idempotent. Wall times go to $PEERS_ROOT/install-times.tsv.
# Usage: install-prism.sh          (env PRISM_VERSION overrides the pin)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
PRISM_VERSION="${PRISM_VERSION:-5.16.0}"
PRISM_BIN="$PEERS_NPM/node_modules/.bin/prism"
SPEC="$PEERS_DIR/../../crates/mamba-backends/tests/data/openai-openapi/openapi.yaml"

command -v npm >/dev/null || { echo "npm is missing (apt-get install -y nodejs npm)" >&2; exit 1; }
mkdir -p "$PEERS_NPM"
if [ -x "$PRISM_BIN" ] && [ "$("$PRISM_BIN" --version 2>/dev/null)" = "$PRISM_VERSION" ]; then
  echo "prism $PRISM_VERSION already installed at $PRISM_BIN"
else
  [ -f "$PEERS_NPM/package.json" ] || echo '{"name":"peers-npm","private":true}' > "$PEERS_NPM/package.json"
  timed npm-prism-cli npm install --prefix "$PEERS_NPM" --no-audit --no-fund --loglevel=error \
    "@stoplight/prism-cli@$PRISM_VERSION"
fi
"$PRISM_BIN" --version
[ -f "$SPEC" ] || echo "warning: spec not found at $SPEC (see tests/data/openai-openapi/SOURCE.txt)" >&2
echo "Done. Start the mock with: $PEERS_DIR/prism.sh start 4010"
