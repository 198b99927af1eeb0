"""`py-mamba`: the benchmark driver of the project's Python package, `mamba_backends`.

It drives `mamba_backends.OpenAICompatibleBackend` through its own `complete()` and
`stream()`, the same way the shared harness's `py-httpx-ref` driver drives the reference
(mamba-agents 0.1.7's backend of the same name), and follows the harness's driver contract
(the shared benchmark folder's README.md, "Driver contract"):

    driver.py --base-url http://127.0.0.1:PORT/v1 --workload w1|w2|w3|w4 \
              --mode complete|stream --requests N --concurrency C --warmup W \
              [--chunks K] [--chunk-interval-ms MS]

One client (key `sk-bench`, default settings) is created before anything is measured; the
warm-up runs W requests, then the measured phase N requests with at most C in flight (C
workers taking from one counter) on one asyncio event loop; the last line of stdout is one
JSON object (requests, errors, seconds, req/s, chunks, CPU from getrusage, RSS); diagnostics
go to stderr; the exit status is 1 when a request failed.

The contract is implemented here, not imported: the project's benchmark runs on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from typing import Any, Dict, List, Optional

import mamba_backends

NAME = "py-mamba"
API_KEY = "sk-bench"
MODEL = "gpt-4o-mini"
MESSAGES: List[Dict[str, Any]] = [
    {"role": "system", "content": "You are a helpful assistant that answers concisely."},
    {"role": "user", "content": "Explain Rust's ownership model in one paragraph."},
]

_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def rss_kb() -> int:
    """The resident set size now, in KiB (-1 where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE_KB
    except (OSError, ValueError, IndexError):
        return -1


def arguments(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=NAME, description="The py-mamba benchmark driver (see the module doc).")
    p.add_argument("--base-url", required=True, help="the server's API root, ending in /v1")
    p.add_argument("--workload", default="adhoc", help="the workload's name, echoed in the result")
    p.add_argument("--mode", choices=["complete", "stream"], required=True)
    p.add_argument("--requests", type=int, required=True, help="requests of the measured phase")
    p.add_argument("--concurrency", type=int, default=1, help="requests in flight at most")
    p.add_argument("--warmup", type=int, default=0, help="requests before the measured phase")
    p.add_argument("--chunks", type=int, default=None, help="chunks every stream must deliver")
    p.add_argument("--chunk-interval-ms", type=int, default=0, help="informational: the server paces")
    args = p.parse_args(argv)
    args.base_url = args.base_url.rstrip("/")
    args.concurrency = max(1, args.concurrency)
    return args


class MambaPy:
    """One `OpenAICompatibleBackend` for the whole run."""

    def __init__(self, args: argparse.Namespace) -> None:
        # Default settings, except that streams do not ask for usage: our default adds
        # `stream_options: {"include_usage": true}`, and the contract sends the conversation
        # with no other parameters (the reference cannot take stream_options), so every driver
        # asks the server for the same events.
        self.backend = mamba_backends.OpenAICompatibleBackend(
            MODEL, base_url=args.base_url, api_key=API_KEY, include_usage=False
        )
        self.note: Optional[str] = None

    async def complete(self) -> None:
        r = await self.backend.complete(MESSAGES)
        if not r.content:
            raise RuntimeError("no content")

    async def stream(self) -> int:
        items = 0
        async for _chunk in self.backend.stream(MESSAGES):
            items += 1
        # The backend yields one StreamChunk per server event that carried a choice (the
        # role event, the content events and the finish event: the chunks the contract
        # counts), then one last chunk that stands for the end of the stream (as the
        # reference yields one for `data: [DONE]`). That last one is not an event with
        # choices: it is not counted.
        return items - 1 if items else 0

    async def aclose(self) -> None:
        await self.backend.close()


class Tally:
    def __init__(self) -> None:
        self.ok = 0
        self.errors = 0
        self.chunks = 0
        self.first_error: Optional[str] = None


async def run_phase(driver: MambaPy, args: argparse.Namespace, total: int) -> Tally:
    """`total` requests, at most `args.concurrency` in flight, workers sharing one counter."""
    tally = Tally()
    taken = 0

    async def worker() -> None:
        nonlocal taken
        while taken < total:
            taken += 1
            try:
                if args.mode == "complete":
                    await driver.complete()
                    n = 0
                else:
                    n = await driver.stream()
                    if args.chunks is not None and n != args.chunks:
                        raise RuntimeError(f"stream delivered {n} chunks, expected {args.chunks}")
                tally.ok += 1
                tally.chunks += n
            except Exception as e:  # every failure is counted, the first one reported
                tally.errors += 1
                if tally.first_error is None:
                    tally.first_error = f"{type(e).__name__}: {e}"

    await asyncio.gather(*(worker() for _ in range(min(args.concurrency, max(total, 1)))))
    return tally


async def sample_rss(peak: List[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], rss_kb())
        try:
            await asyncio.wait_for(stop.wait(), 0.02)
        except asyncio.TimeoutError:
            pass


async def run(args: argparse.Namespace) -> int:
    driver = MambaPy(args)
    if args.warmup > 0:
        warm = await run_phase(driver, args, args.warmup)
        if warm.errors:
            print(f"{NAME}: warm-up: {warm.errors} errors, first: {warm.first_error}", file=sys.stderr)
    rss_start = rss_kb()
    peak = [rss_start]
    stop = asyncio.Event()
    sampler = asyncio.ensure_future(sample_rss(peak, stop))
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    tally = await run_phase(driver, args, args.requests)
    seconds = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    stop.set()
    await sampler
    user, system = r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime
    line: Dict[str, Any] = {
        "driver": NAME,
        "workload": args.workload,
        "mode": args.mode,
        "requests": tally.ok,
        "errors": tally.errors,
        "concurrency": args.concurrency,
        "seconds": seconds,
        "req_per_s": tally.ok / seconds if seconds > 0 else 0.0,
        "chunks": tally.chunks,
        "chunks_per_s": tally.chunks / seconds if seconds > 0 else 0.0,
        "cpu_user_s": user,
        "cpu_sys_s": system,
        "cpu_s": user + system,
        "max_rss_kb": max(r1.ru_maxrss, peak[0]),
        "rss_start_kb": rss_start,
    }
    if driver.note:
        line["note"] = driver.note
    if tally.first_error:
        print(f"{NAME}: {tally.errors} errors, first: {tally.first_error}", file=sys.stderr)
    await driver.aclose()
    print(json.dumps(line), flush=True)
    return 1 if tally.errors else 0


def main() -> None:
    sys.exit(asyncio.run(run(arguments())))


if __name__ == "__main__":
    main()
