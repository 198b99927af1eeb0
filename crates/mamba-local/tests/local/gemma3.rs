//! The second real model, Gemma 3 270M (Q4_K_M), against llama.cpp: token ids of hard texts
//! and greedy continuations of plain-text prompts, teacher-forced (fixtures made by
//! scripts/local/make-gemma3-fixtures.py with llama-cpp-python over the same file).
//!
//! The file comes from `mamba-llm pull gemma3-270m` (scripts/fetch-model.sh runs it) into the
//! mamba cache, or from `MAMBA_GEMMA3_FILE`. A missing file fails these tests unless
//! `MAMBA_SKIP_LOCAL_MODEL=1` says to skip them.

use std::path::PathBuf;
use std::sync::OnceLock;

use mamba_local::fetch::ModelSpec;
use mamba_local::{LocalBackend, LocalOptions};

use crate::golden::MARGIN;
use crate::support::{assert_token_ids_equal_llama_cpp, fixture, ids};

fn model_path() -> Option<PathBuf> {
    let spec = ModelSpec::find("gemma3-270m").expect("a known model");
    let mut paths = Vec::new();
    if let Some(file) = std::env::var_os("MAMBA_GEMMA3_FILE").filter(|v| !v.is_empty()) {
        paths.push(PathBuf::from(file));
    }
    if let Some(cache) = mamba_local::fetch::default_cache_dir() {
        paths.push(cache.join("models").join(&spec.file_name));
    }
    if let Some(found) = paths.iter().find(|p| p.is_file()) {
        return Some(found.clone());
    }
    if std::env::var("MAMBA_SKIP_LOCAL_MODEL").as_deref() == Ok("1") {
        eprintln!("MAMBA_SKIP_LOCAL_MODEL=1: skipping a test that needs {}", spec.file_name);
        return None;
    }
    panic!(
        "{} is missing (looked at {paths:?}); run `mamba-llm pull gemma3-270m` (scripts/fetch-model.sh), set \
         MAMBA_GEMMA3_FILE, or set MAMBA_SKIP_LOCAL_MODEL=1 to skip these tests",
        spec.file_name
    );
}

/// One backend for the tests of this file.
fn backend() -> Option<&'static LocalBackend> {
    static BACKEND: OnceLock<Option<LocalBackend>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            model_path().map(|p| {
                LocalBackend::load(&p, LocalOptions::new().context(512))
                    .unwrap_or_else(|e| panic!("Gemma 3 loads: {e}"))
            })
        })
        .as_ref()
}

#[test]
fn gemma3_token_ids_equal_llama_cpp() {
    let Some(backend) = backend() else { return };
    let data = fixture("gemma3-270m.json");
    assert_token_ids_equal_llama_cpp(backend, data["tokens"].as_array().unwrap());
}

/// llama.cpp's greedy continuations fed to our model: at every step its token is our argmax or
/// within [`MARGIN`] of it (near-ties: the two programs round differently; the SmolLM2 margin).
#[tokio::test]
async fn gemma3_greedy_continuations_equal_llama_cpp() {
    let Some(backend) = backend() else { return };
    let data = fixture("gemma3-270m.json");
    let (mut steps, mut exact, mut worst) = (0, 0, 0.0f32);
    let mut failures = Vec::new();
    for case in data["answers"].as_array().unwrap() {
        let prompt = ids(&case["prompt_ids"]);
        let answer = ids(&case["answer_ids"]);
        assert_eq!(&prompt[1..], backend.tokenize(case["prompt"].as_str().unwrap(), true), "the prompt's tokens");
        let rows = backend.teacher_forced_logits(&prompt, &answer).await.unwrap();
        for (step, (&want, row)) in answer.iter().zip(&rows).enumerate() {
            let best = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let gap = best - row[want as usize];
            steps += 1;
            exact += usize::from(gap <= 0.0);
            worst = worst.max(gap);
            if gap > MARGIN {
                failures.push(format!(
                    "after {:?}: llama.cpp chose {:?}, {gap:.3} below our best",
                    backend.detokenize(&answer[..step]),
                    backend.detokenize(&[want])
                ));
            }
        }
    }
    eprintln!("{exact} of {steps} llama.cpp tokens are our argmax; the largest gap is {worst:.3} (margin {MARGIN})");
    assert!(failures.is_empty(), "{} steps past the margin:\n{}", failures.len(), failures.join("\n"));
}
