//! The [`Extract`] trait and its loop: request, parse leniently, validate, deserialise, and
//! send the errors back as feedback, up to the number of attempts. The per-answer judgement
//! ([`judge`]) is pure; the loop around it only sends requests and keeps the conversation.

use async_trait::async_trait;
use futures_util::StreamExt;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::partial::complete_partial;
use super::repair::{drop_optional_nulls, parse_lenient, Repair};
use super::types::{Attempt, AttemptLog, ExtractMode, ExtractOptions, ExtractStream, Extracted, Partial};
use super::validate::Validator;
use crate::error::{Error, ErrorKind};
use crate::model_backend::{ChunkStream, ModelBackend};
use crate::options::{RequestOptions, ResponseFormat};
use crate::stream::StreamAccumulator;
use crate::types::{
    Content, ContentPart, FinishReason, Message, ModelResponse, Role, ToolChoice, ToolDefinition, Usage,
};

/// Structured output on any [`ModelBackend`]: a value of a Rust type (or of a JSON Schema)
/// instead of text. Implemented for every backend, `dyn ModelBackend` and pools included.
///
/// Each attempt is one request. An answer that does not parse (after local repairs) or
/// validate is sent back with its errors, up to [`ExtractOptions::attempts`]; then the error is
/// [`ErrorKind::InvalidOutput`] and [`attempts_of`](super::types::attempts_of) gives every attempt. A
/// refusal is [`ErrorKind::Refusal`], an answer stopped by the token limit without a whole
/// JSON object or array (cut mid-JSON, or empty: a reasoning model that spent the tokens
/// thinking) [`ErrorKind::Truncated`], both at once. A schema that is not valid JSON Schema is
/// [`ErrorKind::Config`], and one the server cannot take [`ErrorKind::Unsupported`], both
/// before any request.
#[async_trait]
pub trait Extract: ModelBackend {
    /// A value of `T` (its schema from [`JsonSchema`]), validated, with the raw text, every
    /// attempt and the summed usage.
    async fn extract<T>(&self, messages: &[Message], options: &ExtractOptions) -> Result<Extracted<T>, Error>
    where
        T: JsonSchema + DeserializeOwned + Send + 'static,
    {
        let schema = schema_of::<T>()?;
        run(self, &schema, messages, options, from_value::<T>).await
    }

    /// A JSON value valid against `schema`.
    async fn extract_value(
        &self,
        schema: &Value,
        messages: &[Message],
        options: &ExtractOptions,
    ) -> Result<Extracted<Value>, Error> {
        run(self, schema, messages, options, Ok).await
    }

    /// [`extract`](Self::extract), streamed: the JSON so far as it arrives
    /// ([`Partial::Value`]), then the validated value ([`Partial::Done`]). The first request
    /// is sent before this returns, so its failures are returned here.
    async fn extract_stream<'s, T>(
        &'s self,
        messages: &[Message],
        options: &ExtractOptions,
    ) -> Result<ExtractStream<'s, T>, Error>
    where
        T: JsonSchema + DeserializeOwned + Send + 's,
    {
        let schema = schema_of::<T>()?;
        run_stream(self, &schema, messages, options, from_value::<T>).await
    }

    /// [`extract_value`](Self::extract_value), streamed.
    async fn extract_value_stream<'s>(
        &'s self,
        schema: &Value,
        messages: &[Message],
        options: &ExtractOptions,
    ) -> Result<ExtractStream<'s, Value>, Error> {
        run_stream(self, schema, messages, options, Ok).await
    }
}

impl<B: ModelBackend + ?Sized> Extract for B {}

/// The JSON Schema of `T`.
fn schema_of<T: JsonSchema>() -> Result<Value, Error> {
    let schema = schemars::schema_for!(T);
    serde_json::to_value(&schema).map_err(|e| Error::config(format!("the schema of the type cannot be written: {e}")))
}

/// A validated value as `T`.
fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, String> {
    serde_json::from_value(value).map_err(|e| format!("/: {e}"))
}

/// The name a schema goes by on the wire: `options.name`, else its `title`, else `output`
/// (letters, digits, `_` and `-` only, at most 64, as OpenAI requires).
fn schema_name(schema: &Value, name: Option<&str>) -> String {
    let raw = name.or_else(|| schema.get("title").and_then(Value::as_str)).unwrap_or("output");
    let cleaned: String =
        raw.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).take(64).collect();
    if cleaned.is_empty() {
        "output".to_owned()
    } else {
        cleaned
    }
}

/// One extraction's state: what is asked, the conversation so far, the attempts made.
struct Job<T> {
    schema: Value,
    validator: Validator,
    name: String,
    mode: ExtractMode,
    request: RequestOptions,
    conversation: Vec<Message>,
    attempts: Vec<Attempt>,
    usage: Usage,
    max_attempts: u32,
    convert: fn(Value) -> Result<T, String>,
}

/// What one answer leads to.
enum Step<T> {
    /// The value: the extraction is over.
    Done(Extracted<T>),
    /// Invalid, feedback added: send the next attempt.
    Again,
    /// Over with an error.
    Fail(Error),
}

impl<T> Job<T> {
    fn new(
        schema: &Value,
        messages: &[Message],
        options: &ExtractOptions,
        convert: fn(Value) -> Result<T, String>,
    ) -> Result<Job<T>, Error> {
        let validator = Validator::new(schema)?;
        let name = schema_name(schema, options.name.as_deref());
        let request = request_options(schema, &name, options);
        let conversation = with_instruction(messages, schema, &name, options.mode);
        Ok(Job {
            schema: schema.clone(),
            validator,
            name,
            mode: options.mode,
            request,
            conversation,
            attempts: Vec::new(),
            usage: Usage::default(),
            max_attempts: options.attempts.max(1),
            convert,
        })
    }

    /// Judges `response`, records the attempt, and adds the feedback when another is due.
    fn answer(&mut self, response: ModelResponse) -> Step<T> {
        if let Some(u) = &response.usage {
            add_usage(&mut self.usage, u);
        }
        let (text, call) = answer_text(&response, self.mode, &self.name);
        let verdict = judge(
            &text,
            response.finish_reason.as_ref(),
            refusal_of(&response).as_deref(),
            &self.schema,
            &self.validator,
            self.convert,
        );
        // What is kept (and may end up in an error, a log, a file) has what looks like a
        // secret redacted: a server may echo the request's key in its answer.
        let mut attempt = Attempt {
            text: scrub(&text),
            error: None,
            repairs: Vec::new(),
            usage: response.usage,
            finish_reason: response.finish_reason.clone(),
        };
        let n = self.attempts.len() + 1;
        match verdict {
            Verdict::Valid { value, repairs } => {
                attempt.repairs = repairs;
                self.attempts.push(attempt);
                Step::Done(Extracted {
                    value,
                    raw: text,
                    attempts: std::mem::take(&mut self.attempts),
                    usage: self.usage,
                })
            }
            Verdict::Refused(why) => {
                attempt.error = Some(scrub(&format!("refused: {why}")));
                self.attempts.push(attempt);
                Step::Fail(
                    self.error(ErrorKind::Refusal, format!("{}; rephrase the request", bounded(&scrub(&why), 300))),
                )
            }
            Verdict::Truncated => {
                attempt.error = Some("cut by the token limit before the JSON was complete".to_owned());
                self.attempts.push(attempt);
                let limit = self.request.max_tokens.map_or(String::new(), |m| format!(" of {m} tokens"));
                Step::Fail(self.error(
                    ErrorKind::Truncated,
                    format!("attempt {n} stopped at the limit{limit} before its JSON was complete; raise max_tokens (ExtractOptions.request) or ask for less"),
                ))
            }
            Verdict::Invalid { errors, repairs } => {
                attempt.error = Some(scrub(&errors.join("\n")));
                attempt.repairs = repairs;
                self.attempts.push(attempt);
                if n as u32 >= self.max_attempts {
                    // Redacted before the cut, so that no part of a secret is left.
                    let last = bounded(&scrub(&errors.join("; ")), 500);
                    return Step::Fail(self.error(
                        ErrorKind::InvalidOutput,
                        format!("still invalid after {n} attempt(s): {last}; raise the attempts, simplify the schema, or use a stronger model"),
                    ));
                }
                self.add_feedback(&text, call, &errors);
                Step::Again
            }
        }
    }

    /// The error of `kind`, carrying every attempt.
    fn error(&mut self, kind: ErrorKind, message: String) -> Error {
        Error::new(kind, scrub(&message))
            .with_retryable(false)
            .with_source(AttemptLog(std::mem::take(&mut self.attempts), None))
    }

    /// `e` (an error of a request in the middle of the loop) carrying the attempts so far,
    /// when there are any; the source it had stays in the chain, under the attempts.
    fn interrupted(&mut self, mut e: Error) -> Error {
        if self.attempts.is_empty() {
            return e;
        }
        let cause = e.take_source();
        e.with_source(AttemptLog(std::mem::take(&mut self.attempts), cause))
    }

    /// The rejected answer and the errors, as the next turns of the conversation.
    fn add_feedback(&mut self, text: &str, call: Option<crate::types::ToolCall>, errors: &[String]) {
        let list: String = errors.iter().map(|e| format!("\n- {e}")).collect();
        let text = &capped(text, MAX_FEEDBACK);
        match call {
            Some(mut call) => {
                call.arguments = capped(&call.arguments, MAX_FEEDBACK);
                let id = call.id.clone();
                self.conversation.push(Message::assistant_with_tool_calls("", vec![call]));
                self.conversation.push(Message::tool(
                    id,
                    format!(
                        "The arguments do not match the schema:{list}\nCall `{}` again with corrected arguments.",
                        self.name
                    ),
                ));
            }
            None => {
                self.conversation.push(Message::assistant(text));
                self.conversation.push(Message::user(format!(
                    "Your answer does not match the JSON Schema:{list}\nAnswer again with only the corrected JSON value."
                )));
            }
        }
    }
}

/// The judgement of one answer.
#[derive(Debug, PartialEq)]
enum Verdict<T> {
    /// Parsed, valid, converted.
    Valid { value: T, repairs: Vec<Repair> },
    /// Parse or validation errors (one line each) worth sending back.
    Invalid { errors: Vec<String>, repairs: Vec<Repair> },
    /// The model refused (its words).
    Refused(String),
    /// Cut by the token limit inside the JSON.
    Truncated,
}

/// Judges one answer's `text` against the original `schema`. Pure.
fn judge<T>(
    text: &str,
    finish: Option<&FinishReason>,
    refusal: Option<&str>,
    schema: &Value,
    validator: &Validator,
    convert: fn(Value) -> Result<T, String>,
) -> Verdict<T> {
    if let Some(why) = refusal {
        return Verdict::Refused(why.to_owned());
    }
    let cut = finish == Some(&FinishReason::Length);
    let mut repaired = match parse_lenient(text, Some(schema)) {
        // At the limit only a whole object or array is an answer: a scalar may be a cut one
        // (`123` of `12345`).
        Ok(r) if cut && !(r.value.is_object() || r.value.is_array()) => return Verdict::Truncated,
        Ok(r) => r,
        // Nothing readable at the limit (empty: a reasoning model that spent the tokens
        // thinking; or cut inside the JSON): truncated, not worth a blind retry.
        Err(_) if cut => return Verdict::Truncated,
        Err(e) if finish == Some(&FinishReason::ContentFilter) => {
            let _ = e;
            return Verdict::Refused("the content filter stopped the answer".to_owned());
        }
        Err(e) => {
            let message = if text.trim().is_empty() { "the answer is empty".to_owned() } else { e.message };
            return Verdict::Invalid { errors: vec![message], repairs: Vec::new() };
        }
    };
    if let Err(errors) = validator.validate(&repaired.value) {
        // Strict mode sends optional properties as `[T, "null"]`, so the model may write
        // `null` where the original schema only allows leaving them out.
        let mut dropped = repaired.value.clone();
        if drop_optional_nulls(&mut dropped, schema, schema) && validator.is_valid(&dropped) {
            repaired.value = dropped;
            repaired.repairs.push(Repair::DroppedNull);
        } else {
            return Verdict::Invalid { errors, repairs: repaired.repairs };
        }
    }
    match convert(repaired.value) {
        Ok(value) => Verdict::Valid { value, repairs: repaired.repairs },
        Err(e) => Verdict::Invalid { errors: vec![e], repairs: repaired.repairs },
    }
}

/// The answer's text (the forced call's arguments in tool mode) and that call.
fn answer_text(response: &ModelResponse, mode: ExtractMode, name: &str) -> (String, Option<crate::types::ToolCall>) {
    if mode == ExtractMode::Tool {
        let call = response.tool_calls.iter().find(|c| c.name == name).or_else(|| response.tool_calls.first());
        if let Some(call) = call {
            return (call.arguments.clone(), Some(call.clone()));
        }
    }
    (response.content.clone(), None)
}

/// The model's refusal, when it refused: OpenAI's `refusal` field (chat), a `refusal` part
/// (Responses API), or the content filter with no answer.
fn refusal_of(response: &ModelResponse) -> Option<String> {
    if let Some(raw) = response.raw_json() {
        if let Some(r) = raw.pointer("/choices/0/message/refusal").and_then(Value::as_str).filter(|r| !r.is_empty()) {
            return Some(r.to_owned());
        }
        if let Some(output) = raw.get("output").and_then(Value::as_array) {
            for item in output {
                for part in item.get("content").and_then(Value::as_array).into_iter().flatten() {
                    if part.get("type").and_then(Value::as_str) == Some("refusal") {
                        let text = part.get("refusal").and_then(Value::as_str).unwrap_or("refused");
                        return Some(text.to_owned());
                    }
                }
            }
        }
    }
    if response.finish_reason == Some(FinishReason::ContentFilter) && response.content.trim().is_empty() {
        return Some("the content filter stopped the answer".to_owned());
    }
    None
}

/// The request options of `mode`.
fn request_options(schema: &Value, name: &str, options: &ExtractOptions) -> RequestOptions {
    let mut request = options.request.clone();
    request.adapt_schema = false;
    match options.mode {
        ExtractMode::Auto => {
            request.response_format =
                Some(ResponseFormat::JsonSchema { name: name.to_owned(), schema: schema.clone(), strict: Some(true) });
            request.adapt_schema = true;
        }
        ExtractMode::JsonSchema => request.response_format = Some(ResponseFormat::json_schema(name, schema.clone())),
        ExtractMode::JsonObject => request.response_format = Some(ResponseFormat::JsonObject),
        ExtractMode::Tool => {
            request.response_format = None;
            request.tools =
                vec![ToolDefinition::function(name, "Give the answer as this function's arguments.", schema.clone())];
            request.tool_choice = Some(ToolChoice::Function(name.to_owned()));
        }
        ExtractMode::Prompt => request.response_format = None,
    }
    request
}

/// `messages` with the instruction that asks for the schema, appended to the first system
/// message, or as a new system message first. Several forms are not enforced by the server
/// (json_object, the prompt alone), so the schema is always in the prompt.
fn with_instruction(messages: &[Message], schema: &Value, name: &str, mode: ExtractMode) -> Vec<Message> {
    let instruction = match mode {
        ExtractMode::Tool => format!("Answer by calling the function `{name}`: its arguments are the answer."),
        _ => format!(
            "Answer with one JSON value that matches this JSON Schema, and nothing else (no prose, no code fences):\n{schema}"
        ),
    };
    let mut out = messages.to_vec();
    match out.first_mut() {
        Some(first) if first.role == Role::System => match &mut first.content {
            Content::Text(text) => {
                if !text.is_empty() {
                    text.push_str("\n\n");
                }
                text.push_str(&instruction);
            }
            Content::Parts(parts) => parts.push(ContentPart::text(format!("\n\n{instruction}"))),
        },
        _ => out.insert(0, Message::system(instruction)),
    }
    out
}

/// Adds `u` into `sum`.
fn add_usage(sum: &mut Usage, u: &Usage) {
    sum.input_tokens += u.input_tokens;
    sum.output_tokens += u.output_tokens;
    sum.total_tokens += u.total_tokens;
    if let Some(r) = u.reasoning_tokens {
        *sum.reasoning_tokens.get_or_insert(0) += r;
    }
    if let Some(c) = u.cached_input_tokens {
        *sum.cached_input_tokens.get_or_insert(0) += c;
    }
}

/// `text` with what looks like a secret (an echoed key) redacted.
fn scrub(text: &str) -> String {
    crate::redact::redact_text(text).into_owned()
}

/// How much of a rejected answer is sent back to the model, in bytes.
const MAX_FEEDBACK: usize = 8 * 1024;

/// `text` cut to at most `max` bytes (on a character boundary), saying so.
fn capped(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n[… cut here: {} more bytes not shown]", &text[..end], text.len() - end)
}

/// `text` cut to `max` characters, on one line.
fn bounded(text: &str, max: usize) -> String {
    let one_line = text.replace(['\n', '\r'], " ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let mut cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// The loop of one extraction.
async fn run<B, T>(
    backend: &B,
    schema: &Value,
    messages: &[Message],
    options: &ExtractOptions,
    convert: fn(Value) -> Result<T, String>,
) -> Result<Extracted<T>, Error>
where
    B: ModelBackend + ?Sized,
{
    let mut job = Job::new(schema, messages, options, convert)?;
    loop {
        let response = match backend.complete(&job.conversation, &job.request).await {
            Ok(response) => response,
            Err(e) => return Err(job.interrupted(e)),
        };
        match job.answer(response) {
            Step::Done(out) => return Ok(out),
            Step::Again => {}
            Step::Fail(e) => return Err(e),
        }
    }
}

/// A streamed extraction's state between items.
struct Streaming<'s, B: ?Sized, T> {
    backend: &'s B,
    job: Job<T>,
    current: Option<ChunkStream>,
    accumulator: StreamAccumulator,
    /// The answer's text so far (content, or the tool call's arguments in tool mode).
    text: String,
    last: Option<Value>,
    /// The text's length when the partial value was last computed.
    partial_at: usize,
    /// The current attempt's stream has ended: its last partial is out, its answer is next.
    ended: bool,
    attempt: u32,
    over: bool,
}

/// Whether the partial value is worth computing again, the text having grown from `at` to
/// `len` bytes: by at least `max(32, len / 16)`, so the work over a whole answer is linear
/// in its length (each computation reads the whole text).
fn partial_due(len: usize, at: usize) -> bool {
    len.saturating_sub(at) >= (len / 16).max(32)
}

/// The streamed loop: the first request is sent before it returns.
async fn run_stream<'s, B, T>(
    backend: &'s B,
    schema: &Value,
    messages: &[Message],
    options: &ExtractOptions,
    convert: fn(Value) -> Result<T, String>,
) -> Result<ExtractStream<'s, T>, Error>
where
    B: ModelBackend + ?Sized,
    T: Send + 's,
{
    let job = Job::new(schema, messages, options, convert)?;
    let first = backend.stream(&job.conversation, &job.request).await?;
    let state = Streaming {
        backend,
        job,
        current: Some(first),
        accumulator: StreamAccumulator::new(),
        text: String::new(),
        last: None,
        partial_at: 0,
        ended: false,
        attempt: 1,
        over: false,
    };
    Ok(Box::pin(futures_util::stream::unfold(state, |mut st| async move {
        let item = st.next_item().await?;
        Some((item, st))
    })))
}

impl<B: ModelBackend + ?Sized, T> Streaming<'_, B, T> {
    /// The next item, or `None` once over.
    /// The partial value when due (or `force`d at the end), if it changed.
    fn partial(&mut self, force: bool) -> Option<Partial<T>> {
        if self.text.len() == self.partial_at || !(force || partial_due(self.text.len(), self.partial_at)) {
            return None;
        }
        self.partial_at = self.text.len();
        let start = self.text.find(['{', '['])?;
        let value = complete_partial(&self.text[start..])?;
        if self.last.as_ref() == Some(&value) {
            return None;
        }
        self.last = Some(value.clone());
        Some(Partial::Value { attempt: self.attempt, value })
    }

    async fn next_item(&mut self) -> Option<Result<Partial<T>, Error>> {
        loop {
            if self.over {
                return None;
            }
            if self.ended {
                self.ended = false;
                self.current = None;
                let response = std::mem::take(&mut self.accumulator).finish();
                match self.job.answer(response) {
                    Step::Done(out) => {
                        self.over = true;
                        return Some(Ok(Partial::Done(out)));
                    }
                    Step::Again => {}
                    Step::Fail(e) => {
                        self.over = true;
                        return Some(Err(e));
                    }
                }
                continue;
            }
            let Some(stream) = self.current.as_mut() else {
                self.attempt += 1;
                self.accumulator = StreamAccumulator::new();
                self.text.clear();
                self.last = None;
                self.partial_at = 0;
                match self.backend.stream(&self.job.conversation, &self.job.request).await {
                    Ok(s) => self.current = Some(s),
                    Err(e) => {
                        self.over = true;
                        return Some(Err(self.job.interrupted(e)));
                    }
                }
                continue;
            };
            match stream.next().await {
                Some(Ok(chunk)) => {
                    self.accumulator.push(&chunk);
                    let before = self.text.len();
                    if self.job.mode == ExtractMode::Tool {
                        for delta in &chunk.tool_calls {
                            self.text.push_str(&delta.arguments);
                        }
                    } else {
                        self.text.push_str(&chunk.content);
                    }
                    if self.text.len() == before {
                        continue;
                    }
                    if let Some(partial) = self.partial(false) {
                        return Some(Ok(partial));
                    }
                }
                Some(Err(e)) => {
                    self.over = true;
                    return Some(Err(self.job.interrupted(e)));
                }
                None => {
                    // The last partial of the attempt (always computed), then its answer.
                    self.ended = true;
                    if let Some(partial) = self.partial(true) {
                        return Some(Ok(partial));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn validator(schema: &Value) -> Validator {
        Validator::new(schema).unwrap()
    }

    #[test]
    fn judge_sorts_answers() {
        let schema =
            json!({"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}, "required": ["n"]});
        let v = validator(&schema);
        let stop = Some(&FinishReason::Stop);
        let length = Some(&FinishReason::Length);
        assert_eq!(
            judge("```json\n{\"n\": 2,}\n```", stop, None, &schema, &v, Ok),
            Verdict::Valid { value: json!({"n": 2}), repairs: vec![Repair::Fence, Repair::TrailingComma] }
        );
        match judge("{\"n\": 0}", stop, None, &schema, &v, Ok) {
            Verdict::Invalid { errors, .. } => assert_eq!(errors, ["/n: 0 is less than the minimum of 1"]),
            other => panic!("{other:?}"),
        }
        assert_eq!(judge("{\"n\": 1", length, None, &schema, &v, Ok), Verdict::Truncated);
        // At the limit, a scalar may be a cut one, and nothing at all is truncated too.
        let number = json!({"type": "integer"});
        let vn = validator(&number);
        assert_eq!(judge("123", length, None, &number, &vn, Ok), Verdict::Truncated);
        assert!(matches!(judge("123", stop, None, &number, &vn, Ok), Verdict::Valid { .. }));
        assert_eq!(judge("", length, None, &schema, &v, Ok), Verdict::Truncated);
        assert_eq!(judge("Let me think", length, None, &schema, &v, Ok), Verdict::Truncated);
        // Cut without the length finish: the model stopped early, worth a retry.
        assert!(matches!(judge("{\"n\": 1", stop, None, &schema, &v, Ok), Verdict::Invalid { .. }));
        // A complete but invalid answer at the length limit is invalid, not truncated.
        assert!(matches!(judge("{}", length, None, &schema, &v, Ok), Verdict::Invalid { .. }));
        assert_eq!(judge("", stop, Some("I can't"), &schema, &v, Ok), Verdict::Refused("I can't".into()));
        assert!(matches!(judge("", Some(&FinishReason::ContentFilter), None, &schema, &v, Ok), Verdict::Refused(_)));
        match judge("  ", stop, None, &schema, &v, Ok) {
            Verdict::Invalid { errors, .. } => assert_eq!(errors, ["the answer is empty"]),
            other => panic!("{other:?}"),
        }
        // Serde's own check comes after validation.
        #[derive(Debug, PartialEq, serde::Deserialize)]
        struct N {
            n: u8,
        }
        assert!(matches!(judge("{\"n\": 300}", stop, None, &schema, &v, from_value::<N>), Verdict::Invalid { .. }));
        assert_eq!(
            judge("{\"n\": 3}", stop, None, &schema, &v, from_value::<N>),
            Verdict::Valid { value: N { n: 3 }, repairs: vec![] }
        );
    }

    #[test]
    fn optional_nulls_strict_mode_invites_are_dropped() {
        // Pydantic `count: int = 0` and serde `#[serde(default)] tags: Vec<String>`.
        let schema = json!({
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "count": {"type": "integer", "default": 0},
                "tags": {"type": "array", "items": {"type": "string"}}
            },
            "required": ["name"]
        });
        let v = validator(&schema);
        let stop = Some(&FinishReason::Stop);
        assert_eq!(
            judge("{\"name\": \"a\", \"count\": null, \"tags\": null}", stop, None, &schema, &v, Ok),
            Verdict::Valid { value: json!({"name": "a"}), repairs: vec![Repair::DroppedNull] }
        );
        // A required property's null is still an error.
        assert!(matches!(
            judge("{\"name\": null, \"count\": null}", stop, None, &schema, &v, Ok),
            Verdict::Invalid { .. }
        ));
    }

    #[test]
    fn an_error_after_an_attempt_carries_the_attempts() {
        let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]});
        let mut job = Job::new(&schema, &[Message::user("n?")], &ExtractOptions::new(), Ok).unwrap();
        let plain = job.interrupted(Error::new(ErrorKind::Server, "before any answer"));
        assert!(super::super::types::attempts_of(&plain).is_none());
        let mut first = ModelResponse::new("{}").with_finish_reason(FinishReason::Stop);
        first.usage = Some(Usage::new(10, 2));
        assert!(matches!(job.answer(first), Step::Again));
        let io = std::io::Error::other("connection reset");
        let e = job.interrupted(Error::new(ErrorKind::Timeout, "timed out").with_source(io));
        assert_eq!(e.kind(), ErrorKind::Timeout);
        let attempts = super::super::types::attempts_of(&e).unwrap();
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].usage, Some(Usage::new(10, 2)));
        assert_eq!(std::error::Error::source(&e).unwrap().to_string(), "connection reset");
    }

    #[test]
    fn the_rejected_answer_sent_back_is_capped() {
        let schema = json!({"type": "object"});
        let mut job = Job::new(&schema, &[Message::user("x")], &ExtractOptions::new(), Ok).unwrap();
        let before = job.conversation.len();
        let long = format!("[{}]", "é".repeat(20_000));
        job.add_feedback(&long, None, &["/: not an object".to_owned()]);
        let sent = job.conversation[before].text();
        assert!(sent.len() < MAX_FEEDBACK + 100, "{}", sent.len());
        assert!(sent.contains("cut here"), "{sent}");
        assert_eq!(capped("short", 10), "short");
    }

    #[test]
    fn partials_are_computed_a_linear_amount() {
        // One byte at a time up to 1 MB: the bytes read by all the computations stay within
        // a constant factor of the length.
        let (mut at, mut work, mut runs) = (0usize, 0usize, 0usize);
        let total = 1 << 20;
        for len in 1..=total {
            if partial_due(len, at) {
                at = len;
                work += len;
                runs += 1;
            }
        }
        assert!(work <= 20 * total, "{work}");
        assert!(runs < 400, "{runs}");
        assert!(partial_due(32, 0) && !partial_due(31, 0));
    }

    #[test]
    fn names_are_what_openai_takes() {
        assert_eq!(schema_name(&json!({}), None), "output");
        assert_eq!(schema_name(&json!({"title": "My Type<T>"}), None), "My_Type_T_");
        assert_eq!(schema_name(&json!({"title": "A"}), Some("b")), "b");
        assert_eq!(schema_name(&json!({}), Some(&"x".repeat(100))).len(), 64);
        assert_eq!(schema_name(&json!({}), Some("")), "output");
    }

    #[test]
    fn the_instruction_joins_the_first_system_message() {
        let schema = json!({"type": "object"});
        let out =
            with_instruction(&[Message::system("Be brief."), Message::user("hi")], &schema, "o", ExtractMode::Auto);
        assert_eq!(out.len(), 2);
        assert!(out[0].text().starts_with("Be brief.\n\nAnswer with one JSON value"), "{}", out[0].text());
        assert!(out[0].text().contains("{\"type\":\"object\"}"));
        let out = with_instruction(&[Message::user("hi")], &schema, "o", ExtractMode::Tool);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].role, Role::System);
        assert!(out[0].text().contains("`o`"));
    }

    #[test]
    fn each_mode_sets_its_request() {
        let schema = json!({"type": "object"});
        let base =
            ExtractOptions::new().request(RequestOptions::new().temperature(0.0).response_format(ResponseFormat::Text));
        let auto = request_options(&schema, "o", &base);
        assert!(auto.adapt_schema);
        assert_eq!(auto.temperature, Some(0.0));
        assert!(matches!(auto.response_format, Some(ResponseFormat::JsonSchema { strict: Some(true), .. })));
        let plain = request_options(&schema, "o", &base.clone().mode(ExtractMode::JsonSchema));
        assert!(!plain.adapt_schema);
        assert!(matches!(plain.response_format, Some(ResponseFormat::JsonSchema { strict: None, .. })));
        let object = request_options(&schema, "o", &base.clone().mode(ExtractMode::JsonObject));
        assert_eq!(object.response_format, Some(ResponseFormat::JsonObject));
        let tool = request_options(&schema, "o", &base.clone().mode(ExtractMode::Tool));
        assert_eq!(tool.response_format, None);
        assert_eq!(tool.tools[0].parameters, schema);
        assert_eq!(tool.tool_choice, Some(ToolChoice::Function("o".into())));
        let prompt = request_options(&schema, "o", &base.mode(ExtractMode::Prompt));
        assert_eq!(prompt.response_format, None);
        assert!(prompt.tools.is_empty());
    }

    #[test]
    fn usage_sums() {
        let mut sum = Usage::default();
        add_usage(&mut sum, &Usage::new(10, 2));
        let mut second = Usage::new(12, 3);
        second.reasoning_tokens = Some(1);
        add_usage(&mut sum, &second);
        assert_eq!((sum.input_tokens, sum.output_tokens, sum.total_tokens, sum.reasoning_tokens), (22, 5, 27, Some(1)));
    }

    #[test]
    fn refusals_are_read_from_the_body() {
        let r = ModelResponse::new("I can't help.").with_finish_reason(FinishReason::Stop);
        assert_eq!(refusal_of(&r), None);
        let r = ModelResponse::new("").with_finish_reason(FinishReason::ContentFilter);
        assert!(refusal_of(&r).is_some());
    }
}
