#!/usr/bin/env bash
# Creates the Python venv of the load-benchmark comparison (bench/loadtest/): aiohttp and numpy,
# the two packages vLLM's benchmark client uses. Idempotent; prints the venv's python.
#   LOADTEST_VENV (default ~/.cache/mamba-peers/loadtest-venv)
set -euo pipefail
venv=${LOADTEST_VENV:-$HOME/.cache/mamba-peers/loadtest-venv}
if ! "$venv/bin/python" -c 'import aiohttp, numpy' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'aiohttp>=3.9,<4' 'numpy>=1.26,<3' >&2
fi
echo "$venv/bin/python"
