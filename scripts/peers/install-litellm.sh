#!/usr/bin/env bash
# Install the LiteLLM proxy (PyPI litellm[proxy]) into $PEERS_ROOT/venv.
# Idempotent. Wall times go to $PEERS_ROOT/install-times.tsv.
# Usage: install-litellm.sh          (env LITELLM_VERSION overrides the pin)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# Pin: newer litellm[proxy] releases pin companion packages the registry here does not serve:
#   1.110.x needs litellm-proxy==1.110.x (no such package served), 1.109.x needs
#   litellm-proxy-extras==0.4.113 (newest served: 0.4.110), 1.108.8-1.108.14 need
#   litellm-enterprise==0.1.79.post2/post3 (not served). 1.108.7 is the newest that resolves.
#   (1.82.7, 1.82.8 and 1.107.0 were compromised releases and are gone from PyPI: never pin them.)
LITELLM_VERSION="${LITELLM_VERSION:-1.108.7}"
ensure_venv
if [ -x "$PEERS_VENV/bin/litellm" ] && "$PEERS_VENV/bin/python" - "$LITELLM_VERSION" <<'PY' 2>/dev/null
import sys, importlib.metadata as m
assert m.version("litellm") == sys.argv[1]
import litellm.proxy.proxy_server  # the [proxy] extra's deps import
PY
then
  echo "litellm[proxy]==$LITELLM_VERSION already installed"
else
  timed pip-litellm-proxy "$PEERS_VENV/bin/pip" install --no-cache-dir "litellm[proxy]==$LITELLM_VERSION" \
    > "$PEERS_LOGS/pip-litellm.log" 2>&1 \
    || { echo "pip install failed, see $PEERS_LOGS/pip-litellm.log" >&2; tail -n 40 "$PEERS_LOGS/pip-litellm.log" >&2; exit 1; }
fi
# litellm[proxy] does not pull in prisma (it sits in the heavier [extra-proxy] extra), but the
# proxy's auth error handler imports it: without it a request with no API key gets a bare
# "500 Internal Server Error" (ModuleNotFoundError: prisma) instead of the 401 auth_error.
if ! "$PEERS_VENV/bin/python" -c "import prisma.errors" 2>/dev/null; then
  timed pip-prisma "$PEERS_VENV/bin/pip" install -q --no-cache-dir "prisma==${PRISMA_VERSION:-0.15.0}"
fi
"$PEERS_VENV/bin/pip" check || echo "warning: pip check reports conflicts (see above)" >&2
echo "litellm $("$PEERS_VENV/bin/python" -c "import importlib.metadata as m; print(m.version(\"litellm\"))")"
echo "Done. Start the proxy with: $PEERS_DIR/litellm.sh start 4000 (needs llamacpp.sh start 8081 for the routed model)"
