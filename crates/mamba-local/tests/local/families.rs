//! Every model family and weight type against llama.cpp, on tiny random-weight GGUFs, and the
//! errors for bad model files.
//!
//! `scripts/local/tiny-models.sh` writes `<family>-<TYPE>.gguf` and llama.cpp's teacher-forced
//! logits `<family>-<TYPE>.json` into `$MAMBA_PEERS_ROOT/tiny` (default
//! `~/.cache/mamba-peers/tiny`); the test setup (scripts/test-all.sh) runs it. A missing
//! directory fails these tests with that command, unless `MAMBA_SKIP_LOCAL_MODEL=1`.

use std::path::{Path, PathBuf};

use mamba_backends::ErrorKind;
use mamba_local::{LocalBackend, LocalOptions};

/// The tolerance, relative to the spread of llama.cpp's row (its largest minus its smallest
/// logit): every logit within it of llama.cpp's, and our argmax's logit in llama.cpp's row
/// within it of llama.cpp's largest (the same argmax, or a near-tie that the logits' own
/// differences explain). Both programs read the same weights but round differently (candle
/// converts some block formats to Q8_0 at load; each quantizes activations for the dot
/// products its own way; kernels differ by CPU, AVX2 or AVX-512), so exact floats would hold
/// on one machine only.
///
/// Float weights: 2 %. Quantized weights: 8 %. Measured over the six families (helper A's
/// decoder), on an AMD EPYC (AVX2): F32/F16/BF16 at most 0.74 %; quantized at most 3.9 % (llama
/// Q5_0, converted to Q8_0 at load), most 1.2–3 %; the largest argmax gap 2.6 % (gemma3 Q5_1,
/// where its max diff is 3.1 %). On an Intel Xeon with AVX-512, llama.cpp's kernels round
/// differently again: gemma3 Q5_1 reached 5.25 % there (a 5 % tolerance failed CI on it), the
/// next 4.0 % (gemma3 Q5_0). For scale, the quantization itself moves llama.cpp's own logits by
/// 2 % (Q8_0) to 69 % (Q2_K) of the range, and a real bug (the old `llama` ignoring Llama 3's
/// `rope_freqs`) by 44 %.
fn tolerance(kind: &str) -> f32 {
    if matches!(kind, "F32" | "F16" | "BF16") {
        0.02
    } else {
        0.08
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The tiny models' directory, `None` when missing and skipping was asked for; panics otherwise.
pub(crate) fn tiny_dir() -> Option<PathBuf> {
    let root = env("MAMBA_PEERS_ROOT")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".cache").join("mamba-peers")))
        .expect("HOME or MAMBA_PEERS_ROOT is set");
    let dir = root.join("tiny");
    if dir.join("STAMP").is_file() {
        return Some(dir);
    }
    if env("MAMBA_SKIP_LOCAL_MODEL").as_deref() == Some("1") {
        eprintln!("MAMBA_SKIP_LOCAL_MODEL=1: skipping a test that needs the tiny models in {}", dir.display());
        return None;
    }
    panic!(
        "the tiny models are missing from {}: run scripts/local/tiny-models.sh (about a minute), or set \
         MAMBA_SKIP_LOCAL_MODEL=1 to skip these tests",
        dir.display()
    );
}

/// The fixtures of one family (`llama-F32.json`, `llama-Q4_K_M.json`, …), sorted.
fn fixtures(dir: &Path, family: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".json") && name.rsplit_once('-').is_some_and(|(f, _)| f == family)
        })
        .collect();
    found.sort();
    found
}

fn argmax(row: &[f32]) -> usize {
    row.iter()
        .copied()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, v)| if v > best.1 { (i, v) } else { best })
        .0
}

/// The worst differences of one file: (largest |diff| / range, largest argmax gap / range).
#[derive(Default)]
struct Worst {
    diff: f32,
    gap: f32,
    position: usize,
}

/// Compares our rows for positions `first..` with llama.cpp's.
fn compare(ours: &[Vec<f32>], theirs: &[Vec<f32>], first: usize, worst: &mut Worst) -> Result<(), String> {
    for (i, (our, their)) in ours.iter().zip(&theirs[first..]).enumerate() {
        if our.len() != their.len() {
            return Err(format!("{} logits where llama.cpp has {}", our.len(), their.len()));
        }
        let max = their.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let min = their.iter().copied().fold(f32::INFINITY, f32::min);
        let range = (max - min).max(f32::EPSILON);
        let diff = our.iter().zip(their).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max) / range;
        let gap = (max - their[argmax(our)]) / range;
        if !diff.is_finite() {
            return Err(format!("position {}: our logits are not finite", first + i));
        }
        if diff > worst.diff {
            worst.diff = diff;
            worst.position = first + i;
        }
        worst.gap = worst.gap.max(gap);
    }
    Ok(())
}

/// Loads one tiny model and compares it with llama.cpp at every position, the sequence split
/// two ways: one prompt token then one token at a time (the generation path), and half of it
/// read as one prompt batch then the rest (the batched prompt path).
async fn check_file(json: &Path) -> Result<Worst, String> {
    let fixture: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    let tokens = crate::support::ids(&fixture["tokens"]);
    let theirs: Vec<Vec<f32>> = fixture["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect())
        .collect();
    assert_eq!(theirs.len(), tokens.len(), "{}: one row per token", json.display());
    let gguf = json.with_extension("gguf");
    let backend = LocalBackend::load(&gguf, LocalOptions::new().threads(2)).map_err(|e| format!("load: {e}"))?;
    let mut worst = Worst::default();
    for split in [1, tokens.len() / 2] {
        let ours = backend
            .teacher_forced_logits(&tokens[..split], &tokens[split..])
            .await
            .map_err(|e| format!("teacher forcing: {e}"))?;
        // Row i is the logits after tokens[..split + i]: llama.cpp's row split - 1 + i.
        assert_eq!(ours.len(), tokens.len() - split + 1);
        compare(&ours, &theirs, split - 1, &mut worst)?;
    }
    Ok(worst)
}

/// Checks every file of `family`; prints the worst differences per file.
async fn check_family(family: &str) {
    let Some(dir) = tiny_dir() else { return };
    let files = fixtures(&dir, family);
    assert!(files.len() >= 13, "{}: {} fixtures of {family}, expected 13", dir.display(), files.len());
    let mut failures = Vec::new();
    for json in &files {
        let name = json.file_stem().unwrap().to_string_lossy().into_owned();
        let limit = tolerance(name.rsplit_once('-').map_or("", |(_, kind)| kind));
        match check_file(json).await {
            Ok(w) if w.diff <= limit && w.gap <= limit => eprintln!(
                "{name:<16} ok: max |diff| {:.4} of the range (position {}), argmax gap {:.4}",
                w.diff, w.position, w.gap
            ),
            Ok(w) => failures.push(format!(
                "{name}: max |diff| {:.4} of the range at position {}, argmax gap {:.4} (tolerance {limit})",
                w.diff, w.position, w.gap
            )),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    for failure in &failures {
        eprintln!("{failure}");
    }
    assert!(
        failures.is_empty(),
        "{} of {} {family} files differ from llama.cpp:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn llama_equals_llama_cpp_in_every_type() {
    check_family("llama").await;
}

#[tokio::test]
async fn llama3_equals_llama_cpp_in_every_type() {
    check_family("llama3").await;
}

#[tokio::test]
async fn qwen2_equals_llama_cpp_in_every_type() {
    check_family("qwen2").await;
}

#[tokio::test]
async fn qwen3_equals_llama_cpp_in_every_type() {
    check_family("qwen3").await;
}

#[tokio::test]
async fn gemma3_equals_llama_cpp_in_every_type() {
    check_family("gemma3").await;
}

#[tokio::test]
async fn phi3_equals_llama_cpp_in_every_type() {
    check_family("phi3").await;
}

// Bad model files: each load fails with a one-line error naming the file, never a panic.

/// A scratch copy of `bytes` named `name` in a directory of its own ([`load_error`] removes both).
fn scratch(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mamba-local-families-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Loads `path` and returns the error, checking it is one line naming the file.
fn load_error(path: &Path) -> mamba_backends::Error {
    let loaded = LocalBackend::load(path, LocalOptions::new().threads(1));
    std::fs::remove_file(path).unwrap();
    std::fs::remove_dir(path.parent().unwrap()).unwrap();
    let Err(error) = loaded else {
        panic!("{} loaded", path.display());
    };
    let message = error.to_string();
    eprintln!("{message}");
    assert!(!message.contains('\n'), "one line: {message}");
    let name = path.file_name().unwrap().to_string_lossy();
    assert!(message.contains(&*name), "the error names the file {name}: {message}");
    error
}

fn tiny_file(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap()
}

/// The offset of the first tensor's type field in a GGUF (v2/v3) file, read from its header.
fn first_tensor_type_offset(bytes: &[u8]) -> usize {
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
    assert_eq!(&bytes[..4], b"GGUF");
    let kv_count = u64_at(16);
    let mut at = 24;
    // Skips one value of GGUF type `kind` at `at`.
    fn skip(bytes: &[u8], kind: u32, at: usize) -> usize {
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
        match kind {
            0 | 1 | 7 => at + 1,
            2 | 3 => at + 2,
            4..=6 => at + 4,
            10..=12 => at + 8,
            8 => at + 8 + u64_at(at),
            9 => {
                let (inner, count) = (u32_at(at), u64_at(at + 4));
                (0..count).fold(at + 12, |at, _| skip(bytes, inner, at))
            }
            other => panic!("GGUF value type {other}"),
        }
    }
    for _ in 0..kv_count {
        at = skip(bytes, 8, at);
        let kind = u32_at(at);
        at = skip(bytes, kind, at + 4);
    }
    at = skip(bytes, 8, at);
    let dims = u32_at(at) as usize;
    at + 4 + 8 * dims
}

#[test]
fn a_truncated_file_is_a_one_line_error_naming_it() {
    let Some(dir) = tiny_dir() else { return };
    let bytes = tiny_file(&dir, "llama-Q4_K_M.gguf");
    // Cut in the tensor data, then in the header.
    load_error(&scratch("truncated-data.gguf", &bytes[..bytes.len() / 2]));
    let error = load_error(&scratch("truncated-header.gguf", &bytes[..100]));
    assert_eq!(error.kind(), ErrorKind::Config, "{error}");
}

#[test]
fn a_corrupt_header_is_a_one_line_error_naming_it() {
    let Some(dir) = tiny_dir() else { return };
    let good = tiny_file(&dir, "llama-Q8_0.gguf");
    let mut magic = good.clone();
    magic[..4].copy_from_slice(b"GGUX");
    let mut version = good.clone();
    version[4..8].copy_from_slice(&99u32.to_le_bytes());
    // Counts that no file holds: the reader must not try to allocate them.
    let mut tensors = good.clone();
    tensors[8..16].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    let mut kvs = good.clone();
    kvs[16..24].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    // The first key's length far past the end of the file.
    let mut key = good;
    key[24..32].copy_from_slice(&(1u64 << 40).to_le_bytes());
    for (name, bytes) in [
        ("magic.gguf", magic),
        ("version.gguf", version),
        ("tensors.gguf", tensors),
        ("kvs.gguf", kvs),
        ("key.gguf", key),
    ] {
        load_error(&scratch(name, &bytes));
    }
}

#[test]
fn an_unknown_tensor_type_is_a_one_line_error_naming_it() {
    let Some(dir) = tiny_dir() else { return };
    let mut bytes = tiny_file(&dir, "llama-Q4_0.gguf");
    let at = first_tensor_type_offset(&bytes);
    assert!(u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) < 64, "a GGML type where the header says");
    bytes[at..at + 4].copy_from_slice(&77u32.to_le_bytes());
    let error = load_error(&scratch("unknown-type.gguf", &bytes));
    assert!(error.to_string().contains("77"), "the error names the type: {error}");
}

#[tokio::test]
async fn a_context_longer_than_the_files_is_capped_and_overflow_is_an_error() {
    let Some(dir) = tiny_dir() else { return };
    let backend =
        LocalBackend::load(dir.join("llama-F32.gguf"), LocalOptions::new().threads(1).context(100_000)).unwrap();
    // The file says 128 positions (llama.context_length): asking for more gets the file's.
    assert_eq!(backend.context_window(), 128);
    let tokens: Vec<u32> = (0..200).map(|i| i % 250).collect();
    let Err(error) = backend.teacher_forced_logits(&tokens[..100], &tokens[100..]).await else {
        panic!("200 tokens fit a 128-token context");
    };
    assert_eq!(error.kind(), ErrorKind::ContextOverflow, "{error}");
    assert!(!error.to_string().contains('\n'), "{error}");
    // What fits still runs.
    assert_eq!(backend.teacher_forced_logits(&tokens[..64], &tokens[64..128]).await.unwrap().len(), 65);
}

#[test]
fn a_template_that_does_not_compile_is_a_one_line_error_naming_it() {
    let Some(dir) = tiny_dir() else { return };
    let mut bytes = tiny_file(&dir, "llama-Q8_0.gguf");
    // The same length, so the header stays consistent: only the template is wrong.
    let (good, bad) = (b"{% endfor %}".as_slice(), b"{% endfox %}".as_slice());
    let at = bytes.windows(good.len()).position(|w| w == good).expect("the template is in the header");
    bytes[at..at + good.len()].copy_from_slice(bad);
    let error = load_error(&scratch("bad-template.gguf", &bytes));
    assert!(error.to_string().contains("template"), "the error says what is wrong: {error}");
}

/// Phi-3.5 / Phi-3-128k's LongRoPE: factor tensors and a magnitude correction.
#[tokio::test]
async fn longrope_equals_llama_cpp_in_every_type() {
    check_family("longrope").await;
}
