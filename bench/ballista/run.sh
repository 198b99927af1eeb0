#!/usr/bin/env bash
# `mamba-llm sql --ballista` throughput (issue 28): the same llm() query over ROWS rows (a folder
# of FILES Parquet files) run four ways in one run of this script:
#   - `mamba-llm sql` in one process (no cluster), --concurrency C;
#   - `sql --ballista` with 1 executor, then with 2 executors (each --concurrency C, 2 task
#     slots), a scheduler beside them.
# The server is ../shared/bench's mock-server with LATENCY_MS (default 50) before each answer:
# a server that takes time per request, as a model does, so rows/s is bounded by the requests in
# flight, C per process; a second executor brings C more. Client-side CPU (user+sys of the
# client, the scheduler and the executors, from /proc) is reported per row.
#
#   bench/ballista/run.sh                       # builds mamba-llm with --features ballista
#   MAMBA_LLM=target/debug/mamba-llm NO_BUILD=1 ROWS=20000 bench/ballista/run.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
ROWS=${ROWS:-20000}
FILES=${FILES:-8}
CONCURRENCY=${CONCURRENCY:-16}
LATENCY_MS=${LATENCY_MS:-50}
out=${OUT:-${TMPDIR:-/tmp}/mamba-ballista-runs/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"

bench_build ballista
unset MAMBA_BASE_URL OPENAI_BASE_URL
cluster_pids=()
bench_start_mock 0 --latency-ms "$LATENCY_MS"
trap 'kill "$mock_pid" "${cluster_pids[@]}" 2>/dev/null || true' EXIT
conn=(--base-url "$base_url" -m gpt-4o-mini --retries 0)

{
    bench_machine
    echo "binary: $mamba"
    echo "server: mock-server on CPU 0, ${LATENCY_MS} ms per answer; clients on CPU 1; $ROWS rows in $FILES files; concurrency $CONCURRENCY per process"
} | tee "$out/machine.txt"

# The input: FILES Parquet files of distinct prompts.
mkdir -p "$out/prompts"
per=$((ROWS / FILES))
for f in $(seq 0 $((FILES - 1))); do
    bench_prompts $((f * per)) "$per" "$out/prompts/part-$f.parquet"
done
rows=$((per * FILES))
query="SELECT id, llm(prompt, '{\"max_tokens\": 16}') AS answer FROM prompts"

cpu_ticks() { # the user+sys clock ticks of the given pids
    local total=0 p
    for p in "$@"; do
        [[ -r /proc/$p/stat ]] && total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    echo "$total"
}
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (echo > "/dev/tcp/127.0.0.1/$1") 2> /dev/null && return; sleep 0.05; done; echo "nothing on port $1" >&2; exit 1; }
row() { # name wall cpu_s
    python3 -c "
import sys
name, wall, cpu, n = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
print(f'| {name} | {n:,} | {n / wall:,.0f} | {cpu / n * 1e6:,.0f} | {wall:.2f} |')
" "$1" "$2" "$3" "$rows"
}

echo "| run | rows | rows/s | client CPU per row (µs) | wall (s) |" | tee "$out/report.md"
echo "|---|---|---|---|---|" | tee -a "$out/report.md"

# One process.
read -r wall cpu _ _ <<< "$(bench_measure 1 "$mamba" sql "${conn[@]}" --concurrency "$CONCURRENCY" --table "prompts=$out/prompts" \
    -o "$out/local.parquet" "$query")"
row "one process (mamba-llm sql)" "$wall" "$cpu" | tee -a "$out/report.md"

for executors in 1 2; do
    sched_port=$(port)
    taskset -c 1 "$mamba" ballista scheduler --bind "127.0.0.1:$sched_port" > "$out/scheduler-$executors.log" 2>&1 &
    cluster=($!)
    cluster_pids+=($!)
    wait_port "$sched_port"
    for e in $(seq "$executors"); do
        flight=$(port)
        MAMBA_BASE_URL=$base_url MAMBA_MODEL=gpt-4o-mini taskset -c 1 "$mamba" ballista executor --scheduler "127.0.0.1:$sched_port" \
            --flight-port "$flight" --grpc-port "$(port)" --vcores 2 --concurrency "$CONCURRENCY" --external-host 127.0.0.1 \
            > "$out/executor-$executors-$e.log" 2>&1 &
        cluster+=($!)
        cluster_pids+=($!)
        wait_port "$flight"
    done
    # Partitions: every executor's two task slots busy.
    parts=$((executors * 2))
    url="df://127.0.0.1:$sched_port"
    # A warm-up query, so sessions and connections exist before the timed one.
    "$mamba" sql --ballista "$url" "SELECT 1" > /dev/null 2>&1
    before=$(cpu_ticks "${cluster[@]}")
    read -r wall client_cpu _ _ <<< "$(bench_measure 1 "$mamba" sql --ballista "$url" --partitions "$parts" \
        --table "prompts=$out/prompts" -o "$out/cluster-$executors.parquet" "$query")"
    after=$(cpu_ticks "${cluster[@]}")
    cpu=$(python3 -c "import os, sys; print($client_cpu + ($after - $before) / os.sysconf('SC_CLK_TCK'))")
    row "Ballista, $executors executor(s), $parts partitions" "$wall" "$cpu" | tee -a "$out/report.md"
    for p in "${cluster[@]}"; do kill "$p" 2>/dev/null || true; done
    wait "${cluster[@]}" 2>/dev/null || true
done

# Every run answered every row, the same answers as the one-process run.
for f in local cluster-1 cluster-2; do
    n=$("$mamba" sql "${conn[@]}" "SELECT count(*) AS n FROM '$out/$f.parquet' WHERE answer IS NOT NULL" 2> /dev/null | grep -Eo '[0-9]+' | tail -1)
    [[ $n -eq $rows ]] || echo "$f: $n answered rows of $rows" >&2
done
grep -h 'executor stopped after' "$out"/executor-*.log | sed 's/^/  /' | tee -a "$out/report.md"
echo "raw: $out" >&2
