#!/usr/bin/env bash
# The Python side of the tests, installed once per machine (cached in $PEERS_ROOT):
#  * a venv in $PEERS_ROOT/py-venv (Python 3.12 when one is found, as the reference declares;
#    else python3) with maturin, pytest, pytest-asyncio, mypy, pydantic, numpy, uvloop and
#    httpx 0.28.1 (which the reference runs on);
#  * the reference implementation, mamba-agents 0.1.7's wheel, unpacked (not installed: its
#    package imports need pydantic-ai) into $PEERS_ROOT/mamba-ref for the differential tests.
# Idempotent. Prints the venv's path on its last line.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/peers/common.sh"
PY_VENV="$PEERS_ROOT/py-venv"
REF_DIR="$PEERS_ROOT/mamba-ref"
REF_VERSION=0.1.7
PACKAGES=(maturin==1.16.0 pytest==9.2.0 pytest-asyncio==1.5.0 mypy==2.4.1 pyright==1.1.414 pydantic==2.14.4 numpy uvloop httpx==0.28.1)

pick_python() {
  local c
  for c in python3.12 "$HOME"/.pyenv/versions/3.12*/bin/python3.12 python3; do
    if "$c" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
      echo "$c"; return
    fi
  done
  command -v python3
}

if [ ! -x "$PY_VENV/bin/python" ]; then
  py=$(pick_python)
  timed py-venv "$py" -m venv "$PY_VENV" >&2
fi
stamp="$PY_VENV/.packages"
if [ "$(cat "$stamp" 2>/dev/null)" != "${PACKAGES[*]}" ]; then
  timed pip-py "$PY_VENV/bin/pip" install -q --disable-pip-version-check "${PACKAGES[@]}" \
    > "$PEERS_LOGS/pip-py.log" 2>&1 \
    || { echo "pip install failed, see $PEERS_LOGS/pip-py.log" >&2; tail -n 40 "$PEERS_LOGS/pip-py.log" >&2; exit 1; }
  echo "${PACKAGES[*]}" > "$stamp"
fi
if [ ! -f "$REF_DIR/mamba_agents/backends/openai_compat.py" ]; then
  tmp=$(mktemp -d)
  timed pip-ref "$PY_VENV/bin/pip" download -q --disable-pip-version-check --no-deps --python-version 3.12 \
    --only-binary=:all: -d "$tmp" "mamba-agents==$REF_VERSION" >&2
  rm -rf "$REF_DIR"; mkdir -p "$REF_DIR"
  "$PY_VENV/bin/python" -m zipfile -e "$tmp"/mamba_agents-"$REF_VERSION"-*.whl "$REF_DIR"
  rm -rf "$tmp"
fi
echo "$("$PY_VENV/bin/python" --version) in $PY_VENV; reference mamba-agents $REF_VERSION in $REF_DIR" >&2
echo "$PY_VENV"
