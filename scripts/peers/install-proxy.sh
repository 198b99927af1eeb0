#!/usr/bin/env bash
# Install proxy.py (PyPI `proxy.py`), a forward HTTP proxy with CONNECT and basic auth written
# by others, into $PEERS_ROOT/venv-proxy, for the proxy tests of mamba-backends
# (tests/integration/proxy.rs, which start it on 127.0.0.1 themselves).
# Idempotent. Usage: install-proxy.sh   (env PROXY_PY_VERSION overrides the pin)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
PROXY_PY_VERSION="${PROXY_PY_VERSION:-2.4.10}"
PROXY_VENV="$PEERS_ROOT/venv-proxy"
if [ -x "$PROXY_VENV/bin/proxy" ] && "$PROXY_VENV/bin/python" - "$PROXY_PY_VERSION" <<'PY' 2>/dev/null
import sys, importlib.metadata as m
assert m.version("proxy.py") == sys.argv[1]
PY
then
  echo "proxy.py==$PROXY_PY_VERSION already installed in $PROXY_VENV"
  exit 0
fi
[ -x "$PROXY_VENV/bin/python" ] || timed venv-proxy python3 -m venv "$PROXY_VENV"
timed pip-proxy-py "$PROXY_VENV/bin/pip" install -q --no-cache-dir "proxy.py==$PROXY_PY_VERSION" \
  > "$PEERS_LOGS/pip-proxy.log" 2>&1 \
  || { echo "pip install failed, see $PEERS_LOGS/pip-proxy.log" >&2; tail -n 40 "$PEERS_LOGS/pip-proxy.log" >&2; exit 1; }
echo "proxy.py $("$PROXY_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("proxy.py"))') in $PROXY_VENV"
