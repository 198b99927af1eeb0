#!/usr/bin/env bash
# What each parsing layer buys (issue 23), in callgrind instruction counts: repeatable on a
# noisy machine, unlike CPU time. Builds this checkout with switch.patch applied (a measurement
# build only: the shipped code has no switch), then counts, for each setting of
# MAMBA_PARSE_LAYERS (all, noshape, nomembers, nopiece, noscan, serde):
#
#   W3-like: one stream of 1000 content chunks (mamba-bench-driver --workload w3 against the
#            harness's mock-server --chunks 1000), per stream;
#   the load generator: mamba_loadtest's run (loadgen-driver, 16 tokens in and out, at most 16
#            in flight) against mock-server --chunks 16 as bench/loadtest/run.sh, per request.
#
# Each figure is the difference of two runs (6 and 1 streams; 1,100 and 100 requests) divided by
# the difference in work, so start-up and the first connection cancel out.
#
#   bench/parse-layers/run.sh            # needs valgrind; about 5 min of builds, 1 min of runs
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
shared=${SHARED_BENCH:-$root/../shared/bench}
[[ -d $shared ]] || shared=/work/shared/bench
work=${WORK:-${TMPDIR:-/tmp}/mamba-parse-layers}
target=${MEASURE_TARGET_DIR:-$work/target}
mock_target=${MOCK_TARGET_DIR:-${TMPDIR:-/tmp}/mamba-bench-target}
nice=(nice -n "${NICE:-5}")
LAYERS=${LAYERS:-"all noshape nomembers nopiece noscan serde"}

rm -rf "$work/src" && mkdir -p "$work/src" "$work/out"
(cd "$root" && git archive HEAD) | tar -x -C "$work/src"
(cd "$work/src" && patch -p1 --quiet < "$here/switch.patch")
if [[ -z ${NO_BUILD:-} ]]; then
    (cd "$shared" && CARGO_TARGET_DIR=$mock_target "${nice[@]}" cargo build --release --locked --quiet -p mock-server)
    (cd "$work/src" && CARGO_TARGET_DIR=$target "${nice[@]}" cargo build --release --quiet -p mamba-bench \
        --bin mamba-bench-driver --bin loadgen-driver)
fi

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
serve() { # chunks, addr file
    "$mock_target/release/mock-server" --port 0 --addr-file "$2" --chunks "$1" > "$2.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 50); do [[ -s $2 ]] && break; sleep 0.1; done
    [[ -s $2 ]] || { echo "mock-server did not start" >&2; exit 1; }
}
rm -f "$work/out/w3.addr" "$work/out/lg.addr"
serve 1000 "$work/out/w3.addr"
serve 16 "$work/out/lg.addr"
w3="http://$(cat "$work/out/w3.addr")/v1"
lg="http://$(cat "$work/out/lg.addr")/v1"

count() { # name, command…: the program's total instructions
    local name=$1; shift
    "${nice[@]}" valgrind --tool=callgrind --callgrind-out-file="$work/out/$name.cg" "$@" > "$work/out/$name.stdout" 2> "$work/out/$name.err"
    grep -E '^(summary|totals):' "$work/out/$name.cg" | head -1 | awk '{print $2}'
}
printf '| layers | W3: instructions per stream of 1000 chunks | load generator: instructions per request |\n|---|--:|--:|\n'
for layers in $LAYERS; do
    export MAMBA_PARSE_LAYERS=$layers
    a=$(count "w3-$layers-1" "$target/release/mamba-bench-driver" --base-url "$w3" --workload w3 --mode stream --requests 1 --concurrency 1 --warmup 0 --chunks 1000)
    b=$(count "w3-$layers-6" "$target/release/mamba-bench-driver" --base-url "$w3" --workload w3 --mode stream --requests 6 --concurrency 1 --warmup 0 --chunks 1000)
    c=$(count "lg-$layers-100" "$target/release/loadgen-driver" --base-url "$lg" --requests 100 --max-concurrency 16)
    d=$(count "lg-$layers-1100" "$target/release/loadgen-driver" --base-url "$lg" --requests 1100 --max-concurrency 16)
    printf '| %s | %d | %d |\n' "$layers" $(((b - a) / 5)) $(((d - c) / 1000))
done
