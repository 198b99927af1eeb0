//! The built-in model, with the `local` feature: finding its file (`--model-file`,
//! `MAMBA_MODEL_FILE`, the cache, a download: `mamba_local::fetch::ModelStore::locate`),
//! loading it, `pull` and `models --local`.

use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mamba_backends::ModelBackend;
use mamba_local::fetch::{format_size, ModelSpec, ModelStore, Origin, Progress, DEFAULT_MODEL};
use mamba_local::{LocalBackend, LocalOptions};
use serde_json::json;

use super::Why;
use crate::error::CliError;
use crate::print::{line, note, table};
use crate::settings::LocalModel;

/// A progress bar on stderr when it is a terminal; notes as `mamba-llm:` lines either way.
pub(crate) struct TermProgress {
    tty: bool,
    bar: Mutex<Option<ProgressBar>>,
}

impl TermProgress {
    pub(crate) fn new() -> TermProgress {
        TermProgress { tty: std::io::IsTerminal::is_terminal(&std::io::stderr()), bar: Mutex::new(None) }
    }

    fn with_bar(&self, f: impl FnOnce(&mut Option<ProgressBar>)) {
        if let Ok(mut bar) = self.bar.lock() {
            f(&mut bar);
        }
    }
}

impl Progress for TermProgress {
    fn begin(&self, label: &str, total: Option<u64>, done: u64) {
        if !self.tty {
            return;
        }
        let bar = match total {
            Some(total) => {
                let style = ProgressStyle::with_template(
                    "{msg}\n{wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar());
                let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()).with_style(style);
                bar.set_position(done);
                bar.reset_eta();
                bar
            }
            None => {
                let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                bar.enable_steady_tick(Duration::from_millis(120));
                bar
            }
        };
        bar.set_message(label.to_owned());
        self.with_bar(|slot| *slot = Some(bar));
    }

    fn advance(&self, bytes: u64) {
        self.with_bar(|slot| {
            if let Some(bar) = slot {
                bar.inc(bytes);
            }
        });
    }

    fn end(&self) {
        self.with_bar(|slot| {
            if let Some(bar) = slot.take() {
                bar.finish_and_clear();
            }
        });
    }

    fn note(&self, message: &str) {
        let text = format!("mamba-llm: {message}");
        let mut shown = false;
        self.with_bar(|slot| {
            if let Some(bar) = slot {
                bar.suspend(|| note(&text));
                shown = true;
            }
        });
        if !shown {
            note(&text);
        }
    }
}

fn known_names() -> String {
    ModelSpec::known().iter().map(|m| m.name.clone()).collect::<Vec<_>>().join(", ")
}

/// The built-in model, loaded, and a line saying which one and where it came from.
pub(crate) async fn open(model: &LocalModel, why: Why) -> Result<(Box<dyn ModelBackend>, String), CliError> {
    let asked = matches!(why, Why::Asked);
    let fail = |message: String| {
        CliError::Unavailable(match &why {
            Why::Asked => format!(
                "the built-in model could not be had: {message}. Pass a GGUF file with --model-file PATH (or MAMBA_MODEL_FILE)"
            ),
            Why::NoServer(searched) => format!(
                "no server configured and none found on localhost ({searched}), and the built-in model could not be had: {message}. Configure a server with --base-url URL (or MAMBA_BASE_URL, --preset NAME), or pass a GGUF file with --model-file PATH"
            ),
        })
    };
    // `-m` names a built-in model; any other name is a server's model, an error with --local.
    let spec = match model.name.as_deref() {
        Some(name) => match ModelSpec::find(name) {
            Some(spec) => spec,
            None if asked && model.file_flag.is_none() => {
                return Err(CliError::Usage(format!(
                    "-m {name}: not a built-in model (known: {}); use --model-file PATH for another GGUF",
                    known_names()
                )))
            }
            None => ModelSpec::default_model(),
        },
        None => ModelSpec::default_model(),
    };
    let (given, given_by) = match model.given_file() {
        // `ollama:NAME[:TAG]` and `lmstudio:NAME` name a file of those programs' stores.
        Some((path, by)) => (
            Some(mamba_local::stores::resolve(&path).map_err(|e| CliError::Usage(format!("{by}: {}", e.message())))?),
            by,
        ),
        None => (None, ""),
    };
    let store = ModelStore::from_env().map_err(|e| fail(e.message().to_owned()))?;
    let progress = TermProgress::new();
    let found = store.locate(given.as_deref(), &spec, &progress).await.map_err(|e| fail(e.message().to_owned()))?;
    // The model's default system message (`-s` replaces it): a plain helpful-assistant line,
    // harmless for any other GGUF given with --model-file.
    let mut options =
        LocalOptions::new().cache_dir(store.cache_dir()).default_system_prompt(spec.default_system_prompt.clone());
    // Another chat template for the file (one without tools, or without a template at all).
    if let Some(path) = std::env::var_os("MAMBA_CHAT_TEMPLATE_FILE").filter(|p| !p.is_empty()) {
        let source = std::fs::read_to_string(&path).map_err(|e| {
            CliError::Usage(format!(
                "MAMBA_CHAT_TEMPLATE_FILE={}: cannot read it ({e}); name a Jinja chat template file",
                std::path::Path::new(&path).display()
            ))
        })?;
        options = options.chat_template(source);
    }
    let backend = LocalBackend::load_async(&found.path, options)
        .await
        .map_err(|e| fail(format!("{}: {}", found.path.display(), e.message())))?;
    let origin = match &found.origin {
        Origin::Given => given_by.to_owned(),
        Origin::Cache => "cached".to_owned(),
        other => other.to_string(),
    };
    let what = match &found.origin {
        Origin::Given => format!("the built-in engine with {}", backend.model()),
        _ => format!("the built-in model {}", spec.display_name),
    };
    let lead = match &why {
        Why::Asked => "mamba-llm: answering with".to_owned(),
        Why::NoServer(searched) => {
            format!("mamba-llm: no server configured and none found on localhost ({searched}); answering with")
        }
    };
    note(&format!("{lead} {what}, in process, from {} ({origin})", found.path.display()));
    let label = format!("{} (built-in, in process)", backend.model());
    Ok((Box::new(backend), label))
}

/// `mamba-llm pull [MODEL] [--source SOURCE]`.
pub(crate) async fn pull(model: Option<&str>, source: Option<&str>) -> Result<(), CliError> {
    let name = model.unwrap_or(DEFAULT_MODEL);
    let spec = ModelSpec::find(name)
        .ok_or_else(|| CliError::Usage(format!("unknown model {name:?}; known: {}", known_names())))?;
    let spec = match source {
        Some(kind) => spec.only_sources(kind).ok_or_else(|| {
            CliError::Usage(format!(
                "--source {kind:?}: use one of {}",
                mamba_local::fetch::ModelSource::KINDS.join(", ")
            ))
        })?,
        None => spec,
    };
    let store = ModelStore::from_env()?;
    let found = store.fetch(&spec, &TermProgress::new()).await.map_err(|e| {
        CliError::Unavailable(format!(
            "{}. Download the GGUF yourself and pass it with --model-file PATH (or MAMBA_MODEL_FILE)",
            e.message()
        ))
    })?;
    match &found.origin {
        Origin::Cache => note(&format!("mamba-llm: {} is already in the cache", spec.display_name)),
        origin => note(&format!("mamba-llm: {} ({}): {origin}", spec.display_name, format_size(spec.size))),
    }
    line(&found.path.display().to_string())
}

/// One model file `models --local` lists.
struct Listed {
    /// What `--model-file` (or `-m`) takes to use it.
    reference: String,
    source: &'static str,
    path: std::path::PathBuf,
    size: u64,
}

/// `mamba-llm models --local`: the cache, then Ollama's and LM Studio's stores, each file with
/// its family and quantisation read from its header (a file that cannot be read says so).
pub(crate) fn list(json: bool) -> Result<(), CliError> {
    let store = ModelStore::from_env()?;
    let mut models: Vec<Listed> = store
        .list()?
        .into_iter()
        .map(|m| Listed {
            reference: m.known_as.map_or_else(|| m.path.display().to_string(), |name| format!("-m {name}")),
            source: "cache",
            path: m.path,
            size: m.size,
        })
        .collect();
    models.extend(mamba_local::stores::list_all().into_iter().map(|m| Listed {
        reference: m.reference(),
        source: m.store,
        path: m.path,
        size: m.size,
    }));
    let headers: Vec<_> = models.iter().map(|m| mamba_local::gguf_metadata(&m.path)).collect();
    if json {
        let list: Vec<_> = models
            .iter()
            .zip(&headers)
            .map(|(m, h)| {
                let (family, quant, error) = match h {
                    Ok(info) => (Some(info.architecture.clone()), info.file_type.clone(), None),
                    Err(e) => (None, None, Some(e.message().to_owned())),
                };
                let file = m.path.file_name().map(|f| f.to_string_lossy().into_owned());
                json!({"model": m.reference, "source": m.source, "family": family, "quantization": quant,
                       "file": file, "size": m.size, "path": m.path, "error": error})
            })
            .collect();
        return line(&serde_json::Value::Array(list).to_string());
    }
    if models.is_empty() {
        note(&format!(
            "mamba-llm: no models in the cache {}, nor in Ollama's or LM Studio's stores; `mamba-llm pull` downloads the built-in one",
            store.cache_dir().display()
        ));
        return Ok(());
    }
    let mut rows = vec![["MODEL", "SOURCE", "FAMILY", "QUANT", "SIZE", "PATH"].map(str::to_owned).to_vec()];
    for (m, h) in models.iter().zip(&headers) {
        let (family, quant) = match h {
            Ok(info) => (info.architecture.clone(), info.file_type.clone().unwrap_or_else(|| "-".to_owned())),
            Err(_) => ("(unreadable)".to_owned(), "-".to_owned()),
        };
        rows.push(vec![
            m.reference.clone(),
            m.source.to_owned(),
            family,
            quant,
            format_size(m.size),
            m.path.display().to_string(),
        ]);
    }
    table(&rows)
}
