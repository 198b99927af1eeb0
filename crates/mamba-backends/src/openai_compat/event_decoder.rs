//! The pure part of a stream of either API: bytes in, chunks out. SSE framing, the event
//! parser of the API in use, `event: error` frames, and how a stream that ends early fails.

use super::chat_stream::ChunkParser;
use super::parsed_event::Parsed;
use super::responses::stream::ResponsesParser;
use crate::classify;
use crate::error::Error;
use crate::sse::{SseDecoder, TooLong};
use crate::stream::StreamChunk;

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

    /// A decoder that reads every event with serde alone (the reference of the differential
    /// tests).
    #[cfg(test)]
    pub(crate) fn serde_only(think_tags: bool) -> EventDecoder {
        EventDecoder { parser: Parser::Chat(ChunkParser::serde_only(think_tags)), ..EventDecoder::new(think_tags) }
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
