//! Tests of the tokenizer against llama.cpp's ids on small vocabulary-only GGUFs (made by
//! scripts/local/make-tokenizer-families.py and committed under tests/data/tokenizers/), and an
//! encode-speed measurement on the real SmolLM2 file.

use std::path::{Path, PathBuf};

use super::Tokenizer;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tokenizers")
}

fn load(path: &Path) -> Tokenizer {
    let (_, content) = crate::gguf::open(path).unwrap();
    Tokenizer::from_meta(crate::gguf::Meta(&content.metadata)).unwrap()
}

fn ids(value: &serde_json::Value) -> Vec<u32> {
    value.as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect()
}

/// Every family's tokenizer gives llama.cpp's ids on every golden text: with special tokens
/// parsed, without, and with the BOS the file asks for.
#[test]
fn token_ids_equal_llama_cpp_for_every_family() {
    let text = std::fs::read_to_string(data_dir().join("families.json")).unwrap();
    let families: serde_json::Value = serde_json::from_str(&text).unwrap();
    let families = families.as_array().unwrap();
    let names: Vec<&str> = families.iter().map(|f| f["family"].as_str().unwrap()).collect();
    for want in ["llama-bpe", "qwen2", "tekken", "gpt-4o", "default", "gpt-2", "spm", "spm-noprefix", "spm-phi3"] {
        assert!(names.contains(&want), "the fixtures cover {want}");
    }
    let mut failures = Vec::new();
    let mut checked = 0;
    for family in families {
        let name = family["family"].as_str().unwrap();
        let tokenizer = load(&data_dir().join(family["gguf"].as_str().unwrap()));
        let cases = family["cases"].as_array().unwrap();
        assert!(cases.len() >= 30, "{name}: at least 30 golden texts");
        for case in cases {
            let text = case["text"].as_str().unwrap();
            let special = tokenizer.encode(text, true);
            let plain = tokenizer.encode(text, false);
            let mut with_bos: Vec<u32> = tokenizer.prompt_prefix().into_iter().collect();
            with_bos.extend(&special);
            for (what, got, want) in [
                ("special", special, ids(&case["special"])),
                ("plain", plain, ids(&case["plain"])),
                ("with_bos", with_bos, ids(&case["with_bos"])),
            ] {
                checked += 1;
                if got != want {
                    failures.push(format!("{name} {what} {text:?}\n  llama.cpp {want:?}\n  ours      {got:?}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} of {checked} encodings differ:\n{}", failures.len(), failures.join("\n"));
}

/// Generated text: SentencePiece pieces turn `▁` back into spaces, byte tokens into their byte.
#[test]
fn sentencepiece_pieces_decode_spaces_and_bytes() {
    let tokenizer = load(&data_dir().join("vocab-spm.gguf"));
    let text = "Hello world, naïve 👋🏽";
    let ids = tokenizer.encode(text, false);
    let bytes: Vec<u8> = ids.iter().flat_map(|&id| tokenizer.piece(id).to_vec()).collect();
    assert_eq!(String::from_utf8(bytes).unwrap(), format!(" {text}"));
    assert_eq!(tokenizer.prompt_prefix(), Some(1), "SentencePiece files add BOS by default");
}

/// A long mixed text: prose, code, numbers, CJK and emoji.
fn long_text() -> String {
    let para = "The quick brown fox jumps over the lazy dog. I'm sure you'll see they've done it in 2024, \
                at 3.14159 rad/s; 1,000,000 > 999!\n    fn main() { println!(\"{}\", x + 1); }\n\
                Café crème brûlée, naïve façade. 日本語のテキスト、中文文本 👋🏽 🎉\n\n";
    para.repeat(400)
}

/// Encode speed on the real model's tokenizer (`cargo test -p mamba-local --lib -- --ignored
/// encode_speed --nocapture`).
#[test]
#[ignore = "a measurement, not a check"]
fn encode_speed() {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap();
    let path = home.join(".cache/mamba-peers/models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let tokenizer = load(&path);
    let text = long_text();
    let _ = tokenizer.encode(&text, true);
    let runs = 5;
    let start = std::time::Instant::now();
    let mut n = 0;
    for _ in 0..runs {
        n += tokenizer.encode(&text, true).len();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "encode: {} bytes -> {} tokens per run, {:.0} tokens/s, {:.1} MB/s",
        text.len(),
        n / runs,
        n as f64 / secs,
        (text.len() * runs) as f64 / secs / 1e6
    );
}

/// Encode speed with thousands of special tokens (Gemma's vocabulary has about 6000 control
/// and user-defined ones): the SmolLM2 vocabulary plus 6000 `<unusedN>` control tokens.
#[test]
#[ignore = "a measurement, not a check"]
fn encode_speed_with_many_specials() {
    use candle_core::quantized::gguf_file::Value;
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap();
    let path = home.join(".cache/mamba-peers/models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let (_, content) = crate::gguf::open(&path).unwrap();
    let mut meta = content.metadata.clone();
    let Some(Value::Array(tokens)) = meta.get_mut("tokenizer.ggml.tokens") else { panic!() };
    tokens.extend((0..6000).map(|i| Value::String(format!("<unused{i}>"))));
    let Some(Value::Array(types)) = meta.get_mut("tokenizer.ggml.token_type") else { panic!() };
    types.extend((0..6000).map(|_| Value::I32(3)));
    let tokenizer = Tokenizer::from_meta(crate::gguf::Meta(&meta)).unwrap();
    let prompt = "<|im_start|>system\nYou are a helpful AI assistant.<|im_end|>\n<|im_start|>user\n".to_owned()
        + &"What is the capital of France? Tell me about its history, in 2024 words or so. ".repeat(25)
        + "<|im_end|>\n<|im_start|>assistant\n";
    let runs = 200;
    let start = std::time::Instant::now();
    let mut n = 0;
    for _ in 0..runs {
        n += tokenizer.encode(&prompt, true).len();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "many specials: {} bytes -> {} tokens, {:.3} ms per prompt, {:.0} tokens/s",
        prompt.len(),
        n / runs,
        secs * 1e3 / runs as f64,
        n as f64 / secs
    );
}
