# shellcheck shell=bash
# What bench/sql/run.sh and bench/ballista/run.sh share: where ../shared/bench is, the harness's
# mock-server and mamba-llm built, the mock started on its own CPU, an environment with no proxy
# in the way, the machine's description and the prompt tables.
# Source it after `set -euo pipefail` and after setting `root` (the repository) and `out` (the
# run's folder).

# ../shared/bench beside the repository (SHARED_BENCH overrides).
shared=${SHARED_BENCH:-$root/../shared/bench}
[[ -d $shared ]] || shared=/work/shared/bench
mock_target=${MOCK_TARGET_DIR:-${TMPDIR:-/tmp}/mamba-bench-target}

# Builds the harness's mock-server (release, in its own target folder).
bench_build_mock() {
    (cd "$shared" && CARGO_TARGET_DIR=$mock_target cargo build --release --locked --quiet -p mock-server)
}

# bench_build FEATURE: unless NO_BUILD is set, builds the mock-server and a release mamba-llm with
# FEATURE; sets `mamba` to that binary (MAMBA_LLM overrides).
bench_build() {
    if [[ -z ${NO_BUILD:-} ]]; then
        bench_build_mock
        (cd "$root" && cargo build --release --quiet -p mamba-cli --features "$1" --bin mamba-llm)
    fi
    mamba=${MAMBA_LLM:-$root/target/release/mamba-llm}
}

# The first lines of a run's machine.txt: when, and on which CPU.
bench_machine() {
    echo "date_utc: $(date -u +%FT%TZ)"
    echo "nproc: $(nproc)  cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
}

# bench_prompts FIRST COUNT FILE: a Parquet table (id, prompt) of COUNT distinct prompts numbered
# from FIRST, written by `mamba-llm sql` (needs `mamba` and the `conn` flags).
bench_prompts() {
    "$mamba" sql "${conn[@]}" -o "$3" \
        "SELECT value AS id, 'Say something about the number ' || CAST(value AS VARCHAR) || '.' AS prompt FROM generate_series($1, $(($1 + $2 - 1)))" 2> /dev/null
}

# Loopback only, whatever proxy the shell has.
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy

# bench_start_mock CPU [mock-server flags...]: starts the mock pinned to CPU, waits for its
# address, sets `base_url` and `mock_pid`, and stops it when the script exits.
bench_start_mock() {
    local cpu=$1
    shift
    taskset -c "$cpu" "$mock_target/release/mock-server" --port 0 --addr-file "$out/addr" "$@" > "$out/server.log" 2>&1 &
    mock_pid=$!
    trap 'kill "$mock_pid" 2>/dev/null || true' EXIT
    for _ in $(seq 50); do [[ -s $out/addr ]] && break; sleep 0.1; done
    [[ -s $out/addr ]] || { echo "mock-server did not start" >&2; exit 1; }
    base_url="http://$(cat "$out/addr")/v1"
}

# bench_measure CPU COMMAND...: runs COMMAND pinned to CPU, its stdout to $out/last.stdout and
# stderr appended to $out/last.stderr; prints "wall_s cpu_s maxrss_kib exit" (cpu: user+sys).
bench_measure() {
    local cpu=$1
    shift
    /usr/bin/time -f "%e %U %S %M %x" -o "$out/time.txt" taskset -c "$cpu" "$@" > "$out/last.stdout" 2>> "$out/last.stderr" || true
    awk '{printf "%s %.3f %s %s\n", $1, $2 + $3, $4, $5}' "$out/time.txt"
}
