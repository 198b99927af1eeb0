#!/usr/bin/env bash
# `mamba-llm sql` benchmark (issue 28): `llm()` over ROWS rows (default 100,000) against
# ../shared/bench's mock-server (non-streamed answers, no latency), server pinned to SERVER_CPU
# (0), client to CLIENT_CPU (1), as the harness runs them; beside it, in the same run,
# `mamba-llm batch` on the same prompts at the same concurrency (the issue's target: sql at
# least 0.8x batch's rate). Reported: rows/s, client CPU per row (user+sys of the whole
# process: start-up, planning, reading Parquet and writing Parquet included), peak RSS. Then the
# memory bound: MEMORY_ROWS (1,000,000) rows through llm(), streamed to a Parquet file.
#
#   bench/sql/run.sh
#   ROWS=20000 MEMORY_ROWS=200000 NO_BUILD=1 bench/sql/run.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
ROWS=${ROWS:-100000}
CONCURRENCY=${CONCURRENCY:-256}
MEMORY_ROWS=${MEMORY_ROWS:-1000000}
out=${OUT:-${TMPDIR:-/tmp}/mamba-sql-runs/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"

bench_build sql
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
bench_start_mock "$SERVER_CPU"
conn=(--base-url "$base_url" -m gpt-4o-mini --retries 0)

{
    bench_machine
    echo "loadavg: $(cat /proc/loadavg)"
    echo "server: mock-server on CPU $SERVER_CPU; client on CPU $CLIENT_CPU; $ROWS rows at concurrency $CONCURRENCY"
} | tee "$out/machine.txt"

# The same prompts for both: bench/batch/gen.py's lines, and a Parquet table of them.
python3 "$root/bench/batch/gen.py" "$ROWS" > "$out/batch-input.jsonl"
bench_prompts 0 "$ROWS" "$out/prompts.parquet"

measure() { bench_measure "$CLIENT_CPU" "$@"; }
row() { # name rows wall cpu rss exit
    python3 -c "
import sys
name, n, wall, cpu, rss, code = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
print(f'| {name} | {n:,} | {n / wall:,.0f} | {cpu / n * 1e6:,.1f} | {rss / 1024:,.1f} | {wall:.2f} | {code} |')
" "$@"
}

echo "| client | rows | rows/s | client CPU per row (µs) | peak RSS (MiB) | wall (s) | exit |" | tee "$out/report.md"
echo "|---|---|---|---|---|---|---|" | tee -a "$out/report.md"
query="SELECT id, llm(prompt, '{\"max_tokens\": 16}') AS answer FROM '$out/prompts.parquet'"
for run in 1 2; do
    rm -f "$out/sql-out.parquet" "$out/batch-out.jsonl"
    read -r wall cpu rss code <<< "$(measure "$mamba" sql "${conn[@]}" --concurrency "$CONCURRENCY" -o "$out/sql-out.parquet" "$query")"
    row "mamba-llm sql, llm() (run $run)" "$ROWS" "$wall" "$cpu" "$rss" "$code" | tee -a "$out/report.md"
    sql_wall=$wall
    read -r wall cpu rss code <<< "$(measure "$mamba" batch "$out/batch-input.jsonl" -o "$out/batch-out.jsonl" --base-url "$base_url" \
        --concurrency "$CONCURRENCY" --quiet --json)"
    row "mamba-llm batch (run $run)" "$ROWS" "$wall" "$cpu" "$rss" "$code" | tee -a "$out/report.md"
    echo "$sql_wall $wall" >> "$out/walls.txt"
done
check=$("$mamba" sql "${conn[@]}" "SELECT count(*) AS n FROM '$out/sql-out.parquet' WHERE answer IS NOT NULL" 2> /dev/null | grep -Eo '[0-9]+' | tail -1)
[[ $check -eq $ROWS ]] || echo "sql wrote $check answered rows of $ROWS" >&2
python3 -c "
import sys
pairs = [tuple(map(float, l.split())) for l in open(sys.argv[1])]
print('sql rate / batch rate per run: ' + ', '.join(f'{b / s:.2f}x' for s, b in pairs) + ' (target >= 0.8x)')
" "$out/walls.txt" | tee -a "$out/report.md"

# The memory bound: MEMORY_ROWS rows, every one sent, streamed to Parquet.
bench_prompts 0 "$MEMORY_ROWS" "$out/big.parquet"
read -r wall cpu rss code <<< "$(measure "$mamba" sql "${conn[@]}" --concurrency "$CONCURRENCY" -o "$out/big-out.parquet" \
    "SELECT id, llm(prompt, '{\"max_tokens\": 16}') AS answer FROM '$out/big.parquet'")"
echo "memory bound: $MEMORY_ROWS rows through llm() to Parquet: peak RSS $((rss / 1024)) MiB, ${wall} s, exit $code" | tee -a "$out/report.md"
echo "raw: $out" >&2
