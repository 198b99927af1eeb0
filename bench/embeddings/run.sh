#!/usr/bin/env bash
# The embeddings benchmark of issue 11: 2,000 requests x 16 inputs, 1,536-value vectors, from
# a fast mock pinned to CPU 0 (taskset -c 0), each driver pinned to CPU 1, RUNS runs
# interleaved. Drivers: floor (hyper + serde_json::Value, base64 decoded by the base64
# crate), async-openai 0.43 (create_base64), mamba (mamba-backends defaults: base64), and
# mamba-float (the same asking for floats). Prints a markdown table (medians; min-max) and
# leaves the raw lines in $OUT/results.jsonl.
# Usage: bench/embeddings/run.sh        env: REQUESTS (2000) WARMUP (50) RUNS (3) OUT
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
REQUESTS="${REQUESTS:-2000}"; WARMUP="${WARMUP:-50}"; RUNS="${RUNS:-3}"
OUT="${OUT:-${TMPDIR:-/tmp}/mamba-embed-bench/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
(cd "$root" && cargo build --release -q -p mamba-bench --bin embed-driver)
(cd "$here" && cargo build --release -q)
bin="$here/target/release"
taskset -c 0 "$bin/embed-mock" 0 > "$OUT/mock.log" 2>&1 &
mock_pid=$!
trap 'kill "$mock_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do grep -q listening "$OUT/mock.log" && break; sleep 0.05; done
url="http://$(sed -n 's/^listening on //p' "$OUT/mock.log")"
declare -a names=(floor async-openai mamba mamba-float)
declare -A cmds=(
  [floor]="$bin/embed-driver-floor"
  [async-openai]="$bin/embed-driver-async-openai"
  [mamba]="$root/target/release/embed-driver"
  [mamba-float]="$root/target/release/embed-driver --format float"
)
: > "$OUT/results.jsonl"
for run in $(seq 1 "$RUNS"); do
  for name in "${names[@]}"; do
    # shellcheck disable=SC2086
    taskset -c 1 ${cmds[$name]} --base-url "$url" --requests "$REQUESTS" --warmup "$WARMUP" \
      | sed "s/^{/{\"name\":\"$name\",\"run\":$run,/" >> "$OUT/results.jsonl"
  done
done
python3 - "$OUT/results.jsonl" <<'PY' | tee "$OUT/results.md"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
names = list(dict.fromkeys(r["name"] for r in rows))
med = lambda n, k: statistics.median(r[k] for r in rows if r["name"] == n)
rng = lambda n, k, f: "%s-%s" % (f(min(r[k] for r in rows if r["name"] == n)), f(max(r[k] for r in rows if r["name"] == n)))
base = med("async-openai", "cpu_us_per_req") if "async-openai" in names else None
floor = med("floor", "cpu_us_per_req") if "floor" in names else None
print("| driver | CPU/req (µs) | min-max | × async-openai | × floor | time/req (µs) | peak RSS (MB) | errors |")
print("|---|--:|--:|--:|--:|--:|--:|--:|")
for n in names:
    cpu = med(n, "cpu_us_per_req")
    t = med(n, "seconds") / rows[0]["requests"] * 1e6
    rss = max(r["max_rss_kb"] for r in rows if r["name"] == n) / 1024
    errs = sum(r["errors"] for r in rows if r["name"] == n)
    print("| %s | %.0f | %s | %s | %s | %.0f | %.1f | %d |" % (
        n, cpu, rng(n, "cpu_us_per_req", lambda v: "%.0f" % v),
        "%.2f" % (cpu / base) if base else "-", "%.2f" % (cpu / floor) if floor else "-", t, rss, errs))
PY
echo "raw: $OUT/results.jsonl"
