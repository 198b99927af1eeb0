//! Every recorded stream in `tests/data` (real transcripts of llama.cpp and LiteLLM, and the
//! per-server snippets of provider-quirks.md) decoded whole, and again split in two at every
//! byte: the chunks and the outcome must not depend on how the bytes arrived.

use std::path::{Path, PathBuf};

use super::event_decoder::{EventDecoder, Step};
use crate::stream::{StreamAccumulator, StreamChunk};
use crate::types::ModelResponse;

/// How a decoded stream ended.
#[derive(Debug, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum Outcome {
    Answer(ModelResponse),
    Failed(crate::ErrorKind, String),
}

/// Feeds `pieces` to `decoder` one after the other: the chunks and how the stream ended.
/// Shared with the Responses stream tests (`responses/stream_tests.rs`).
pub(crate) fn decode(mut decoder: EventDecoder, pieces: &[&[u8]]) -> (Vec<StreamChunk>, Outcome) {
    let mut chunks = Vec::new();
    let drain = |decoder: &mut EventDecoder, chunks: &mut Vec<StreamChunk>| -> Option<Outcome> {
        loop {
            match decoder.next() {
                Step::Chunk(c) => chunks.push(c),
                Step::Final(c) => {
                    chunks.push(c);
                    let mut acc = StreamAccumulator::new();
                    acc.extend(chunks.iter().cloned());
                    return Some(Outcome::Answer(acc.finish()));
                }
                Step::Failed(e) => return Some(Outcome::Failed(e.kind(), e.message().to_owned())),
                Step::NeedMore => return None,
            }
        }
    };
    for piece in pieces {
        decoder.push(piece);
        if let Some(outcome) = drain(&mut decoder, &mut chunks) {
            return (chunks, outcome);
        }
    }
    decoder.end_input();
    let outcome = drain(&mut decoder, &mut chunks).expect("an ended input always has an outcome");
    (chunks, outcome)
}

/// `body` decoded whole, checked to give the same result split in two at every byte and fed
/// byte by byte, with exactly one final chunk on success and none on failure.
pub(crate) fn check_splits(new: impl Fn() -> EventDecoder, name: &str, body: &[u8]) -> (Vec<StreamChunk>, Outcome) {
    let whole = decode(new(), &[body]);
    for i in 0..=body.len() {
        let split = decode(new(), &[&body[..i], &body[i..]]);
        assert!(split == whole, "{name}: split at byte {i} differs:\n{split:?}\nvs whole\n{whole:?}");
    }
    let bytes: Vec<&[u8]> = body.chunks(1).collect();
    assert!(decode(new(), &bytes) == whole, "{name}: byte by byte differs");
    let finals = whole.0.iter().filter(|c| c.is_final).count();
    match &whole.1 {
        Outcome::Answer(_) => assert!(finals == 1 && whole.0.last().is_some_and(|c| c.is_final), "{name}"),
        Outcome::Failed(..) => assert_eq!(finals, 0, "{name}"),
    }
    whole
}

fn run(pieces: &[&[u8]]) -> (Vec<StreamChunk>, Outcome) {
    decode(EventDecoder::new(true), pieces)
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// The event-stream bodies of every fixture.
fn recorded_streams() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut dirs = vec![data_dir().join("quirks")];
    for peer in ["llamacpp", "litellm"] {
        dirs.push(data_dir().join("peers").join(peer));
    }
    for dir in dirs {
        let mut entries: Vec<_> = std::fs::read_dir(&dir).expect("fixture dir").flatten().map(|e| e.path()).collect();
        entries.sort();
        for path in entries {
            let name = path.display().to_string();
            let bytes = std::fs::read(&path).expect("fixture");
            match path.extension().and_then(|e| e.to_str()) {
                Some("sse") => out.push((name, bytes)),
                Some("http") => {
                    let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
                    let head = String::from_utf8_lossy(&bytes[..at]).to_lowercase();
                    if head.contains("content-type: text/event-stream") {
                        out.push((name, bytes[at + 4..].to_vec()));
                    }
                }
                _ => {}
            }
        }
    }
    out
}

#[test]
fn every_recorded_stream_gives_the_same_result_at_every_split() {
    let streams = recorded_streams();
    assert!(streams.len() >= 25, "only {} recorded streams found", streams.len());
    for (name, body) in &streams {
        check_splits(|| EventDecoder::new(true), name, body);
    }
}

#[test]
fn exactly_one_final_chunk_on_success() {
    for (name, body) in recorded_streams() {
        let (chunks, outcome) = run(&[&body]);
        let finals = chunks.iter().filter(|c| c.is_final).count();
        match outcome {
            Outcome::Answer(_) => {
                assert_eq!(finals, 1, "{name}");
                assert!(chunks.last().is_some_and(|c| c.is_final), "{name}");
            }
            Outcome::Failed(..) => assert_eq!(finals, 0, "{name}"),
        }
    }
}

/// The learned shape (`event_shape.rs`: the members read once, the whole event around its
/// piece) changes nothing: every recorded stream, and mutated copies of them, give the same
/// chunks and outcome as reading every event in full. A stream like OpenAI's (one prefix,
/// one-word pieces) takes it.
#[test]
fn shortcuts_give_what_the_full_parse_gives() {
    let full = |pieces: &[&[u8]]| decode(EventDecoder::without_shortcuts(true), pieces);
    let mut bodies: Vec<Vec<u8>> = recorded_streams().into_iter().map(|(_, body)| body).collect();
    bodies.push(openai_like_stream(&["Rust's", " ownership", r#" \"model\""#, "", r" \u00e9t\u00e9", " <think>"]));
    for body in &bodies {
        assert!(run(&[body]) == full(&[body]), "{}", String::from_utf8_lossy(body));
    }
    const NOISE: &[u8] = b"\n\r{}[]\":,\\ \0\xff\xc3datanull[DONE]u";
    each_mutation(bodies, 300, NOISE, 0x9e37_79b9_7f4a_7c15, |bytes, cut| {
        let pieces: [&[u8]; 2] = [&bytes[..cut], &bytes[cut..]];
        let (a, b) = (run(&pieces), full(&pieces));
        assert!(a == b, "{}\nshortcuts: {a:?}\nfull: {b:?}", String::from_utf8_lossy(bytes));
    });
}

/// The direct reader of chat JSON (`scan.rs`) reads what serde reads, as serde reads it:
/// every event of the recorded streams, and mutated copies of them, is either left to serde
/// or read into the same wire structure serde makes of it (and serde accepts it).
#[test]
fn the_direct_reader_agrees_with_serde() {
    let mut events: Vec<Vec<u8>> = Vec::new();
    let mut bodies: Vec<Vec<u8>> = recorded_streams().into_iter().map(|(_, body)| body).collect();
    bodies.push(openai_like_stream(&["a", r#"b\"c"#, ""]));
    for body in &bodies {
        for line in body.split(|b| *b == b'\n') {
            if let Some(data) = line.strip_prefix(b"data:") {
                let data = data.trim_ascii();
                if data.starts_with(b"{") {
                    events.push(data.to_vec());
                }
            }
        }
    }
    let check = |bytes: &[u8]| std::str::from_utf8(bytes).is_ok_and(super::scan::tests::same_as_serde);
    let read = events.iter().filter(|e| check(e)).count();
    assert!(read * 3 > events.len() * 2, "only {read} of {} recorded events read directly", events.len());
    const NOISE: &[u8] = b"\n\r{}[]\":,\\ \0\xff\xc3-.0123456789eE+truefalsenull\t";
    let mut n = 0;
    each_mutation(events, 300, NOISE, 0x5851_f42d_4c95_7f2d, |bytes, _| {
        n += usize::from(check(bytes));
    });
    // Mutations that still read directly (a changed piece of text, a skipped member's value).
    assert!(n > 2000, "only {n} mutated events read directly");
}

/// A stream shaped like OpenAI's: the same members around every piece of text.
fn openai_like_stream(pieces: &[&str]) -> Vec<u8> {
    let head = r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1764072000,"model":"gpt-4o-mini","system_fingerprint":"fp_1","choices":[{"index":0,"delta":"#;
    let tail = r#","logprobs":null,"finish_reason":null}],"usage":null}"#;
    let mut out = format!("data: {head}{{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}}{tail}\n\n");
    for piece in pieces {
        out.push_str(&format!("data: {head}{{\"content\":\"{piece}\"}}{tail}\n\n"));
    }
    out.push_str(&format!("data: {head}{{}},\"logprobs\":null,\"finish_reason\":\"stop\"}}],\"usage\":null}}\n\n"));
    out.push_str(r#"data: {"id":"chatcmpl-1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5}}"#);
    out.push_str("\n\ndata: [DONE]\n\n");
    out.into_bytes()
}

/// Hands `check` `rounds` mutated copies of each body (1 to 8 bytes replaced by or inserted
/// from `noise`, or the body cut short there) and a split point in each, from a fixed
/// xorshift sequence starting at `seed`.
pub(super) fn each_mutation(
    bodies: impl IntoIterator<Item = Vec<u8>>,
    rounds: usize,
    noise: &[u8],
    seed: u64,
    mut check: impl FnMut(&[u8], usize),
) {
    let mut state = seed;
    let mut rand = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for body in bodies {
        for _ in 0..rounds {
            let mut bytes = body.clone();
            for _ in 0..(1 + rand() % 8) {
                if bytes.is_empty() {
                    break;
                }
                let at = (rand() as usize) % bytes.len();
                match rand() % 3 {
                    0 => bytes[at] = noise[(rand() as usize) % noise.len()],
                    1 => bytes.insert(at, noise[(rand() as usize) % noise.len()]),
                    _ => bytes.truncate(at),
                }
            }
            let cut = if bytes.is_empty() { 0 } else { (rand() as usize) % bytes.len() };
            check(&bytes, cut);
        }
    }
}

/// No input from the network may panic the library: mutated recorded streams and bodies are
/// decoded, and every one ends in chunks or an error.
#[test]
fn mutated_input_never_panics() {
    const NOISE: &[u8] = b"\n\r{}[]\":,\\ \0\xff\xc3datanull[DONE]";
    let bodies = recorded_streams().into_iter().map(|(_, body)| body);
    each_mutation(bodies, 150, NOISE, 0x2545_f491_4f6c_dd1d, |bytes, cut| {
        let _ = run(&[&bytes[..cut], &bytes[cut..]]);
        // The same bytes as a whole (non-streaming) body.
        let _ = super::chat_answer::parse_response(bytes::Bytes::from(bytes.to_vec()), true);
        let _ = crate::classify::parse_error_body(bytes);
    });
}
