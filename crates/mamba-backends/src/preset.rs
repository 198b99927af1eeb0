//! Presets: what differs between OpenAI-compatible servers, as data in one table.
//!
//! Every row comes from `provider-quirks.md` (the project's sourced matrix). Where a cell there
//! is unverified (`[?]`), the lenient choice is taken and the comment beside the row says so.
//! Shared code reads these values; nothing else in the crate asks which server it talks to.

use std::fmt;

/// How the API key is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthStyle {
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// The key as the value of this header (Azure's legacy `api-key`).
    Header(&'static str),
}

/// Where a server says it is ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Probe {
    /// A path on the server root (the base URL without its `/v1`), e.g. `/health`.
    Root(&'static str),
    /// A path under the base URL, e.g. `/models`.
    Base(&'static str),
}

/// Which field carries the output token limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FieldSupport {
    /// The server silently ignores it: it is dropped with a warning.
    Ignored,
    /// The server rejects the request: an `Unsupported` error unless the backend was built
    /// with `drop_unsupported(true)`, then dropped with a warning.
    Rejected,
}

/// How a server accepts structured output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
    /// OpenAI's strict `json_schema` (OpenAI, Azure): a user's own `response_format` is sent as
    /// given; for [`Extract`](crate::structured::Extract) the schema is made strict (every
    /// property required, optional ones as `null` unions, `additionalProperties: false`,
    /// keywords strict mode rejects moved into `description`).
    OpenAiStrict,
    /// `json_schema` without `type` arrays (Ollama chokes on `type: [..., "null"]`): a user's own
    /// `response_format` is sent as given; for [`Extract`](crate::structured::Extract) type
    /// arrays are rewritten as `anyOf`.
    NoTypeArrays,
}

/// Which API a backend speaks: chat completions, the Responses API, or the Responses API
/// where the server has it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WireApi {
    /// `POST /chat/completions`. A server that says a model works only with the Responses
    /// API switches the backend to it, unless this was set explicitly on the builder.
    #[default]
    ChatCompletions,
    /// `POST /responses`.
    Responses,
    /// The Responses API first; when the server has none (404, 405, 501, or the wording
    /// servers use for an unknown route) the backend falls back to chat completions and
    /// remembers it. A request with options the Responses API lacks (`stop`, `seed`,
    /// penalties) goes to chat.
    Auto,
}

impl WireApi {
    /// Parses `chat` (or `chat-completions`), `responses` or `auto`.
    pub fn parse(value: &str) -> Option<WireApi> {
        match value.trim().to_ascii_lowercase().as_str() {
            "chat" | "chat-completions" | "chat_completions" | "chatcompletions" => Some(WireApi::ChatCompletions),
            "responses" | "response" => Some(WireApi::Responses),
            "auto" => Some(WireApi::Auto),
            _ => None,
        }
    }

    /// `chat`, `responses` or `auto`.
    pub fn as_str(self) -> &'static str {
        match self {
            WireApi::ChatCompletions => "chat",
            WireApi::Responses => "responses",
            WireApi::Auto => "auto",
        }
    }
}

/// The data of one preset. Read it with [`Preset::spec`]; describe a server this crate does
/// not ship with [`Preset::custom`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
    /// The response field reasoning arrives in (informational: every known field is always
    /// read).
    pub reasoning_response_field: Option<&'static str>,
    /// The request field an assistant message's reasoning is echoed back in, on tool-call
    /// turns only (DeepSeek's thinking mode requires it; most servers reject or ignore it).
    pub reasoning_echo_field: Option<&'static str>,
    /// Tool-call ids must be nine letters and digits (Mistral): ids in the history are mapped.
    pub nine_char_tool_ids: bool,
    /// Whether messages may carry `name` (Groq rejects it: it is left out).
    pub message_names: bool,
    /// Structured output.
    pub structured_output: StructuredOutput,
    /// A query string every request carries (Azure legacy `api-version`).
    pub query: Option<&'static str>,
    /// A server people run on their own machine: when nothing is configured, `mamba-llm`
    /// looks for it on its default port.
    pub local_discovery: bool,
    /// The model asked for when none is given and the server lists none.
    pub default_model: &'static str,
    /// The server's embeddings endpoint (`POST {base_url}/embeddings`); `None` when it has
    /// none (embedding calls then fail with `Unsupported` before any request).
    pub embeddings: Option<EmbeddingSpec>,
    /// The API a backend speaks unless its builder says otherwise.
    pub wire_api: WireApi,
    /// Whether the server has OpenAI's Batch API (`POST /files` with a JSONL of requests,
    /// `POST /batches`, `GET /batches/{id}`, `GET /files/{id}/content`), which `mamba-llm
    /// batch --remote` hands a file to. Servers with a batch API of another shape (Mistral's
    /// `/batch/jobs`, Fireworks' batch inference jobs) or with only an offline runner (vLLM's
    /// `run-batch`) say `false`.
    pub batch_api: bool,
    /// The `purpose` a batch input file is uploaded with: `batch` (OpenAI), `batch-api`
    /// (Together).
    pub batch_file_purpose: &'static str,
}

/// What a server's embeddings endpoint takes. Limits are per request; where a server's are
/// unknown, they are conservative.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct EmbeddingSpec {
    /// Most inputs in one request.
    pub max_inputs: usize,
    /// Most tokens in one request, estimated (a text counts one token per four bytes).
    pub max_tokens: usize,
    /// Whether `encoding_format: "base64"` is asked for by default. A server that answers
    /// with floats anyway, or rejects it, is remembered and asked for floats afterwards.
    pub base64: bool,
    /// The request field that takes `dimensions` (`None`: the server has no such option).
    pub dimensions_field: Option<&'static str>,
    /// The embedding model asked for when none is given (`nomic-embed-text` on Ollama).
    pub default_model: &'static str,
    /// Words of the error a server sends when its embeddings are switched off (llama.cpp
    /// started without `--embeddings`); that error becomes `Unsupported` with `disabled_help`.
    pub disabled_markers: &'static [&'static str],
    /// What to do about it, for the error message.
    pub disabled_help: &'static str,
}

impl EmbeddingSpec {
    /// OpenAI's endpoint: 2,048 inputs and 300,000 tokens per request, base64, `dimensions`.
    pub const OPENAI: EmbeddingSpec = EmbeddingSpec {
        max_inputs: 2048,
        max_tokens: 300_000,
        base64: true,
        dimensions_field: Some("dimensions"),
        default_model: "text-embedding-3-small",
        disabled_markers: &[],
        disabled_help: "",
    };

    /// Most inputs in one request.
    pub fn max_inputs(mut self, n: usize) -> EmbeddingSpec {
        self.max_inputs = n;
        self
    }

    /// Most estimated tokens in one request.
    pub fn max_tokens(mut self, n: usize) -> EmbeddingSpec {
        self.max_tokens = n;
        self
    }

    /// Whether base64 is asked for by default.
    pub fn base64(mut self, yes: bool) -> EmbeddingSpec {
        self.base64 = yes;
        self
    }

    /// The field `dimensions` is sent in, or `None`.
    pub fn dimensions_field(mut self, field: Option<&'static str>) -> EmbeddingSpec {
        self.dimensions_field = field;
        self
    }

    /// The default embedding model.
    pub fn default_model(mut self, model: &'static str) -> EmbeddingSpec {
        self.default_model = model;
        self
    }
}

// Embeddings rows. OpenAI: 2,048 inputs, 300k tokens a request, base64, `dimensions` [D
// OAI-SPEC]. llama.cpp: llama-server honours base64; llama-cpp-python ignores it and answers
// floats, which is read and remembered; neither takes `dimensions`; without `--embeddings` /
// `--embedding true` it answers 501 "does not support embeddings" / 500 "must be created with
// embedding=True" [C][K]. vLLM takes base64 and `dimensions` (Matryoshka models) [C?].
// Mistral's field is `output_dimension` [D?]. Groq, DeepSeek and TGI have no endpoint [D].
// The rest are unverified [?]: conservative batches, floats, no `dimensions`.
/// What llama-server and llama-cpp-python answer when started without embeddings.
const LLAMA_CPP_EMBEDDINGS_OFF: &[&str] = &["does not support embeddings", "created with embedding=true"];

/// A self-hosted server whose limits are unknown: modest batches, floats, no `dimensions`.
const LOCAL_EMBEDDINGS: EmbeddingSpec = EmbeddingSpec {
    max_inputs: 64,
    max_tokens: 16_384,
    base64: false,
    dimensions_field: None,
    default_model: "default",
    disabled_markers: &[],
    disabled_help: "",
};

/// A kind of server: one of the shipped presets, or a [custom](Preset::custom) one. The
/// default is [`Preset::Generic`].
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
    /// A server this crate does not ship a preset for, described by its own data (see
    /// [`Preset::custom`]).
    Custom(&'static PresetSpec),
}

use FieldSupport::{Ignored, Rejected};

const GENERIC: PresetSpec = PresetSpec {
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
    reasoning_response_field: None,
    reasoning_echo_field: None,
    nine_char_tool_ids: false,
    message_names: true,
    structured_output: StructuredOutput::Native,
    query: None,
    local_discovery: false,
    default_model: "gpt-4o-mini",
    // Any server may be llama.cpp with its embeddings off: its error is recognised here too.
    embeddings: Some(EmbeddingSpec {
        disabled_markers: LLAMA_CPP_EMBEDDINGS_OFF,
        disabled_help: "the server's embeddings are switched off (llama.cpp: restart llama-server with --embeddings, llama-cpp-python with --embedding true)",
        ..EmbeddingSpec::OPENAI
    }),
    // Any server: chat is what every one of them serves.
    wire_api: WireApi::ChatCompletions,
    // A server named only by its URL may have one: trying costs one refused upload.
    batch_api: true,
    batch_file_purpose: "batch",
};

// OpenAI: max_tokens is deprecated and rejected by reasoning models [D OAI-SPEC].
const OPENAI: PresetSpec = PresetSpec {
    name: "openai",
    display_name: "OpenAI",
    requires_key: true,
    max_tokens: MaxTokensField::MaxCompletionTokens,
    // Newer models and features are on /v1/responses, some only there [D OAI-SPEC].
    wire_api: WireApi::Auto,
    // The Batch API's home [D OAI-SPEC].
    batch_api: true,
    // Strict json_schema: all required, no additional properties [D OAI-SPEC].
    structured_output: StructuredOutput::OpenAiStrict,
    ..GENERIC
};

// Azure v1: same paths and fields as OpenAI; both auth headers accepted [D].
const AZURE: PresetSpec = PresetSpec {
    name: "azure",
    display_name: "Azure OpenAI (v1)",
    base_url: "https://RESOURCE.openai.azure.com/openai/v1",
    requires_key: true,
    max_tokens: MaxTokensField::MaxCompletionTokens,
    // The v1 API serves /responses too [D]; Auto falls back where a deployment does not.
    wire_api: WireApi::Auto,
    // Global-batch deployments: /files and /batches under /openai/v1 [D].
    batch_api: true,
    // Strict json_schema: all required, no additional properties [D OAI-SPEC].
    structured_output: StructuredOutput::OpenAiStrict,
    ..GENERIC
};

// Azure legacy: deployment in the path, api-version query, api-key header [D].
const AZURE_LEGACY: PresetSpec = PresetSpec {
    name: "azure-legacy",
    display_name: "Azure OpenAI (deployment URL)",
    base_url: "https://RESOURCE.openai.azure.com/openai/deployments/DEPLOYMENT",
    auth: AuthStyle::Header("api-key"),
    requires_key: true,
    max_tokens: MaxTokensField::MaxCompletionTokens,
    query: Some("api-version=2024-10-21"),
    // /openai/files and /openai/batches with api-version (not under the deployment) [D].
    batch_api: true,
    // Strict json_schema: all required, no additional properties [D OAI-SPEC].
    structured_output: StructuredOutput::OpenAiStrict,
    ..GENERIC
};

// Ollama /v1: tool_choice, parallel_tool_calls, n and logit_bias are not read;
// max_completion_tokens is ignored [C OLL openai.go].
const OLLAMA: PresetSpec = PresetSpec {
    name: "ollama",
    display_name: "Ollama",
    base_url: "http://localhost:11434/v1",
    probe: Probe::Root("/api/version"),
    max_tokens: MaxTokensField::MaxTokens,
    unsupported: &[("tool_choice", Ignored), ("parallel_tool_calls", Ignored), ("n", Ignored), ("logit_bias", Ignored)],
    reasoning_response_field: Some("reasoning"),
    local_discovery: true,
    default_model: "llama3.2",
    embeddings: Some(EmbeddingSpec { default_model: "nomic-embed-text", ..LOCAL_EMBEDDINGS }),
    // No /v1/files or /v1/batches [C OLL].
    batch_api: false,
    // json_schema becomes `format: <schema>`, whose converter rejects type arrays [C OLL].
    structured_output: StructuredOutput::NoTypeArrays,
    ..GENERIC
};

// vLLM: unknown fields ignored; both token fields; reasoning renamed to `reasoning` [C].
const VLLM: PresetSpec = PresetSpec {
    name: "vllm",
    display_name: "vLLM",
    base_url: "http://localhost:8000/v1",
    probe: Probe::Root("/health"),
    max_tokens: MaxTokensField::MaxTokens,
    reasoning_response_field: Some("reasoning"),
    local_discovery: true,
    embeddings: Some(EmbeddingSpec {
        max_inputs: 256,
        max_tokens: 65_536,
        base64: true,
        dimensions_field: Some("dimensions"),
        ..LOCAL_EMBEDDINGS
    }),
    // Only the offline `vllm run-batch`; the server has no /v1/batches [D].
    batch_api: false,
    ..GENERIC
};

// llama.cpp: json_schema as json_object+schema works on llama-server and is the only form
// llama-cpp-python accepts; a named tool_choice is honoured by llama-cpp-python and treated
// as auto by llama-server, so it is sent [C LCPP][peers README].
const LLAMA_CPP: PresetSpec = PresetSpec {
    name: "llama-cpp",
    display_name: "llama.cpp server",
    base_url: "http://localhost:8080/v1",
    probe: Probe::Root("/health"),
    max_tokens: MaxTokensField::MaxTokens,
    reasoning_response_field: Some("reasoning_content"),
    structured_output: StructuredOutput::JsonObjectWithSchema,
    local_discovery: true,
    embeddings: Some(EmbeddingSpec {
        base64: true,
        max_tokens: 8192,
        disabled_markers: LLAMA_CPP_EMBEDDINGS_OFF,
        disabled_help: "the llama.cpp server was started without embeddings: restart llama-server with --embeddings (llama-cpp-python: --embedding true)",
        ..LOCAL_EMBEDDINGS
    }),
    // No Files or Batch API [C LCPP].
    batch_api: false,
    ..GENERIC
};

// LM Studio: closed source; json_object rejected in some versions [?] -> sent as a schema.
const LM_STUDIO: PresetSpec = PresetSpec {
    name: "lm-studio",
    display_name: "LM Studio",
    base_url: "http://localhost:1234/v1",
    max_tokens: MaxTokensField::MaxTokens,
    reasoning_response_field: Some("reasoning_content"),
    structured_output: StructuredOutput::JsonSchemaOnly,
    local_discovery: true,
    default_model: "local-model",
    embeddings: Some(EmbeddingSpec { default_model: "text-embedding-nomic-embed-text-v1.5", ..LOCAL_EMBEDDINGS }),
    // No Batch API [D?].
    batch_api: false,
    ..GENERIC
};

// SGLang: unknown fields ignored; /health for readiness, not /v1/models [C][I gpustack#6203].
const SGLANG: PresetSpec = PresetSpec {
    name: "sglang",
    display_name: "SGLang",
    base_url: "http://localhost:30000/v1",
    probe: Probe::Root("/health"),
    max_tokens: MaxTokensField::MaxTokens,
    reasoning_response_field: Some("reasoning_content"),
    embeddings: Some(LOCAL_EMBEDDINGS),
    // /v1/files and /v1/batches in its OpenAI server [C?].
    batch_api: true,
    ..GENERIC
};

// TGI: no `n`; stop must be an array (always sent as one); launcher port 3000 [C].
const TGI: PresetSpec = PresetSpec {
    name: "tgi",
    display_name: "Text Generation Inference",
    base_url: "http://localhost:3000/v1",
    probe: Probe::Root("/health"),
    max_tokens: MaxTokensField::MaxTokens,
    unsupported: &[("n", Ignored), ("parallel_tool_calls", Ignored)],
    structured_output: StructuredOutput::TgiJson,
    embeddings: None,
    // No Batch API [C].
    batch_api: false,
    ..GENERIC
};

// LocalAI: /readyz; reasoning in `reasoning` [C LAI].
const LOCALAI: PresetSpec = PresetSpec {
    name: "localai",
    display_name: "LocalAI",
    base_url: "http://localhost:8080/v1",
    probe: Probe::Root("/readyz"),
    max_tokens: MaxTokensField::MaxTokens,
    reasoning_response_field: Some("reasoning"),
    embeddings: Some(EmbeddingSpec { default_model: "text-embedding-ada-002", ..LOCAL_EMBEDDINGS }),
    // No Batch API [?].
    batch_api: false,
    ..GENERIC
};

// LiteLLM proxy: maps fields per upstream; /health/readiness needs no key [D].
const LITELLM: PresetSpec = PresetSpec {
    name: "litellm",
    display_name: "LiteLLM proxy",
    base_url: "http://localhost:4000/v1",
    probe: Probe::Root("/health/readiness"),
    max_tokens: MaxTokensField::MaxTokens,
    reasoning_response_field: Some("reasoning_content"),
    embeddings: Some(EmbeddingSpec { max_inputs: 256, max_tokens: 65_536, ..EmbeddingSpec::OPENAI }),
    // Proxies /v1/files and /v1/batches to OpenAI, Azure, Vertex, Bedrock, vLLM (managed files need its database or an x-litellm-model routing header) [D].
    batch_api: true,
    ..GENERIC
};

// OpenRouter: usage always in the last chunk; include_usage accepted as well [D][K].
const OPENROUTER: PresetSpec = PresetSpec {
    name: "openrouter",
    display_name: "OpenRouter",
    base_url: "https://openrouter.ai/api/v1",
    requires_key: true,
    max_tokens: MaxTokensField::MaxTokens,
    reasoning_response_field: Some("reasoning"),
    default_model: "openai/gpt-4o-mini",
    embeddings: Some(EmbeddingSpec {
        base64: false,
        dimensions_field: None,
        max_inputs: 256,
        default_model: "openai/text-embedding-3-small",
        ..EmbeddingSpec::OPENAI
    }),
    // No Batch API [D].
    batch_api: false,
    ..GENERIC
};

// Groq: n, logprobs, top_logprobs, logit_bias -> 400 [D].
const GROQ: PresetSpec = PresetSpec {
    name: "groq",
    display_name: "Groq",
    base_url: "https://api.groq.com/openai/v1",
    requires_key: true,
    max_tokens: MaxTokensField::MaxTokens,
    unsupported: &[("n", Rejected), ("logprobs", Rejected), ("top_logprobs", Rejected), ("logit_bias", Rejected)],
    message_names: false,
    reasoning_response_field: Some("reasoning"),
    default_model: "llama-3.3-70b-versatile",
    embeddings: None,
    // OpenAI-shaped /files (purpose batch) and /batches [D].
    batch_api: true,
    ..GENERIC
};

// DeepSeek: reasoning_content, sent back on tool-call turns in thinking mode; json_object
// only [D][?].
const DEEPSEEK: PresetSpec = PresetSpec {
    name: "deepseek",
    display_name: "DeepSeek",
    base_url: "https://api.deepseek.com/v1",
    requires_key: true,
    max_tokens: MaxTokensField::MaxTokens,
    reasoning_response_field: Some("reasoning_content"),
    reasoning_echo_field: Some("reasoning_content"),
    structured_output: StructuredOutput::JsonObjectOnly,
    default_model: "deepseek-chat",
    embeddings: None,
    // No Batch API [D].
    batch_api: false,
    ..GENERIC
};

// Mistral: unknown fields are 422; seed is random_seed; n forbidden; ids 9 alnum [D][I].
// include_usage is not in its schema as far as found [?]: not sent (usage comes anyway).
const MISTRAL: PresetSpec = PresetSpec {
    name: "mistral",
    display_name: "Mistral",
    base_url: "https://api.mistral.ai/v1",
    requires_key: true,
    max_tokens: MaxTokensField::MaxTokens,
    include_usage: false,
    unsupported: &[("n", Rejected), ("logit_bias", Rejected), ("logprobs", Rejected)],
    renames: &[("seed", "random_seed")],
    nine_char_tool_ids: true,
    default_model: "mistral-small-latest",
    embeddings: Some(EmbeddingSpec {
        max_inputs: 512,
        max_tokens: 16_384,
        base64: false,
        dimensions_field: Some("output_dimension"),
        default_model: "mistral-embed",
        ..EmbeddingSpec::OPENAI
    }),
    // Its batch API has its own shape (/v1/batch/jobs, `input_files`, `model` per job) [D].
    batch_api: false,
    ..GENERIC
};

// Together: reasoning in `reasoning` for some models [I]; usage on the last chunk.
const TOGETHER: PresetSpec = PresetSpec {
    name: "together",
    display_name: "Together AI",
    base_url: "https://api.together.xyz/v1",
    requires_key: true,
    max_tokens: MaxTokensField::MaxTokens,
    reasoning_response_field: Some("reasoning"),
    embeddings: Some(EmbeddingSpec {
        max_inputs: 256,
        max_tokens: 65_536,
        base64: false,
        dimensions_field: None,
        default_model: "BAAI/bge-base-en-v1.5",
        ..EmbeddingSpec::OPENAI
    }),
    // OpenAI-shaped /batches; input files are uploaded with purpose `batch-api` [D].
    batch_api: true,
    batch_file_purpose: "batch-api",
    ..GENERIC
};

// Fireworks: usage in the final chunk [D]; fields otherwise as OpenAI [?].
const FIREWORKS: PresetSpec = PresetSpec {
    name: "fireworks",
    display_name: "Fireworks AI",
    base_url: "https://api.fireworks.ai/inference/v1",
    requires_key: true,
    max_tokens: MaxTokensField::MaxTokens,
    embeddings: Some(EmbeddingSpec {
        max_inputs: 256,
        max_tokens: 65_536,
        base64: false,
        default_model: "nomic-ai/nomic-embed-text-v1.5",
        ..EmbeddingSpec::OPENAI
    }),
    // Batch inference is a job API of its own shape (datasets, batchInferenceJobs) [D?].
    batch_api: false,
    ..GENERIC
};

impl Preset {
    /// Every shipped preset, in table order (custom presets are not in it).
    pub const ALL: &'static [Preset] = &[
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
        match self {
            Preset::Generic => &GENERIC,
            Preset::OpenAI => &OPENAI,
            Preset::Azure => &AZURE,
            Preset::AzureLegacy => &AZURE_LEGACY,
            Preset::Ollama => &OLLAMA,
            Preset::Vllm => &VLLM,
            Preset::LlamaCpp => &LLAMA_CPP,
            Preset::LmStudio => &LM_STUDIO,
            Preset::SgLang => &SGLANG,
            Preset::Tgi => &TGI,
            Preset::LocalAi => &LOCALAI,
            Preset::LiteLlm => &LITELLM,
            Preset::OpenRouter => &OPENROUTER,
            Preset::Groq => &GROQ,
            Preset::DeepSeek => &DEEPSEEK,
            Preset::Mistral => &MISTRAL,
            Preset::Together => &TOGETHER,
            Preset::Fireworks => &FIREWORKS,
            Preset::Custom(spec) => spec,
        }
    }

    /// A preset for a server this crate does not ship, from its data. Start from the closest
    /// shipped preset's spec and change what differs:
    ///
    /// ```
    /// use mamba_backends::preset::FieldSupport;
    /// use mamba_backends::Preset;
    ///
    /// let spec = Preset::Vllm
    ///     .spec()
    ///     .to_custom("my-gateway", "My gateway", "http://gateway.internal:9000/v1")
    ///     .requires_key(true)
    ///     .unsupported(&[("parallel_tool_calls", FieldSupport::Rejected)]);
    /// let preset = Preset::custom(spec);
    /// assert_eq!(preset.name(), "my-gateway");
    /// assert_eq!(preset.spec().max_tokens, Preset::Vllm.spec().max_tokens);
    /// ```
    ///
    /// The spec is kept for the rest of the program (it is leaked once, so that a preset stays
    /// a small `Copy` value like the shipped ones): make custom presets at start-up, not per
    /// request. A `static` spec can be used without a copy as `Preset::Custom(&SPEC)`.
    pub fn custom(spec: PresetSpec) -> Preset {
        Preset::Custom(Box::leak(Box::new(spec)))
    }

    /// The short name (`llama-cpp`).
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// The default base URL.
    pub fn base_url(self) -> &'static str {
        self.spec().base_url
    }

    /// Finds a shipped preset by its short name, ignoring case, `_` and `-` (`llamacpp`,
    /// `llama_cpp`).
    pub fn from_name(name: &str) -> Option<Preset> {
        let norm = |s: &str| s.chars().filter(|c| *c != '-' && *c != '_').collect::<String>().to_lowercase();
        let wanted = norm(name);
        Preset::ALL.iter().copied().find(|p| norm(p.name()) == wanted)
    }

    /// The shipped presets of servers people run on their own machine, in the order
    /// `mamba-llm` looks for them when nothing is configured.
    pub fn local_servers() -> impl Iterator<Item = Preset> {
        Preset::ALL.iter().copied().filter(|p| p.spec().local_discovery)
    }

    /// The shipped presets of servers with OpenAI's Batch API ([`PresetSpec::batch_api`]),
    /// `generic` left out.
    pub fn with_batch_api() -> impl Iterator<Item = Preset> {
        Preset::ALL.iter().copied().filter(|p| *p != Preset::Generic && p.spec().batch_api)
    }

    /// The port of the default base URL (`11434` for Ollama).
    pub fn default_port(self) -> Option<u16> {
        let uri: http::Uri = self.spec().base_url.parse().ok()?;
        uri.port_u16().or(match uri.scheme_str()? {
            "https" => Some(443),
            "http" => Some(80),
            _ => None,
        })
    }
}

impl PresetSpec {
    /// A copy of this spec under a new name, display name and base URL, to describe a custom
    /// server with [`Preset::custom`]; change the rest with the setters.
    pub fn to_custom(&self, name: &'static str, display_name: &'static str, base_url: &'static str) -> PresetSpec {
        PresetSpec { name, display_name, base_url, local_discovery: false, ..*self }
    }

    /// How the key is sent.
    pub fn auth(mut self, auth: AuthStyle) -> PresetSpec {
        self.auth = auth;
        self
    }

    /// Whether the server needs a key.
    pub fn requires_key(mut self, yes: bool) -> PresetSpec {
        self.requires_key = yes;
        self
    }

    /// Whether the server has OpenAI's Batch API, and the purpose input files are uploaded
    /// with (`batch` unless the server says otherwise).
    pub fn batch_api(mut self, yes: bool, file_purpose: &'static str) -> PresetSpec {
        self.batch_api = yes;
        self.batch_file_purpose = file_purpose;
        self
    }

    /// The readiness probe.
    pub fn probe(mut self, probe: Probe) -> PresetSpec {
        self.probe = probe;
        self
    }

    /// Where the token limit goes.
    pub fn max_tokens(mut self, field: MaxTokensField) -> PresetSpec {
        self.max_tokens = field;
        self
    }

    /// Whether streams ask for usage.
    pub fn include_usage(mut self, yes: bool) -> PresetSpec {
        self.include_usage = yes;
        self
    }

    /// Request fields the server does not take.
    pub fn unsupported(mut self, fields: &'static [(&'static str, FieldSupport)]) -> PresetSpec {
        self.unsupported = fields;
        self
    }

    /// Request field renames.
    pub fn renames(mut self, renames: &'static [(&'static str, &'static str)]) -> PresetSpec {
        self.renames = renames;
        self
    }

    /// The API a backend speaks by default.
    pub fn wire_api(mut self, api: WireApi) -> PresetSpec {
        self.wire_api = api;
        self
    }

    /// The request field reasoning is echoed back in on tool-call turns.
    pub fn reasoning_echo_field(mut self, field: Option<&'static str>) -> PresetSpec {
        self.reasoning_echo_field = field;
        self
    }

    /// Whether tool-call ids must be nine letters and digits.
    pub fn nine_char_tool_ids(mut self, yes: bool) -> PresetSpec {
        self.nine_char_tool_ids = yes;
        self
    }

    /// Whether messages may carry `name`.
    pub fn message_names(mut self, yes: bool) -> PresetSpec {
        self.message_names = yes;
        self
    }

    /// How structured output is written.
    pub fn structured_output(mut self, form: StructuredOutput) -> PresetSpec {
        self.structured_output = form;
        self
    }

    /// A query string every request carries.
    pub fn query(mut self, query: Option<&'static str>) -> PresetSpec {
        self.query = query;
        self
    }

    /// The model asked for when none is given.
    pub fn default_model(mut self, model: &'static str) -> PresetSpec {
        self.default_model = model;
        self
    }

    /// The embeddings endpoint, or `None` for a server without one.
    pub fn embeddings(mut self, spec: Option<EmbeddingSpec>) -> PresetSpec {
        self.embeddings = spec;
        self
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
    fn names_are_unique_and_found() {
        for p in Preset::ALL {
            assert_eq!(Preset::from_name(p.name()), Some(*p));
        }
        let mut names: Vec<_> = Preset::ALL.iter().map(|p| p.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Preset::ALL.len());
    }

    #[test]
    fn custom_presets() {
        let spec = Preset::Mistral.spec().to_custom("acme", "Acme", "https://llm.acme.test/v1").requires_key(false);
        let preset = Preset::custom(spec);
        assert_eq!(preset.name(), "acme");
        assert_eq!(preset.base_url(), "https://llm.acme.test/v1");
        assert_eq!(preset.spec().renames, Preset::Mistral.spec().renames);
        assert!(!preset.spec().requires_key);
        assert_eq!(preset, Preset::custom(spec), "custom presets compare by their data");
        assert_ne!(preset, Preset::Mistral);
        assert_eq!(Preset::from_name("acme"), None, "only shipped presets are found by name");
        assert_eq!(preset.default_port(), Some(443));
    }

    #[test]
    fn local_servers_come_from_the_table() {
        let local: Vec<(Preset, Option<u16>)> = Preset::local_servers().map(|p| (p, p.default_port())).collect();
        assert_eq!(
            local,
            [
                (Preset::Ollama, Some(11434)),
                (Preset::Vllm, Some(8000)),
                (Preset::LlamaCpp, Some(8080)),
                (Preset::LmStudio, Some(1234))
            ]
        );
        assert_eq!(Preset::Ollama.spec().default_model, "llama3.2");
        assert_eq!(Preset::OpenAI.spec().default_model, "gpt-4o-mini");
    }

    #[test]
    fn batch_apis_come_from_the_table() {
        let names: Vec<&str> = Preset::with_batch_api().map(Preset::name).collect();
        assert_eq!(names, ["openai", "azure", "azure-legacy", "sglang", "litellm", "groq", "together"]);
        for p in [Preset::Vllm, Preset::Ollama, Preset::LlamaCpp, Preset::Mistral, Preset::DeepSeek, Preset::OpenRouter]
        {
            assert!(!p.spec().batch_api, "{}", p.name());
        }
        assert!(Preset::Generic.spec().batch_api, "a plain URL may have one: it is tried");
        assert_eq!(Preset::Together.spec().batch_file_purpose, "batch-api");
        assert_eq!(Preset::OpenAI.spec().batch_file_purpose, "batch");
        let spec = Preset::Vllm.spec().to_custom("gw", "Gateway", "http://gw/v1").batch_api(true, "batch");
        assert!(spec.batch_api);
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
