#!/usr/bin/env bash
# The Python venv of bench/batch's third-party peer (OpenAI's cookbook
# api_request_parallel_processor.py): aiohttp and tiktoken, cached in
# ~/.cache/mamba-peers/batch-bench-venv. Idempotent; prints the venv's python.
set -euo pipefail
venv="${MAMBA_PEERS_ROOT:-$HOME/.cache/mamba-peers}/batch-bench-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import aiohttp, tiktoken' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'aiohttp>=3.9,<4' 'tiktoken>=0.7,<1' >&2
fi
echo "$venv/bin/python"
