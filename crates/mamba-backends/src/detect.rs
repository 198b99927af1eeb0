//! Telling servers apart from what they answer (provider-quirks 1C and 3.18): the headers and
//! the model list of `GET /models`, then probes of paths only one kind of server has.

use http::HeaderMap;
use serde_json::Value;

use crate::preset::Preset;

/// What the model list and its headers say about the server.
pub(crate) fn from_models(headers: &HeaderMap, body: &[u8]) -> Option<Preset> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    if header("server").to_ascii_lowercase().contains("llama.cpp") {
        return Some(Preset::LlamaCpp);
    }
    if headers.keys().any(|k| k.as_str().starts_with("x-litellm-")) {
        return Some(Preset::LiteLlm);
    }
    let value: Value = serde_json::from_slice(body).ok()?;
    // llama.cpp server lists models twice: Ollama-style `models` beside OpenAI-style `data`.
    if value.get("models").is_some() && value.get("data").is_some() {
        return Some(Preset::LlamaCpp);
    }
    let first = value.get("data")?.as_array()?.first()?;
    let owned_by = first.get("owned_by").and_then(Value::as_str);
    match owned_by {
        Some("vllm") => return Some(Preset::Vllm),
        Some("sglang") => return Some(Preset::SgLang),
        Some("llamacpp") => return Some(Preset::LlamaCpp),
        // llama-cpp-python's server.
        Some("me") if first.get("permissions").is_some() => return Some(Preset::LlamaCpp),
        Some("library") => return Some(Preset::Ollama),
        _ => {}
    }
    let id = first.get("id").and_then(Value::as_str);
    if owned_by.is_some() && owned_by == id && first.get("created").and_then(Value::as_u64) == Some(0) {
        return Some(Preset::Tgi);
    }
    if owned_by.is_none()
        && first.get("created").is_none()
        && first.get("object").and_then(Value::as_str) == Some("model")
    {
        return Some(Preset::LocalAi);
    }
    None
}

/// A path on the server root, the server it identifies, and the test of its JSON answer.
pub(crate) type ProbeRule = (&'static str, Preset, fn(&Value) -> bool);

/// Paths on the server root that identify one kind of server, tried in order.
pub(crate) const PROBES: &[ProbeRule] = &[
    ("/api/version", Preset::Ollama, |v| v.get("version").is_some()),
    ("/props", Preset::LlamaCpp, |v| v.get("default_generation_settings").is_some() || v.get("total_slots").is_some()),
    ("/get_model_info", Preset::SgLang, |v| v.get("model_path").is_some()),
    ("/info", Preset::Tgi, |v| v.get("model_id").is_some() && v.get("max_input_tokens").is_some()),
    // LiteLLM 1.108: {"status":"healthy","db":"Not connected"}; newer add litellm_version.
    ("/health/readiness", Preset::LiteLlm, |v| {
        v.get("litellm_version").is_some() || (v.get("status").is_some() && v.get("db").is_some())
    }),
    ("/api/v0/models", Preset::LmStudio, |v| {
        v.get("data").and_then(Value::as_array).and_then(|d| d.first()).is_some_and(|m| m.get("state").is_some())
    }),
    ("/version", Preset::Vllm, |v| v.as_object().is_some_and(|o| o.len() == 1 && o.contains_key("version"))),
];

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn models(body: &str) -> Option<Preset> {
        from_models(&HeaderMap::new(), body.as_bytes())
    }

    #[test]
    fn model_lists_tell_servers_apart() {
        assert_eq!(
            models(
                r#"{"object":"list","data":[{"id":"m","object":"model","created":1,"owned_by":"vllm","root":"m","max_model_len":8192}]}"#
            ),
            Some(Preset::Vllm)
        );
        assert_eq!(
            models(r#"{"models":[{"name":"m"}],"object":"list","data":[{"id":"m","owned_by":"llamacpp"}]}"#),
            Some(Preset::LlamaCpp)
        );
        assert_eq!(
            models(
                r#"{"object":"list","data":[{"id":"smollm2-135m-instruct","object":"model","owned_by":"me","permissions":[]}]}"#
            ),
            Some(Preset::LlamaCpp)
        );
        assert_eq!(
            models(
                r#"{"object":"list","data":[{"id":"llama3:latest","object":"model","created":1,"owned_by":"library"}]}"#
            ),
            Some(Preset::Ollama)
        );
        assert_eq!(
            models(
                r#"{"object":"list","data":[{"id":"tgi-model","object":"model","created":0,"owned_by":"tgi-model"}]}"#
            ),
            Some(Preset::Tgi)
        );
        assert_eq!(models(r#"{"object":"list","data":[{"id":"gpt-4","object":"model"}]}"#), Some(Preset::LocalAi));
        assert_eq!(models(r#"{"object":"list","data":[{"id":"x","owned_by":"sglang"}]}"#), Some(Preset::SgLang));
        assert_eq!(
            models(r#"{"object":"list","data":[{"id":"gpt-4o","object":"model","created":1,"owned_by":"openai"}]}"#),
            None
        );
        assert_eq!(models("not json"), None);
    }

    #[test]
    fn headers_tell_servers_apart() {
        let mut h = HeaderMap::new();
        h.insert("server", HeaderValue::from_static("llama.cpp"));
        assert_eq!(from_models(&h, b"{}"), Some(Preset::LlamaCpp));
        let mut h = HeaderMap::new();
        h.insert("x-litellm-version", HeaderValue::from_static("1.108.7"));
        assert_eq!(from_models(&h, b"{}"), Some(Preset::LiteLlm));
    }

    #[test]
    fn probes_match_their_servers() {
        let probe = |path: &str, body: &str| {
            let (_, preset, check) = PROBES.iter().find(|(p, _, _)| *p == path).unwrap();
            check(&serde_json::from_str(body).unwrap()).then_some(*preset)
        };
        assert_eq!(probe("/api/version", r#"{"version":"0.12.3"}"#), Some(Preset::Ollama));
        assert_eq!(probe("/version", r#"{"version":"0.11.0"}"#), Some(Preset::Vllm));
        assert_eq!(probe("/version", r#"{"version":"1","x":2}"#), None);
        assert_eq!(
            probe("/info", r#"{"model_id":"m","max_input_tokens":4095,"router":"text-generation-router"}"#),
            Some(Preset::Tgi)
        );
        assert_eq!(
            probe("/health/readiness", r#"{"status":"healthy","db":"Not connected","litellm_version":"1.108.7"}"#),
            Some(Preset::LiteLlm)
        );
        assert_eq!(probe("/health/readiness", r#"{"status":"healthy","db":"Not connected"}"#), Some(Preset::LiteLlm));
    }
}
