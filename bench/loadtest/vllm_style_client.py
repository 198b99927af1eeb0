#!/usr/bin/env python3
"""A load generator written the way vLLM's benchmark client is (`vllm bench serve`:
vllm/benchmarks/serve.py and vllm/benchmarks/lib/endpoint_request_func.py), to compare with
`mamba-llm bench` on the same server and core.

Same shape as vLLM's: one aiohttp session with an unlimited connection pool; arrivals drawn
from numpy's gamma distribution, summed, scaled to last exactly n / rate, and awaited with
asyncio.sleep from the start time; one asyncio task per request; the request is a streamed
chat completion with `max_completion_tokens` and `stream_options.include_usage`; the body is
read with `iter_any()`, split into SSE messages on blank lines, each `data:` payload parsed
with json.loads and stamped with time.perf_counter(); TTFT at the first message with a
choice, ITL between such messages, latency at the last one; gc frozen after set-up.

Prints one JSON line: the rate asked and achieved, TTFT/ITL/E2EL statistics, failures and the
process's CPU time per request during the run.
"""

import argparse
import asyncio
import gc
import json
import random
import resource
import time

import aiohttp
import numpy as np

WORDS = (
    "the of and to in is was for on as with by at from his an are were which this be or has had "
    "not but first one their its new after who they two her she been other when there all during"
).split()


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def arrival_offsets(n, rate, burstiness, seed):
    if rate == float("inf"):
        return [0.0] * n
    rng = np.random.default_rng(seed)
    gaps = rng.gamma(shape=burstiness, scale=1.0 / (rate * burstiness), size=n)
    offsets = np.cumsum(gaps)
    offsets *= (n / rate) / offsets[-1]
    return offsets.tolist()


class Output:
    __slots__ = ("success", "ttft", "itl", "latency", "output_tokens", "error", "text")

    def __init__(self):
        self.success = False
        self.ttft = 0.0
        self.itl = []
        self.latency = 0.0
        self.output_tokens = 0
        self.error = ""
        self.text = ""


async def request(session, url, model, prompt, max_tokens):
    payload = {
        "model": model,
        "messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}],
        "max_completion_tokens": max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    headers = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench"}
    out = Output()
    st = time.perf_counter()
    last = st
    try:
        async with session.post(url=url, json=payload, headers=headers) as response:
            if response.status != 200:
                out.error = response.reason or str(response.status)
                return out
            first = False
            buffer = ""
            async for raw in response.content.iter_any():
                buffer += raw.decode("utf-8")
                while "\n\n" in buffer:
                    message, buffer = buffer.split("\n\n", 1)
                    message = message.strip()
                    if not message or message.startswith(":"):
                        continue
                    data = message.removeprefix("data: ")
                    if data == "[DONE]":
                        continue
                    now = time.perf_counter()
                    event = json.loads(data)
                    choices = event.get("choices")
                    if choices:
                        content = choices[0]["delta"].get("content")
                        if not first:
                            first = True
                            out.ttft = now - st
                        else:
                            out.itl.append(now - last)
                        out.text += content or ""
                        last = now
                    elif usage := event.get("usage"):
                        out.output_tokens = usage.get("completion_tokens")
            out.success = first
            if not first:
                out.error = "no chunk"
            out.latency = last - st
    except Exception as e:  # noqa: BLE001 - a benchmark records every failure
        out.error = repr(e)
    return out


async def main(args):
    url = args.base_url.rstrip("/") + "/chat/completions"
    rng = random.Random(args.seed)
    prompts = [" ".join(rng.choice(WORDS) for _ in range(args.input_len)) for _ in range(args.num_prompts)]
    offsets = arrival_offsets(args.num_prompts, args.request_rate, args.burstiness, args.seed)
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=60, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=6 * 3600)) as session:
        test = await request(session, url, args.model, prompts[0], args.output_len)
        if not test.success:
            raise SystemExit(f"test request failed: {test.error}")
        # As vLLM's --max-concurrency: a semaphore around each request; the clock starts
        # inside, after the wait for a slot.
        semaphore = asyncio.Semaphore(args.max_concurrency) if args.max_concurrency else None

        async def limited(prompt):
            if semaphore is None:
                return await request(session, url, args.model, prompt, args.output_len)
            async with semaphore:
                return await request(session, url, args.model, prompt, args.output_len)

        # As vLLM's --num-warmups: untimed requests all at once; their connections stay open.
        if args.num_warmups > 0:
            await asyncio.gather(*(limited(prompts[i % len(prompts)]) for i in range(args.num_warmups)))
        gc.collect()
        gc.freeze()
        cpu0 = cpu_seconds()
        start = time.perf_counter()
        tasks = []
        lags = []
        for prompt, offset in zip(prompts, offsets):
            if offset > 0:
                wait = start + offset - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
            lags.append(time.perf_counter() - start - offset)
            tasks.append(asyncio.create_task(limited(prompt)))
        outputs = await asyncio.gather(*tasks)
        duration = time.perf_counter() - start
        cpu = cpu_seconds() - cpu0
    ok = [o for o in outputs if o.success]
    ttfts = np.array([o.ttft for o in ok] or [0.0]) * 1000
    itls = np.array([x for o in ok for x in o.itl] or [0.0]) * 1000
    e2els = np.array([o.latency for o in ok] or [0.0]) * 1000
    errors = [o.error for o in outputs if not o.success]
    print(
        json.dumps(
            {
                "client": "python-vllm-style",
                "request_rate": args.request_rate,
                "num_prompts": args.num_prompts,
                "completed": len(ok),
                "failed": len(errors),
                "first_error": errors[0] if errors else None,
                "duration": duration,
                "request_throughput": len(ok) / duration,
                "median_ttft_ms": float(np.median(ttfts)),
                "mean_ttft_ms": float(np.mean(ttfts)),
                "p99_ttft_ms": float(np.percentile(ttfts, 99)),
                "median_itl_ms": float(np.median(itls)),
                "median_e2el_ms": float(np.median(e2els)),
                "schedule_lag_mean_ms": float(np.mean(lags)) * 1000,
                "client_cpu_per_request_ms": cpu * 1000 / len(outputs),
                "client_cpu_busy": cpu / duration,
            }
        )
    )


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base-url", required=True, help="ends in /v1")
    p.add_argument("--model", default="gpt-4o-mini")
    p.add_argument("--num-prompts", type=int, default=1000)
    p.add_argument("--request-rate", type=float, default=float("inf"))
    p.add_argument("--burstiness", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--input-len", type=int, default=16)
    p.add_argument("--output-len", type=int, default=16)
    p.add_argument("--num-warmups", type=int, default=0)
    p.add_argument("--max-concurrency", type=int, default=0)
    asyncio.run(main(p.parse_args()))
