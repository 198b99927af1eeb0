//! What the CLI's end-to-end suites share: the binary, how it is run sealed off from the
//! machine (no inherited keys, URLs, proxies, config or home), its output, temporary folders,
//! and the built-in model's file.

#![allow(unreachable_pub)]

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::process::Command;

pub const BIN: &str = env!("CARGO_BIN_EXE_mamba-llm");

pub mod batch;

/// A finished command's standard error, as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A finished command's standard output, as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs `c` to its end (one minute at most).
pub async fn run(c: &mut Command) -> Output {
    tokio::time::timeout(Duration::from_secs(60), c.output()).await.expect("mamba-llm did not finish").unwrap()
}

/// The model cache the CLI reads; none when it is built without its built-in model.
#[cfg(feature = "local")]
fn cache_dir() -> Option<PathBuf> {
    mamba_local::fetch::default_cache_dir()
}

#[cfg(not(feature = "local"))]
fn cache_dir() -> Option<PathBuf> {
    None
}

/// The built-in model's file name, in the cache and as `pull` leaves it.
pub const MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// The real model file: `MAMBA_MODEL_FILE`, else the cache the library reads
/// (`mamba_local::fetch::default_cache_dir`: `MAMBA_CACHE_DIR`, `$XDG_CACHE_HOME/mamba`,
/// `~/.cache/mamba`), where `scripts/fetch-model.sh` puts it. Missing: a failure, unless
/// `MAMBA_SKIP_LOCAL_MODEL=1` asks to skip (said on stderr).
#[allow(clippy::print_stderr)]
pub fn model_file() -> Option<PathBuf> {
    let given = std::env::var_os("MAMBA_MODEL_FILE").filter(|v| !v.is_empty()).map(PathBuf::from);
    let found = given.or_else(|| cache_dir().map(|c| c.join("models").join(MODEL_FILE))).filter(|p| p.is_file());
    if found.is_none() {
        if std::env::var("MAMBA_SKIP_LOCAL_MODEL").is_ok_and(|v| v == "1") {
            eprintln!("SKIPPED: the built-in model file is missing and MAMBA_SKIP_LOCAL_MODEL=1");
            return None;
        }
        panic!(
            "the built-in model file is missing: run scripts/fetch-model.sh (or set MAMBA_MODEL_FILE), \
             or set MAMBA_SKIP_LOCAL_MODEL=1 to skip the tests that need it"
        );
    }
    found
}

/// A port nothing listens on.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A new empty folder.
pub fn temp_dir(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("mamba-cli-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The binary with a clean environment: no inherited keys or URLs, local probing pointed at
/// closed ports, an empty model cache, and model downloads pointed at nothing (a closed
/// loopback port, a pip that does not exist): no test reaches beyond this machine.
pub fn cmd() -> Command {
    let mut c = Command::new(BIN);
    for var in [
        "MAMBA_BASE_URL",
        "OPENAI_BASE_URL",
        "MAMBA_API_KEY",
        "OPENAI_API_KEY",
        "MAMBA_MODEL",
        "NO_COLOR",
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
        "REQUEST_METHOD",
        "MAMBA_MODEL_FILE",
        "MAMBA_CHAT_TEMPLATE_FILE",
        "HF_ENDPOINT",
    ] {
        c.env_remove(var);
    }
    let ports: Vec<String> = (0..4).map(|_| closed_port().to_string()).collect();
    c.env("MAMBA_LOCAL_PORTS", ports.join(","));
    c.env("MAMBA_CACHE_DIR", temp_dir("cache"));
    c.env("MAMBA_HF_ENDPOINT", format!("http://127.0.0.1:{}", closed_port()));
    c.env("MAMBA_PIP", "/nonexistent/mamba-test-pip");
    // No config file, an empty home: nothing read from or written to the real one.
    let home = temp_dir("home");
    c.env("HOME", &home).env("MAMBA_CONFIG", home.join("no-config.toml")).env("MAMBA_DATA_DIR", home.join("data"));
    for var in ["XDG_CONFIG_HOME", "XDG_DATA_HOME", "MAMBA_ENDPOINT"] {
        c.env_remove(var);
    }
    c.stdin(Stdio::null());
    c.kill_on_drop(true);
    c
}

/// The llama.cpp peer's URL for a live test; `None` (said on stderr) only when
/// `MAMBA_SKIP_PEERS=1`, else a missing peer fails the test.
#[allow(clippy::print_stderr)]
pub fn llamacpp_peer(test: &str) -> Option<String> {
    match std::env::var("MAMBA_LIVE_LLAMACPP_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("MAMBA_SKIP_PEERS").is_ok_and(|v| v == "1"),
                "MAMBA_LIVE_LLAMACPP_URL is not set: start the peers (scripts/peers/up.sh) or set MAMBA_SKIP_PEERS=1"
            );
            eprintln!("SKIPPED live test {test}: MAMBA_SKIP_PEERS=1");
            None
        }
    }
}

/// Marks a live test as run against its peer, for `scripts/test-all.sh`'s count.
pub fn ran_live(test: &str) {
    if let Ok(dir) = std::env::var("MAMBA_LIVE_REPORT") {
        let _ = std::fs::write(std::path::Path::new(&dir).join(test), "");
    }
}
