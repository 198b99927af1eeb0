#!/usr/bin/env python3
"""Turns bench/loadtest/run.sh's results.jsonl into a markdown table and each client's highest
sustained rate: no failure, at least 95 % of the rate completed per second, and the median TTFT
within 1 ms of the truth (the lowest TTFT any client measured at the light-load point). The
looser "own" column compares each client with its own light-load TTFT instead."""

import json
import sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
truths = {r["client"]: r["median_ttft_ms"] for r in rows if r.get("truth_point")}
truth = min(truths.values())
light = next(r["request_rate"] for r in rows if r.get("truth_point"))
print(f"truth: the lowest median TTFT at {light:g} req/s = {truth:.3f} ms ("
      + ", ".join(f"{c} {t:.3f}" for c, t in truths.items()) + f"); limit {truth + 1:.3f} ms\n")
print("| client | rate asked | completed/s | median TTFT (ms) | p99 TTFT (ms) | "
      "client CPU/req (µs) | client CPU | server CPU | failed | within 1 ms of truth | of own light-load TTFT |")
print("|---|--:|--:|--:|--:|--:|--:|--:|--:|---|---|")
best, best_own = {}, {}
for r in rows:
    if r.get("truth_point"):
        continue
    c = r["client"]
    kept = r["failed"] == 0 and r["request_throughput"] >= 0.95 * r["request_rate"]
    ok = kept and r["median_ttft_ms"] <= truth + 1
    own = kept and r["median_ttft_ms"] <= truths[c] + 1
    best[c] = max(best.get(c, 0), r["request_rate"] if ok else 0)
    best_own[c] = max(best_own.get(c, 0), r["request_rate"] if own else 0)
    print(f"| {c} | {r['request_rate']:,.0f} | {r['request_throughput']:,.0f} | {r['median_ttft_ms']:.3f} | "
          f"{r['p99_ttft_ms']:.3f} | {r['client_cpu_per_request_ms'] * 1000:.1f} | "
          f"{r['client_cpu_busy'] * 100:.0f}% | {r['server_cpu_busy'] * 100:.0f}% | {r['failed']} | "
          f"{'yes' if ok else 'no'} | {'yes' if own else 'no'} |")
print()
for c in best:
    print(f"- **{c}**: highest sustained rate {best[c]:,.0f} requests/s within 1 ms of the truth; "
          f"{best_own[c]:,.0f} within 1 ms of its own light-load TTFT ({truths[c]:.3f} ms)")
