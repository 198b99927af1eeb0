#!/usr/bin/env bash
# Writes the tiny random-weight GGUFs of every model family the built-in engine runs, their
# quantized copies and llama.cpp's teacher-forced logits over them, for
# crates/mamba-local/tests/local/families.rs: scripts/local/make-tiny-models.py run by the test
# peers' Python (llama-cpp-python, and the `gguf` writer installed here pinned from PyPI).
#
# Output: $MAMBA_PEERS_ROOT/tiny (default ~/.cache/mamba-peers/tiny), `<family>-<TYPE>.gguf`
# and `<family>-<TYPE>.json`. Idempotent: a stamp holding the hash of the generator, its
# arguments and the package versions makes a second run a no-op; anything changed rebuilds all.
# Needs the peers' venv with llama-cpp-python: scripts/peers/install-llamacpp.sh, run here when missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root="${MAMBA_PEERS_ROOT:-$HOME/.cache/mamba-peers}"
python="$root/venv/bin/python"
out="$root/tiny"
gguf_version=0.19.0
if ! "$python" -c "import llama_cpp" 2>/dev/null; then
  echo "==> scripts/peers/install-llamacpp.sh (llama-cpp-python for the tiny models' logits)" >&2
  scripts/peers/install-llamacpp.sh
fi
if ! "$python" -c "import importlib.metadata as m, sys; sys.exit(0 if m.version('gguf') == '$gguf_version' else 1)" 2>/dev/null; then
  echo "==> pip install gguf==$gguf_version (into $root/venv)" >&2
  "$python" -m pip install --quiet "gguf==$gguf_version"
fi
stamp="$(
  {
    sha256sum scripts/local/make-tiny-models.py
    "$python" -c "import importlib.metadata as m; print(*(m.version(p) for p in ('llama_cpp_python', 'gguf', 'numpy')))"
  } | sha256sum | cut -d' ' -f1
)"
if [ -f "$out/STAMP" ] && [ "$(cat "$out/STAMP")" = "$stamp" ]; then
  echo "tiny-models: $out is up to date" >&2
  exit 0
fi
mkdir -p "$out"
rm -f "$out/STAMP" "$out"/*.gguf "$out"/*.json "$out"/*.tmp
echo "==> make-tiny-models.py $out" >&2
start=$SECONDS
"$python" scripts/local/make-tiny-models.py "$out" 2> >(grep -v -e 'n_ctx_seq' -e 'full-size SWA cache' -e 'Phi SWA is currently disabled' >&2)
echo "$stamp" >"$out/STAMP"
echo "tiny-models: $(ls "$out"/*.gguf | wc -l) files in $out ($((SECONDS - start)) s)" >&2
