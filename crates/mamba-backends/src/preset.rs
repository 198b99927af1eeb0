//! Presets: what differs between OpenAI-compatible servers, as data in one table.
//!
//! Every row comes from `provider-quirks.md` (the project's sourced matrix). Where a cell there
//! is unverified (`[?]`), the lenient choice is taken and the comment beside the row says so.
//! Shared code reads these values; nothing else in the crate asks which server it talks to.

use std::fmt;

/// How the API key is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthStyle {
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// The key as the value of this header (Azure's legacy `api-key`).
    Header(&'static str),
}

/// Where a server says it is ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Probe {
    /// A path on the server root (the base URL without its `/v1`), e.g. `/health`.
    Root(&'static str),
    /// A path under the base URL, e.g. `/models`.
    Base(&'static str),
}

/// Which field carries the output token limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MaxTokensField {
    /// `max_tokens` (most servers; Ollama ignores the other name).
    MaxTokens,
    /// `max_completion_tokens` (OpenAI and Azure; required by reasoning models).
    MaxCompletionTokens,
    /// `max_completion_tokens` when the model's profile says it needs it, else `max_tokens`.
    ByProfile,
}

/// How a server treats a request field it does not support.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldSupport {
    /// The server silently ignores it: it is dropped with a warning.
    Ignored,
    /// The server rejects the request: an `Unsupported` error unless the backend was built
    /// with `drop_unsupported(true)`, then dropped with a warning.
    Rejected,
}

/// How a server accepts structured output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StructuredOutput {
    /// `response_format` `json_object` and `json_schema` as OpenAI defines them.
    Native,
    /// `json_object` natively; `json_schema` as `{"type": "json_object", "schema": …}`
    /// (llama.cpp server and llama-cpp-python).
    JsonObjectWithSchema,
    /// `json_schema` natively; `json_object` as `json_schema` with an open object schema
    /// (LM Studio rejects `json_object` in some versions).
    JsonSchemaOnly,
    /// `json_object` only; `json_schema` is unsupported (DeepSeek).
    JsonObjectOnly,
    /// `{"type": "json", "value": schema}` for schemas (TGI's own form); `json_object` native.
    TgiJson,
}

/// The data of one preset. Read it with [`Preset::spec`].
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct PresetSpec {
    /// Short name, as the CLI's `--preset` takes it: `llama-cpp`, `azure-legacy`.
    pub name: &'static str,
    /// Human name.
    pub display_name: &'static str,
    /// Default base URL.
    pub base_url: &'static str,
    /// How the key is sent.
    pub auth: AuthStyle,
    /// Whether the server needs a key (hosted services).
    pub requires_key: bool,
    /// Readiness probe.
    pub probe: Probe,
    /// Where the token limit goes.
    pub max_tokens: MaxTokensField,
    /// Whether `stream_options.include_usage` is sent with streams.
    pub include_usage: bool,
    /// Request fields the server does not take, and how it treats them.
    pub unsupported: &'static [(&'static str, FieldSupport)],
    /// Request field renames (`seed` → `random_seed` on Mistral).
    pub renames: &'static [(&'static str, &'static str)],
    /// The field reasoning arrives in (informational: every known field is always read).
    pub reasoning_field: Option<&'static str>,
    /// The field an assistant message's reasoning is sent back in, on tool-call turns only
    /// (DeepSeek's thinking mode requires it; most servers reject or ignore it).
    pub reasoning_echo: Option<&'static str>,
    /// Tool-call ids must be nine letters and digits (Mistral): ids in the history are mapped.
    pub nine_char_tool_ids: bool,
    /// Whether messages may carry `name` (Groq rejects it: it is left out).
    pub message_names: bool,
    /// Structured output.
    pub structured_output: StructuredOutput,
    /// A query string every request carries (Azure legacy `api-version`).
    pub query: Option<&'static str>,
}

/// A known server kind. The default is [`Preset::Generic`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Preset {
    /// Any OpenAI-compatible server: OpenAI's URL, usage asked for in streams, nothing dropped.
    #[default]
    Generic,
    /// OpenAI.
    OpenAI,
    /// Azure OpenAI, v1 API (`https://{resource}.openai.azure.com/openai/v1`).
    Azure,
    /// Azure OpenAI, legacy deployment URLs with `api-version` and the `api-key` header.
    AzureLegacy,
    /// Ollama's OpenAI layer (`/v1`).
    Ollama,
    /// vLLM.
    Vllm,
    /// llama.cpp server (`llama-server`), also llama-cpp-python's server.
    LlamaCpp,
    /// LM Studio.
    LmStudio,
    /// SGLang.
    SgLang,
    /// Hugging Face Text Generation Inference (Messages API).
    Tgi,
    /// LocalAI.
    LocalAi,
    /// LiteLLM proxy.
    LiteLlm,
    /// OpenRouter.
    OpenRouter,
    /// Groq.
    Groq,
    /// DeepSeek.
    DeepSeek,
    /// Mistral (La Plateforme).
    Mistral,
    /// Together AI.
    Together,
    /// Fireworks AI.
    Fireworks,
}

use FieldSupport::{Ignored, Rejected};

const BASE: PresetSpec = PresetSpec {
    name: "generic",
    display_name: "OpenAI-compatible",
    base_url: "https://api.openai.com/v1",
    auth: AuthStyle::Bearer,
    requires_key: false,
    probe: Probe::Base("/models"),
    max_tokens: MaxTokensField::ByProfile,
    include_usage: true,
    unsupported: &[],
    renames: &[],
    reasoning_field: None,
    reasoning_echo: None,
    nine_char_tool_ids: false,
    message_names: true,
    structured_output: StructuredOutput::Native,
    query: None,
};

static SPECS: [PresetSpec; 18] = [
    BASE,
    // OpenAI: max_tokens is deprecated and rejected by reasoning models [D OAI-SPEC].
    PresetSpec {
        name: "openai",
        display_name: "OpenAI",
        requires_key: true,
        max_tokens: MaxTokensField::MaxCompletionTokens,
        ..BASE
    },
    // Azure v1: same paths and fields as OpenAI; both auth headers accepted [D].
    PresetSpec {
        name: "azure",
        display_name: "Azure OpenAI (v1)",
        base_url: "https://RESOURCE.openai.azure.com/openai/v1",
        requires_key: true,
        max_tokens: MaxTokensField::MaxCompletionTokens,
        ..BASE
    },
    // Azure legacy: deployment in the path, api-version query, api-key header [D].
    PresetSpec {
        name: "azure-legacy",
        display_name: "Azure OpenAI (deployment URL)",
        base_url: "https://RESOURCE.openai.azure.com/openai/deployments/DEPLOYMENT",
        auth: AuthStyle::Header("api-key"),
        requires_key: true,
        max_tokens: MaxTokensField::MaxCompletionTokens,
        query: Some("api-version=2024-10-21"),
        ..BASE
    },
    // Ollama /v1: tool_choice, parallel_tool_calls, n and logit_bias are not read;
    // max_completion_tokens is ignored [C OLL openai.go].
    PresetSpec {
        name: "ollama",
        display_name: "Ollama",
        base_url: "http://localhost:11434/v1",
        probe: Probe::Root("/api/version"),
        max_tokens: MaxTokensField::MaxTokens,
        unsupported: &[
            ("tool_choice", Ignored),
            ("parallel_tool_calls", Ignored),
            ("n", Ignored),
            ("logit_bias", Ignored),
        ],
        reasoning_field: Some("reasoning"),
        ..BASE
    },
    // vLLM: unknown fields ignored; both token fields; reasoning renamed to `reasoning` [C].
    PresetSpec {
        name: "vllm",
        display_name: "vLLM",
        base_url: "http://localhost:8000/v1",
        probe: Probe::Root("/health"),
        max_tokens: MaxTokensField::MaxTokens,
        reasoning_field: Some("reasoning"),
        ..BASE
    },
    // llama.cpp: json_schema as json_object+schema works on llama-server and is the only form
    // llama-cpp-python accepts; a named tool_choice is honoured by llama-cpp-python and treated
    // as auto by llama-server, so it is sent [C LCPP][peers README].
    PresetSpec {
        name: "llama-cpp",
        display_name: "llama.cpp server",
        base_url: "http://localhost:8080/v1",
        probe: Probe::Root("/health"),
        max_tokens: MaxTokensField::MaxTokens,
        reasoning_field: Some("reasoning_content"),
        structured_output: StructuredOutput::JsonObjectWithSchema,
        ..BASE
    },
    // LM Studio: closed source; json_object rejected in some versions [?] -> sent as a schema.
    PresetSpec {
        name: "lm-studio",
        display_name: "LM Studio",
        base_url: "http://localhost:1234/v1",
        max_tokens: MaxTokensField::MaxTokens,
        reasoning_field: Some("reasoning_content"),
        structured_output: StructuredOutput::JsonSchemaOnly,
        ..BASE
    },
    // SGLang: unknown fields ignored; /health for readiness, not /v1/models [C][I gpustack#6203].
    PresetSpec {
        name: "sglang",
        display_name: "SGLang",
        base_url: "http://localhost:30000/v1",
        probe: Probe::Root("/health"),
        max_tokens: MaxTokensField::MaxTokens,
        reasoning_field: Some("reasoning_content"),
        ..BASE
    },
    // TGI: no `n`; stop must be an array (always sent as one); launcher port 3000 [C].
    PresetSpec {
        name: "tgi",
        display_name: "Text Generation Inference",
        base_url: "http://localhost:3000/v1",
        probe: Probe::Root("/health"),
        max_tokens: MaxTokensField::MaxTokens,
        unsupported: &[("n", Ignored), ("parallel_tool_calls", Ignored)],
        structured_output: StructuredOutput::TgiJson,
        ..BASE
    },
    // LocalAI: /readyz; reasoning in `reasoning` [C LAI].
    PresetSpec {
        name: "localai",
        display_name: "LocalAI",
        base_url: "http://localhost:8080/v1",
        probe: Probe::Root("/readyz"),
        max_tokens: MaxTokensField::MaxTokens,
        reasoning_field: Some("reasoning"),
        ..BASE
    },
    // LiteLLM proxy: maps fields per upstream; /health/readiness needs no key [D].
    PresetSpec {
        name: "litellm",
        display_name: "LiteLLM proxy",
        base_url: "http://localhost:4000/v1",
        probe: Probe::Root("/health/readiness"),
        max_tokens: MaxTokensField::MaxTokens,
        reasoning_field: Some("reasoning_content"),
        ..BASE
    },
    // OpenRouter: usage always in the last chunk; include_usage accepted as well [D][K].
    PresetSpec {
        name: "openrouter",
        display_name: "OpenRouter",
        base_url: "https://openrouter.ai/api/v1",
        requires_key: true,
        max_tokens: MaxTokensField::MaxTokens,
        reasoning_field: Some("reasoning"),
        ..BASE
    },
    // Groq: n, logprobs, top_logprobs, logit_bias -> 400 [D].
    PresetSpec {
        name: "groq",
        display_name: "Groq",
        base_url: "https://api.groq.com/openai/v1",
        requires_key: true,
        max_tokens: MaxTokensField::MaxTokens,
        unsupported: &[("n", Rejected), ("logprobs", Rejected), ("top_logprobs", Rejected), ("logit_bias", Rejected)],
        message_names: false,
        reasoning_field: Some("reasoning"),
        ..BASE
    },
    // DeepSeek: reasoning_content, sent back on tool-call turns in thinking mode; json_object
    // only [D][?].
    PresetSpec {
        name: "deepseek",
        display_name: "DeepSeek",
        base_url: "https://api.deepseek.com/v1",
        requires_key: true,
        max_tokens: MaxTokensField::MaxTokens,
        reasoning_field: Some("reasoning_content"),
        reasoning_echo: Some("reasoning_content"),
        structured_output: StructuredOutput::JsonObjectOnly,
        ..BASE
    },
    // Mistral: unknown fields are 422; seed is random_seed; n forbidden; ids 9 alnum [D][I].
    // include_usage is not in its schema as far as found [?]: not sent (usage comes anyway).
    PresetSpec {
        name: "mistral",
        display_name: "Mistral",
        base_url: "https://api.mistral.ai/v1",
        requires_key: true,
        max_tokens: MaxTokensField::MaxTokens,
        include_usage: false,
        unsupported: &[("n", Rejected), ("logit_bias", Rejected), ("logprobs", Rejected)],
        renames: &[("seed", "random_seed")],
        nine_char_tool_ids: true,
        ..BASE
    },
    // Together: reasoning in `reasoning` for some models [I]; usage on the last chunk.
    PresetSpec {
        name: "together",
        display_name: "Together AI",
        base_url: "https://api.together.xyz/v1",
        requires_key: true,
        max_tokens: MaxTokensField::MaxTokens,
        reasoning_field: Some("reasoning"),
        ..BASE
    },
    // Fireworks: usage in the final chunk [D]; fields otherwise as OpenAI [?].
    PresetSpec {
        name: "fireworks",
        display_name: "Fireworks AI",
        base_url: "https://api.fireworks.ai/inference/v1",
        requires_key: true,
        max_tokens: MaxTokensField::MaxTokens,
        ..BASE
    },
];

impl Preset {
    /// Every preset, in table order.
    pub const ALL: [Preset; 18] = [
        Preset::Generic,
        Preset::OpenAI,
        Preset::Azure,
        Preset::AzureLegacy,
        Preset::Ollama,
        Preset::Vllm,
        Preset::LlamaCpp,
        Preset::LmStudio,
        Preset::SgLang,
        Preset::Tgi,
        Preset::LocalAi,
        Preset::LiteLlm,
        Preset::OpenRouter,
        Preset::Groq,
        Preset::DeepSeek,
        Preset::Mistral,
        Preset::Together,
        Preset::Fireworks,
    ];

    /// The preset's data.
    pub fn spec(self) -> &'static PresetSpec {
        let index = Preset::ALL.iter().position(|p| *p == self).unwrap_or(0);
        &SPECS[index]
    }

    /// The short name (`llama-cpp`).
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// The default base URL.
    pub fn base_url(self) -> &'static str {
        self.spec().base_url
    }

    /// Finds a preset by its short name, ignoring case, `_` and `-` (`llamacpp`, `llama_cpp`).
    pub fn from_name(name: &str) -> Option<Preset> {
        let norm = |s: &str| s.chars().filter(|c| *c != '-' && *c != '_').collect::<String>().to_lowercase();
        let wanted = norm(name);
        Preset::ALL.into_iter().find(|p| norm(p.name()) == wanted)
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_and_enum_agree() {
        for (i, p) in Preset::ALL.iter().enumerate() {
            assert!(std::ptr::eq(p.spec(), &SPECS[i]));
            assert_eq!(Preset::from_name(p.name()), Some(*p));
        }
        let mut names: Vec<_> = SPECS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SPECS.len());
    }

    #[test]
    fn names_are_forgiving() {
        assert_eq!(Preset::from_name("LlamaCpp"), Some(Preset::LlamaCpp));
        assert_eq!(Preset::from_name("llama_cpp"), Some(Preset::LlamaCpp));
        assert_eq!(Preset::from_name("lmstudio"), Some(Preset::LmStudio));
        assert_eq!(Preset::from_name("nope"), None);
    }

    #[test]
    fn seed_factories_urls() {
        assert_eq!(Preset::Ollama.base_url(), "http://localhost:11434/v1");
        assert_eq!(Preset::Vllm.base_url(), "http://localhost:8000/v1");
        assert_eq!(Preset::LmStudio.base_url(), "http://localhost:1234/v1");
        assert_eq!(Preset::Generic.base_url(), "https://api.openai.com/v1");
    }
}
