//! Entry points for the benchmarks in `bench/` (feature `__bench`). Not part of the public API:
//! they expose the pure translation steps so they can be measured without a network.

use bytes::Bytes;

use crate::error::Error;
use crate::openai_compat::chat_answer::parse_response as parse;
use crate::openai_compat::event_decoder::{EventDecoder, Step};
use crate::openai_compat::request::{to_body, ChatRequest, WireConfig};
use crate::options::RequestOptions;
use crate::sse::SseDecoder;
use crate::stream::StreamChunk;
use crate::types::{Message, ModelResponse};

/// The JSON body of a chat request, as the generic preset writes it.
pub fn request_body(
    model: &str,
    messages: &[Message],
    options: &RequestOptions,
    stream: bool,
) -> Result<Vec<u8>, Error> {
    let config = WireConfig { include_usage: stream, ..WireConfig::default() };
    to_body(&ChatRequest { model, messages, options, stream, config: &config })
}

/// A whole (non-streaming) answer parsed.
pub fn parse_response(body: Bytes) -> Result<ModelResponse, Error> {
    parse(body, true)
}

/// The SSE layer alone: events (and their bytes) in `input`, fed in pieces of `piece` bytes.
pub fn sse_events(input: &[u8], piece: usize) -> (usize, usize) {
    let mut decoder = SseDecoder::new();
    let (mut events, mut bytes) = (0, 0);
    for part in input.chunks(piece.max(1)) {
        decoder.buffer().extend_from_slice(part);
        while let Ok(Some(event)) = decoder.next_event() {
            events += 1;
            bytes += event.data.len();
        }
    }
    decoder.finish();
    while let Ok(Some(event)) = decoder.next_event() {
        events += 1;
        bytes += event.data.len();
    }
    (events, bytes)
}

/// The whole stream pipeline without the network: SSE, chunk parsing, `<think>` splitting and
/// tool-call indexing, fed in pieces of `piece` bytes; `each` sees every chunk.
pub fn decode_stream(input: &[u8], piece: usize, each: impl FnMut(&StreamChunk)) -> Result<usize, Error> {
    drive(EventDecoder::new(true), input, piece, each)
}

/// [`decode_stream`] for a Responses API stream (typed events).
pub fn decode_responses_stream(input: &[u8], piece: usize, each: impl FnMut(&StreamChunk)) -> Result<usize, Error> {
    drive(EventDecoder::responses(true), input, piece, each)
}

/// The JSON body of a Responses API request, as the generic preset writes it.
pub fn responses_request_body(
    model: &str,
    messages: &[Message],
    options: &RequestOptions,
    stream: bool,
) -> Result<Vec<u8>, Error> {
    let config = WireConfig::default();
    crate::openai_compat::request::write_body(&crate::openai_compat::responses::request::ResponsesRequest {
        model,
        messages,
        options,
        stream,
        config: &config,
    })
}

/// A whole Responses API answer parsed.
pub fn parse_responses_response(body: Bytes) -> Result<ModelResponse, Error> {
    crate::openai_compat::responses::response::parse_response(body, true)
}

fn drive(
    mut decoder: EventDecoder,
    input: &[u8],
    piece: usize,
    mut each: impl FnMut(&StreamChunk),
) -> Result<usize, Error> {
    let mut chunks = 0;
    let mut parts = input.chunks(piece.max(1));
    loop {
        match decoder.next() {
            Step::Chunk(chunk) => {
                each(&chunk);
                chunks += 1;
            }
            Step::Final(chunk) => {
                each(&chunk);
                return Ok(chunks + 1);
            }
            Step::Failed(e) => return Err(e),
            Step::NeedMore => match parts.next() {
                Some(part) => decoder.fill(|buf| buf.extend_from_slice(part)),
                None => decoder.end_input(),
            },
        }
    }
}

/// The proxy decision `HttpClient::send` makes for every request, with proxy settings read
/// from the given environment variables the way a client build reads the real ones.
#[derive(Debug)]
pub struct ProxyLookup {
    proxies: Option<crate::http::proxy::Proxies>,
}

impl ProxyLookup {
    /// Settings from `vars` (name, value), as `HttpClientBuilder::build` reads the environment.
    pub fn from_vars(vars: &[(&str, &str)]) -> ProxyLookup {
        let proxies = crate::http::proxy::Proxies::from_env(|name| {
            vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
        });
        ProxyLookup { proxies: Some(proxies).filter(|p| !p.is_empty()) }
    }

    /// The decision `send` makes for a request to `host`: `Ok(true)` through a proxy (the
    /// proxy handle is cloned into the pool key, as in `send`), `Ok(false)` direct, or the
    /// config error of an invalid proxy setting the request would use (a proxy of a scheme
    /// the library does not speak was ignored with a warning when the settings were read).
    pub fn lookup(&self, https: bool, host: &str) -> Result<bool, crate::Error> {
        let Some(proxies) = &self.proxies else { return Ok(false) };
        proxies.check_target(https, host)?;
        Ok(proxies.for_target(https, host).cloned().is_some())
    }

    /// Whether a request to `host` goes through a proxy: [`lookup`](Self::lookup), with an
    /// invalid setting (the request would fail) counted as not.
    pub fn goes_through_proxy(&self, https: bool, host: &str) -> bool {
        matches!(self.lookup(https, host), Ok(true))
    }
}
