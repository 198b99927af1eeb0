//! A chat-completion stream's events: one event's bytes to a [`StreamChunk`], with the state
//! that crosses events (tool-call positions, `<think>` splitting, usage, the finish reason, and
//! the [`LearnedShape`] that lets most events skip most of the parse). Pure.

use super::event_shape::{KnownMembers, LearnedShape};
use super::parsed_event::Parsed;
use super::scan::wire_response;
use super::wire::{decode_error, WireMessage, WireResponse};
use crate::classify;
use crate::error::Error;
use crate::stream::{StreamChunk, ToolCallDelta};
use crate::think::ThinkSplitter;
use crate::types::{infer_finish_reason, FinishReason, Usage};

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
    shape: LearnedShape,
    /// Every event read by serde alone, neither the learned shape nor the direct reader (the
    /// reference of the differential tests).
    #[cfg(test)]
    serde_only: bool,
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
            #[cfg(test)]
            serde_only: false,
            shape: LearnedShape::default(),
        }
    }

    /// A parser that reads every event in full (to compare the shortcuts with, in tests).
    #[cfg(test)]
    pub(crate) fn without_shortcuts(think_tags: bool) -> ChunkParser {
        ChunkParser { shape: LearnedShape::disabled(), ..ChunkParser::new(think_tags) }
    }

    /// A parser that reads every event with serde alone (the reference of the differential
    /// tests).
    #[cfg(test)]
    pub(crate) fn serde_only(think_tags: bool) -> ChunkParser {
        ChunkParser { serde_only: true, ..ChunkParser::without_shortcuts(think_tags) }
    }

    /// Reads a whole event: with the direct reader where it can, else serde.
    fn read<'e>(&self, event: &'e [u8]) -> serde_json::Result<WireResponse<'e>> {
        #[cfg(test)]
        if self.serde_only {
            return serde_json::from_slice(event);
        }
        wire_response(event)
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
        if let Some(text) = self.shape.piece(trimmed) {
            return Ok(Parsed::Chunk(self.learnt_piece(&text)));
        }
        let mut shape = std::mem::take(&mut self.shape);
        let cut = shape.cut(trimmed);
        let wire = if cut { shape.read_rest() } else { None };
        let used = wire.is_some();
        let parsed = match wire {
            Some(wire) => self.apply(wire, Some(shape.known_members())),
            // An event whose cut does not parse, or repeats a learnt key, is read again in
            // full: its error then says where the event (not its cut) went wrong.
            None => {
                let wire = self.read(trimmed).map_err(|e| decode_error("a stream event", trimmed, e));
                let parsed = wire.and_then(|wire| self.apply(wire, None));
                if parsed.is_ok() && !cut {
                    shape.learn_members(trimmed);
                }
                parsed
            }
        };
        if used {
            shape.cut_was_used();
        }
        self.shape = shape;
        if let Ok(Parsed::Chunk(chunk)) = &parsed {
            let plain = chunk.tool_calls.is_empty()
                && chunk.finish_reason.is_none()
                && (!chunk.content.is_empty() || !chunk.reasoning.is_empty());
            if plain {
                self.shape.learn_piece(trimmed);
            }
        }
        parsed
    }

    /// The chunk of an event of the learnt whole shape whose piece of text is `text`:
    /// what [`apply`](Self::apply) makes of it.
    fn learnt_piece(&mut self, text: &str) -> StreamChunk {
        let mut chunk = StreamChunk::default();
        if !text.is_empty() {
            self.think.feed(text, &mut chunk.content, &mut chunk.reasoning);
        }
        chunk.model = first_time(&mut self.model_sent, self.shape.model());
        chunk.id = first_time(&mut self.id_sent, self.shape.id());
        chunk
    }

    /// Turns one parsed event into what the caller gets; `known`: the learnt members before
    /// `"choices"` that the event had but `wire` was not parsed from.
    fn apply(&mut self, wire: WireResponse<'_>, known: Option<KnownMembers<'_>>) -> Result<Parsed, Error> {
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
        let model = wire.model.non_empty().or_else(|| known.and_then(|k| k.model));
        chunk.model = first_time(&mut self.model_sent, model);
        let id = wire.id.non_empty().or_else(|| known.and_then(|k| k.id));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::stream::StreamAccumulator;
    use crate::types::{ModelResponse, ToolCall};

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
        assert_eq!(p.shape.members(), prefix.as_bytes(), "the members were learnt");
        assert!(p.shape.members_used(), "and used");
        assert!(p.shape.is_learnt(), "the pieces of text were read by the learnt whole shape");
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
        assert!(p.shape.members().is_empty());
        assert_eq!(out[0].content, "a");
        assert_eq!(out[1].content, "b");

        let usage_first = r#"{"id":"c","usage":{"prompt_tokens":5,"completion_tokens":1}"#;
        let events =
            [event(usage_first, r#"{"content":"a"}"#, "null"), event(usage_first, r#"{"content":"b"}"#, "null")];
        let events: Vec<String> = events.iter().map(|e| e.replace(r#","usage":null}"#, "}")).collect();
        let refs: Vec<&str> = events.iter().map(String::as_str).collect();
        let (out, p) = chunks(&refs);
        assert!(p.shape.members().is_empty(), "a prefix with usage is never skipped");
        assert_eq!(out.last().unwrap().usage.map(|u| u.input_tokens), Some(5));

        // A counter before "choices": a new prefix each event; the parser stops trying.
        let events: Vec<String> =
            (0..10).map(|i| event(&format!(r#"{{"id":"c","seq":{i}"#), r#"{"content":"x"}"#, "null")).collect();
        let refs: Vec<&str> = events.iter().map(String::as_str).collect();
        let (out, p) = chunks(&refs);
        assert_eq!(out.iter().map(|c| c.content.as_str()).collect::<String>(), "x".repeat(10));
        assert!(p.shape.members().is_empty());
        assert!(p.shape.gave_up_on_members());

        // An event whose tail is broken after a learnt prefix is an error, as in a full read.
        let good = r#"{"id":"c","model":"m""#;
        let mut p = ChunkParser::new(false);
        assert!(p.parse(event(good, r#"{"content":"a"}"#, "null").as_bytes()).is_ok());
        let broken = format!(r#"{good},"choices":[{{"index":0,"delta":"#);
        assert!(p.parse(broken.as_bytes()).is_err());
    }

    /// A key after `"choices"` that the learnt members hold: serde refuses the event as a
    /// duplicate, and so does the stream parser (the cut is not used); keys serde skips, or
    /// that the members do not hold, keep the cut.
    #[test]
    fn a_key_repeated_after_choices_is_serde_s_error() {
        let piece = r#""choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]"#;
        let tool = r#""choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]}}]"#;
        for (members, choices, tail, refused) in [
            (r#""id":"a","model":"m""#, piece, r#","model":"x""#, true),
            (r#""id":"a","model":"m""#, piece, r#","model":null"#, true),
            (r#""id":"a","model":"m""#, piece, r#","id":"b""#, true),
            (r#""id":"a","model":"m""#, tool, r#","model":"x""#, true),
            (r#""id":"a","model":"m""#, tool, r#","id":"b""#, true),
            (r#""id":"a","usage":null"#, piece, r#","usage":{"prompt_tokens":1}"#, true),
            (r#""id":"a","error":null"#, piece, r#","error":{"message":"boom"}"#, true),
            (r#""id":"a""#, piece, r#","id":"b""#, true),
            (r#""id":"a","model":"m""#, piece, r#","object":"x","system_fingerprint":"f","usage":null"#, false),
            (r#""id":"a","object":"o""#, piece, r#","model":"x""#, false),
            (r#""id":"a","model":"m""#, tool, r#","x_new":1"#, false),
        ] {
            let first = format!("{{{members},{piece}}}");
            let later = format!("{{{members},{choices}{tail}}}");
            let (mut fast, mut plain) = (ChunkParser::new(false), ChunkParser::serde_only(false));
            for event in [&first, &later] {
                let (f, p) = (fast.parse(event.as_bytes()), plain.parse(event.as_bytes()));
                assert_eq!(format!("{f:?}"), format!("{p:?}"), "{event}");
            }
            assert!(!fast.shape.members().is_empty(), "{first}: members learnt");
            assert_eq!(fast.parse(later.as_bytes()).is_err(), refused, "{later}");
            assert_eq!(fast.shape.members_used(), !refused, "{later}: the cut");
        }
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
    fn legacy_text_completions_stream_as_content() {
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
