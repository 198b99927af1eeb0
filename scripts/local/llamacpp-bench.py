#!/usr/bin/env python3
"""llama.cpp's side of the built-in engine's benchmark (see crates/mamba-local/examples/local-bench.rs).

Usage: ~/.cache/mamba-peers/venv/bin/python scripts/local/llamacpp-bench.py MODEL.gguf THREADS
Same prompts (the GGUF's chat template), same 64 greedy tokens past the natural end, same
measurements: warm load, time to first token, prompt and generation tokens/s, peak RSS.
One JSON line on stdout.
"""
import json
import sys
import time

import jinja2
import llama_cpp
import numpy as np

GENERATE = 64
FILLER = "The quick brown fox jumps over the lazy dog while the sun sets slowly behind the distant hills. "
SYSTEM = {"role": "system", "content": "You are a helpful AI assistant."}
SHORT = [SYSTEM, {"role": "user", "content": "What is the capital of France?"}]
LONG = [SYSTEM, {"role": "user", "content": FILLER * 16 + "What is the capital of France?"}]
# What both engines use when the GGUF has no chat template (a pretrained model such as Gemma 3 270M).
CHATML = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def last_logits(llm):
    """The logits of the last evaluated token (only that row is computed without logits_all)."""
    return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),))


def peak_rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def run(llm, template, messages):
    prompt = template.render(messages=messages, add_generation_prompt=True)
    # add_bos: a BOS when the model asks for one (tokenizer.ggml.add_bos_token), as our engine does.
    ids = llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
    llm.reset()
    start = time.perf_counter()
    llm.eval(ids)
    token = int(np.argmax(last_logits(llm)))
    llm.detokenize([token])
    ttft = time.perf_counter() - start
    out = [token]
    for _ in range(GENERATE - 1):
        llm.eval([token])
        token = int(np.argmax(last_logits(llm)))
        llm.detokenize([token])
        out.append(token)
    total = time.perf_counter() - start
    return len(ids), ttft, (GENERATE - 1) / (total - ttft), out


def main() -> None:
    model, threads = sys.argv[1], int(sys.argv[2])
    started = time.perf_counter()
    llm = llama_cpp.Llama(model_path=model, n_ctx=2048, n_batch=512, n_threads=threads, n_threads_batch=threads, verbose=False)
    load = time.perf_counter() - started
    template = jinja2.Environment().from_string(llm.metadata.get("tokenizer.chat_template", CHATML))
    run(llm, template, SHORT)
    short_tokens, short_ttft, short_gen, out = run(llm, template, SHORT)
    long_tokens, long_ttft, long_gen, _ = run(llm, template, LONG)
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    answer = []
    for t in out:
        if llama_cpp.llama_vocab_is_eog(vocab, t):
            break
        answer.append(t)
    print(json.dumps({
        "engine": "llama.cpp (llama-cpp-python %s)" % llama_cpp.__version__,
        "threads": threads,
        "load_s": load,
        "short_prompt_tokens": short_tokens,
        "short_ttft_s": short_ttft,
        "short_pp_tps": short_tokens / short_ttft,
        "short_gen_tps": short_gen,
        "long_prompt_tokens": long_tokens,
        "long_ttft_s": long_ttft,
        "long_pp_tps": long_tokens / long_ttft,
        "long_gen_tps": long_gen,
        "peak_rss_mib": peak_rss_mib(),
        "answer": llm.detokenize(answer).decode("utf-8", errors="replace"),
    }, ensure_ascii=False))


if __name__ == "__main__":
    main()
