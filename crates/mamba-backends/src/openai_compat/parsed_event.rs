//! What one stream event turned into, for the event parsers of both APIs (`chat_stream.rs`,
//! `responses/stream.rs`) and the decoder that drives them (`event_decoder.rs`).

use crate::stream::StreamChunk;

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
