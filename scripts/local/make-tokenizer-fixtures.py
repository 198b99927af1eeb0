#!/usr/bin/env python3
"""Golden token ids for mamba-local's tokenizer, made with llama.cpp (llama-cpp-python).

Usage: ~/.cache/mamba-peers/venv/bin/python scripts/local/make-tokenizer-fixtures.py MODEL.gguf OUT.json
(the venv comes from scripts/peers/install-llamacpp.sh). Only the vocabulary is loaded.
"""
import hashlib
import json
import sys

import llama_cpp

TEXTS = [
    "Hello world",
    "What is the capital of France?",
    "The year 2024 had 366 days; pi is 3.14159 and 1,000,000 > 999.",
    "I'm sure you'll see they've done it, haven't they? We'd go. She's here.",
    "IT'S LOUD, DON'T SHOUT; YOU'LL SEE",
    "multiple    spaces   between     words",
    "\ttabs\tand\t\tmore tabs\t",
    "line one\nline two\n\n\nline five\r\nwindows line",
    "trailing spaces   ",
    "   leading spaces",
    "Café crème brûlée, naïve façade, Ångström, Dvořák",
    "Emoji: 👋🏽 🎉🚀 👨‍👩‍👧‍👦 ❤️",
    "CJK: 日本語のテキスト、中文文本，한국어 텍스트",
    "Greek αβγ δέλτα and Cyrillic Привет, мир!",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "inline <|endoftext|> special tokens<|im_end|>done<|im_start|>",
    'code: fn main() { println!("{}", x + 1); } // done',
    "URL https://example.com/path?q=1&b=2#frag and user@mail.org",
    "numbers 1234567890, Arabic-Indic ١٢٣, fractions ½ ⅓, superscript x²",
    "mixed\t \n \t\n  end",
    "",
    "$$$ !!! ??? ... --- ___ ***",
    "  \n  ",
    "a'b'c 're 've 'll 'd 'm 's 't",
    "Zero-width a\u200bb, no-break\u00a0space, ideographic\u3000space",
    "<|im_start|>system\nYou are a helpful AI assistant.<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
]


def main() -> None:
    model, out = sys.argv[1], sys.argv[2]
    with open(model, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    llm = llama_cpp.Llama(model_path=model, vocab_only=True, verbose=False)
    cases = []
    for text in TEXTS:
        ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        cases.append({"text": text, "ids": ids})
    with open(out, "w", encoding="utf-8") as f:
        json.dump(
            {
                "model_sha256": sha,
                "made_with": f"llama-cpp-python {llama_cpp.__version__}: Llama(vocab_only=True).tokenize(text, add_bos=False, special=True)",
                "cases": cases,
            },
            f,
            ensure_ascii=False,
            indent=1,
        )
    print(f"{len(cases)} cases written to {out}")


if __name__ == "__main__":
    main()
