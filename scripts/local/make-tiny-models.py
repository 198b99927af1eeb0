#!/usr/bin/env python3
"""Tiny random-weight GGUFs of each model family, and llama.cpp's logits over them.

Usage: ~/.cache/mamba-peers/venv/bin/python scripts/local/make-tiny-models.py OUT_DIR
(scripts/local/tiny-models.sh runs it with OUT_DIR = ~/.cache/mamba-peers/tiny).

For each family (llama, llama3, qwen2, qwen3, gemma3, phi3, longrope: phi3 with LongRoPE) it writes `<family>-F32.gguf` with
the `gguf` package (fixed seed; widths multiples of 256 so k-quants apply; grouped-query
attention; a byte-level BPE vocabulary of about 300 tokens and a ChatML template, so the
built-in engine's loader accepts it), then quantized copies `<family>-<TYPE>.gguf` through
`llama_cpp.llama_model_quantize`, and for every file `<family>-<TYPE>.json`: llama.cpp's
teacher-forced logits (`logits_all`) at every position of a fixed token sequence.

Tensor names and metadata keys follow llama.cpp (gguf-py's constants and the converter's
choices for each family): see FAMILIES below. A stamp file holding this script's hash and the
llama-cpp-python and gguf versions makes a second run with nothing changed a no-op.
"""
import ctypes
import hashlib
import json
import os
import sys
import tempfile

import gguf
import llama_cpp
import numpy as np

SEED = 27
CONTEXT = 128
SEQUENCE = 24
# The quantized copies; F32 is the written file itself.
TYPES = ["F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K"]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# `<|end|>`: llama.cpp looks it up in every phi3 vocabulary.
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|end|>"]
CORPUS = (
    "The capital of France is Paris. The quick brown fox jumps over the lazy dog. "
    "Hello world, this is a tiny model for tests; it knows nothing at all. "
    "What is the answer? There are three colors: red, green and blue. "
) * 3
MERGES = 48

# One row per family. dim/ffn/head_dim are multiples of 256 or 64 so every k-quant applies.
FAMILIES = {
    # Llama 2 style: separate output matrix, normal (interleaved-pair) rope.
    "llama": dict(arch="llama", layers=2, dim=256, ffn=512, heads=4, kv_heads=2, head_dim=64,
                  rope_base=10000.0, tied=False),
    # Llama 3.x style: tied embeddings, rope_freqs.weight frequency factors, a large rope base.
    "llama3": dict(arch="llama", layers=2, dim=256, ffn=512, heads=4, kv_heads=2, head_dim=64,
                   rope_base=500000.0, tied=True, rope_freqs=True),
    # Qwen2/2.5: Q/K/V biases, NEOX rope, separate output.
    "qwen2": dict(arch="qwen2", layers=2, dim=256, ffn=512, heads=4, kv_heads=2, head_dim=64,
                  rope_base=1000000.0, tied=False, qkv_bias=True),
    # Qwen3: per-head Q/K RMS norm, no bias, head_dim (key_length) unlike dim/heads, tied output.
    "qwen3": dict(arch="qwen3", layers=2, dim=256, ffn=512, heads=4, kv_heads=2, head_dim=128,
                  rope_base=1000000.0, tied=True, qk_norm=True, key_length=True),
    # Gemma 3: 6 layers so that one (the 6th) is global and five slide over a window of 4;
    # Q/K norm, post-attention and post-FFN norms, head_dim 128 with dim 256, one KV head.
    "gemma3": dict(arch="gemma3", layers=6, dim=256, ffn=512, heads=4, kv_heads=1, head_dim=128,
                   rope_base=1000000.0, tied=True, qk_norm=True, key_length=True, gemma=True,
                   sliding_window=4, eps=1e-6),
    # Phi-3: fused QKV and fused gate+up, NEOX rope, separate output; the converter writes a
    # sliding window that llama.cpp ignores for phi3 (larger than the context here anyway).
    "phi3": dict(arch="phi3", layers=2, dim=256, ffn=512, heads=4, kv_heads=2, head_dim=64,
                 rope_base=10000.0, tied=False, fused=True, sliding_window=2047),
    # Phi-3.5 / Phi-3-128k: LongRoPE factors and magnitude correction, an original context of 64
    # positions so that the long factors apply at this context (128).
    "longrope": dict(arch="phi3", layers=2, dim=256, ffn=512, heads=4, kv_heads=2, head_dim=64,
                     rope_base=10000.0, tied=False, fused=True, sliding_window=2047, longrope=True),
}


def bytes_to_unicode():
    """GPT-2's byte to printable-character table (the byte-level BPE alphabet)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def vocabulary():
    """The 256 byte tokens, MERGES merges learnt on CORPUS (words split GPT-2 style at spaces), and the specials."""
    table = bytes_to_unicode()
    tokens = [table[b] for b in range(256)]
    words = []
    for i, word in enumerate(CORPUS.split(" ")):
        text = (" " if i else "") + word
        words.append([table[b] for b in text.encode("utf-8")])
    merges = []
    for _ in range(MERGES):
        counts = {}
        for w in words:
            for pair in zip(w, w[1:]):
                counts[pair] = counts.get(pair, 0) + 1
        if not counts:
            break
        best = max(sorted(counts), key=lambda p: counts[p])
        merges.append(f"{best[0]} {best[1]}")
        tokens.append(best[0] + best[1])
        for w in words:
            i = 0
            while i < len(w) - 1:
                if (w[i], w[i + 1]) == best:
                    w[i:i + 2] = [best[0] + best[1]]
                else:
                    i += 1
    types = [gguf.TokenType.NORMAL] * len(tokens) + [gguf.TokenType.CONTROL] * len(SPECIALS)
    return tokens + SPECIALS, types, merges


def write_f32(path, name, spec, rng):
    tokens, types, merges = vocabulary()
    vocab = len(tokens)
    arch = spec["arch"]
    dim, ffn, heads, kv_heads, hd = spec["dim"], spec["ffn"], spec["heads"], spec["kv_heads"], spec["head_dim"]
    w = gguf.GGUFWriter(path, arch)
    # Not "phi3": llama.cpp keys phi-3 tokenizer rules on general.name (and then needs `<unk>`, `<s>`).
    w.add_name(f"tiny-{name}".replace("phi3", "phi"))
    w.add_context_length(CONTEXT)
    w.add_embedding_length(dim)
    w.add_block_count(spec["layers"])
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_layer_norm_rms_eps(spec.get("eps", 1e-5))
    w.add_rope_freq_base(spec["rope_base"])
    if spec.get("key_length"):
        w.add_key_length(hd)
        w.add_value_length(hd)
    else:
        w.add_rope_dimension_count(hd)
    if "sliding_window" in spec:
        w.add_sliding_window(spec["sliding_window"])
    w.add_vocab_size(vocab)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(tokens.index("<|endoftext|>"))
    w.add_eos_token_id(tokens.index("<|im_end|>"))
    w.add_add_bos_token(False)
    w.add_chat_template(CHAT_TEMPLATE)

    def matrix(rows, cols, scale=1.0):
        """An (out, in) weight with variance 1/in: activations keep their size through it."""
        return (rng.standard_normal((rows, cols)) * scale / np.sqrt(cols)).astype(np.float32)

    def norm(n):
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    # Embeddings small enough that the layers, not the input token, decide the logits (with a
    # tied output a large embedding makes every position predict its own token); Gemma scales
    # them up by sqrt(dim) in the model.
    embed_scale = 0.1 / np.sqrt(dim) if spec.get("gemma") else 0.1
    w.add_tensor("token_embd.weight", (embed_scale * rng.standard_normal((vocab, dim))).astype(np.float32))
    # Gemma's tied output reads the unscaled embedding: a larger final norm gives logits of a few units.
    w.add_tensor("output_norm.weight", norm(dim) * (20.0 if spec.get("gemma") else 1.0))
    if not spec["tied"]:
        # Logits of a few units: distinct argmaxes without saturating anything.
        w.add_tensor("output.weight", matrix(vocab, dim, 3.0))
    if spec.get("rope_freqs"):
        # Llama 3.1's factors (scale 8, low/high frequency factors 1 and 4) for an original
        # context of 64 positions, so that the scaled, unscaled and smoothed bands all occur.
        inv = 1.0 / spec["rope_base"] ** (np.arange(0, hd, 2) / hd)
        wavelen = 2 * np.pi / inv
        low, high, original = 64 / 1.0, 64 / 4.0, 64
        smooth = (original / wavelen - 1.0) / (4.0 - 1.0)
        factors = np.where(wavelen < high, 1.0, np.where(wavelen > low, 8.0, 1.0 / ((1 - smooth) / 8.0 + smooth)))
        w.add_tensor("rope_freqs.weight", factors.astype(np.float32))
    if spec.get("longrope"):
        w.add_rope_scaling_orig_ctx_len(64)
        w.add_rope_scaling_attn_factors(1.19)
        w.add_tensor("rope_factors_long.weight", (1.0 + 3.0 * rng.random(hd // 2)).astype(np.float32))
        w.add_tensor("rope_factors_short.weight", (1.0 + 0.2 * rng.random(hd // 2)).astype(np.float32))
    q, kv = heads * hd, kv_heads * hd
    for i in range(spec["layers"]):
        p = f"blk.{i}"
        w.add_tensor(f"{p}.attn_norm.weight", norm(dim))
        if spec.get("fused"):
            w.add_tensor(f"{p}.attn_qkv.weight", matrix(q + 2 * kv, dim))
        else:
            w.add_tensor(f"{p}.attn_q.weight", matrix(q, dim))
            w.add_tensor(f"{p}.attn_k.weight", matrix(kv, dim))
            w.add_tensor(f"{p}.attn_v.weight", matrix(kv, dim))
        if spec.get("qkv_bias"):
            w.add_tensor(f"{p}.attn_q.bias", (0.5 * rng.standard_normal(q)).astype(np.float32))
            w.add_tensor(f"{p}.attn_k.bias", (0.5 * rng.standard_normal(kv)).astype(np.float32))
            w.add_tensor(f"{p}.attn_v.bias", (0.5 * rng.standard_normal(kv)).astype(np.float32))
        if spec.get("qk_norm"):
            w.add_tensor(f"{p}.attn_q_norm.weight", norm(hd))
            w.add_tensor(f"{p}.attn_k_norm.weight", norm(hd))
        w.add_tensor(f"{p}.attn_output.weight", matrix(dim, q, 2.0))
        if spec.get("gemma"):
            w.add_tensor(f"{p}.post_attention_norm.weight", norm(dim))
        w.add_tensor(f"{p}.ffn_norm.weight", norm(dim))
        if spec.get("fused"):
            w.add_tensor(f"{p}.ffn_up.weight", matrix(2 * ffn, dim))
        else:
            w.add_tensor(f"{p}.ffn_gate.weight", matrix(ffn, dim))
            w.add_tensor(f"{p}.ffn_up.weight", matrix(ffn, dim))
        w.add_tensor(f"{p}.ffn_down.weight", matrix(dim, ffn, 2.0))
        if spec.get("gemma"):
            w.add_tensor(f"{p}.post_ffw_norm.weight", norm(dim))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return vocab


def quantize(src, dst, kind):
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{kind}")
    params.nthread = 2
    if llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params)) != 0:
        raise SystemExit(f"llama.cpp could not quantize {src} to {kind}")


def logits(path, sequence):
    llm = llama_cpp.Llama(model_path=path, n_ctx=CONTEXT, n_batch=CONTEXT, n_threads=2, logits_all=True,
                          verbose=False)
    llm.eval(sequence)
    rows = np.array(llm.scores[: len(sequence)], dtype=np.float32)
    del llm
    return [[round(float(x), 5) for x in row] for row in rows]


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def write_fixture(out, name, kind, sequence):
    path = os.path.join(out, f"{name}-{kind}.gguf")
    rows = logits(path, sequence)
    fixture = {"family": name, "type": kind, "file": os.path.basename(path), "model_sha256": sha256(path),
               "made_with": f"llama-cpp-python {llama_cpp.__version__}, logits_all, one batch, 2 threads",
               "tokens": sequence, "logits": rows}
    tmp = path[:-5] + ".json.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(fixture, f)
    os.replace(tmp, path[:-5] + ".json")
    top = [int(np.argmax(r)) for r in rows]
    own = sum(t == s for t, s in zip(top, sequence))
    spread = float(np.mean([max(r) - min(r) for r in rows]))
    print(f"{name}-{kind}: {len(rows)} positions, argmax {top[:6]}…, {own} predict their own token, "
          f"mean range {spread:.2f}", flush=True)


def main() -> None:
    out = sys.argv[1]
    only = sys.argv[2].split(",") if len(sys.argv) > 2 else list(FAMILIES)
    os.makedirs(out, exist_ok=True)
    for name in only:
        spec = FAMILIES[name]
        rng = np.random.default_rng([SEED, list(FAMILIES).index(name)])
        f32 = os.path.join(out, f"{name}-F32.gguf")
        with tempfile.NamedTemporaryFile(dir=out, suffix=".gguf.tmp", delete=False) as tmp:
            pass
        vocab = write_f32(tmp.name, name, spec, rng)
        os.chmod(tmp.name, 0o644)
        os.replace(tmp.name, f32)
        # A fixed sequence over the whole vocabulary, special tokens included.
        sequence = [int(t) for t in np.random.default_rng([SEED, 99]).integers(0, vocab, SEQUENCE)]
        write_fixture(out, name, "F32", sequence)
        for kind in TYPES:
            dst = os.path.join(out, f"{name}-{kind}.gguf")
            quantize(f32, dst + ".tmp", kind)
            os.replace(dst + ".tmp", dst)
            write_fixture(out, name, kind, sequence)


if __name__ == "__main__":
    main()
