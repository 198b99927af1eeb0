#!/usr/bin/env bash
# The built-in engine against llama.cpp, side by side: same GGUF, same threads, same prompts.
# Interleaved rounds, medians, one markdown table on stdout (raw JSON lines in $OUT_DIR).
# Usage: scripts/local/bench.sh [MODEL.gguf] [THREADS] [ROUNDS]
# Needs the llama-cpp-python venv of scripts/peers/install-llamacpp.sh.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
peers="${PEERS_ROOT:-$HOME/.cache/mamba-peers}"
model="${1:-${MAMBA_MODEL_FILE:-$peers/models/SmolLM2-135M-Instruct.Q4_1.gguf}}"
threads="${2:-$(nproc)}"
rounds="${3:-5}"
out="${OUT_DIR:-$(mktemp -d)}"
cache="$out/cache"
python="$peers/venv/bin/python"

cd "$root"
cargo build --release -q -p mamba-local --example local-bench
bin="$root/target/release/examples/local-bench"
# First run makes the converted-weights cache, so the measured loads are warm ones.
"$bin" "$model" "$threads" "$cache" > /dev/null
for i in $(seq "$rounds"); do
  "$bin" "$model" "$threads" "$cache" >> "$out/mamba.jsonl"
  "$python" scripts/local/llamacpp-bench.py "$model" "$threads" >> "$out/llamacpp.jsonl"
done
"$python" - "$out/mamba.jsonl" "$out/llamacpp.jsonl" <<'PY'
import json, statistics, sys
ours = [json.loads(l) for l in open(sys.argv[1])]
ref = [json.loads(l) for l in open(sys.argv[2])]
rows = [("prompt tok/s, %d-token prompt" % ours[0]["short_prompt_tokens"], "short_pp_tps", True),
        ("prompt tok/s, %d-token prompt" % ours[0]["long_prompt_tokens"], "long_pp_tps", True),
        ("generation tok/s after the short prompt", "short_gen_tps", True),
        ("generation tok/s after the long prompt", "long_gen_tps", True),
        ("time to first token, short prompt (ms)", "short_ttft_s", False),
        ("time to first token, long prompt (ms)", "long_ttft_s", False),
        ("peak RSS (MiB)", "peak_rss_mib", False),
        ("model load, warm (ms)", "load_s", False)]
print(f"{len(ours)} interleaved rounds, medians, {ours[0]['threads']} threads; llama.cpp = {ref[0]['engine']}")
print()
print("| | mamba-local | llama.cpp | ratio |")
print("|---|---|---|---|")
for label, key, higher in rows:
    a = statistics.median(r[key] for r in ours)
    b = statistics.median(r[key] for r in ref)
    scale = 1000 if key.endswith("_s") else 1
    print(f"| {label} | {a * scale:.1f} | {b * scale:.1f} | {a / b:.2f}x |")
print()
print("answers:", repr(ours[0]["answer"]), "/", repr(ref[0]["answer"]))
PY
echo "raw results: $out" >&2
