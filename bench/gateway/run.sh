#!/usr/bin/env bash
# Gateway benchmark (issue 10): the bench harness's mock server (../shared/bench/mock-server)
# asked directly, through `mamba-llm serve`, and through a LiteLLM proxy, in one run.
#
#   bench/gateway/run.sh                 N=2000 sequential requests per target, 500 open streams
#   N=500 STREAMS=200 bench/gateway/run.sh
#
# Server side (mock and gateway) pinned to SERVER_CPU (default 0), clients to CLIENT_CPU (1),
# as in ../shared/bench/run.sh. Measures per target:
#  * CPU per proxied request: the gateway's user+sys CPU (/proc/PID/stat, 10 ms ticks) over N
#    sequential non-streamed requests of the harness's floor driver, divided by N;
#  * latency p50/p99 and TTFT p50/p99 of N streamed requests one at a time (mamba-llm bench),
#    and added latency = gateway minus direct;
#  * memory per open relayed stream of `mamba-llm serve`: (peak RSS - idle RSS) / STREAMS while
#    the floor driver holds STREAMS streams open (100 chunks, one every 100 ms, ~10 s each).
#    (LiteLLM's is not measured: at its ~24 ms of CPU per request it cannot open that many
#    paced streams at once on one core.)
# Needs: cargo, taskset, curl, python3, LiteLLM in ~/.cache/mamba-peers/venv
# (scripts/peers/install-litellm.sh; LITELLM=0 leaves it out). Prints a markdown table; raw
# numbers in $OUT.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
SHARED=${SHARED_BENCH:-$ROOT/../shared/bench}
BENCH_TARGET=${BENCH_TARGET:-${TMPDIR:-/tmp}/mamba-bench-target}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
N=${N:-2000}
N_LITELLM=${N_LITELLM:-300}
STREAMS=${STREAMS:-500}
LITELLM=${LITELLM:-1}
PEERS_ROOT=${MAMBA_PEERS_ROOT:-$HOME/.cache/mamba-peers}
OUT=${OUT:-${TMPDIR:-/tmp}/mamba-gateway-bench/$(date -u +%Y%m%dT%H%M%SZ)}
PORT_MOCK=18380 PORT_SERVE=18381 PORT_LITELLM=18382 PORT_MOCK_PACED=18383 PORT_SERVE_PACED=18384
mkdir -p "$OUT"

if [[ -z "${NO_BUILD:-}" ]]; then
  CARGO_TARGET_DIR=$BENCH_TARGET cargo build --release --quiet --manifest-path "$SHARED/Cargo.toml" \
    -p mock-server -p floor-driver
  cargo build --release --quiet -p mamba-cli --no-default-features
fi
MOCK=$BENCH_TARGET/release/mock-server
FLOOR=$BENCH_TARGET/release/floor-driver
MAMBA=${MAMBA_LLM:-$ROOT/target/release/mamba-llm}

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_http() { for _ in $(seq 1 600); do curl -sf -o /dev/null "$1" && return 0; sleep 0.2; done; echo "not up: $1" >&2; return 1; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

taskset -c "$SERVER_CPU" "$MOCK" --port "$PORT_MOCK" --chunks 16 > "$OUT/mock.log" 2>&1 &
pids+=($!); MOCK_PID=$!
wait_http "http://127.0.0.1:$PORT_MOCK/v1/models"

taskset -c "$SERVER_CPU" "$MAMBA" serve --port "$PORT_SERVE" --quiet --model-name gpt-4o-mini \
  --upstream "http://127.0.0.1:$PORT_MOCK/v1,model=gpt-4o-mini" --max-concurrent 4096 --max-queue 4096 \
  > "$OUT/serve.log" 2>&1 &
pids+=($!); SERVE_PID=$!
wait_http "http://127.0.0.1:$PORT_SERVE/health"

targets="direct mamba"
declare -A URL=([direct]="http://127.0.0.1:$PORT_MOCK/v1" [mamba]="http://127.0.0.1:$PORT_SERVE/v1")
declare -A PID=([direct]="" [mamba]=$SERVE_PID)
declare -A COUNT=([direct]=$N [mamba]=$N)
if [[ "$LITELLM" == 1 ]]; then
  cat > "$OUT/litellm.yaml" <<EOF
model_list:
  - model_name: gpt-4o-mini
    litellm_params: {model: openai/gpt-4o-mini, api_base: "http://127.0.0.1:$PORT_MOCK/v1", api_key: sk-bench}
litellm_settings: {num_retries: 0, request_timeout: 120}
general_settings: {master_key: sk-bench}
EOF
  LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_TELEMETRY=False taskset -c "$SERVER_CPU" \
    env -C / "$PEERS_ROOT/venv/bin/litellm" --config "$OUT/litellm.yaml" --host 127.0.0.1 --port "$PORT_LITELLM" \
    --num_workers 1 > "$OUT/litellm.log" 2>&1 &
  pids+=($!); LITELLM_PID=$!
  wait_http "http://127.0.0.1:$PORT_LITELLM/health/liveliness"
  targets="$targets litellm"
  URL[litellm]="http://127.0.0.1:$PORT_LITELLM/v1"; PID[litellm]=$LITELLM_PID; COUNT[litellm]=$N_LITELLM
fi

for t in $targets; do
  n=${COUNT[$t]}
  echo "==> $t: $n sequential requests (floor driver), then $n streamed (mamba-llm bench)" >&2
  taskset -c "$CLIENT_CPU" "$FLOOR" --base-url "${URL[$t]}" --workload w1 --mode complete --requests 20 \
    --concurrency 1 --warmup 20 > /dev/null
  p=${PID[$t]}; before=0; [[ -n "$p" ]] && before=$(cpu_ticks "$p")
  taskset -c "$CLIENT_CPU" "$FLOOR" --base-url "${URL[$t]}" --workload w1 --mode complete --requests "$n" \
    --concurrency 1 --warmup 0 | tail -n 1 > "$OUT/$t-complete.json"
  after=0; [[ -n "$p" ]] && after=$(cpu_ticks "$p")
  echo "{\"gateway_cpu_ticks\": $((after - before)), \"requests\": $n}" > "$OUT/$t-cpu.json"
  MAMBA_API_KEY=sk-bench taskset -c "$CLIENT_CPU" "$MAMBA" bench --base-url "${URL[$t]}" -m gpt-4o-mini \
    --num-prompts "$n" --max-concurrency 1 --request-rate inf --percentiles 50,99 --json \
    > "$OUT/$t-stream.json" 2> "$OUT/$t-stream.log" || true
done

# Memory per open relayed stream: a paced mock (100 chunks, one every 100 ms, so every stream
# stays open ~10 s) behind a second `mamba-llm serve`, STREAMS streams at once.
taskset -c "$SERVER_CPU" "$MOCK" --port "$PORT_MOCK_PACED" --chunks 100 --chunk-interval-ms 100 > "$OUT/mock-paced.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$PORT_MOCK_PACED/v1/models"
taskset -c "$SERVER_CPU" "$MAMBA" serve --port "$PORT_SERVE_PACED" --quiet --model-name gpt-4o-mini \
  --upstream "http://127.0.0.1:$PORT_MOCK_PACED/v1,model=gpt-4o-mini" --max-concurrent 4096 --max-queue 4096 \
  > "$OUT/serve-paced.log" 2>&1 &
pids+=($!); p=$!
wait_http "http://127.0.0.1:$PORT_SERVE_PACED/health"
# One stream first, so idle RSS includes the upstream connection pool and runtime set-up.
taskset -c "$CLIENT_CPU" "$FLOOR" --base-url "http://127.0.0.1:$PORT_SERVE_PACED/v1" --workload w4 --mode stream \
  --requests 1 --concurrency 1 --warmup 0 --chunks 100 > /dev/null 2>&1
idle=$(rss_kb "$p"); peak=$idle
taskset -c "$CLIENT_CPU" "$FLOOR" --base-url "http://127.0.0.1:$PORT_SERVE_PACED/v1" --workload w4 --mode stream \
  --requests "$STREAMS" --concurrency "$STREAMS" --warmup 0 --chunks 100 > "$OUT/mamba-streams.json" 2>"$OUT/mamba-streams.log" &
client=$!
while kill -0 "$client" 2>/dev/null; do r=$(rss_kb "$p"); ((r > peak)) && peak=$r; sleep 0.05; done
echo "{\"idle_kb\": $idle, \"peak_kb\": $peak, \"streams\": $STREAMS}" > "$OUT/mamba-rss.json"

python3 - "$OUT" $targets <<'PY'
import json, sys, os
out, targets = sys.argv[1], sys.argv[2:]
def load(name):
    p = os.path.join(out, name)
    if not os.path.exists(p): return {}
    text = open(p).read().strip()
    try: return json.loads(text.splitlines()[-1] if text.startswith("{") and "\n" in text and not text.endswith("}") else text)
    except Exception:
        try: return json.loads(text.splitlines()[-1])
        except Exception: return {}
rows = {}
for t in targets:
    c, cpu, s, m = load(f"{t}-complete.json"), load(f"{t}-cpu.json"), load(f"{t}-stream.json"), load(f"{t}-rss.json")
    rows[t] = {
        "time_ms": 1e3 * c.get("seconds", 0) / max(c.get("requests", 1), 1),
        "cpu_ms": 10.0 * cpu.get("gateway_cpu_ticks", 0) / max(cpu.get("requests", 1), 1),
        "p50": s.get("median_e2el_ms"), "p99": s.get("p99_e2el_ms"),
        "ttft50": s.get("median_ttft_ms"), "ttft99": s.get("p99_ttft_ms"),
        "kib_per_stream": (m["peak_kb"] - m["idle_kb"]) / m["streams"] if m else None,
    }
d = rows["direct"]
f = lambda v, nd=3: "-" if v is None else f"{v:.{nd}f}"
lines = ["| target | time/req (ms) | gateway CPU/req (ms) | added p50 / p99 (ms) | latency p50 / p99 (ms) | TTFT p50 / p99 (ms) | KiB per open stream |",
         "|---|--:|--:|--:|--:|--:|--:|"]
for t in targets:
    r = rows[t]
    added = "-" if t == "direct" or r["p50"] is None else f"{r['p50'] - d['p50']:.3f} / {r['p99'] - d['p99']:.3f}"
    lines.append(f"| {t} | {f(r['time_ms'])} | {'-' if t == 'direct' else f(r['cpu_ms'])} | {added} | {f(r['p50'])} / {f(r['p99'])} | {f(r['ttft50'])} / {f(r['ttft99'])} | {f(r['kib_per_stream'], 1)} |")
if "litellm" in rows and rows["litellm"]["cpu_ms"] and rows["mamba"]["cpu_ms"]:
    lines.append("")
    lines.append(f"LiteLLM CPU per request / mamba-llm serve CPU per request: {rows['litellm']['cpu_ms'] / rows['mamba']['cpu_ms']:.1f}x")
text = "\n".join(lines)
open(os.path.join(out, "results.md"), "w").write(text + "\n")
print(text)
PY
echo "raw results in $OUT" >&2
