#!/usr/bin/env bash
# `mamba-llm batch` benchmark (issue 13): REQUESTS chat requests (default 100,000) at
# CONCURRENCY (256) against ../shared/bench's mock-server (non-streamed answers, no latency),
# server pinned to SERVER_CPU (0), runner to CLIENT_CPU (1), as the harness runs them.
# Reported: requests/s, the runner's CPU per request (user+sys of the whole process, start-up
# and input checking included), peak RSS. Then the memory bound: MEMORY_LINES (1,000,000)
# lines, all already answered in the output (so the run streams and skips every line), peak RSS.
#
# In the same run, the reference the issue sets the runner against: the library's own W2
# driver (../shared/bench contract: non-streamed completions through `complete`, here the same
# request count and concurrency), and the ratio of the two CPU costs per request.
#
# OpenAI's cookbook script (api_request_parallel_processor.py, MIT) runs side by side. It is
# not in this repository: the benchmark uses COOKBOOK (a path), else third_party/ or
# ~/.cache/mamba-peers/cookbook/ if a copy is there, else fetches it from GitHub at a pinned
# commit into that cache (see third_party/README.md). Its venv and offline tiktoken encoding
# come from scripts/batch-bench-venv.sh. COOKBOOK_REQUESTS (default REQUESTS) sets its share:
# the script sleeps 1 ms per loop turn, so it cannot pass ~1,000 requests/s.
#
#   bench/batch/run.sh
#   REQUESTS=20000 NO_BUILD=1 bench/batch/run.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
shared=${SHARED_BENCH:-$root/../shared/bench}
[[ -d $shared ]] || shared=/work/shared/bench
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
REQUESTS=${REQUESTS:-100000}
CONCURRENCY=${CONCURRENCY:-256}
MEMORY_LINES=${MEMORY_LINES:-1000000}
mock_target=${MOCK_TARGET_DIR:-${TMPDIR:-/tmp}/mamba-bench-target}
out=${OUT:-${TMPDIR:-/tmp}/mamba-batch-runs/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"

if [[ -z ${NO_BUILD:-} ]]; then
    (cd "$shared" && CARGO_TARGET_DIR=$mock_target cargo build --release --locked --quiet -p mock-server)
    (cd "$root" && cargo build --release --quiet -p mamba-cli --no-default-features --bin mamba-llm)
    (cd "$root" && cargo build --release --quiet -p mamba-bench --bin mamba-bench-driver)
fi
mamba=${MAMBA_LLM:-$root/target/release/mamba-llm}
driver=${MAMBA_DRIVER:-$root/target/release/mamba-bench-driver}
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

addr_file=$out/addr
taskset -c "$SERVER_CPU" "$mock_target/release/mock-server" --port 0 --addr-file "$addr_file" > "$out/server.log" 2>&1 &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null || true' EXIT
for _ in $(seq 50); do [[ -s $addr_file ]] && break; sleep 0.1; done
[[ -s $addr_file ]] || { echo "mock-server did not start" >&2; exit 1; }
base_url="http://$(cat "$addr_file")/v1"

{
    echo "date_utc: $(date -u +%FT%TZ)"
    echo "nproc: $(nproc)  cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
    echo "loadavg: $(cat /proc/loadavg)"
    echo "server: mock-server on CPU $SERVER_CPU; runner on CPU $CLIENT_CPU; $REQUESTS requests at concurrency $CONCURRENCY"
} | tee "$out/machine.txt"

python3 "$here/gen.py" "$REQUESTS" > "$out/input.jsonl"

# Runs a command pinned to the client core; prints "wall_s cpu_s maxrss_kib exit".
measure() {
    /usr/bin/time -f "%e %U %S %M %x" -o "$out/time.txt" taskset -c "$CLIENT_CPU" "$@" > "$out/last.stdout" 2>> "$out/last.stderr" || true
    awk '{printf "%s %.3f %s %s\n", $1, $2 + $3, $4, $5}' "$out/time.txt"
}

row() { # name requests wall cpu rss exit
    python3 -c "
import sys
name, n, wall, cpu, rss, code = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
print(f'| {name} | {n} | {n / wall:,.0f} | {cpu / n * 1e6:,.1f} | {rss / 1024:,.1f} | {wall:.2f} | {code} |')
" "$@"
}

echo "| runner | requests | requests/s | runner CPU per request (µs) | peak RSS (MiB) | wall (s) | exit |" | tee "$out/report.md"
echo "|---|---|---|---|---|---|---|" | tee -a "$out/report.md"

rm -f "$out/mamba-out.jsonl"
read -r wall cpu rss code <<< "$(measure "$mamba" batch "$out/input.jsonl" -o "$out/mamba-out.jsonl" --base-url "$base_url" \
    --concurrency "$CONCURRENCY" --quiet --json)"
lines=$(wc -l < "$out/mamba-out.jsonl")
[[ $lines -eq $REQUESTS ]] || echo "mamba-llm batch wrote $lines lines of $REQUESTS (exit $code)" >&2
row "mamba-llm batch" "$REQUESTS" "$wall" "$cpu" "$rss" "$code" | tee -a "$out/report.md"

# The library's W2 driver, same requests and concurrency, same pinning.
read -r wall cpu_w2 rss code <<< "$(measure "$driver" --base-url "$base_url" --mode complete --requests "$REQUESTS" \
    --concurrency "$CONCURRENCY" --workload w2)"
row "library W2 driver (complete, reference)" "$REQUESTS" "$wall" "$cpu_w2" "$rss" "$code" | tee -a "$out/report.md"
ratio=$(python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}')" "$cpu" "$cpu_w2")
batch_cpu=$cpu

# OpenAI's cookbook script: found or fetched (never committed here), see the header.
cookbook_commit=59019bd21ee4964dd58f6671b8dc1f3f6f3a92b3
cookbook_cache=${MAMBA_PEERS_ROOT:-$HOME/.cache/mamba-peers}/cookbook
cookbook=${COOKBOOK:-}
for candidate in "$here/third_party/api_request_parallel_processor.py" "$cookbook_cache/api_request_parallel_processor.py"; do
    [[ -z $cookbook && -f $candidate ]] && cookbook=$candidate
done
if [[ -z $cookbook ]]; then
    mkdir -p "$cookbook_cache"
    raw=https://raw.githubusercontent.com/openai/openai-cookbook/$cookbook_commit
    if curl -fsS --max-time 20 -o "$cookbook_cache/api_request_parallel_processor.py.part" "$raw/examples/api_request_parallel_processor.py" \
        && curl -fsS --max-time 20 -o "$cookbook_cache/LICENSE" "$raw/LICENSE"; then
        mv "$cookbook_cache/api_request_parallel_processor.py.part" "$cookbook_cache/api_request_parallel_processor.py"
        cookbook=$cookbook_cache/api_request_parallel_processor.py
    fi
fi
venv_python=${BATCH_BENCH_PYTHON:-$HOME/.cache/mamba-peers/batch-bench-venv/bin/python}
tiktoken_cache=${MAMBA_PEERS_ROOT:-$HOME/.cache/mamba-peers}/tiktoken
COOKBOOK_REQUESTS=${COOKBOOK_REQUESTS:-$REQUESTS}
if [[ -n $cookbook && -x $venv_python ]]; then
    # The script reads request bodies, not Batch lines: the same bodies, custom_id as metadata.
    python3 - "$out/input.jsonl" "$COOKBOOK_REQUESTS" > "$out/cookbook-input.jsonl" <<'PY'
import json, sys
with open(sys.argv[1]) as src:
    for i, line in enumerate(src):
        if i >= int(sys.argv[2]):
            break
        item = json.loads(line)
        body = dict(item["body"], metadata={"custom_id": item["custom_id"]})
        print(json.dumps(body, separators=(",", ":")))
PY
    rm -f "$out/cookbook-out.jsonl"
    # Its own rate limits set far above what the mock can do, so that only its loop limits it.
    # cookbook_http.py runs it unmodified but lets its URL check accept the mock's http://.
    read -r wall cpu rss code <<< "$(measure env OPENAI_API_KEY=sk-bench TIKTOKEN_CACHE_DIR="$tiktoken_cache" "$venv_python" "$here/cookbook_http.py" "$cookbook" \
        --requests_filepath "$out/cookbook-input.jsonl" --save_filepath "$out/cookbook-out.jsonl" \
        --request_url "$base_url/chat/completions" --max_requests_per_minute 100000000 \
        --max_tokens_per_minute 10000000000 --token_encoding_name cl100k_base --max_attempts 5 --logging_level 30)"
    lines=$(wc -l < "$out/cookbook-out.jsonl" 2>/dev/null || echo 0)
    [[ $lines -eq $COOKBOOK_REQUESTS ]] || echo "the cookbook script wrote $lines lines of $COOKBOOK_REQUESTS (exit $code)" >&2
    row "cookbook api_request_parallel_processor.py" "$COOKBOOK_REQUESTS" "$wall" "$cpu" "$rss" "$code" | tee -a "$out/report.md"
    cookbook_ratio=$(python3 -c "import sys; print(f'{(float(sys.argv[1]) / int(sys.argv[2])) / (float(sys.argv[3]) / int(sys.argv[4])):.0f}')" \
        "$cpu" "$COOKBOOK_REQUESTS" "$batch_cpu" "$REQUESTS")
    echo "" | tee -a "$out/report.md"
    echo "runner CPU per request: ${ratio}× the library's W2 (target ≤ 1.5×); the cookbook script's is ${cookbook_ratio}× the runner's (target ≥ 30×)" | tee -a "$out/report.md"
else
    why=()
    [[ -n $cookbook ]] || why+=("no copy of the script (see third_party/README.md)")
    [[ -x $venv_python ]] || why+=("no venv (scripts/batch-bench-venv.sh)")
    echo "| cookbook api_request_parallel_processor.py | not run: ${why[*]} | | | | | |" | tee -a "$out/report.md"
    echo "" | tee -a "$out/report.md"
    echo "runner CPU per request: ${ratio}× the library's W2 (target ≤ 1.5×)" | tee -a "$out/report.md"
fi

# The memory bound: a MEMORY_LINES input whose every line is already answered in the output.
python3 "$here/gen.py" "$MEMORY_LINES" > "$out/big.jsonl"
python3 - "$out/big.jsonl" "$out/big-out.jsonl" <<'PY'
import json, sys
with open(sys.argv[1]) as src, open(sys.argv[2], "w") as dst:
    for i, line in enumerate(src):
        cid = json.loads(line)["custom_id"]
        dst.write(json.dumps({"id": f"batch_req_{i}", "custom_id": cid, "response": {"status_code": 200, "request_id": "",
                  "body": {"model": "gpt-4o-mini", "usage": {"prompt_tokens": 10, "completion_tokens": 5}}}, "error": None},
                  separators=(",", ":")) + "\n")
PY
read -r wall cpu rss code <<< "$(measure "$mamba" batch "$out/big.jsonl" -o "$out/big-out.jsonl" --base-url "$base_url" --quiet --json)"
echo "memory bound: $MEMORY_LINES lines (all done, streamed and skipped): peak RSS $((rss / 1024)) MiB, ${wall} s, exit $code" | tee -a "$out/report.md"
# And the same input sent in full with nothing done yet, first 0 lines: checked and planned only.
read -r wall cpu rss code <<< "$(measure "$mamba" batch "$out/big.jsonl" -o "$out/big-dry.jsonl" --base-url "$base_url" --dry-run --json)"
echo "memory bound: $MEMORY_LINES lines, --dry-run (every line checked, ids deduplicated): peak RSS $((rss / 1024)) MiB, ${wall} s" | tee -a "$out/report.md"
echo "raw: $out" >&2
