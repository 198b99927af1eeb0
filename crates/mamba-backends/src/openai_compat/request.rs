//! Request translation: messages and options to the JSON body one server accepts. Pure.

use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{Error, ErrorKind};
use crate::options::RequestOptions;
use crate::preset::{FieldSupport, StructuredOutput};
use crate::types::{Message, MessageWireOptions, ResponseFormat, WireMessage};

/// How requests are written for one target (derived from the preset, the profile and the
/// builder's settings).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct WireConfig {
    /// The target's name, for messages (`mistral`).
    pub(crate) target: &'static str,
    /// Request fields the target does not take.
    pub(crate) unsupported: &'static [(&'static str, FieldSupport)],
    /// Drop rejected fields with a warning instead of failing.
    pub(crate) drop_unsupported: bool,
    /// How structured output is written.
    pub(crate) structured: StructuredOutput,
    /// `max_tokens` or `max_completion_tokens`.
    pub(crate) max_tokens_field: &'static str,
    /// Ask for usage in streams with `stream_options.include_usage`.
    pub(crate) include_usage: bool,
    /// Field renames, e.g. `seed` → `random_seed` (Mistral).
    pub(crate) renames: &'static [(&'static str, &'static str)],
    /// Fields not sent (already checked and warned about by the caller).
    pub(crate) dropped: Vec<&'static str>,
    /// How messages are written.
    pub(crate) message: MessageWireOptions,
    /// Temperature sent when the options set none (from an explicit profile value).
    pub(crate) default_temperature: Option<f64>,
    /// Extra body fields of the backend (preset or builder), written before the request's own
    /// `extra`, which override them.
    pub(crate) body_extra: Map<String, Value>,
}

impl Default for WireConfig {
    fn default() -> Self {
        WireConfig {
            target: "generic",
            unsupported: &[],
            drop_unsupported: false,
            structured: StructuredOutput::Native,
            max_tokens_field: "max_tokens",
            include_usage: false,
            renames: &[],
            dropped: Vec::new(),
            message: MessageWireOptions::default(),
            default_temperature: None,
            body_extra: Map::new(),
        }
    }
}

/// One chat-completions request body.
pub(crate) struct ChatRequest<'a> {
    pub(crate) model: &'a str,
    pub(crate) messages: &'a [Message],
    pub(crate) options: &'a RequestOptions,
    pub(crate) stream: bool,
    pub(crate) config: &'a WireConfig,
}

struct Messages<'a>(&'a [Message], MessageWireOptions);

impl Serialize for Messages<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for message in self.0 {
            seq.serialize_element(&WireMessage { message, options: self.1 })?;
        }
        seq.end()
    }
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

/// Writes fields, applying renames, drops and overrides by `extra`.
struct Writer<'c, M> {
    map: M,
    config: &'c WireConfig,
    extra: &'c Map<String, Value>,
    check: bool,
}

impl<M: SerializeMap> Writer<'_, M> {
    fn field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), M::Error> {
        let mut key = key;
        if self.check {
            if let Some((_, to)) = self.config.renames.iter().find(|(from, _)| *from == key) {
                key = to;
            }
            if self.config.dropped.contains(&key)
                || self.extra.contains_key(key)
                || self.config.body_extra.contains_key(key)
            {
                return Ok(());
            }
        }
        self.map.serialize_entry(key, value)
    }
}

impl Serialize for ChatRequest<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let o = self.options;
        let c = self.config;
        let check = !(o.extra.is_empty() && c.body_extra.is_empty() && c.renames.is_empty() && c.dropped.is_empty());
        let mut w = Writer { map: serializer.serialize_map(None)?, config: c, extra: &o.extra, check };
        w.field("model", self.model)?;
        w.field("messages", &Messages(self.messages, c.message))?;
        if self.stream {
            w.field("stream", &true)?;
            if c.include_usage {
                w.field("stream_options", &StreamOptions { include_usage: true })?;
            }
        }
        if let Some(t) = o.temperature.or(c.default_temperature) {
            w.field("temperature", &t)?;
        }
        if let Some(n) = o.max_tokens {
            w.field(c.max_tokens_field, &n)?;
        }
        if !o.tools.is_empty() {
            w.field("tools", &o.tools)?;
        }
        if let Some(choice) = &o.tool_choice {
            w.field("tool_choice", choice)?;
        }
        if let Some(parallel) = o.parallel_tool_calls {
            w.field("parallel_tool_calls", &parallel)?;
        }
        if let Some(format) = &o.response_format {
            w.field("response_format", &WireFormat(format, c.structured))?;
        }
        if !o.stop.is_empty() {
            w.field("stop", &o.stop)?;
        }
        if let Some(seed) = o.seed {
            w.field("seed", &seed)?;
        }
        if let Some(top_p) = o.top_p {
            w.field("top_p", &top_p)?;
        }
        if let Some(p) = o.frequency_penalty {
            w.field("frequency_penalty", &p)?;
        }
        if let Some(p) = o.presence_penalty {
            w.field("presence_penalty", &p)?;
        }
        let mut map = w.map;
        for (key, value) in &c.body_extra {
            if !o.extra.contains_key(key) && !c.dropped.contains(&key.as_str()) {
                map.serialize_entry(key, value)?;
            }
        }
        for (key, value) in &o.extra {
            if !c.dropped.contains(&key.as_str()) {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

/// A response format in the form the target accepts.
struct WireFormat<'a>(&'a ResponseFormat, StructuredOutput);

impl Serialize for WireFormat<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde_json::json;
        match (self.0, self.1) {
            (ResponseFormat::JsonSchema { schema, .. }, StructuredOutput::JsonObjectWithSchema) => {
                json!({"type": "json_object", "schema": schema}).serialize(serializer)
            }
            (ResponseFormat::JsonSchema { schema, .. }, StructuredOutput::TgiJson) => {
                json!({"type": "json", "value": schema}).serialize(serializer)
            }
            // Reached only with drop_unsupported: the closest the target has.
            (ResponseFormat::JsonSchema { .. }, StructuredOutput::JsonObjectOnly) => {
                json!({"type": "json_object"}).serialize(serializer)
            }
            (ResponseFormat::JsonObject, StructuredOutput::JsonSchemaOnly) => json!({
                "type": "json_schema",
                "json_schema": {"name": "json_object", "schema": {"type": "object"}}
            })
            .serialize(serializer),
            (format, _) => format.serialize(serializer),
        }
    }
}

/// Whether a request sets `field`, as a typed option or in `extra`.
fn sets(options: &RequestOptions, config: &WireConfig, field: &str) -> bool {
    let o = options;
    let typed = match field {
        "temperature" => o.temperature.is_some() || config.default_temperature.is_some(),
        "max_tokens" | "max_completion_tokens" if field == config.max_tokens_field => o.max_tokens.is_some(),
        "tools" => !o.tools.is_empty(),
        "tool_choice" => o.tool_choice.is_some(),
        "parallel_tool_calls" => o.parallel_tool_calls.is_some(),
        "response_format" => o.response_format.is_some(),
        "stop" => !o.stop.is_empty(),
        "seed" => o.seed.is_some(),
        "top_p" => o.top_p.is_some(),
        "frequency_penalty" => o.frequency_penalty.is_some(),
        "presence_penalty" => o.presence_penalty.is_some(),
        _ => false,
    };
    typed || o.extra.contains_key(field) || config.body_extra.contains_key(field)
}

/// Checks a request against what the target accepts, before anything is sent: fields it
/// ignores are dropped with a warning; fields it rejects are an `Unsupported` error, or with
/// `drop_unsupported` dropped with a warning; structured output it cannot do likewise.
pub(crate) fn check(messages: &[Message], options: &RequestOptions, config: &WireConfig) -> Result<(), Error> {
    for (field, support) in config.unsupported {
        if !sets(options, config, field) {
            continue;
        }
        match support {
            FieldSupport::Rejected if !config.drop_unsupported => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!(
                        "the {} server rejects `{field}`; leave it out, or build the backend with drop_unsupported(true) to drop it",
                        config.target
                    ),
                ));
            }
            _ => {
                tracing::warn!(field, target = config.target, "the server does not support this field; it is not sent")
            }
        }
    }
    if let (Some(ResponseFormat::JsonSchema { .. }), StructuredOutput::JsonObjectOnly) =
        (&options.response_format, config.structured)
    {
        if !config.drop_unsupported {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "the {} server has no JSON Schema output, only json_object; use ResponseFormat::JsonObject, or drop_unsupported(true) to send json_object",
                    config.target
                ),
            ));
        }
        tracing::warn!(target = config.target, "JSON Schema output is not supported; json_object is sent instead");
    }
    if !config.message.names && messages.iter().any(|m| m.name.is_some()) {
        tracing::warn!(target = config.target, "the server rejects message names; they are not sent");
    }
    Ok(())
}

/// The body as bytes.
pub(crate) fn to_body(request: &ChatRequest<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + request.messages.len() * 128);
    // Serialising our own types into a Vec cannot fail: every map key is a string and no
    // Serialize impl here returns an error.
    if serde_json::to_writer(&mut out, request).is_err() {
        out.clear();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ContentPart, ResponseFormat, ToolCall, ToolChoice, ToolDefinition};
    use serde_json::json;

    fn body(messages: &[Message], options: &RequestOptions, stream: bool, config: &WireConfig) -> Value {
        let bytes = to_body(&ChatRequest { model: "m", messages, options, stream, config });
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn minimal_request_sends_only_model_and_messages() {
        let v = body(&[Message::user("hi")], &RequestOptions::new(), false, &WireConfig::default());
        assert_eq!(v, json!({"model":"m","messages":[{"role":"user","content":"hi"}]}));
    }

    #[test]
    fn stream_with_and_without_usage() {
        let v = body(&[Message::user("hi")], &RequestOptions::new(), true, &WireConfig::default());
        assert_eq!(v["stream"], json!(true));
        assert!(v.get("stream_options").is_none());
        let cfg = WireConfig { include_usage: true, ..Default::default() };
        let v = body(&[Message::user("hi")], &RequestOptions::new(), true, &cfg);
        assert_eq!(v["stream_options"], json!({"include_usage": true}));
        // Never on non-streaming requests.
        let v = body(&[Message::user("hi")], &RequestOptions::new(), false, &cfg);
        assert!(v.get("stream_options").is_none() && v.get("stream").is_none());
    }

    #[test]
    fn every_option_in_wire_shape() {
        let options = RequestOptions::new()
            .temperature(0.5)
            .max_tokens(10)
            .tools(vec![ToolDefinition::function("f", "does f", json!({"type":"object"}))])
            .tool_choice(ToolChoice::Function("f".into()))
            .parallel_tool_calls(false)
            .response_format(ResponseFormat::JsonObject)
            .stop(["\n\n"])
            .seed(7)
            .top_p(0.9)
            .frequency_penalty(0.1)
            .presence_penalty(0.2);
        let v = body(&[Message::system("s"), Message::user("u")], &options, false, &WireConfig::default());
        assert_eq!(
            v,
            json!({
                "model":"m",
                "messages":[{"role":"system","content":"s"},{"role":"user","content":"u"}],
                "temperature":0.5,"max_tokens":10,
                "tools":[{"type":"function","function":{"name":"f","description":"does f","parameters":{"type":"object"}}}],
                "tool_choice":{"type":"function","function":{"name":"f"}},
                "parallel_tool_calls":false,
                "response_format":{"type":"json_object"},
                "stop":["\n\n"],"seed":7,"top_p":0.9,"frequency_penalty":0.1,"presence_penalty":0.2
            })
        );
    }

    #[test]
    fn extra_is_merged_last_and_overrides() {
        let options = RequestOptions::new().temperature(0.5).extra("temperature", json!(1.0)).extra("top_k", json!(40));
        let bytes = to_body(&ChatRequest {
            model: "m",
            messages: &[],
            options: &options,
            stream: false,
            config: &WireConfig::default(),
        });
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(text.matches("temperature").count(), 1, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["temperature"], json!(1.0));
        assert_eq!(v["top_k"], json!(40));
        // Overriding the model works too.
        let options = RequestOptions::new().extra("model", json!("other"));
        let v = body(&[], &options, false, &WireConfig::default());
        assert_eq!(v["model"], json!("other"));
    }

    #[test]
    fn renames_drops_and_max_tokens_field() {
        let cfg = WireConfig {
            max_tokens_field: "max_completion_tokens",
            renames: &[("seed", "random_seed")],
            dropped: vec!["top_p"],
            ..Default::default()
        };
        let v = body(&[], &RequestOptions::new().max_tokens(5).seed(1).top_p(0.5), false, &cfg);
        assert_eq!(v, json!({"model":"m","messages":[],"max_completion_tokens":5,"random_seed":1}));
    }

    #[test]
    fn default_temperature_only_when_configured() {
        let cfg = WireConfig { default_temperature: Some(0.7), ..Default::default() };
        assert_eq!(body(&[], &RequestOptions::new(), false, &cfg)["temperature"], json!(0.7));
        assert_eq!(body(&[], &RequestOptions::new().temperature(0.1), false, &cfg)["temperature"], json!(0.1));
        assert!(body(&[], &RequestOptions::new(), false, &WireConfig::default()).get("temperature").is_none());
    }

    #[test]
    fn tool_loop_history_round_trips() {
        let history = vec![
            Message::user(vec![ContentPart::text("weather?"), ContentPart::image_url("data:image/png;base64,AAAA")]),
            Message::assistant_with_tool_calls(
                "",
                vec![ToolCall::new("call_1", "get_weather", "{\"city\":\"Paris\"}")],
            ),
            Message::tool("call_1", "sunny"),
        ];
        let v = body(&history, &RequestOptions::new(), false, &WireConfig::default());
        assert_eq!(v["messages"][1]["tool_calls"][0]["function"]["arguments"], json!("{\"city\":\"Paris\"}"));
        assert_eq!(v["messages"][1]["content"], json!(""));
        assert_eq!(v["messages"][2]["tool_call_id"], json!("call_1"));
        assert_eq!(v["messages"][0]["content"][1]["image_url"]["url"], json!("data:image/png;base64,AAAA"));
    }

    #[test]
    fn body_extra_is_overridden_by_request_extra() {
        let mut extra = Map::new();
        extra.insert("top_k".into(), json!(1));
        extra.insert("x".into(), json!(2));
        let cfg = WireConfig { body_extra: extra, ..Default::default() };
        let v = body(&[], &RequestOptions::new().extra("top_k", json!(9)), false, &cfg);
        assert_eq!(v["top_k"], json!(9));
        assert_eq!(v["x"], json!(2));
    }
}
