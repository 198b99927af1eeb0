//! Response translation: wire bytes to [`ModelResponse`] and [`StreamChunk`]s. Pure.

use bytes::Bytes;

use super::responses::stream::ResponsesParser;
use super::scan::wire_response;
use super::template::{ContentTemplate, KnownPrefix};
use super::wire::{WireFunction, WireMessage, WireResponse};
use crate::classify;
use crate::error::Error;
use crate::sse::{SseDecoder, TooLong};
use crate::stream::{StreamChunk, ToolCallDelta};
use crate::think::{split_all, ThinkSplitter};
use crate::types::{infer_finish_reason, normalise_tool_call, FinishReason, ModelResponse, ToolCall, Usage};

/// Parses a whole (non-streaming) answer. `think_tags` splits a leading `<think>` block off the
/// content into the reasoning.
pub(crate) fn parse_response(body: Bytes, think_tags: bool) -> Result<ModelResponse, Error> {
    let wire = wire_response(&body).map_err(|e| decode_error("the response", &body, e))?;
    if let Some(error) = wire.error.as_ref().filter(|e| !e.is_null()) {
        let value = serde_json::json!({ "error": error });
        return Err(classify::from_stream_frame(&value).with_body(String::from_utf8_lossy(&body)));
    }
    let Some(choice) = wire.first_choice() else {
        return Err(Error::decode("the response has no choices").with_body(String::from_utf8_lossy(&body)));
    };
    let empty = WireMessage::default();
    let message = choice.message.0.as_ref().or(choice.delta.0.as_ref()).unwrap_or(&empty);

    let text = message.content.text.as_deref().or(choice.text.0.as_deref()).unwrap_or("");
    let (mut content, tag_reasoning) = split_all(text, think_tags);
    if content.is_empty() {
        if let Some(refusal) = message.refusal.non_empty() {
            content.push_str(refusal);
        }
    }
    let mut reasoning = String::new();
    if let Some(r) = message.reasoning_text() {
        reasoning.push_str(r);
    }
    if let Some(thinking) = &message.content.thinking {
        reasoning.push_str(thinking);
    }
    reasoning.push_str(&tag_reasoning);

    let mut tool_calls: Vec<ToolCall> = message
        .tool_calls
        .0
        .iter()
        .map(|c| {
            let f = c.function.0.as_ref();
            ToolCall {
                id: c.id.non_empty().unwrap_or("").to_owned(),
                name: f.and_then(|f| f.name.non_empty()).unwrap_or("").to_owned(),
                arguments: f.and_then(|f| f.arguments.0.as_deref()).unwrap_or("").to_owned(),
            }
        })
        .collect();
    if tool_calls.is_empty() {
        if let Some(call) = legacy_function_call(message.function_call.0.as_ref()) {
            tool_calls.push(call);
        }
    }
    for (i, call) in tool_calls.iter_mut().enumerate() {
        normalise_tool_call(call, i);
    }

    let finish = choice.finish_reason.0.as_deref().and_then(FinishReason::parse);
    Ok(ModelResponse {
        content,
        reasoning: (!reasoning.is_empty()).then_some(reasoning),
        finish_reason: infer_finish_reason(finish, !tool_calls.is_empty()),
        tool_calls,
        usage: wire.usage.0.as_ref().and_then(|u| u.to_usage()),
        model: wire.model.non_empty().map(str::to_owned),
        id: wire.id.non_empty().map(str::to_owned),
        reasoning_items: Vec::new(),
        raw: None,
    }
    .with_raw(body))
}

fn legacy_function_call(f: Option<&WireFunction<'_>>) -> Option<ToolCall> {
    let f = f?;
    let name = f.name.non_empty()?;
    Some(ToolCall {
        id: String::new(),
        name: name.trim_end_matches(':').to_owned(),
        arguments: f.arguments.0.as_deref().unwrap_or("").to_owned(),
    })
}

pub(crate) fn decode_error(what: &str, body: &[u8], e: serde_json::Error) -> Error {
    let snippet: String = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
    Error::decode(format!("{what} is not valid JSON ({e}); it starts with {snippet:?}"))
        .with_body(String::from_utf8_lossy(&body[..body.len().min(64 * 1024)]))
        .with_source(e)
}

/// Assigns stable positions to streamed tool calls: by `index` when the server sends one (a
/// reused index with a new id is a new call), else by id, else the last call.
#[derive(Debug, Default)]
struct ToolSlots {
    slots: Vec<(Option<u64>, String)>,
}

impl ToolSlots {
    fn resolve(&mut self, wire_index: Option<u64>, id: Option<&str>) -> usize {
        let id = id.filter(|id| !id.is_empty());
        let existing = match wire_index {
            Some(w) => self.slots.iter().rposition(|s| s.0 == Some(w)),
            None => self.slots.len().checked_sub(1),
        };
        if let Some(pos) = existing {
            let slot = &mut self.slots[pos];
            match id {
                Some(id) if !slot.1.is_empty() && slot.1 != id => {} // a new call
                Some(id) => {
                    if slot.1.is_empty() {
                        slot.1 = id.to_owned();
                    }
                    return pos;
                }
                None => return pos,
            }
        }
        self.slots.push((wire_index, id.unwrap_or("").to_owned()));
        self.slots.len() - 1
    }

    fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

/// What a stream event turned into. Returned by value and matched at once, so the size
/// difference of the variants costs nothing, while boxing would cost an allocation per chunk.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum Parsed {
    /// A chunk for the caller.
    Chunk(StreamChunk),
    /// Nothing for the caller (usage trailer, Azure's prompt-filter chunk).
    Nothing,
    /// `[DONE]`.
    Done,
}

/// The state of one stream: assembles what crosses events.
#[derive(Debug)]
pub(crate) struct ChunkParser {
    think: ThinkSplitter,
    tools: ToolSlots,
    usage: Option<Usage>,
    finish_reason: Option<FinishReason>,
    model_sent: bool,
    id_sent: bool,
    events: u64,
    prefix: PrefixCache,
    template: ContentTemplate,
}

/// Most servers start every event of a stream with the same members before `"choices"`
/// (`id`, `object`, `created`, `model`, `system_fingerprint`, …: half of each event's bytes).
/// Once such a prefix has been checked (it is a whole run of top-level members, holding no
/// usage and no error), later events that start with the same bytes are parsed from
/// `"choices"` on: the same answer for a fraction of the work.
#[derive(Debug, Default)]
struct PrefixCache {
    /// `{` and the members before `,"choices":`, as the last checked event had them.
    bytes: Vec<u8>,
    /// The prefix's `id` and `model`, for a stream whose first chunk came without them.
    id: Option<String>,
    model: Option<String>,
    /// Events in a row whose prefix could not be used; past a few, the stream stops trying.
    misses: u8,
    /// `{` and the rest of an event, reused.
    scratch: Vec<u8>,
}

const CHOICES_KEY: &[u8] = b",\"choices\":";
const MAX_PREFIX_MISSES: u8 = 4;

impl PrefixCache {
    /// Puts `{` + the event's members from `"choices"` on in `scratch` when its prefix is the
    /// checked one.
    fn cut(&mut self, event: &[u8]) -> bool {
        if !self.covers(event) {
            return false;
        }
        let n = self.bytes.len();
        self.misses = 0;
        self.scratch.clear();
        self.scratch.push(b'{');
        self.scratch.extend_from_slice(&event[n + 1..]);
        true
    }

    /// True when `event` starts with the checked prefix, then `"choices"`.
    fn covers(&self, event: &[u8]) -> bool {
        let n = self.bytes.len();
        n > 0 && event.len() > n && event.starts_with(&self.bytes) && event[n..].starts_with(CHOICES_KEY)
    }

    /// What the template learns from the prefix of `event`, when it has the checked one.
    fn known(&self, event: &[u8]) -> Option<KnownPrefix<'_>> {
        self.covers(event).then_some(KnownPrefix {
            len: self.bytes.len(),
            model: self.model.as_deref(),
            id: self.id.as_deref(),
        })
    }

    /// Learns the prefix of a fully parsed event, unless this stream gave up: after a few
    /// events in a row that could not use a prefix (one that changes every event, or none).
    fn learn(&mut self, event: &[u8]) {
        if self.misses >= MAX_PREFIX_MISSES {
            self.bytes.clear();
            return;
        }
        self.misses += 1;
        static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
            std::sync::LazyLock::new(|| memchr::memmem::Finder::new(CHOICES_KEY));
        let Some(at) = FINDER.find(event) else { return };
        let prefix = &event[..at];
        if prefix.first() != Some(&b'{') {
            return;
        }
        // The candidate is a whole run of top-level members exactly when closing it gives a
        // JSON object (an occurrence inside a string or a nested object leaves it unbalanced).
        self.scratch.clear();
        self.scratch.extend_from_slice(prefix);
        self.scratch.push(b'}');
        let Ok(members) = wire_response(&self.scratch) else { return };
        if members.usage.0.is_some()
            || members.error.as_ref().is_some_and(|e| !e.is_null())
            || !members.choices.0.is_empty()
        {
            return;
        }
        self.id = members.id.non_empty().map(str::to_owned);
        self.model = members.model.non_empty().map(str::to_owned);
        self.bytes.clear();
        self.bytes.extend_from_slice(prefix);
    }
}

impl ChunkParser {
    pub(crate) fn new(think_tags: bool) -> ChunkParser {
        ChunkParser {
            think: ThinkSplitter::new(think_tags),
            tools: ToolSlots::default(),
            usage: None,
            finish_reason: None,
            model_sent: false,
            id_sent: false,
            events: 0,
            prefix: PrefixCache::default(),
            template: ContentTemplate::default(),
        }
    }

    /// A parser that reads every event in full (to compare the shortcuts with, in tests).
    #[cfg(test)]
    pub(crate) fn without_shortcuts(think_tags: bool) -> ChunkParser {
        let mut parser = ChunkParser::new(think_tags);
        parser.prefix.misses = MAX_PREFIX_MISSES;
        parser.template = ContentTemplate::disabled();
        parser
    }

    /// True once the server said why it stopped: a clean close after this is a normal end.
    pub(crate) fn saw_finish(&self) -> bool {
        self.finish_reason.is_some()
    }

    /// Number of events seen.
    pub(crate) fn events(&self) -> u64 {
        self.events
    }

    /// Parses one event's data.
    pub(crate) fn parse(&mut self, data: &[u8]) -> Result<Parsed, Error> {
        self.events += 1;
        let trimmed = data.trim_ascii();
        if trimmed == b"[DONE]" {
            return Ok(Parsed::Done);
        }
        if trimmed.is_empty() {
            return Ok(Parsed::Nothing);
        }
        if let Some(text) = self.template.matches(trimmed) {
            return Ok(Parsed::Chunk(self.templated(&text)));
        }
        let mut prefix = std::mem::take(&mut self.prefix);
        let cut = prefix.cut(trimmed);
        let wire = if cut { wire_response(&prefix.scratch).ok() } else { None };
        let parsed = match wire {
            Some(wire) => self.apply(wire, Some(&prefix)),
            // An event that does not parse is read again in full: its error then says where
            // the event (not its cut) went wrong.
            None => {
                let wire = wire_response(trimmed).map_err(|e| decode_error("a stream event", trimmed, e));
                let parsed = wire.and_then(|wire| self.apply(wire, None));
                if parsed.is_ok() && !cut {
                    prefix.learn(trimmed);
                }
                parsed
            }
        };
        self.prefix = prefix;
        if let Ok(Parsed::Chunk(chunk)) = &parsed {
            let plain = chunk.tool_calls.is_empty()
                && chunk.finish_reason.is_none()
                && (!chunk.content.is_empty() || !chunk.reasoning.is_empty());
            if plain {
                self.template.learn(trimmed, self.prefix.known(trimmed));
            }
        }
        parsed
    }

    /// The chunk of an event of the learnt template's shape whose piece of text is `text`:
    /// what [`apply`](Self::apply) makes of it.
    fn templated(&mut self, text: &str) -> StreamChunk {
        let mut chunk = StreamChunk::default();
        if !text.is_empty() {
            self.think.feed(text, &mut chunk.content, &mut chunk.reasoning);
        }
        chunk.model = first_time(&mut self.model_sent, self.template.model.as_deref());
        chunk.id = first_time(&mut self.id_sent, self.template.id.as_deref());
        chunk
    }

    /// Turns one parsed event into what the caller gets; `prefix`: the checked members before
    /// `"choices"` that the event had but `wire` was not parsed from.
    fn apply(&mut self, wire: WireResponse<'_>, prefix: Option<&PrefixCache>) -> Result<Parsed, Error> {
        if let Some(error) = wire.error.as_ref().filter(|e| !e.is_null()) {
            let value = serde_json::json!({ "error": error });
            return Err(classify::from_stream_frame(&value));
        }
        if let Some(usage) = wire.usage.0.as_ref().and_then(|u| u.to_usage()) {
            self.usage = Some(usage);
        }
        let Some(choice) = wire.first_choice() else {
            return Ok(Parsed::Nothing);
        };
        let mut chunk = StreamChunk::default();
        if let Some(delta) = choice.delta.0.as_ref().or(choice.message.0.as_ref()) {
            self.apply_delta(delta, &mut chunk);
        } else if let Some(text) = choice.text.non_empty() {
            // A legacy text completion's event.
            self.think.feed(text, &mut chunk.content, &mut chunk.reasoning);
        }
        if let Some(finish) = choice.finish_reason.0.as_deref().and_then(FinishReason::parse) {
            chunk.finish_reason = Some(finish.clone());
            self.finish_reason = Some(finish);
        }
        let model = wire.model.non_empty().or_else(|| prefix.and_then(|p| p.model.as_deref()));
        chunk.model = first_time(&mut self.model_sent, model);
        let id = wire.id.non_empty().or_else(|| prefix.and_then(|p| p.id.as_deref()));
        chunk.id = first_time(&mut self.id_sent, id);
        Ok(Parsed::Chunk(chunk))
    }

    fn apply_delta(&mut self, delta: &WireMessage<'_>, chunk: &mut StreamChunk) {
        if let Some(r) = delta.reasoning_text() {
            chunk.reasoning.push_str(r);
        }
        if let Some(thinking) = &delta.content.thinking {
            chunk.reasoning.push_str(thinking);
        }
        if let Some(text) = delta.content.text.as_deref() {
            if !text.is_empty() {
                self.think.feed(text, &mut chunk.content, &mut chunk.reasoning);
            }
        }
        if !delta.tool_calls.0.is_empty() {
            chunk.tool_calls.reserve(delta.tool_calls.0.len());
            for call in &delta.tool_calls.0 {
                let f = call.function.0.as_ref();
                let index = self.tools.resolve(call.index.0, call.id.non_empty());
                chunk.tool_calls.push(ToolCallDelta {
                    index,
                    id: call.id.non_empty().map(str::to_owned),
                    name: f.and_then(|f| f.name.non_empty()).map(str::to_owned),
                    arguments: f.and_then(|f| f.arguments.0.as_deref()).unwrap_or("").to_owned(),
                });
            }
        } else if let Some(f) = delta.function_call.0.as_ref() {
            // Legacy streaming function_call (no tool_calls beside it): one call, index 0.
            let index = self.tools.resolve(Some(0), None);
            chunk.tool_calls.push(ToolCallDelta {
                index,
                id: None,
                name: f.name.non_empty().map(|n| n.trim_end_matches(':').to_owned()),
                arguments: f.arguments.0.as_deref().unwrap_or("").to_owned(),
            });
        }
    }

    /// The final chunk: what the think splitter held back, the finish reason and the usage.
    pub(crate) fn finish(&mut self) -> StreamChunk {
        let mut chunk = StreamChunk::final_chunk(
            infer_finish_reason(self.finish_reason.clone(), !self.tools.is_empty()),
            self.usage,
        );
        self.think.finish(&mut chunk.content, &mut chunk.reasoning);
        chunk
    }
}

/// `value` the first time there is one (`sent` then records it): a stream names its model and
/// id on one chunk only.
fn first_time(sent: &mut bool, value: Option<&str>) -> Option<String> {
    if *sent {
        return None;
    }
    let value = value?;
    *sent = true;
    Some(value.to_owned())
}

/// The event parser of one API.
#[derive(Debug)]
enum Parser {
    Chat(ChunkParser),
    Responses(ResponsesParser),
}

impl Parser {
    fn parse(&mut self, data: &[u8]) -> Result<Parsed, Error> {
        match self {
            Parser::Chat(p) => p.parse(data),
            Parser::Responses(p) => p.parse(data),
        }
    }

    fn saw_finish(&self) -> bool {
        match self {
            Parser::Chat(p) => p.saw_finish(),
            Parser::Responses(p) => p.saw_finish(),
        }
    }

    fn events(&self) -> u64 {
        match self {
            Parser::Chat(p) => p.events(),
            Parser::Responses(p) => p.events(),
        }
    }

    fn finish(&mut self) -> StreamChunk {
        match self {
            Parser::Chat(p) => p.finish(),
            Parser::Responses(p) => p.finish(),
        }
    }
}

/// What [`EventDecoder::next`] found in the input so far.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum Step {
    /// A chunk for the caller.
    Chunk(StreamChunk),
    /// The answer is complete; this is the final chunk.
    Final(StreamChunk),
    /// The stream failed.
    Failed(Error),
    /// The buffered input holds no further event: push more, or end the input.
    NeedMore,
}

/// How many leading bytes of a stream are kept for error messages.
const HEAD: usize = 256;

/// The pure part of a stream: bytes in, chunks out. Transport and timers live in the caller,
/// so this can be fed recorded bytes split anywhere in tests.
#[derive(Debug)]
pub(crate) struct EventDecoder {
    sse: SseDecoder,
    parser: Parser,
    input_ended: bool,
    /// The first bytes received, to show what came when it was no event stream.
    head: Vec<u8>,
}

impl EventDecoder {
    pub(crate) fn new(think_tags: bool) -> EventDecoder {
        EventDecoder {
            sse: SseDecoder::new(),
            parser: Parser::Chat(ChunkParser::new(think_tags)),
            input_ended: false,
            head: Vec::new(),
        }
    }

    /// A decoder that reads every event in full (to compare the shortcuts with, in tests).
    #[cfg(test)]
    pub(crate) fn without_shortcuts(think_tags: bool) -> EventDecoder {
        EventDecoder {
            parser: Parser::Chat(ChunkParser::without_shortcuts(think_tags)),
            ..EventDecoder::new(think_tags)
        }
    }

    /// A decoder of Responses API events.
    pub(crate) fn responses(think_tags: bool) -> EventDecoder {
        EventDecoder { parser: Parser::Responses(ResponsesParser::new(think_tags)), ..EventDecoder::new(think_tags) }
    }

    /// Adds received bytes.
    #[cfg(test)]
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.fill(|buf| {
            buf.extend_from_slice(bytes);
            bytes.len()
        });
    }

    /// Lets `read` append received bytes to the decoder's buffer (no copy on the way).
    pub(crate) fn fill<R>(&mut self, read: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        let buf = self.sse.buffer();
        let before = buf.len();
        let result = read(buf);
        if self.head.len() < HEAD && buf.len() > before {
            let take = (HEAD - self.head.len()).min(buf.len() - before);
            self.head.extend_from_slice(&buf[before..before + take]);
        }
        result
    }

    /// The server closed the body cleanly.
    pub(crate) fn end_input(&mut self) {
        self.input_ended = true;
        self.sse.finish();
    }

    /// True once the server said why it stopped.
    pub(crate) fn saw_finish(&self) -> bool {
        self.parser.saw_finish()
    }

    /// The final chunk, for a connection that broke after the finish reason.
    pub(crate) fn finish(&mut self) -> StreamChunk {
        self.parser.finish()
    }

    /// The next step.
    pub(crate) fn next(&mut self) -> Step {
        loop {
            let event = match self.sse.next_event() {
                Err(TooLong) => {
                    return Step::Failed(Error::decode(format!(
                        "a stream event is longer than {} bytes",
                        crate::sse::MAX_EVENT_BYTES
                    )))
                }
                Ok(Some(event)) => event,
                Ok(None) if !self.input_ended => return Step::NeedMore,
                Ok(None) => {
                    if self.parser.saw_finish() {
                        return Step::Final(self.parser.finish());
                    }
                    let events = self.parser.events();
                    if events == 0 && self.sse.foreign_lines() > 0 {
                        let snippet = String::from_utf8_lossy(&self.head).into_owned();
                        return Step::Failed(
                            Error::decode(format!(
                                "the answer to a stream request is not an event stream; it starts with {snippet:?}"
                            ))
                            .with_body(snippet),
                        );
                    }
                    let message = match (events, &self.parser) {
                        (0, _) => "the server closed the stream without sending any event".to_owned(),
                        (_, Parser::Chat(_)) => format!("the server closed the stream after {events} events, before the answer finished (no finish_reason, no [DONE])"),
                        (_, Parser::Responses(_)) => format!("the server closed the stream after {events} events, before the answer finished (no response.completed)"),
                    };
                    return Step::Failed(Error::stream(message));
                }
            };
            if event.is_error_event {
                return Step::Failed(error_event(event.data));
            }
            match self.parser.parse(event.data) {
                Ok(Parsed::Chunk(chunk)) => return Step::Chunk(chunk),
                Ok(Parsed::Nothing) => continue,
                Ok(Parsed::Done) => return Step::Final(self.parser.finish()),
                // A last event cut off after the answer finished (a usage trailer): the answer
                // is whole.
                Err(_) if self.input_ended && self.parser.saw_finish() => return Step::Final(self.parser.finish()),
                Err(e) => return Step::Failed(e),
            }
        }
    }
}

/// An `event: error` is an error whatever its data: `{"error": …}`, any other JSON, or text.
fn error_event(data: &[u8]) -> Error {
    match serde_json::from_slice::<serde_json::Value>(data.trim_ascii()) {
        Ok(value) if value.get("error").is_some() => classify::from_stream_frame(&value),
        Ok(value) => classify::from_stream_frame(&serde_json::json!({ "error": value })),
        Err(_) => {
            let info = classify::parse_error_body(data);
            let message = info.message.unwrap_or_else(|| "the server sent an error event".to_owned());
            Error::new(crate::ErrorKind::Server, message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::stream::StreamAccumulator;

    fn complete(json: &str) -> ModelResponse {
        parse_response(Bytes::from(json.to_owned()), true).unwrap()
    }

    fn chunks(events: &[&str]) -> (Vec<StreamChunk>, ChunkParser) {
        let mut p = ChunkParser::new(false);
        let mut out = Vec::new();
        for e in events {
            match p.parse(e.as_bytes()).unwrap() {
                Parsed::Chunk(c) => out.push(c),
                Parsed::Nothing | Parsed::Done => {}
            }
        }
        out.push(p.finish());
        (out, p)
    }

    fn event(prefix: &str, delta: &str, finish: &str) -> String {
        format!(r#"{prefix},"choices":[{{"index":0,"delta":{delta},"finish_reason":{finish}}}],"usage":null}}"#)
    }

    /// Events that repeat their members before `"choices"` are read from `"choices"` on after
    /// the first, with the same chunks as a full read.
    #[test]
    fn repeated_prefix_is_read_once() {
        let prefix = r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","system_fingerprint":"fp""#;
        let events = [
            event(prefix, r#"{"role":"assistant","content":""}"#, "null"),
            event(prefix, r#"{"content":"Hel"}"#, "null"),
            event(prefix, r#"{"content":"lo"}"#, "null"),
            event(prefix, r#"{}"#, r#""stop""#),
            format!(r#"{prefix},"choices":[],"usage":{{"prompt_tokens":3,"completion_tokens":2}}}}"#),
        ];
        let refs: Vec<&str> = events.iter().map(String::as_str).collect();
        let (out, p) = chunks(&refs);
        assert_eq!(p.prefix.bytes, prefix.as_bytes(), "the prefix was learnt");
        assert_eq!(p.prefix.misses, 0, "and used");
        assert!(p.template.is_learnt(), "the pieces of text were read by the template");
        let text: String = out.iter().map(|c| c.content.as_str()).collect();
        assert_eq!(text, "Hello");
        assert_eq!(out[0].model.as_deref(), Some("m"));
        assert_eq!(out[0].id.as_deref(), Some("c1"));
        assert_eq!(out.iter().filter(|c| c.model.is_some()).count(), 1);
        let last = out.last().unwrap();
        assert_eq!(last.finish_reason, Some(FinishReason::Stop));
        assert_eq!(last.usage.map(|u| (u.input_tokens, u.output_tokens)), Some((3, 2)));
    }

    /// A `"choices"` key inside a nested object, usage or an error before `"choices"`, a
    /// prefix that changes: never a wrong answer, only the full read.
    #[test]
    fn prefixes_that_cannot_be_used() {
        let nested = r#"{"id":"c","meta":{"a":1,"choices":[]}"#;
        let events = [event(nested, r#"{"content":"a"}"#, "null"), event(nested, r#"{"content":"b"}"#, "null")];
        let refs: Vec<&str> = events.iter().map(String::as_str).collect();
        let (out, p) = chunks(&refs);
        assert!(p.prefix.bytes.is_empty());
        assert_eq!(out[0].content, "a");
        assert_eq!(out[1].content, "b");

        let usage_first = r#"{"id":"c","usage":{"prompt_tokens":5,"completion_tokens":1}"#;
        let events =
            [event(usage_first, r#"{"content":"a"}"#, "null"), event(usage_first, r#"{"content":"b"}"#, "null")];
        let events: Vec<String> = events.iter().map(|e| e.replace(r#","usage":null}"#, "}")).collect();
        let refs: Vec<&str> = events.iter().map(String::as_str).collect();
        let (out, p) = chunks(&refs);
        assert!(p.prefix.bytes.is_empty(), "a prefix with usage is never skipped");
        assert_eq!(out.last().unwrap().usage.map(|u| u.input_tokens), Some(5));

        // A counter before "choices": a new prefix each event; the parser stops trying.
        let events: Vec<String> =
            (0..10).map(|i| event(&format!(r#"{{"id":"c","seq":{i}"#), r#"{"content":"x"}"#, "null")).collect();
        let refs: Vec<&str> = events.iter().map(String::as_str).collect();
        let (out, p) = chunks(&refs);
        assert_eq!(out.iter().map(|c| c.content.as_str()).collect::<String>(), "x".repeat(10));
        assert!(p.prefix.bytes.is_empty());
        assert_eq!(p.prefix.misses, MAX_PREFIX_MISSES);

        // An event whose tail is broken after a learnt prefix is an error, as in a full read.
        let good = r#"{"id":"c","model":"m""#;
        let mut p = ChunkParser::new(false);
        assert!(p.parse(event(good, r#"{"content":"a"}"#, "null").as_bytes()).is_ok());
        let broken = format!(r#"{good},"choices":[{{"index":0,"delta":"#);
        assert!(p.parse(broken.as_bytes()).is_err());
    }

    #[test]
    fn openai_text_answer() {
        let r = complete(
            r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello!","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12},"service_tier":"default","system_fingerprint":"fp_1"}"#,
        );
        assert_eq!(r.content, "Hello!");
        assert_eq!(r.finish_reason, Some(FinishReason::Stop));
        assert_eq!(r.usage.unwrap().total_tokens, 12);
        assert_eq!(r.model.as_deref(), Some("gpt-4o-mini"));
        assert_eq!(r.id.as_deref(), Some("chatcmpl-1"));
        assert_eq!(r.raw_json().unwrap()["system_fingerprint"], "fp_1");
    }

    #[test]
    fn content_null_absent_or_empty_is_empty_string() {
        for msg in [r#"{"content":null}"#, r#"{}"#, r#"{"content":""}"#, r#"{"role":"assistant"}"#] {
            let r = complete(&format!(r#"{{"choices":[{{"message":{msg}}}]}}"#));
            assert_eq!(r.content, "");
            assert_eq!(r.finish_reason, None);
        }
    }

    #[test]
    fn tool_calls_with_stop_and_object_arguments() {
        // TGI: no content key, finish_reason "stop", id "0".
        let r = complete(
            r#"{"id":"","choices":[{"index":0,"message":{"role":"assistant","tool_calls":[{"id":"0","type":"function","function":{"name":"get_weather","arguments":{"city":"Paris"}}}]},"finish_reason":"stop"}]}"#,
        );
        assert_eq!(r.tool_calls, vec![ToolCall::new("0", "get_weather", r#"{"city":"Paris"}"#)]);
        assert_eq!(r.finish_reason, Some(FinishReason::ToolCalls));
        assert_eq!(r.id, None);
    }

    #[test]
    fn llama_cpp_python_legacy_function_call_beside_tool_calls() {
        let r = complete(
            r#"{"choices":[{"index":0,"message":{"content":null,"tool_calls":[{"id":"call__0_get_weather_cmpl-1","type":"function","function":{"name":"get_weather","arguments":"{\"location\": \"Paris\"}"}}],"role":"assistant","function_call":{"name":"get_weather:","arguments":"{\"location\": \"Paris\"}"}},"logprobs":null,"finish_reason":"tool_calls"}]}"#,
        );
        assert_eq!(r.tool_calls.len(), 1);
        assert_eq!(r.tool_calls[0].name, "get_weather");
        // Only the legacy field: one call, the stray colon dropped.
        let r = complete(
            r#"{"choices":[{"message":{"function_call":{"name":"get_weather:","arguments":"{}"}},"finish_reason":"function_call"}]}"#,
        );
        assert_eq!(r.tool_calls, vec![ToolCall::new("call_0", "get_weather", "{}")]);
        assert_eq!(r.finish_reason, Some(FinishReason::ToolCalls));
    }

    #[test]
    fn reasoning_fields_and_think_tags() {
        let r = complete(r#"{"choices":[{"message":{"content":"4","reasoning_content":"2+2"}}]}"#);
        assert_eq!((r.content.as_str(), r.reasoning.as_deref()), ("4", Some("2+2")));
        let r = complete(r#"{"choices":[{"message":{"content":"4","reasoning":"2+2"}}]}"#);
        assert_eq!(r.reasoning.as_deref(), Some("2+2"));
        let r = complete(r#"{"choices":[{"message":{"content":"4","reasoning":"same","reasoning_content":"same"}}]}"#);
        assert_eq!(r.reasoning.as_deref(), Some("same"));
        let r = complete(r#"{"choices":[{"message":{"content":"<think>\nhmm\n</think>\n\n4"}}]}"#);
        assert_eq!((r.content.as_str(), r.reasoning.as_deref()), ("4", Some("\nhmm\n")));
        let off =
            parse_response(Bytes::from_static(br#"{"choices":[{"message":{"content":"<think>x</think>y"}}]}"#), false)
                .unwrap();
        assert_eq!((off.content.as_str(), off.reasoning), ("<think>x</think>y", None));
    }

    #[test]
    fn unknown_finish_reason_is_kept_and_empty_is_none() {
        assert_eq!(
            complete(r#"{"choices":[{"message":{"content":"x"},"finish_reason":"weird"}]}"#).finish_reason,
            Some(FinishReason::Other("weird".into()))
        );
        assert_eq!(complete(r#"{"choices":[{"message":{"content":"x"},"finish_reason":""}]}"#).finish_reason, None);
        assert_eq!(
            complete(r#"{"choices":[{"message":{"content":"x"},"finish_reason":"eos"}]}"#).finish_reason,
            Some(FinishReason::Stop)
        );
    }

    #[test]
    fn blank_lines_before_the_body_deepseek() {
        let r = complete("\n\n\n  {\"choices\":[{\"message\":{\"content\":\"ok\"}}]}");
        assert_eq!(r.content, "ok");
    }

    #[test]
    fn error_in_a_200_body_is_an_error() {
        let e = parse_response(
            Bytes::from_static(
                br#"{"error":{"message":"No connected db.","type":"no_db_connection","param":null,"code":"400"}}"#,
            ),
            true,
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidRequest);
        assert_eq!(e.message(), "No connected db.");
    }

    #[test]
    fn garbage_is_a_decode_error() {
        for body in ["", "not json", "[]", "{\"choices\":[]}", "{\"choices\":\"x\"}", "\u{0}"] {
            let e = parse_response(Bytes::from(body.to_owned()), true).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Decode, "{body:?}");
        }
    }

    #[test]
    fn refusal_becomes_content() {
        let r = complete(
            r#"{"choices":[{"message":{"content":null,"refusal":"I can't help with that."},"finish_reason":"stop"}]}"#,
        );
        assert_eq!(r.content, "I can't help with that.");
    }

    fn run_stream(events: &[&str]) -> Result<ModelResponse, Error> {
        let mut p = ChunkParser::new(true);
        let mut acc = StreamAccumulator::new();
        for e in events {
            match p.parse(e.as_bytes())? {
                Parsed::Chunk(c) => acc.push(&c),
                Parsed::Nothing => {}
                Parsed::Done => break,
            }
        }
        acc.push(&p.finish());
        Ok(acc.finish())
    }

    #[test]
    fn legacy_text_completions_read_as_content() {
        let r = complete(
            r#"{"id":"cmpl-1","object":"text_completion","model":"m","choices":[{"text":" Paris.","index":0,"logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#,
        );
        assert_eq!(r.content, " Paris.");
        assert_eq!(r.finish_reason, Some(FinishReason::Length));
        assert_eq!(r.usage.map(|u| u.output_tokens), Some(2));
        let r = run_stream(&[
            r#"{"id":"cmpl-1","object":"text_completion","choices":[{"text":" Pa","index":0,"finish_reason":null}]}"#,
            r#"{"choices":[{"text":"ris","index":0,"finish_reason":null}]}"#,
            r#"{"choices":[{"text":"","index":0,"finish_reason":"stop"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#,
            "[DONE]",
        ])
        .unwrap();
        assert_eq!(r.content, " Paris");
        assert_eq!(r.finish_reason, Some(FinishReason::Stop));
        assert_eq!(r.usage.map(|u| u.input_tokens), Some(5));
    }

    #[test]
    fn tool_call_fragments_without_index_and_with_reused_index() {
        // No index: a new id starts a new call.
        let r = run_stream(&[
            r#"{"choices":[{"delta":{"tool_calls":[{"id":"a","function":{"name":"f","arguments":"{\"x\""}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"function":{"arguments":":1}"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"id":"b","function":{"name":"g","arguments":"{}"}}]}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"tool_calls"}]}"#,
        ])
        .unwrap();
        assert_eq!(r.tool_calls, vec![ToolCall::new("a", "f", "{\"x\":1}"), ToolCall::new("b", "g", "{}")]);
        // Every call at index 0 with its own id (whole calls in one chunk each).
        let r = run_stream(&[
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"f","arguments":"{}"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"b","function":{"name":"g","arguments":"{}"}}]}}]}"#,
        ])
        .unwrap();
        assert_eq!(r.tool_calls.len(), 2);
        assert_eq!(r.finish_reason, Some(FinishReason::ToolCalls));
    }

    #[test]
    fn stream_error_frame_is_an_error() {
        let e = run_stream(&[
            r#"{"choices":[{"delta":{"content":"Hel"}}]}"#,
            r#"{"error":{"message":"The server had an error while processing your request.","type":"server_error"}}"#,
        ])
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Server);
        assert!(e.message().contains("server had an error"));
    }

    #[test]
    fn malformed_frame_is_a_decode_error() {
        let e = run_stream(&[r#"{"choices":[{"delta":{"content":"Hel"#]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Decode);
    }

    #[test]
    fn usage_last_non_null_and_empty_choices_absorbed() {
        let r = run_stream(&[
            r#"{"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[]}"#,
            r#"{"id":"x","model":"m","choices":[{"delta":{"content":"a"}}],"usage":null}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#,
            "[DONE]",
        ])
        .unwrap();
        assert_eq!(r.usage.unwrap().total_tokens, 2);
        assert_eq!(r.model.as_deref(), Some("m"));
        assert_eq!(r.id.as_deref(), Some("x"));
    }
}
