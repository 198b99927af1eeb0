//! Finding the model and sharing one loaded backend between tests.

use std::path::PathBuf;
use std::sync::OnceLock;

use mamba_local::{LocalBackend, LocalOptions};

/// The default model's file name.
pub(crate) const MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Where the model may be: `MAMBA_MODEL_FILE`; the peers' models folder, a real second place
/// (`scripts/peers/install-llamacpp.sh` puts the model in `$MAMBA_PEERS_ROOT/models`, default
/// `~/.cache/mamba-peers/models`, for llama.cpp to serve it); and the cache the library reads
/// ([`mamba_local::fetch::default_cache_dir`], where `mamba-llm pull` puts it).
fn candidates() -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(file) = env("MAMBA_MODEL_FILE") {
        paths.push(PathBuf::from(file));
    }
    let peers = env("MAMBA_PEERS_ROOT")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".cache").join("mamba-peers")));
    if let Some(peers) = peers {
        paths.push(peers.join("models").join(MODEL_FILE));
    }
    if let Some(cache) = mamba_local::fetch::default_cache_dir() {
        paths.push(cache.join("models").join(MODEL_FILE));
    }
    paths
}

/// The model file, `None` when missing and skipping was asked for; panics otherwise.
pub(crate) fn model_path() -> Option<PathBuf> {
    let paths = candidates();
    if let Some(found) = paths.iter().find(|p| p.is_file()) {
        return Some(found.clone());
    }
    if env("MAMBA_SKIP_LOCAL_MODEL").as_deref() == Some("1") {
        eprintln!("MAMBA_SKIP_LOCAL_MODEL=1: skipping a test that needs {MODEL_FILE}");
        return None;
    }
    panic!(
        "the model file {MODEL_FILE} is missing (looked at {paths:?}); run scripts/peers/install-llamacpp.sh or \
         `mamba-llm pull`, set MAMBA_MODEL_FILE, or set MAMBA_SKIP_LOCAL_MODEL=1 to skip these tests"
    );
}

/// One backend shared by the tests (loading takes about a second).
pub(crate) fn backend() -> Option<&'static LocalBackend> {
    static BACKEND: OnceLock<Option<LocalBackend>> = OnceLock::new();
    BACKEND
        .get_or_init(|| model_path().map(|p| LocalBackend::load(p, LocalOptions::new()).expect("the model loads")))
        .as_ref()
}

/// One backend with the prompt cache off, for tests that compare the answers of two requests:
/// a cached prefix is computed in other batches (an earlier answer one token at a time), which
/// rounds differently and may flip a near-tie, so only a cold read is reproducible to the bit.
pub(crate) fn cold_backend() -> Option<&'static LocalBackend> {
    static BACKEND: OnceLock<Option<LocalBackend>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            model_path()
                .map(|p| LocalBackend::load(p, LocalOptions::new().prompt_cache(false)).expect("the model loads"))
        })
        .as_ref()
}

/// A fixture file under tests/data.
pub(crate) fn fixture(name: &str) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Token ids as a fixture stores them.
pub(crate) fn ids(value: &serde_json::Value) -> Vec<u32> {
    value.as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect()
}

/// Every fixture case (`text`, llama.cpp's `ids`) tokenizes to llama.cpp's ids, special tokens
/// read as tokens; at least 20 cases.
pub(crate) fn assert_token_ids_equal_llama_cpp(backend: &LocalBackend, cases: &[serde_json::Value]) {
    assert!(cases.len() >= 20, "at least 20 golden texts");
    let mut failures = Vec::new();
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let (want, got) = (ids(&case["ids"]), backend.tokenize(text, true));
        if got != want {
            failures.push(format!("{text:?}\n  llama.cpp {want:?}\n  ours      {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} texts differ:\n{}", failures.len(), cases.len(), failures.join("\n"));
}
