//! Scripts: what the mock answers, from Rust code or a JSON file.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What the server does: rules tried in order for each chat request; the first that matches
/// answers. With no matching rule the server echoes the last user message.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    /// The rules, tried in order.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Model ids listed by `GET /v1/models` (default: `["mock-model"]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
}

impl Script {
    /// An empty script: every request is echoed.
    pub fn new() -> Script {
        Script::default()
    }

    /// Adds a rule.
    #[must_use]
    pub fn rule(mut self, rule: Rule) -> Script {
        self.rules.push(rule);
        self
    }

    /// Adds a rule that answers every request it matches with `reply`.
    #[must_use]
    pub fn on(self, when: Match, reply: Reply) -> Script {
        self.rule(Rule { when, reply, times: None })
    }

    /// Adds a rule that matches any request.
    #[must_use]
    pub fn always(self, reply: Reply) -> Script {
        self.on(Match::any(), reply)
    }

    /// Sets the listed models.
    #[must_use]
    pub fn models<I: IntoIterator<Item = S>, S: Into<String>>(mut self, models: I) -> Script {
        self.models = models.into_iter().map(Into::into).collect();
        self
    }

    /// Reads a script from JSON text. Errors name the place: `rules[1].reply.status: invalid
    /// type: string "x", expected u16 at line 7 column 21`.
    pub fn from_json(text: &str) -> Result<Script, ScriptError> {
        let mut de = serde_json::Deserializer::from_str(text);
        let script: Script = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            ScriptError { file: None, place: (path != ".").then_some(path), message: e.into_inner().to_string() }
        })?;
        script.validate()?;
        Ok(script)
    }

    /// Reads a script file. Relative `replay` paths are taken from the file's folder.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Script, ScriptError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ScriptError {
            file: Some(path.to_path_buf()),
            place: None,
            message: format!("cannot read the script: {e}"),
        })?;
        let mut script = Script::from_json(&text).map_err(|mut e| {
            e.file = Some(path.to_path_buf());
            e
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        for (i, rule) in script.rules.iter_mut().enumerate() {
            if let Some(replay) = &mut rule.reply.replay {
                if replay.is_relative() {
                    *replay = dir.join(&*replay);
                }
                if !replay.exists() {
                    return Err(ScriptError {
                        file: Some(path.to_path_buf()),
                        place: Some(format!("rules[{i}].reply.replay")),
                        message: format!("no such file: {}", replay.display()),
                    });
                }
            }
        }
        Ok(script)
    }

    fn validate(&self) -> Result<(), ScriptError> {
        for (i, rule) in self.rules.iter().enumerate() {
            let err = |field: &str, message: String| ScriptError {
                file: None,
                place: Some(format!("rules[{i}].{field}")),
                message,
            };
            let r = &rule.reply;
            if let Some(status) = r.status {
                if !(100..=999).contains(&status) {
                    return Err(err("reply.status", format!("{status} is not an HTTP status")));
                }
            }
            if r.chunk_chars == Some(0) {
                return Err(err("reply.chunk_chars", "must be at least 1".into()));
            }
            if rule.times == Some(0) {
                return Err(err("times", "must be at least 1 (or left out)".into()));
            }
            if rule.when.call == Some(0) {
                return Err(err("match.call", "calls count from 1".into()));
            }
        }
        Ok(())
    }
}

/// A script that could not be read, with the place of the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptError {
    file: Option<PathBuf>,
    place: Option<String>,
    message: String,
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}: ", file.display())?;
        }
        if let Some(place) = &self.place {
            write!(f, "{place}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ScriptError {}

/// One rule: when a request matches, this reply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Which requests. Every field set must match; an empty matcher matches all.
    #[serde(default, rename = "match")]
    pub when: Match,
    /// The answer.
    pub reply: Reply,
    /// Use the rule at most this many times, then skip it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<usize>,
}

impl Rule {
    /// A rule.
    pub fn new(when: Match, reply: Reply) -> Rule {
        Rule { when, reply, times: None }
    }

    /// Limits the rule to `n` uses.
    #[must_use]
    pub fn times(mut self, n: usize) -> Rule {
        self.times = Some(n);
        self
    }
}

/// Which requests a rule answers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    /// The request's `model` equals this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The text of the last message (any role) contains this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<String>,
    /// The last message has this role (`user`, `tool`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// This is the n-th chat request the server received (from 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<usize>,
    /// The request asks for a stream (or not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// The API asked: `chat` (`/chat/completions`) or `responses` (`/responses`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
}

impl Match {
    /// Matches every request.
    pub fn any() -> Match {
        Match::default()
    }

    /// Requests for this model.
    pub fn model(model: impl Into<String>) -> Match {
        Match { model: Some(model.into()), ..Match::default() }
    }

    /// Requests whose last message contains `text`.
    pub fn contains(text: impl Into<String>) -> Match {
        Match { contains: Some(text.into()), ..Match::default() }
    }

    /// Requests whose last message has `role`.
    pub fn role(role: impl Into<String>) -> Match {
        Match { role: Some(role.into()), ..Match::default() }
    }

    /// The n-th chat request (from 1).
    pub fn call(n: usize) -> Match {
        Match { call: Some(n), ..Match::default() }
    }

    /// Requests to this API: `chat` or `responses`.
    pub fn api(api: impl Into<String>) -> Match {
        Match { api: Some(api.into()), ..Match::default() }
    }

    /// Also requires a stream (`true`) or a plain request (`false`).
    #[must_use]
    pub fn stream(mut self, yes: bool) -> Match {
        self.stream = Some(yes);
        self
    }
}

/// A tool call the mock answers with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockToolCall {
    /// The id (default `call_<n>` with n counting from 1 per answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The function name.
    pub name: String,
    /// The arguments: a JSON value (sent as JSON text) or a string sent as is.
    #[serde(default)]
    pub arguments: Value,
}

/// Token counts to report instead of the mock's word counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockUsage {
    /// `prompt_tokens`.
    pub prompt_tokens: u64,
    /// `completion_tokens`.
    pub completion_tokens: u64,
}

/// An answer, or a fault. The fields combine: e.g. text with `chunk_delay_ms` and
/// `error_frame_at` streams slowly and then fails.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    /// The answer text (default: the echo of the last user message, unless tool calls are set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Reasoning, sent in `reasoning_field`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    /// The field reasoning goes in (default `reasoning_content`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_field: Option<String>,
    /// Tool calls.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<MockToolCall>,
    /// `finish_reason` (default `stop`, or `tool_calls` with tool calls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// Token counts (default: counted in words).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<MockUsage>,
    /// The `model` in the answer (default: the request's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Stream text in pieces of this many characters (default: word by word).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_chars: Option<usize>,

    /// Answer with this HTTP status instead (and `body`, `headers`); a `body` without a
    /// status is sent as is with 200.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The body of a `status` answer: JSON, or a string sent as text (default: an OpenAI-shaped
    /// error naming the status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// Extra response headers (e.g. `retry-after`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,

    /// Wait this long before the response head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Wait this long before each stream event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_delay_ms: Option<u64>,
    /// Wait this long before the first stream event instead of `chunk_delay_ms` (a server's
    /// time to first token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_chunk_delay_ms: Option<u64>,
    /// In a stream, wait this long after the last event before the bytes that end the body
    /// (a chunked body's last chunk): the answer is complete before its body is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_delay_ms: Option<u64>,
    /// Close the connection after this many bytes of the response (head included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut_after_bytes: Option<usize>,
    /// In a stream, replace event n (from 0) by a frame that is not valid JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub malformed_frame_at: Option<usize>,
    /// In a stream, send an error frame before event n (from 0) and stop the answer there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_frame_at: Option<usize>,
    /// The error frame's payload (default `{"error":{"message":"mock error mid-stream","type":"server_error"}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_frame: Option<Value>,
    /// End the stream without `data: [DONE]`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_done: bool,
    /// Never answer: keep the connection open until the client leaves.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hang: bool,
    /// In a stream, stop after this many events and keep the connection open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hang_after_events: Option<usize>,
    /// Send this recorded file instead: a `curl -i` transcript (status, headers, body) or a
    /// bare event stream (`.sse`). The body bytes are sent exactly as recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<PathBuf>,
    /// On `/v1/embeddings`, answer with float arrays even when base64 was asked for (a server
    /// that ignores `encoding_format`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignore_base64: bool,
}

impl Reply {
    /// Answers with `text`.
    pub fn text(text: impl Into<String>) -> Reply {
        Reply { text: Some(text.into()), ..Reply::default() }
    }

    /// Answers with one tool call.
    pub fn tool_call(name: impl Into<String>, arguments: Value) -> Reply {
        Reply::default().with_tool_call(name, arguments)
    }

    /// Answers with HTTP `status` and an OpenAI-shaped error body.
    pub fn status(status: u16) -> Reply {
        Reply { status: Some(status), ..Reply::default() }
    }

    /// Replays a recorded file.
    pub fn replay(path: impl Into<PathBuf>) -> Reply {
        Reply { replay: Some(path.into()), ..Reply::default() }
    }

    /// Never answers.
    pub fn hang() -> Reply {
        Reply { hang: true, ..Reply::default() }
    }

    /// Adds a tool call.
    #[must_use]
    pub fn with_tool_call(mut self, name: impl Into<String>, arguments: Value) -> Reply {
        self.tool_calls.push(MockToolCall { id: None, name: name.into(), arguments });
        self
    }

    /// Sets the reasoning.
    #[must_use]
    pub fn reasoning(mut self, reasoning: impl Into<String>) -> Reply {
        self.reasoning = Some(reasoning.into());
        self
    }

    /// Sets the field the reasoning is sent in (`reasoning_content`, `reasoning`).
    #[must_use]
    pub fn reasoning_field(mut self, field: impl Into<String>) -> Reply {
        self.reasoning_field = Some(field.into());
        self
    }

    /// Sets the finish reason.
    #[must_use]
    pub fn finish_reason(mut self, reason: impl Into<String>) -> Reply {
        self.finish_reason = Some(reason.into());
        self
    }

    /// Sets the reported usage.
    #[must_use]
    pub fn usage(mut self, prompt_tokens: u64, completion_tokens: u64) -> Reply {
        self.usage = Some(MockUsage { prompt_tokens, completion_tokens });
        self
    }

    /// Streams text in pieces of `n` characters.
    #[must_use]
    pub fn chunk_chars(mut self, n: usize) -> Reply {
        self.chunk_chars = Some(n.max(1));
        self
    }

    /// Sets the body of a status answer.
    #[must_use]
    pub fn body(mut self, body: Value) -> Reply {
        self.body = Some(body);
        self
    }

    /// Adds a response header.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Reply {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Waits before the response head.
    #[must_use]
    pub fn delay(mut self, delay: Duration) -> Reply {
        self.delay_ms = Some(delay.as_millis() as u64);
        self
    }

    /// Waits before each stream event.
    #[must_use]
    pub fn chunk_delay(mut self, delay: Duration) -> Reply {
        self.chunk_delay_ms = Some(delay.as_millis() as u64);
        self
    }

    /// Waits before the first stream event instead of the chunk delay.
    #[must_use]
    pub fn first_chunk_delay(mut self, delay: Duration) -> Reply {
        self.first_chunk_delay_ms = Some(delay.as_millis() as u64);
        self
    }

    /// Waits after the last stream event before ending the body.
    #[must_use]
    pub fn end_delay(mut self, delay: Duration) -> Reply {
        self.end_delay_ms = Some(delay.as_millis() as u64);
        self
    }

    /// Cuts the connection after `n` bytes.
    #[must_use]
    pub fn cut_after_bytes(mut self, n: usize) -> Reply {
        self.cut_after_bytes = Some(n);
        self
    }

    /// Replaces stream event `n` with invalid JSON.
    #[must_use]
    pub fn malformed_frame_at(mut self, n: usize) -> Reply {
        self.malformed_frame_at = Some(n);
        self
    }

    /// Sends an error frame before stream event `n` and stops.
    #[must_use]
    pub fn error_frame_at(mut self, n: usize) -> Reply {
        self.error_frame_at = Some(n);
        self
    }

    /// Sets the error frame's payload.
    #[must_use]
    pub fn error_frame(mut self, payload: Value) -> Reply {
        self.error_frame = Some(payload);
        self
    }

    /// Leaves out `[DONE]`.
    #[must_use]
    pub fn no_done(mut self) -> Reply {
        self.no_done = true;
        self
    }

    /// On `/v1/embeddings`, answers with floats even when base64 was asked for.
    #[must_use]
    pub fn ignore_base64(mut self) -> Reply {
        self.ignore_base64 = true;
        self
    }

    /// Stops after `n` stream events and keeps the connection open.
    #[must_use]
    pub fn hang_after_events(mut self, n: usize) -> Reply {
        self.hang_after_events = Some(n);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_round_trip() {
        let script = Script::new()
            .on(Match::call(1), Reply::tool_call("get_weather", json!({"city": "Paris"})))
            .on(Match::role("tool"), Reply::text("Sunny.").usage(10, 2))
            .rule(Rule::new(Match::any(), Reply::status(429).header("retry-after", "2")).times(1));
        let text = serde_json::to_string_pretty(&script).unwrap();
        assert_eq!(Script::from_json(&text).unwrap(), script);
    }

    #[test]
    fn errors_name_the_place() {
        let e = Script::from_json(r#"{"rules":[{"reply":{"text":"a"}},{"reply":{"status":"x"}}]}"#).unwrap_err();
        assert!(e.to_string().starts_with("rules[1].reply.status: invalid type"), "{e}");
        let e = Script::from_json(r#"{"rules":[{"reply":{"txet":"a"}}]}"#).unwrap_err();
        assert!(e.to_string().contains("rules[0].reply") && e.to_string().contains("unknown field `txet`"), "{e}");
        let e = Script::from_json(r#"{"rules":[{"match":{"call":0},"reply":{}}]}"#).unwrap_err();
        assert_eq!(e.to_string(), "rules[0].match.call: calls count from 1");
        let e = Script::from_json("{not json").unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
        let e = Script::from_json(r#"{"rules":[{"reply":{"status":42}}]}"#).unwrap_err();
        assert_eq!(e.to_string(), "rules[0].reply.status: 42 is not an HTTP status");
    }

    #[test]
    fn file_errors_name_the_file() {
        let dir = std::env::temp_dir().join(format!("mamba-mock-script-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.json");
        std::fs::write(&path, r#"{"rules":[{"reply":{"replay":"missing.sse"}}]}"#).unwrap();
        let e = Script::from_file(&path).unwrap_err().to_string();
        assert!(e.contains("s.json: rules[0].reply.replay: no such file"), "{e}");
        let e = Script::from_file(dir.join("nope.json")).unwrap_err().to_string();
        assert!(e.contains("cannot read the script"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
