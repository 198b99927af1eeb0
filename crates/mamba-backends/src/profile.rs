//! Model profiles: what is known about a model family (context window, output limit,
//! capabilities, prices), and a process-wide registry to look them up by model name.
//!
//! Lookup ([`get_profile`]) tries an exact name or alias first, then the **longest** matching
//! prefix, on the lower-cased model name and on its last path segment, so
//! `gpt-4o-mini-2024-07-18` is `gpt-4o-mini` (not `gpt-4o`), `llama3.2:3b` (Ollama) and
//! `meta-llama/Llama-3.2-3B-Instruct` (vLLM) are both `llama3.2`. Unknown models get
//! [`ModelProfile::unknown`].
//!
//! Profiles are advice for callers (context budgets, costs, feature checks) and never make the
//! backend drop or refuse what a caller asked for: an unknown model may well support tools.
//! Two fields do change requests: [`default_temperature`](ModelProfile::default_temperature)
//! (sent only when set) and [`uses_max_completion_tokens`](ModelProfile::uses_max_completion_tokens).

use std::sync::{OnceLock, RwLock};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::types::Usage;

/// What is known about a model family.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ModelProfile {
    /// The profile's name, also its main prefix: `gpt-4o-mini`, `llama3.2`.
    pub name: String,
    /// Who makes the model: `openai`, `anthropic`, `meta`, `qwen`, …; `unknown` for the
    /// fallback profile.
    pub provider: String,
    /// Other prefixes that name the same family (`llama-3.2`, `meta-llama-3.2`).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Context window in tokens, when known.
    pub context_window: Option<u32>,
    /// Longest answer in tokens, when known.
    pub max_output_tokens: Option<u32>,
    /// Calls tools.
    pub supports_tools: bool,
    /// Reads images.
    pub supports_vision: bool,
    /// Streams.
    pub supports_streaming: bool,
    /// Follows a JSON Schema `response_format`.
    pub supports_json_schema: bool,
    /// Produces reasoning before its answer.
    pub reasoning: bool,
    /// Writes its reasoning as `<think>…</think>` at the start of the content when the
    /// server does not separate it.
    pub thinking_tags: bool,
    /// Needs `max_completion_tokens` instead of `max_tokens` on OpenAI and Azure (o-series,
    /// gpt-5).
    pub uses_max_completion_tokens: bool,
    /// A temperature to send when the caller sets none. `None` (every built-in profile) lets
    /// the server use its own default.
    pub default_temperature: Option<f64>,
    /// USD per 1000 input tokens, when known.
    pub cost_per_1k_input: Option<f64>,
    /// USD per 1000 output tokens, when known.
    pub cost_per_1k_output: Option<f64>,
    /// Anything else.
    #[serde(default)]
    pub extra: Map<String, Value>,
}

impl ModelProfile {
    /// A profile with permissive capabilities (tools and streaming on, nothing else known).
    pub fn new(name: impl Into<String>, provider: impl Into<String>) -> ModelProfile {
        ModelProfile {
            name: name.into(),
            provider: provider.into(),
            aliases: Vec::new(),
            context_window: None,
            max_output_tokens: None,
            supports_tools: true,
            supports_vision: false,
            supports_streaming: true,
            supports_json_schema: true,
            reasoning: false,
            thinking_tags: false,
            uses_max_completion_tokens: false,
            default_temperature: None,
            cost_per_1k_input: None,
            cost_per_1k_output: None,
            extra: Map::new(),
        }
    }

    /// The profile of a model nothing is known about: named `default`, provider `unknown`,
    /// and assumed able to do everything, so nothing the caller asks for is dropped.
    pub fn unknown() -> ModelProfile {
        ModelProfile { supports_vision: true, ..ModelProfile::new("default", "unknown") }
    }

    /// True for the fallback profile of unknown models.
    pub fn is_unknown(&self) -> bool {
        self.provider == "unknown"
    }

    /// Adds an alias prefix.
    #[must_use]
    pub fn alias(mut self, alias: impl Into<String>) -> ModelProfile {
        self.aliases.push(alias.into());
        self
    }

    /// Sets the context window.
    #[must_use]
    pub fn context_window(mut self, tokens: u32) -> ModelProfile {
        self.context_window = Some(tokens);
        self
    }

    /// Sets the output limit.
    #[must_use]
    pub fn max_output_tokens(mut self, tokens: u32) -> ModelProfile {
        self.max_output_tokens = Some(tokens);
        self
    }

    /// Sets tool support.
    #[must_use]
    pub fn supports_tools(mut self, yes: bool) -> ModelProfile {
        self.supports_tools = yes;
        self
    }

    /// Sets image input support.
    #[must_use]
    pub fn supports_vision(mut self, yes: bool) -> ModelProfile {
        self.supports_vision = yes;
        self
    }

    /// Sets JSON Schema output support.
    #[must_use]
    pub fn supports_json_schema(mut self, yes: bool) -> ModelProfile {
        self.supports_json_schema = yes;
        self
    }

    /// Whether the model reasons before answering.
    #[must_use]
    pub fn reasoning(mut self, yes: bool) -> ModelProfile {
        self.reasoning = yes;
        self
    }

    /// Whether the model writes `<think>…</think>` into the content when the server does not
    /// separate its reasoning (implies [`reasoning`](Self::reasoning)).
    #[must_use]
    pub fn thinking_tags(mut self, yes: bool) -> ModelProfile {
        self.reasoning |= yes;
        self.thinking_tags = yes;
        self
    }

    /// Whether the model needs `max_completion_tokens` on OpenAI and Azure.
    #[must_use]
    pub fn uses_max_completion_tokens(mut self, yes: bool) -> ModelProfile {
        self.uses_max_completion_tokens = yes;
        self
    }

    /// Sets the temperature sent when the caller gives none.
    #[must_use]
    pub fn default_temperature(mut self, temperature: f64) -> ModelProfile {
        self.default_temperature = Some(temperature);
        self
    }

    /// Sets prices in USD per 1000 input and output tokens.
    #[must_use]
    pub fn cost_per_1k(mut self, input: f64, output: f64) -> ModelProfile {
        self.cost_per_1k_input = Some(input);
        self.cost_per_1k_output = Some(output);
        self
    }

    /// The cost in USD of `usage`, when both prices are known.
    pub fn cost(&self, usage: &Usage) -> Option<f64> {
        Some(
            usage.input_tokens as f64 / 1000.0 * self.cost_per_1k_input?
                + usage.output_tokens as f64 / 1000.0 * self.cost_per_1k_output?,
        )
    }

    fn prefixes(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.name.as_str()).chain(self.aliases.iter().map(String::as_str))
    }
}

fn registry() -> &'static RwLock<Vec<ModelProfile>> {
    static REGISTRY: OnceLock<RwLock<Vec<ModelProfile>>> = OnceLock::new();
    REGISTRY.get_or_init(|| RwLock::new(builtin_profiles()))
}

/// The profile for `model`: exact name or alias, else the longest matching prefix (later
/// registrations win ties), else [`ModelProfile::unknown`].
pub fn get_profile(model: &str) -> ModelProfile {
    let profiles = registry().read().unwrap_or_else(|e| e.into_inner());
    find(&profiles, model).cloned().unwrap_or_else(ModelProfile::unknown)
}

fn find<'a>(profiles: &'a [ModelProfile], model: &str) -> Option<&'a ModelProfile> {
    let full = model.trim().to_lowercase();
    let last = full.rsplit('/').next().unwrap_or(&full).to_owned();
    let candidates = [full.as_str(), last.as_str()];
    // Exact matches first.
    for candidate in candidates {
        if let Some(p) = profiles.iter().rev().find(|p| p.prefixes().any(|n| n.eq_ignore_ascii_case(candidate))) {
            return Some(p);
        }
    }
    let mut best: Option<(&ModelProfile, usize)> = None;
    for p in profiles {
        for prefix in p.prefixes() {
            let prefix_lower = prefix.to_lowercase();
            if candidates.iter().any(|c| c.starts_with(&prefix_lower))
                && best.is_none_or(|(_, len)| prefix_lower.len() >= len)
            {
                best = Some((p, prefix_lower.len()));
            }
        }
    }
    best.map(|(p, _)| p)
}

/// Adds a profile, or replaces the one with the same name.
pub fn register_profile(profile: ModelProfile) {
    let mut profiles = registry().write().unwrap_or_else(|e| e.into_inner());
    profiles.retain(|p| p.name != profile.name);
    profiles.push(profile);
}

/// Every registered profile, built-in ones first.
pub fn list_profiles() -> Vec<ModelProfile> {
    registry().read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The registered profiles of one provider (`"openai"`, `"meta"`, …), case-insensitively.
pub fn get_profiles_by_provider(provider: &str) -> Vec<ModelProfile> {
    registry()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|p| p.provider.eq_ignore_ascii_case(provider))
        .cloned()
        .collect()
}

/// The built-in table. Sources: the vendors' public model pages and pricing pages (OpenAI,
/// Anthropic, Mistral, Google) and the model cards on Hugging Face and ollama.com for open
/// models; context windows are the native ones (no RoPE scaling). Prices in USD per 1000 tokens.
fn builtin_profiles() -> Vec<ModelProfile> {
    let p = |name: &str, provider: &str| ModelProfile::new(name, provider);
    let openai = |name: &str, ctx: u32, out: u32, inp: f64, outp: f64| {
        p(name, "openai").context_window(ctx).max_output_tokens(out).cost_per_1k(inp / 1000.0, outp / 1000.0)
    };
    let claude = |name: &str, alias: &str, out: u32, inp: f64, outp: f64| {
        p(name, "anthropic")
            .alias(alias)
            .context_window(200_000)
            .max_output_tokens(out)
            .supports_vision(true)
            .cost_per_1k(inp / 1000.0, outp / 1000.0)
    };
    vec![
        // OpenAI (prices per 1M tokens, divided above).
        openai("gpt-5", 400_000, 128_000, 1.25, 10.0)
            .supports_vision(true)
            .reasoning(true)
            .uses_max_completion_tokens(true),
        openai("gpt-5-mini", 400_000, 128_000, 0.25, 2.0)
            .supports_vision(true)
            .reasoning(true)
            .uses_max_completion_tokens(true),
        openai("gpt-5-nano", 400_000, 128_000, 0.05, 0.40)
            .supports_vision(true)
            .reasoning(true)
            .uses_max_completion_tokens(true),
        openai("gpt-4.1", 1_047_576, 32_768, 2.0, 8.0).supports_vision(true),
        openai("gpt-4.1-mini", 1_047_576, 32_768, 0.40, 1.60).supports_vision(true),
        openai("gpt-4.1-nano", 1_047_576, 32_768, 0.10, 0.40).supports_vision(true),
        openai("gpt-4o", 128_000, 16_384, 2.50, 10.0).supports_vision(true),
        openai("gpt-4o-mini", 128_000, 16_384, 0.15, 0.60).supports_vision(true),
        openai("gpt-4-turbo", 128_000, 4_096, 10.0, 30.0).supports_vision(true).supports_json_schema(false),
        openai("gpt-4", 8_192, 8_192, 30.0, 60.0).supports_json_schema(false),
        openai("gpt-3.5-turbo", 16_385, 4_096, 0.50, 1.50).supports_json_schema(false),
        openai("o1", 200_000, 100_000, 15.0, 60.0)
            .supports_vision(true)
            .reasoning(true)
            .uses_max_completion_tokens(true),
        openai("o1-mini", 128_000, 65_536, 1.10, 4.40)
            .supports_tools(false)
            .reasoning(true)
            .uses_max_completion_tokens(true),
        openai("o3", 200_000, 100_000, 2.0, 8.0).supports_vision(true).reasoning(true).uses_max_completion_tokens(true),
        openai("o3-mini", 200_000, 100_000, 1.10, 4.40).reasoning(true).uses_max_completion_tokens(true),
        openai("o4-mini", 200_000, 100_000, 1.10, 4.40)
            .supports_vision(true)
            .reasoning(true)
            .uses_max_completion_tokens(true),
        p("gpt-oss", "openai").context_window(131_072).reasoning(true),
        // Anthropic (through OpenRouter, LiteLLM and other gateways).
        claude("claude-3-5-sonnet", "claude-3.5-sonnet", 8_192, 3.0, 15.0),
        claude("claude-3-5-haiku", "claude-3.5-haiku", 8_192, 0.80, 4.0),
        claude("claude-3-7-sonnet", "claude-3.7-sonnet", 64_000, 3.0, 15.0).reasoning(true),
        claude("claude-3-opus", "claude-3.0-opus", 4_096, 15.0, 75.0),
        claude("claude-3-haiku", "claude-3.0-haiku", 4_096, 0.25, 1.25),
        claude("claude-sonnet-4", "claude-4-sonnet", 64_000, 3.0, 15.0).reasoning(true),
        claude("claude-opus-4", "claude-4-opus", 32_000, 15.0, 75.0).reasoning(true),
        claude("claude-sonnet-4-5", "claude-sonnet-4.5", 64_000, 3.0, 15.0).reasoning(true),
        claude("claude-haiku-4-5", "claude-haiku-4.5", 64_000, 1.0, 5.0).reasoning(true),
        claude("claude-opus-4-5", "claude-opus-4.5", 64_000, 5.0, 25.0).reasoning(true),
        // Meta Llama.
        p("llama3", "meta").alias("llama-3").alias("meta-llama-3").context_window(8_192).supports_tools(false),
        p("llama3.1", "meta").alias("llama-3.1").alias("meta-llama-3.1").context_window(131_072),
        p("llama3.2", "meta").alias("llama-3.2").context_window(131_072),
        p("llama3.2-vision", "meta")
            .alias("llama-3.2-11b-vision")
            .alias("llama-3.2-90b-vision")
            .context_window(131_072)
            .supports_vision(true)
            .supports_tools(false),
        p("llama3.3", "meta").alias("llama-3.3").context_window(131_072),
        p("llama4", "meta").alias("llama-4").supports_vision(true),
        p("codellama", "meta").alias("codellama-").context_window(16_384).supports_tools(false),
        // Qwen.
        p("qwen2.5", "qwen").alias("qwen2.5-").context_window(32_768),
        p("qwen2.5-coder", "qwen").context_window(32_768),
        p("qwen2.5-vl", "qwen").alias("qwen2.5vl").context_window(32_768).supports_vision(true),
        p("qwen3", "qwen").context_window(32_768).thinking_tags(true),
        p("qwen3-coder", "qwen").context_window(262_144),
        p("qwq", "qwen").context_window(32_768).thinking_tags(true),
        // DeepSeek.
        p("deepseek-chat", "deepseek").context_window(128_000).max_output_tokens(8_192),
        p("deepseek-reasoner", "deepseek").context_window(128_000).max_output_tokens(64_000).reasoning(true),
        p("deepseek-r1", "deepseek").context_window(131_072).thinking_tags(true),
        p("deepseek-v3", "deepseek").context_window(131_072),
        p("deepseek-coder", "deepseek").context_window(16_384).supports_tools(false),
        // Mistral.
        p("mistral", "mistral").alias("mistral-7b").context_window(32_768),
        p("mistral-large", "mistral").context_window(131_072),
        p("mistral-medium", "mistral").context_window(131_072),
        p("mistral-small", "mistral").context_window(131_072),
        p("mistral-nemo", "mistral").alias("open-mistral-nemo").context_window(131_072),
        p("ministral", "mistral").context_window(131_072),
        p("codestral", "mistral").context_window(256_000),
        p("magistral", "mistral").reasoning(true),
        p("pixtral", "mistral").context_window(131_072).supports_vision(true),
        p("mixtral", "mistral").context_window(32_768),
        // Google.
        p("gemma", "google").context_window(8_192).supports_tools(false),
        p("gemma2", "google").alias("gemma-2").context_window(8_192).supports_tools(false),
        p("gemma3", "google").alias("gemma-3").context_window(131_072).supports_vision(true),
        p("gemini-2.0-flash", "google").context_window(1_048_576).max_output_tokens(8_192).supports_vision(true),
        p("gemini-2.5-flash", "google")
            .context_window(1_048_576)
            .max_output_tokens(65_536)
            .supports_vision(true)
            .reasoning(true),
        p("gemini-2.5-pro", "google")
            .context_window(1_048_576)
            .max_output_tokens(65_536)
            .supports_vision(true)
            .reasoning(true),
        // Microsoft Phi.
        p("phi3", "microsoft").alias("phi-3").context_window(4_096).supports_tools(false),
        p("phi3.5", "microsoft").alias("phi-3.5").context_window(131_072).supports_tools(false),
        p("phi4", "microsoft").alias("phi-4").context_window(16_384).supports_tools(false),
        p("phi4-mini", "microsoft").alias("phi-4-mini").context_window(131_072),
        p("phi4-reasoning", "microsoft").alias("phi-4-reasoning").context_window(32_768).thinking_tags(true),
        // Hugging Face (the small model our conformance tests run).
        p("smollm2", "huggingface").context_window(8_192),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins() {
        assert_eq!(get_profile("gpt-4o-mini-2024-07-18").name, "gpt-4o-mini");
        assert_eq!(get_profile("gpt-4o-2024-08-06").name, "gpt-4o");
        assert_eq!(get_profile("gpt-4.1-mini").name, "gpt-4.1-mini");
        assert_eq!(get_profile("o3-mini-2025-01-31").name, "o3-mini");
        assert_eq!(get_profile("qwen2.5-coder:7b").name, "qwen2.5-coder");
        assert_eq!(get_profile("llama3.2-vision:11b").name, "llama3.2-vision");
        assert_eq!(get_profile("claude-3-5-sonnet-latest").name, "claude-3-5-sonnet");
    }

    #[test]
    fn names_from_different_servers_find_the_same_family() {
        assert_eq!(get_profile("llama3.2:3b").name, "llama3.2");
        assert_eq!(get_profile("meta-llama/Llama-3.2-3B-Instruct").name, "llama3.2");
        assert_eq!(get_profile("Qwen/Qwen2.5-7B-Instruct").name, "qwen2.5");
        assert_eq!(get_profile("qwen3:8b").name, "qwen3");
        assert_eq!(get_profile("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B").name, "deepseek-r1");
        assert_eq!(get_profile("openai/gpt-4o").name, "gpt-4o");
        assert_eq!(get_profile("anthropic/claude-3.5-sonnet").name, "claude-3-5-sonnet");
        assert_eq!(get_profile("google/gemma-3-4b-it").name, "gemma3");
        assert_eq!(get_profile("HuggingFaceTB/SmolLM2-135M-Instruct").name, "smollm2");
        assert_eq!(get_profile("GPT-4O").name, "gpt-4o");
    }

    #[test]
    fn unknown_models_never_lose_features() {
        let p = get_profile("totally-new-model-9000");
        assert!(p.is_unknown());
        assert!(p.supports_tools && p.supports_vision && p.supports_streaming && p.supports_json_schema);
        assert_eq!(p.default_temperature, None);
    }

    #[test]
    fn builtins_send_no_temperature() {
        assert!(list_profiles().iter().all(|p| p.default_temperature.is_none()));
    }

    #[test]
    fn register_replaces_and_later_wins() {
        register_profile(ModelProfile::new("zz-test-model", "acme").context_window(1234));
        assert_eq!(get_profile("zz-test-model-v2").context_window, Some(1234));
        register_profile(ModelProfile::new("zz-test-model", "acme").context_window(99));
        assert_eq!(get_profile("zz-test-model").context_window, Some(99));
        assert_eq!(list_profiles().iter().filter(|p| p.name == "zz-test-model").count(), 1);
        assert!(get_profiles_by_provider("ACME").iter().any(|p| p.name == "zz-test-model"));
        assert!(get_profiles_by_provider("openai").iter().all(|p| p.provider == "openai"));
    }

    #[test]
    fn cost_uses_both_prices() {
        let usage = Usage { input_tokens: 1000, output_tokens: 2000, total_tokens: 3000, ..Default::default() };
        let cost = get_profile("gpt-4o-mini").cost(&usage).unwrap();
        assert!((cost - (0.00015 + 2.0 * 0.0006)).abs() < 1e-12);
        assert_eq!(get_profile("llama3.2").cost(&usage), None);
    }

    #[test]
    fn every_builtin_name_is_unique_and_resolves_to_itself() {
        let all = builtin_profiles();
        for p in &all {
            assert_eq!(all.iter().filter(|q| q.name == p.name).count(), 1, "{}", p.name);
            assert_eq!(find(&all, &p.name).map(|q| q.name.as_str()), Some(p.name.as_str()));
        }
    }
}
