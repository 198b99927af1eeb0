#!/usr/bin/env bash
# The Python package's tests (crates/mamba-py): builds the extension into the test venv
# (maturin develop, the dev profile, sharing target/ with cargo), builds `mamba-llm` for the
# mock server, then runs pytest, mypy --strict and pyright (over the package, its stubs and the
# examples).
# Live tests read the peers' URLs from the environment (scripts/test-all.sh sources
# live.env); MAMBA_SKIP_PEERS=1 skips them.
# Usage: scripts/test-python.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
venv=$(scripts/py-venv.sh | tail -n 1)
export PEERS_ROOT="${PEERS_ROOT:-${MAMBA_PEERS_ROOT:-$HOME/.cache/mamba-peers}}"
export MAMBA_REF_DIR="${MAMBA_REF_DIR:-$PEERS_ROOT/mamba-ref}"
# `mamba-llm` (the mock server) as `cargo test --workspace` builds it, with the same features:
# nothing to do when scripts/test-all.sh just ran it.
cargo test --workspace --all-targets --no-run --quiet
(cd crates/mamba-py && VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH" maturin develop --quiet 2>&1 | grep -v '^$' | tail -n 3)
export MAMBA_LLM_BIN="$PWD/target/debug/mamba-llm"
status=0
(cd crates/mamba-py && "$venv/bin/python" -m pytest -q "$@") || status=1
(cd crates/mamba-py && "$venv/bin/python" -m mypy --strict python/mamba_backends examples) || status=1
(cd crates/mamba-py && "$venv/bin/pyright" --pythonpath "$venv/bin/python" python/mamba_backends examples) || status=1
exit $status
