//! Model files other programs already downloaded: Ollama's store and LM Studio's models folder,
//! read in place (never copied, never written).
//!
//! `ollama:NAME[:TAG]` names a model of Ollama's store (`$OLLAMA_MODELS`, else
//! `~/.ollama/models`): its manifest (`manifests/<registry>/<namespace>/<name>/<tag>`) names
//! the blob holding the GGUF (`blobs/sha256-<hex>`, the layer of media type
//! `application/vnd.ollama.image.model`). `NAME` may carry a namespace (`user/name`) and a
//! registry (`hf.co/user/name`); the defaults are `registry.ollama.ai`, `library`, `latest`.
//!
//! `lmstudio:NAME` names a GGUF under LM Studio's models folder (`$LMSTUDIO_MODELS`, else
//! `~/.lmstudio/models`, else the older `~/.cache/lm-studio/models`), laid out
//! `<publisher>/<model>/<file>.gguf`: `NAME` is `publisher/model/file`, `publisher/model`,
//! `model` or a file name, matched without regard to case; a name matching several files is
//! an error listing them.

use std::path::{Path, PathBuf};

use mamba_backends::{Error, ErrorKind};
use serde::Deserialize;

/// A model file found in a store.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredModel {
    /// The store: `ollama` or `lmstudio`.
    pub store: &'static str,
    /// The name that selects it: `ollama:NAME` or `lmstudio:NAME` takes this.
    pub name: String,
    /// The GGUF file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
}

impl StoredModel {
    /// The reference to pass as `--model-file` (`ollama:qwen2.5:0.5b`).
    pub fn reference(&self) -> String {
        format!("{}:{}", self.store, self.name)
    }
}

/// Resolves `ollama:…` and `lmstudio:…` references to the GGUF file they name; any other
/// path is returned as it is.
///
/// # Errors
/// `Config` when the store or the model is not there, naming where it looked and what to do.
pub fn resolve(reference: &Path) -> Result<PathBuf, Error> {
    let Some(text) = reference.to_str() else { return Ok(reference.to_path_buf()) };
    if let Some(name) = text.strip_prefix("ollama:") {
        return OllamaStore::from_env()?.resolve(name);
    }
    if let Some(name) = text.strip_prefix("lmstudio:") {
        return LmStudioStore::from_env()?.resolve(name);
    }
    Ok(reference.to_path_buf())
}

/// Every model of both stores that are present (a missing store lists nothing).
pub fn list_all() -> Vec<StoredModel> {
    let mut models = OllamaStore::from_env().map(|s| s.list()).unwrap_or_default();
    models.extend(LmStudioStore::from_env().map(|s| s.list()).unwrap_or_default());
    models
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from)
}

fn env_dir(name: &str) -> Option<PathBuf> {
    std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from)
}

fn not_found(message: String) -> Error {
    Error::new(ErrorKind::Config, message)
}

/// Ollama's model store.
#[derive(Debug, Clone)]
pub struct OllamaStore {
    root: PathBuf,
}

#[derive(Deserialize)]
struct Manifest {
    #[serde(default)]
    layers: Vec<Layer>,
}

#[derive(Deserialize)]
struct Layer {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    #[serde(default)]
    digest: String,
}

const OLLAMA_MODEL_LAYER: &str = "application/vnd.ollama.image.model";
const OLLAMA_REGISTRY: &str = "registry.ollama.ai";

impl OllamaStore {
    /// The store at `$OLLAMA_MODELS`, else `~/.ollama/models`.
    ///
    /// # Errors
    /// `Config` when neither is set (no home directory).
    pub fn from_env() -> Result<OllamaStore, Error> {
        env_dir("OLLAMA_MODELS")
            .or_else(|| home().map(|h| h.join(".ollama").join("models")))
            .map(OllamaStore::at)
            .ok_or_else(|| not_found("cannot find Ollama's models: set OLLAMA_MODELS".to_owned()))
    }

    /// The store rooted at `root` (the folder holding `manifests/` and `blobs/`).
    pub fn at(root: impl Into<PathBuf>) -> OllamaStore {
        OllamaStore { root: root.into() }
    }

    /// The manifest path of `name[:tag]`.
    fn manifest_path(&self, name: &str) -> Result<PathBuf, Error> {
        // The tag follows the last `:` after the last `/` (a registry may have a port).
        let (path, tag) = match name.rfind(':') {
            Some(i) if !name[i..].contains('/') => (&name[..i], &name[i + 1..]),
            _ => (name, "latest"),
        };
        let parts: Vec<&str> = path.split('/').collect();
        let bad = |why: &str| not_found(format!("ollama:{name}: {why}; use ollama:NAME[:TAG], as `ollama list` shows"));
        let bad_part = |p: &str| p.is_empty() || p == "." || p == ".." || p.contains('\\');
        if bad_part(tag) || parts.iter().any(|p| bad_part(p)) {
            return Err(bad("not a model name"));
        }
        let (registry, namespace, model) = match parts.as_slice() {
            [model] => (OLLAMA_REGISTRY.to_owned(), "library".to_owned(), *model),
            [namespace, model] => (OLLAMA_REGISTRY.to_owned(), (*namespace).to_owned(), *model),
            [registry, namespace @ .., model] => ((*registry).to_owned(), namespace.join("/"), *model),
            [] => return Err(bad("not a model name")),
        };
        let mut manifest = self.root.join("manifests").join(registry);
        for n in namespace.split('/') {
            manifest.push(n);
        }
        Ok(manifest.join(model).join(tag))
    }

    /// The GGUF blob of `name[:tag]`.
    ///
    /// # Errors
    /// `Config` when the model is not in the store or its manifest has no model layer.
    pub fn resolve(&self, name: &str) -> Result<PathBuf, Error> {
        let manifest = self.manifest_path(name)?;
        let text = std::fs::read_to_string(&manifest).map_err(|e| {
            let known: Vec<String> = self.list().into_iter().map(|m| m.name).take(8).collect();
            let known = if known.is_empty() {
                format!("no models in {}", self.root.display())
            } else {
                format!("the store has {}", known.join(", "))
            };
            not_found(format!(
                "ollama:{name}: no such model in Ollama's store ({}: {e}); {known}. `ollama pull {name}` gets it; OLLAMA_MODELS names another store",
                manifest.display()
            ))
            .with_source(e)
        })?;
        self.blob_of(name, &text, &manifest)
    }

    /// The blob a manifest's text names for model `name`: its model layer, checked to be there.
    /// Errors never list the store (`list` calls this for every manifest).
    fn blob_of(&self, name: &str, text: &str, manifest: &Path) -> Result<PathBuf, Error> {
        let parsed: Manifest = serde_json::from_str(text).map_err(|e| {
            not_found(format!("ollama:{name}: the manifest {} is not readable: {e}", manifest.display())).with_source(e)
        })?;
        let layer = parsed.layers.iter().find(|l| l.media_type == OLLAMA_MODEL_LAYER).ok_or_else(|| {
            not_found(format!("ollama:{name}: the manifest {} names no model layer", manifest.display()))
        })?;
        let hex = layer.digest.strip_prefix("sha256:").unwrap_or(&layer.digest);
        if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(not_found(format!(
                "ollama:{name}: the model layer's digest {:?} is not a sha256",
                layer.digest
            )));
        }
        let blob = self.root.join("blobs").join(format!("sha256-{hex}"));
        if !blob.is_file() {
            return Err(not_found(format!(
                "ollama:{name}: the model's blob {} is missing; `ollama pull {name}` fetches it again",
                blob.display()
            )));
        }
        Ok(blob)
    }

    /// Every model of the store whose manifest names a blob that is there.
    pub fn list(&self) -> Vec<StoredModel> {
        let mut models = Vec::new();
        let manifests = self.root.join("manifests");
        let mut stack = vec![manifests.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let Some(name) = ollama_name(&manifests, &path) else { continue };
                // The manifest found is read as it is: deriving its path again from the name
                // would lose a layout the name does not round-trip (a nested namespace), and a
                // failed resolve lists the store.
                let Ok(text) = std::fs::read_to_string(&path) else { continue };
                if let Ok(blob) = self.blob_of(&name, &text, &path) {
                    let size = std::fs::metadata(&blob).map_or(0, |m| m.len());
                    models.push(StoredModel { store: "ollama", name, path: blob, size });
                }
            }
        }
        models.sort_by(|a, b| a.name.cmp(&b.name));
        models
    }
}

/// The short name `ollama list` shows for a manifest file: `name:tag` in the default registry
/// and namespace, `namespace/name:tag` in the default registry, the whole path otherwise.
fn ollama_name(manifests: &Path, manifest: &Path) -> Option<String> {
    let parts: Vec<String> = manifest
        .strip_prefix(manifests)
        .ok()?
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let [registry, rest @ .., model, tag] = parts.as_slice() else { return None };
    if rest.is_empty() {
        return None;
    }
    let namespace = rest.join("/");
    Some(match (registry.as_str(), namespace.as_str()) {
        (OLLAMA_REGISTRY, "library") => format!("{model}:{tag}"),
        (OLLAMA_REGISTRY, ns) => format!("{ns}/{model}:{tag}"),
        (reg, ns) => format!("{reg}/{ns}/{model}:{tag}"),
    })
}

/// LM Studio's models folder.
#[derive(Debug, Clone)]
pub struct LmStudioStore {
    roots: Vec<PathBuf>,
}

impl LmStudioStore {
    /// The folder at `$LMSTUDIO_MODELS`, else `~/.lmstudio/models` and the older
    /// `~/.cache/lm-studio/models`.
    ///
    /// # Errors
    /// `Config` when none can be named (no home directory).
    pub fn from_env() -> Result<LmStudioStore, Error> {
        if let Some(dir) = env_dir("LMSTUDIO_MODELS") {
            return Ok(LmStudioStore::at(dir));
        }
        let home = home().ok_or_else(|| not_found("cannot find LM Studio's models: set LMSTUDIO_MODELS".to_owned()))?;
        Ok(LmStudioStore {
            roots: vec![home.join(".lmstudio").join("models"), home.join(".cache").join("lm-studio").join("models")],
        })
    }

    /// The folder `root` (holding `<publisher>/<model>/<file>.gguf`).
    pub fn at(root: impl Into<PathBuf>) -> LmStudioStore {
        LmStudioStore { roots: vec![root.into()] }
    }

    /// Every GGUF file of the folder, named `publisher/model/file` (without `.gguf`).
    /// Multimodal projector files (`mmproj-*`) are left out: they are not chat models.
    pub fn list(&self) -> Vec<StoredModel> {
        let mut models = Vec::new();
        for root in &self.roots {
            let mut stack = vec![(root.clone(), 0)];
            while let Some((dir, depth)) = stack.pop() {
                let Ok(entries) = std::fs::read_dir(&dir) else { continue };
                for entry in entries.flatten() {
                    let path = entry.path();
                    if path.is_dir() {
                        if depth < 3 {
                            stack.push((path, depth + 1));
                        }
                        continue;
                    }
                    let is_gguf = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
                    let file = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                    if !is_gguf || file.to_ascii_lowercase().starts_with("mmproj") {
                        continue;
                    }
                    let Ok(relative) = path.strip_prefix(root) else { continue };
                    let name = relative.with_extension("").to_string_lossy().replace('\\', "/");
                    let size = entry.metadata().map_or(0, |m| m.len());
                    models.push(StoredModel { store: "lmstudio", name, path, size });
                }
            }
        }
        models.sort_by(|a, b| a.name.cmp(&b.name));
        models.dedup_by(|a, b| a.name == b.name);
        models
    }

    /// The GGUF file `name` selects.
    ///
    /// # Errors
    /// `Config` when no file or several files match.
    pub fn resolve(&self, name: &str) -> Result<PathBuf, Error> {
        let want = name.trim_end_matches(".gguf").trim_matches('/').to_ascii_lowercase();
        let models = self.list();
        let matches: Vec<&StoredModel> = models
            .iter()
            .filter(|m| {
                let full = m.name.to_ascii_lowercase();
                let parts: Vec<&str> = full.split('/').collect();
                full == want
                    || full.starts_with(&format!("{want}/"))
                    || parts.last() == Some(&want.as_str())
                    || (parts.len() >= 2 && parts[parts.len() - 2] == want)
            })
            .collect();
        let roots = self.roots.iter().map(|r| r.display().to_string()).collect::<Vec<_>>().join(" or ");
        match matches.as_slice() {
            [one] => Ok(one.path.clone()),
            [] => Err(not_found(format!(
                "lmstudio:{name}: no such model in LM Studio's models folder ({roots}); `lms ls` lists them, `mamba-llm models --local` too; LMSTUDIO_MODELS names another folder"
            ))),
            several => Err(not_found(format!(
                "lmstudio:{name} matches {} files: {}; name one as lmstudio:PUBLISHER/MODEL/FILE",
                several.len(),
                several.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ")
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn manifest(digest: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"layers":[{{"mediaType":"application/vnd.ollama.image.template","digest":"sha256:00"}},{{"mediaType":"{OLLAMA_MODEL_LAYER}","digest":"sha256:{digest}","size":4}}]}}"#
        )
    }

    #[test]
    fn ollama_names_resolve_to_their_blob() {
        let dir = tempfile::tempdir().unwrap();
        let store = OllamaStore::at(dir.path());
        let m = dir.path().join("manifests");
        write(&m.join("registry.ollama.ai/library/qwen2.5/0.5b"), &manifest("aa11"));
        write(&m.join("registry.ollama.ai/library/qwen2.5/latest"), &manifest("aa11"));
        write(&m.join("registry.ollama.ai/someone/tiny/q4"), &manifest("bb22"));
        write(&m.join("hf.co/org/repo-gguf/Q4_K_M"), &manifest("cc33"));
        write(&m.join("registry.ollama.ai/library/gone/latest"), &manifest("dd44"));
        // A nested namespace, whose short name does not lead back to it: listed, never looped on.
        write(&m.join("registry.ollama.ai/a/b/deep/v1"), &manifest("bb22"));
        for hex in ["aa11", "bb22", "cc33"] {
            write(&dir.path().join(format!("blobs/sha256-{hex}")), "GGUF");
        }
        let blob = |hex: &str| dir.path().join(format!("blobs/sha256-{hex}"));
        assert_eq!(store.resolve("qwen2.5:0.5b").unwrap(), blob("aa11"));
        assert_eq!(store.resolve("qwen2.5").unwrap(), blob("aa11"));
        assert_eq!(store.resolve("someone/tiny:q4").unwrap(), blob("bb22"));
        assert_eq!(store.resolve("hf.co/org/repo-gguf:Q4_K_M").unwrap(), blob("cc33"));
        let missing = store.resolve("llama3:8b").unwrap_err();
        assert_eq!(missing.kind(), ErrorKind::Config);
        assert!(missing.to_string().contains("ollama pull llama3:8b"), "{missing}");
        assert!(missing.to_string().contains("qwen2.5:0.5b"), "names what the store has: {missing}");
        assert!(store.resolve("gone").unwrap_err().to_string().contains("blob"));
        assert!(store.resolve("../../etc:passwd").is_err());
        for escape in ["qwen2.5:..", "qwen2.5:.", "a\\b:c", "qwen2.5:"] {
            assert!(store.resolve(escape).unwrap_err().to_string().contains("not a model name"), "{escape}");
        }
        let listed: Vec<String> = store.list().into_iter().map(|m| m.reference()).collect();
        assert_eq!(
            listed,
            [
                "ollama:a/b/deep:v1",
                "ollama:hf.co/org/repo-gguf:Q4_K_M",
                "ollama:qwen2.5:0.5b",
                "ollama:qwen2.5:latest",
                "ollama:someone/tiny:q4"
            ]
        );
    }

    #[test]
    fn lmstudio_names_match_publisher_model_or_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = LmStudioStore::at(dir.path());
        write(&dir.path().join("lmstudio-community/Qwen2.5-0.5B-GGUF/Qwen2.5-0.5B-Q4_K_M.gguf"), "GGUF");
        write(&dir.path().join("lmstudio-community/Qwen2.5-0.5B-GGUF/Qwen2.5-0.5B-Q8_0.gguf"), "GGUF");
        write(&dir.path().join("lmstudio-community/Qwen2.5-0.5B-GGUF/mmproj-model-f16.gguf"), "GGUF");
        write(&dir.path().join("bartowski/gemma-3-270m-GGUF/gemma-3-270m-Q4_K_M.gguf"), "GGUF");
        let listed: Vec<String> = store.list().into_iter().map(|m| m.name).collect();
        assert_eq!(listed.len(), 3, "{listed:?}");
        let gemma = dir.path().join("bartowski/gemma-3-270m-GGUF/gemma-3-270m-Q4_K_M.gguf");
        assert_eq!(store.resolve("gemma-3-270m-GGUF").unwrap(), gemma);
        assert_eq!(store.resolve("bartowski/gemma-3-270m-gguf").unwrap(), gemma);
        assert_eq!(store.resolve("gemma-3-270m-Q4_K_M.gguf").unwrap(), gemma);
        let several = store.resolve("Qwen2.5-0.5B-GGUF").unwrap_err().to_string();
        assert!(several.contains("matches 2 files"), "{several}");
        assert!(store.resolve("lmstudio-community/Qwen2.5-0.5B-GGUF/Qwen2.5-0.5B-Q8_0").is_ok());
        assert!(store.resolve("nothing").unwrap_err().to_string().contains("no such model"));
    }

    #[test]
    fn other_paths_are_left_alone() {
        assert_eq!(resolve(Path::new("models/x.gguf")).unwrap(), PathBuf::from("models/x.gguf"));
    }
}
