#!/usr/bin/env python3
"""Greedy answers of llama.cpp (llama-cpp-python) for mamba-local's agreement test.

Usage: ~/.cache/mamba-peers/venv/bin/python scripts/local/make-greedy-fixtures.py MODEL.gguf OUT.json
Each case renders the GGUF's own chat template (Jinja, add_generation_prompt), tokenizes it with
special tokens, then picks the argmax token until an end-of-generation token or 64 tokens.
"""
import hashlib
import json
import sys

import jinja2
import llama_cpp
import numpy as np

CASES = [
    [{"role": "system", "content": "You are a helpful AI assistant."},
     {"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "Write a short story about a cat who learns to fly."}],
    [{"role": "user", "content": "List three colors."}],
]
MAX_TOKENS = 64


def last_logits(llm):
    """The logits of the last evaluated token (only that row is computed without logits_all)."""
    return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),))


def main() -> None:
    model, out = sys.argv[1], sys.argv[2]
    with open(model, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    llm = llama_cpp.Llama(model_path=model, n_ctx=1024, n_threads=2, n_batch=512, verbose=False)
    template = jinja2.Environment().from_string(llm.metadata["tokenizer.chat_template"])
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    results = []
    for messages in CASES:
        prompt = template.render(messages=messages, add_generation_prompt=True)
        ids = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        llm.reset()
        llm.eval(ids)
        answer = []
        finish = "length"
        for _ in range(MAX_TOKENS):
            logits = last_logits(llm)
            token = int(np.argmax(logits))
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                finish = "stop"
                break
            answer.append(token)
            llm.eval([token])
        text = llm.detokenize(answer).decode("utf-8", errors="replace")
        results.append({"messages": messages, "prompt": prompt, "prompt_ids": ids, "answer_ids": answer,
                        "answer": text, "finish_reason": finish})
        print(repr(text))
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"model_sha256": sha, "made_with": f"llama-cpp-python {llama_cpp.__version__}, argmax, 2 threads",
                   "max_tokens": MAX_TOKENS, "cases": results}, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()
