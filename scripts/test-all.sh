#!/usr/bin/env bash
# Every test of the workspace: unit, integration, CLI end-to-end and doc tests, the Python
# package's tests (scripts/test-python.sh), plus the live conformance suite against real servers
# (llama.cpp, LiteLLM, Prism of the OpenAI spec).
#
# The peers are installed once per machine (about 4 minutes, cached in ~/.cache/mamba-peers),
# started for the run and stopped after it. A peer that cannot be installed or started makes
# its live tests fail (they never pass without their peer); only MAMBA_SKIP_PEERS=1 skips them.
#
# Usage: scripts/test-all.sh            MAMBA_SKIP_PEERS=1 scripts/test-all.sh  (no live suite)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PEERS_ROOT="${MAMBA_PEERS_ROOT:-$HOME/.cache/mamba-peers}"
# Live tests: every test of live.rs (its #[tokio::test] attributes: helpers are async fns too), plus the CLI's live bench and batch runs.
live_total=$(( $(grep -c '^#\[tokio::test' crates/mamba-backends/tests/integration/live.rs || true) + 2 ))

# Peers, venvs and models (scripts/test-setup.sh; cached per machine, each skip variable
# skips its part): the first run on a machine installs them (about 15 minutes: llama.cpp is
# compiled), later runs only check.
scripts/test-setup.sh

if [ "${MAMBA_SKIP_PEERS:-0}" != 1 ]; then
  # Build first, so the peers do not compete with the compiler for the two cores.
  cargo test --workspace --all-targets --no-run
  scripts/peers/install-proxy.sh
  scripts/peers/up.sh
  trap 'scripts/peers/stop-all.sh >/dev/null 2>&1 || true' EXIT
  # shellcheck disable=SC1091
  source "$PEERS_ROOT/live.env"
  MAMBA_LIVE_REPORT="$(mktemp -d)"
  export MAMBA_LIVE_REPORT
fi

# Every test binary runs, whatever fails first; the run fails at the end if any did.
failed=0
cargo test --workspace --all-targets --no-fail-fast || failed=1
cargo test --workspace --doc --no-fail-fast || failed=1
# The Python package (crates/mamba-py): pytest against mamba-mock, the peers above and the
# reference package, then mypy --strict; its venv is cached in ~/.cache/mamba-peers/py-venv.
scripts/test-python.sh || failed=1
# `mamba-llm sql` is behind the CLI's `sql` feature (DataFusion), `sql --ballista` and
# `mamba-llm ballista` behind `ballista` (which adds to `sql`): their end-to-end tests run in a
# build with both (the workspace run above checks what a build without them says). Resolved
# with the whole workspace, so only mamba-cli is built again; the filter picks the CLI's sql
# cases, the cluster of processes among them.
cargo test --workspace --all-targets --features mamba-cli/ballista --no-fail-fast sql:: || failed=1

if [ -n "${MAMBA_LIVE_REPORT:-}" ]; then
  ran=$(find "$MAMBA_LIVE_REPORT" -type f | wc -l)
  echo "live conformance: $ran of $live_total live tests ran against real peers: $(ls "$MAMBA_LIVE_REPORT" | tr '\n' ' ')"
  if [ "$ran" -lt "$live_total" ]; then
    echo "live conformance: $((live_total - ran)) live tests did not run against their peer" >&2
    exit 1
  fi
  rm -rf "$MAMBA_LIVE_REPORT"
else
  echo "live conformance: skipped (MAMBA_SKIP_PEERS=1)"
fi
if [ "$failed" != 0 ]; then
  echo "test-all: some tests failed (cargo's summaries above name them)" >&2
  exit 1
fi
