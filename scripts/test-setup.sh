#!/usr/bin/env bash
# Everything the tests need besides the Rust toolchain, installed once per machine and cached
# (~/.cache/mamba-peers, ~/.cache/mamba): the peer servers (llama-cpp-python, which compiles
# llama.cpp, LiteLLM, Prism, proxy.py), the serve clients' venv and browser, the Python
# package's test venv, and the model files. Each step does nothing when its part is there.
#
# Concurrent runs wait for each other (a lock), so .ci/run starts this in the background at
# its beginning, beside the lints (downloads and the llama.cpp compile fill the core cargo
# leaves idle), and scripts/test-all.sh runs it again: then it only waits and checks.
# The skip variables of test-all.sh (MAMBA_SKIP_PEERS, MAMBA_SKIP_SERVE_CLIENTS,
# MAMBA_SKIP_LOCAL_MODEL) skip their parts here too.
#
# Usage: scripts/test-setup.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PEERS_ROOT="${MAMBA_PEERS_ROOT:-$HOME/.cache/mamba-peers}"
mkdir -p "$PEERS_ROOT/logs"
exec 9>"$PEERS_ROOT/.test-setup.lock"
if ! flock -n 9; then
  echo "test-setup: waiting for another run of scripts/test-setup.sh (log: $PEERS_ROOT/logs/test-setup.log)" >&2
  flock 9
fi
started=$SECONDS

# step NAME CMD...: one line per step with its time; a failing peer install is reported and
# left to scripts/peers/up.sh, which skips that peer loudly (its live tests then fail).
step() {
  local name=$1 t0=$SECONDS; shift
  if "$@" > "$PEERS_ROOT/logs/setup-$name.log" 2>&1; then
    echo "test-setup: $name ($((SECONDS - t0)) s)" >&2
  else
    echo "test-setup: $name FAILED after $((SECONDS - t0)) s; its log: $PEERS_ROOT/logs/setup-$name.log" >&2
    tail -n 15 "$PEERS_ROOT/logs/setup-$name.log" >&2
    return 1
  fi
}

if [ "${MAMBA_SKIP_PEERS:-0}" != 1 ]; then
  step llamacpp scripts/peers/install-llamacpp.sh || true
  step litellm scripts/peers/install-litellm.sh || true
  step prism scripts/peers/install-prism.sh || true
  step proxy scripts/peers/install-proxy.sh || true
fi
if [ "${MAMBA_SKIP_SERVE_CLIENTS:-0}" != 1 ]; then
  step serve-clients scripts/serve-venv.sh
fi
step python-venv scripts/py-venv.sh
# The tiny random-weight GGUFs of every family with llama.cpp's logits (about a minute, into
# ~/.cache/mamba-peers/tiny), then the real models (SmolLM2-135M, 94 MiB, and Gemma 3 270M,
# 241 MiB) for the tests of mamba-local and the CLI, into ~/.cache/mamba (last: `mamba-llm
# pull` needs cargo, which the lints hold first).
if [ "${MAMBA_SKIP_LOCAL_MODEL:-0}" != 1 ]; then
  step tiny-models scripts/local/tiny-models.sh
  step models scripts/fetch-model.sh
fi
echo "test-setup: ready in $((SECONDS - started)) s" >&2
