#!/usr/bin/env bash
# Runs every test of the workspace: unit, integration, CLI end-to-end and doc tests.
# Usage: scripts/test-all.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo test --workspace --all-targets
cargo test --workspace --doc
