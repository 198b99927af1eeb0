#!/usr/bin/env python3
"""Golden token ids for mamba-local's tokenizer families, made with llama.cpp (llama-cpp-python).

Trains small tokenizers on the spot (PyPI `tokenizers` for byte-level BPE, `sentencepiece` for
SentencePiece with byte fallback), writes each as a vocabulary-only GGUF (`gguf` package), loads
it in llama.cpp (`Llama(vocab_only=True)`) and records llama.cpp's ids for hard texts.

Usage: ~/.cache/mamba-peers/venv/bin/python scripts/local/make-tokenizer-families.py OUT_DIR
Needs (pinned): llama-cpp-python==0.3.36, gguf==0.19.0, tokenizers==0.23.3, sentencepiece==0.2.1.
Deterministic for a given set of versions; the outputs are committed under
crates/mamba-local/tests/data/tokenizers/ (small: a few hundred tokens each).
"""
import json
import os
import sys
import tempfile

import gguf
import llama_cpp
import sentencepiece as spm
import tokenizers
from tokenizers import Regex, decoders, models, pre_tokenizers, trainers

CORPUS = """
The quick brown fox jumps over the lazy dog. What is the capital of France? Paris is the capital.
I'm sure you'll see they've done it, haven't they? We'd go. She's here. It's LOUD, DON'T SHOUT.
In 2024 there were 366 days; pi is 3.14159 and 1,000,000 is bigger than 999.
def main():
    print("hello world")
    return 0
Café crème brûlée, naïve façade, Ångström, Dvořák. Привет, мир! Greek αβγ δέλτα.
日本語のテキスト、中文文本，한국어 텍스트. Emoji: 👋🏽 🎉🚀 ❤️
The model answers questions about science, history, mathematics and programming languages.
Tokenizers split text into words, and words into pieces that the model has seen before.
Numbers like 12, 345, 6789 and 10000 appear in tables; dates like 2023-05-17 in logs.
    indented lines	with tabs	and  double  spaces
https://example.com/path?q=1&b=2#frag user@mail.org
"""

TEXTS = [
    "Hello world",
    " Hello world",
    "  two leading spaces",
    "What is the capital of France?",
    "The year 2024 had 366 days; pi is 3.14159 and 1,000,000 > 999.",
    "digits 1 12 123 1234 12345 123456 1234567",
    "I'm sure you'll see they've done it, haven't they? We'd go. She's here.",
    "IT'S LOUD, DON'T SHOUT; YOU'LL SEE, WE'D, THEY'RE, I'VE, I'M",
    "multiple    spaces   between     words",
    "\ttabs\tand\t\tmore tabs\t",
    "line one\nline two\n\n\nline five\r\nwindows line",
    "trailing spaces   ",
    "   leading spaces",
    "ends with newlines\n\n",
    "  \n  indented after newline\n\t\n x",
    "Café crème brûlée, naïve façade, Ångström, Dvořák",
    "Emoji: 👋🏽 🎉🚀 👨‍👩‍👧‍👦 ❤️",
    "CJK: 日本語のテキスト、中文文本，한국어 텍스트",
    "Greek αβγ δέλτα and Cyrillic Привет, мир!",
    'code: fn main() { println!("{}", x + 1); } // done',
    "    indented code\n        deeper();\n",
    "URL https://example.com/path?q=1&b=2#frag and user@mail.org",
    "numbers 1234567890, Arabic-Indic ١٢٣, fractions ½ ⅓, superscript x²",
    "mixed\t \n \t\n  end",
    "",
    " ",
    "\n",
    "$$$ !!! ??? ... --- ___ ***",
    "  \n  ",
    "a'b'c 're 've 'll 'd 'm 's 't",
    "'s at the start, and 'S too",
    "Zero-width a\u200bb, no-break\u00a0space, ideographic\u3000space",
    "(parenthesised) [bracketed] {braced} <angled>",
    "unknown chars: \U0001fae8 \u0378 \ue000",
    "▁ already has the SentencePiece space mark",
    "<0x41> looks like a byte token",
    "HelloWorld camelCaseWord XMLHttpRequest iPhone McDONALD's ABCdef",
    "ÉCOLE École éCOLE ÀÉ naïveTÉ ÖSTERREICH ΑΒΓδε",
    "a/b\n/c //\n/ path/to\r\n/x ?/\n/",
    "IT'S, it's, He'LL, THEY'RE, we'Ve, x'd",
]

# Per family: special (control) tokens and one user-defined token; texts with them inside.
def special_texts(specials, user):
    a, b = specials[0], specials[1]
    return [
        f"{a}user\nHi there{b}\n{a}assistant\n",
        f"inline {a} special tokens{b}done{a}",
        f"{user} user-defined{user}token {user}",
        f"{a}{b}{user}",
        f"text {a}  spaces after",
        f"{a} leading space after special",
    ]


def train_bpe(pattern, specials, user, vocab_size):
    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials + [user],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    lines = CORPUS.strip().split("\n") * 3 + TEXTS
    tok.train_from_iterator(lines, trainer)
    data = json.loads(tok.to_str())
    vocab = data["model"]["vocab"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"]["merges"]]
    tokens = [None] * len(vocab)
    for text, i in vocab.items():
        tokens[i] = text
    types = [1] * len(tokens)
    for s in specials:
        types[vocab[s]] = 3
    types[vocab[user]] = 4
    return tokens, types, merges


def writer(path, name):
    w = gguf.GGUFWriter(path, "llama")
    w.add_name(name)
    w.add_context_length(256)
    w.add_embedding_length(64)
    w.add_block_count(1)
    w.add_feed_forward_length(128)
    w.add_head_count(4)
    w.add_head_count_kv(4)
    w.add_layer_norm_rms_eps(1e-5)
    return w


def finish(w):
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


BPE_FAMILIES = {
    # name: (tokenizer.ggml.pre, the Hugging Face split regex, specials, user-defined, add_bos)
    "llama-bpe": (
        "llama-bpe",
        r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
        ["<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"],
        "<|user_defined|>",
        True,
    ),
    "qwen2": (
        "qwen2",
        r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
        ["<|im_start|>", "<|im_end|>", "<|endoftext|>"],
        "<tool_call>",
        False,
    ),
    # Mistral's Tekken and GPT-4o's o200k: case-aware words (llama.cpp rewrites them for std::regex).
    "tekken": (
        "tekken",
        r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+",
        ["<s>", "</s>", "[INST]", "[/INST]"],
        "[TOOL_CALLS]",
        True,
    ),
    "gpt-4o": (
        "gpt-4o",
        r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+",
        ["<|endoftext|>", "<|end|>", "<|user|>", "<|assistant|>"],
        "<|tool_call|>",
        False,
    ),
    # llama.cpp's `default` (four split rules) and `gpt-2` (the GPT-2 regex).
    "default": (
        "default",
        r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+",
        ["<|endoftext|>", "<|im_end|>", "<|im_start|>"],
        "<|user|>",
        False,
    ),
    "gpt-2": (
        "gpt-2",
        r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+",
        ["<|endoftext|>", "<|im_end|>", "<|im_start|>"],
        "<|user|>",
        False,
    ),
}


def write_bpe(out_dir, family):
    pre, pattern, specials, user, add_bos = BPE_FAMILIES[family]
    tokens, types, merges = train_bpe(pattern, specials, user, 700)
    path = os.path.join(out_dir, f"vocab-{family}.gguf")
    w = writer(path, f"vocab-{family}")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(tokens.index(specials[0]))
    w.add_eos_token_id(tokens.index(specials[1]))
    w.add_add_bos_token(add_bos)
    finish(w)
    return path, specials, user


def write_spm(out_dir, family, add_space_prefix, name=None, specials=("<start_of_turn>", "<end_of_turn>")):
    specials = list(specials)
    user = "<mask_user>"
    with tempfile.TemporaryDirectory() as tmp:
        prefix = os.path.join(tmp, "spm")
        lines = CORPUS.strip().split("\n") * 3 + [t for t in TEXTS if t.strip()]
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines),
            model_prefix=prefix,
            vocab_size=700,
            model_type="bpe",
            byte_fallback=True,
            character_coverage=0.98,
            split_digits=True,
            allow_whitespace_only_pieces=True,
            remove_extra_whitespaces=False,
            normalization_rule_name="identity",
            add_dummy_prefix=add_space_prefix,
            control_symbols=specials,
            user_defined_symbols=[user, "\n\n"],
            hard_vocab_limit=False,
            num_threads=1,
            minloglevel=2,
        )
        sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
    user_defined = {user, "\n\n"}
    tokens, scores, types = [], [], []
    for i in range(sp.get_piece_size()):
        piece = sp.id_to_piece(i)
        tokens.append(piece)
        scores.append(sp.get_score(i))
        # llama.cpp's token types (the SentencePiece model's own numbering)
        if sp.is_unknown(i):
            types.append(2)
        elif sp.is_control(i):
            types.append(3)
        elif piece in user_defined:
            types.append(4)
        elif sp.is_unused(i):
            types.append(5)
        elif sp.is_byte(i):
            types.append(6)
        else:
            types.append(1)
    path = os.path.join(out_dir, f"vocab-{family}.gguf")
    w = writer(path, name or f"vocab-{family}")
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(tokens.index("<s>"))
    w.add_eos_token_id(tokens.index("</s>"))
    w.add_unk_token_id(tokens.index("<unk>"))
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(add_space_prefix)
    finish(w)
    return path, specials, user


def record(path, family, specials, user):
    llm = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
    cases = []
    for text in TEXTS + special_texts(specials, user):
        raw = text.encode("utf-8")
        cases.append(
            {
                "text": text,
                "special": llm.tokenize(raw, add_bos=False, special=True),
                "plain": llm.tokenize(raw, add_bos=False, special=False),
                "with_bos": llm.tokenize(raw, add_bos=True, special=True),
            }
        )
    return {
        "family": family,
        "gguf": os.path.basename(path),
        "made_with": f"llama-cpp-python {llama_cpp.__version__}, gguf {gguf.__version__ if hasattr(gguf, '__version__') else '?'}, "
        f"tokenizers {tokenizers.__version__}, sentencepiece {spm.__version__}: "
        "Llama(vocab_only=True).tokenize(text, add_bos, special)",
        "cases": cases,
    }


def main() -> None:
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    made = [write_bpe(out_dir, family) + (family,) for family in BPE_FAMILIES]
    made.append(write_spm(out_dir, "spm", True) + ("spm",))
    made.append(write_spm(out_dir, "spm-noprefix", False) + ("spm-noprefix",))
    # llama.cpp strips the whitespace after special tokens for models *named* Phi-3 (general.name).
    # (llama.cpp looks up <|endoftext|> by name in such a vocabulary, so it must have one.)
    phi3 = ("<|user|>", "<|end|>", "<|assistant|>", "<|endoftext|>")
    made.append(write_spm(out_dir, "spm-phi3", True, "Phi-3-mini-test", phi3) + ("spm-phi3",))
    fixtures = [record(path, family, specials, user) for path, specials, user, family in made]
    out = os.path.join(out_dir, "families.json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump(fixtures, f, ensure_ascii=False, indent=0)
    for fx in fixtures:
        print(f"{fx['family']}: {len(fx['cases'])} cases")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
