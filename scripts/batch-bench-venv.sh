#!/usr/bin/env bash
# The Python venv of bench/batch's third-party peer (OpenAI's cookbook
# api_request_parallel_processor.py): aiohttp and tiktoken, cached in
# ~/.cache/mamba-peers/batch-bench-venv; and tiktoken's cl100k_base encoding for offline use in
# ~/.cache/mamba-peers/tiktoken (tiktoken downloads it from a blob store this machine cannot
# reach; the LiteLLM wheel on PyPI ships the same file, named by the SHA-1 of its URL as
# tiktoken's cache expects, so it is taken from there). Idempotent; prints the venv's python.
set -euo pipefail
root="${MAMBA_PEERS_ROOT:-$HOME/.cache/mamba-peers}"
venv="$root/batch-bench-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import aiohttp, tiktoken' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'aiohttp>=3.9,<4' 'tiktoken>=0.7,<1' >&2
fi
cache="$root/tiktoken"
encoding=9b5ad71b2ce5302211f9c61530b329a4922fc6a4 # sha1 of cl100k_base.tiktoken's URL
if [ ! -s "$cache/$encoding" ]; then
  mkdir -p "$cache"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  "$venv/bin/pip" download --quiet --disable-pip-version-check --no-deps -d "$tmp" 'litellm>=1.40' >&2
  "$venv/bin/python" - "$tmp" "$cache" "$encoding" <<'PY'
import glob, sys, zipfile
tmp, cache, name = sys.argv[1:]
wheel = glob.glob(f"{tmp}/litellm-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    member = next(m for m in z.namelist() if m.endswith(f"/tokenizers/{name}"))
    with open(f"{cache}/{name}", "wb") as out:
        out.write(z.read(member))
PY
fi
TIKTOKEN_CACHE_DIR="$cache" "$venv/bin/python" -c 'import tiktoken; assert tiktoken.get_encoding("cl100k_base").encode("hello world")' >&2
echo "$venv/bin/python"
