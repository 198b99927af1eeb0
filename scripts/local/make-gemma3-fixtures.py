#!/usr/bin/env python3
"""Golden token ids and greedy continuations of llama.cpp on Gemma 3 270M, for mamba-local.

Usage: ~/.cache/mamba-peers/venv/bin/python scripts/local/make-gemma3-fixtures.py MODEL.gguf OUT.json
MODEL.gguf is gemma-3-270m-q4_k_m.gguf (`mamba-llm pull gemma3-270m` puts it in the mamba
cache). The file has no chat template (it is the pretrained model), so the cases are plain
text: each tokenized with special tokens and no BOS (what `LocalBackend::tokenize` gives), then
BOS + those tokens continued greedily (argmax) until an end-of-generation token or 32 tokens.
"""
import hashlib
import json
import sys

import llama_cpp
import numpy as np

# Hard texts for the SentencePiece-style (`llama`) tokenizer: spaces runs, newlines, digits,
# accents, CJK, emoji, byte fallback, Gemma's control tokens inside text, a leading space.
TEXTS = [
    "Hello world",
    " leading space",
    "What is the capital of France?",
    "The year 2024 had 366 days; pi is 3.14159 and 1,000,000 > 999.",
    "I'm sure you'll see they've done it, haven't they?",
    "multiple    spaces   between     words",
    "\ttabs\tand\t\tmore tabs\t",
    "line one\nline two\n\n\nline five\r\nwindows line",
    "trailing spaces   ",
    "Café crème brûlée, naïve façade, Ångström, Dvořák",
    "Emoji: 👋🏽 🎉🚀 👨‍👩‍👧‍👦 ❤️",
    "CJK: 日本語のテキスト、中文文本，한국어 텍스트",
    "Greek αβγ δέλτα and Cyrillic Привет, мир!",
    "<start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\n",
    "inline <end_of_turn> control<bos>tokens",
    'code: fn main() { println!("{}", x + 1); } // done',
    "URL https://example.com/path?q=1&b=2#frag and user@mail.org",
    "numbers 1234567890, fractions ½ ⅓, superscript x²",
    "$$$ !!! ??? ... --- ___ ***",
    "Zero-width a\u200bb, no-break\u00a0space",
    "",
    "  \n  ",
]
PROMPTS = [
    "The capital of France is",
    "Once upon a time, there was a",
    "def fibonacci(n):\n",
    "The three primary colors are",
]
MAX_TOKENS = 32


def last_logits(llm):
    """The logits of the last evaluated token (only that row is computed without logits_all)."""
    return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),))


def main() -> None:
    model, out = sys.argv[1], sys.argv[2]
    with open(model, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    llm = llama_cpp.Llama(model_path=model, n_ctx=512, n_threads=2, n_batch=512, verbose=False)
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    bos = llama_cpp.llama_vocab_bos(vocab)
    tokens = [{"text": t, "ids": llm.tokenize(t.encode("utf-8"), add_bos=False, special=True)} for t in TEXTS]
    answers = []
    for text in PROMPTS:
        ids = [bos] + llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        llm.reset()
        llm.eval(ids)
        answer, finish = [], "length"
        for _ in range(MAX_TOKENS):
            token = int(np.argmax(last_logits(llm)))
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                finish = "stop"
                break
            answer.append(token)
            llm.eval([token])
        text_out = llm.detokenize(answer).decode("utf-8", errors="replace")
        answers.append({"prompt": text, "prompt_ids": ids, "answer_ids": answer, "answer": text_out,
                        "finish_reason": finish})
        print(repr(text), "->", repr(text_out))
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"model_sha256": sha,
                   "made_with": f"llama-cpp-python {llama_cpp.__version__}: tokenize(add_bos=False, special=True); "
                                "BOS + prompt, argmax, 2 threads",
                   "max_tokens": MAX_TOKENS, "tokens": tokens, "answers": answers},
                  f, ensure_ascii=False, indent=1)
    print(f"{len(tokens)} texts and {len(answers)} answers written to {out}")


if __name__ == "__main__":
    main()
