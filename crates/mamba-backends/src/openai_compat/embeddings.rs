//! `POST {base_url}/embeddings`: the request body (written in one pass), the response read
//! without `serde_json::Value` (vectors go straight from JSON numbers or base64 into `f32`),
//! and [`Embedder`] for [`OpenAICompatibleBackend`].

use std::fmt;
use std::ops::Range;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use base64_simd::AsOut;
use futures_util::StreamExt;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use super::wire::{LenientCount, LenientList, LenientObject, LenientStr, WireUsage};
use super::{within, OpenAICompatibleBackend, Shared};
use crate::embeddings::{
    add_usage, plan_batches, Embedder, EmbeddingInput, EmbeddingOptions, Embeddings, EncodingFormat,
};
use crate::error::{Error, ErrorKind};
use crate::preset::EmbeddingSpec;
use crate::types::Usage;

/// One embeddings request body.
pub(crate) struct EmbeddingsRequest<'a> {
    pub(crate) model: &'a str,
    pub(crate) inputs: &'a [EmbeddingInput],
    pub(crate) options: &'a EmbeddingOptions,
    /// The format asked for; `None` sends no `encoding_format` (the server's default, floats).
    pub(crate) format: Option<EncodingFormat>,
    /// The field `dimensions` goes in.
    pub(crate) dimensions_field: Option<&'static str>,
}

struct Inputs<'a>(&'a [EmbeddingInput]);

impl Serialize for Inputs<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|input| match input {
            EmbeddingInput::Text(text) => Wire::Text(text),
            EmbeddingInput::Tokens(ids) => Wire::Tokens(ids),
        }))
    }
}

#[derive(Serialize)]
#[serde(untagged)]
enum Wire<'a> {
    Text(&'a str),
    Tokens(&'a [u32]),
}

impl Serialize for EmbeddingsRequest<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let extra = &self.options.extra;
        let mut map = serializer.serialize_map(None)?;
        entry(&mut map, extra, "model", self.model)?;
        entry(&mut map, extra, "input", &Inputs(self.inputs))?;
        if let Some(format) = self.format {
            entry(&mut map, extra, "encoding_format", format.as_str())?;
        }
        if let (Some(n), Some(key)) = (self.options.dimensions, self.dimensions_field) {
            entry(&mut map, extra, key, &n)?;
        }
        if let Some(user) = &self.options.user {
            entry(&mut map, extra, "user", user)?;
        }
        for (key, value) in extra {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// A typed field, left to an `extra` field of the same name.
fn entry<M: SerializeMap, T: Serialize + ?Sized>(
    map: &mut M,
    extra: &serde_json::Map<String, serde_json::Value>,
    key: &str,
    value: &T,
) -> Result<(), M::Error> {
    if extra.contains_key(key) {
        return Ok(());
    }
    map.serialize_entry(key, value)
}

/// The body as bytes.
pub(crate) fn to_embeddings_body(request: &EmbeddingsRequest<'_>) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(128 + request.inputs.iter().map(|i| i.estimated_tokens() * 4 + 4).sum::<usize>());
    serde_json::to_writer(&mut out, request).map_err(|e| {
        Error::new(ErrorKind::InvalidRequest, format!("the request could not be written as JSON: {e}")).with_source(e)
    })?;
    Ok(out)
}

/// A vector as it arrives: an array of numbers, or base64 of little-endian `f32`s.
#[derive(Debug, Default)]
struct WireVector {
    values: Option<Vec<f32>>,
    /// It came as base64.
    base64: bool,
}

impl<'de> Deserialize<'de> for WireVector {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // As bytes: serde_json then hands over a string without checking its UTF-8, and an
        // array as a sequence.
        deserializer.deserialize_bytes(VectorVisitor)
    }
}

struct VectorVisitor;

impl<'de> Visitor<'de> for VectorVisitor {
    type Value = WireVector;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of numbers or a base64 string")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<WireVector, A::Error> {
        let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(1024));
        while let Some(v) = seq.next_element::<Number>()? {
            values.push(v.0);
        }
        Ok(WireVector { values: Some(values), base64: false })
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<WireVector, E> {
        self.visit_bytes(v.as_bytes())
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<WireVector, E> {
        decode_base64_f32(v).map(|values| WireVector { values: Some(values), base64: true }).map_err(E::custom)
    }

    fn visit_unit<E: de::Error>(self) -> Result<WireVector, E> {
        Ok(WireVector::default())
    }

    fn visit_none<E: de::Error>(self) -> Result<WireVector, E> {
        Ok(WireVector::default())
    }
}

/// One element of a float vector: a JSON number read as `f32` (no `Value` in between).
struct Number(f32);

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Number;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Number, E> {
                Ok(Number(v as f32))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Number, E> {
                Ok(Number(v as f32))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Number, E> {
                Ok(Number(v as f32))
            }
        }
        deserializer.deserialize_f32(V)
    }
}

/// Decodes base64 of little-endian `f32`s (SIMD, padding optional) straight into the
/// vector's own memory: no byte buffer in between.
pub(crate) fn decode_base64_f32(text: &[u8]) -> Result<Vec<f32>, String> {
    let text = text.trim_ascii();
    let engine = if text.len() % 4 == 0 { &base64_simd::STANDARD } else { &base64_simd::STANDARD_NO_PAD };
    let invalid = |e: base64_simd::Error| format!("invalid base64 vector: {e}");
    let bytes = engine.decoded_length(text).map_err(invalid)?;
    if bytes % 4 != 0 {
        return Err("invalid base64 vector: its length is not a whole number of 4-byte floats".into());
    }
    let mut out = vec![0f32; bytes / 4];
    engine.decode(text, bytemuck::cast_slice_mut::<f32, u8>(&mut out).as_out()).map_err(invalid)?;
    if cfg!(target_endian = "big") {
        out.iter_mut().for_each(|v| *v = f32::from_bits(u32::from_le(v.to_bits())));
    }
    Ok(out)
}

#[derive(Debug, Default, Deserialize)]
struct WireItem {
    #[serde(default)]
    index: LenientCount,
    #[serde(default)]
    embedding: WireVector,
}

#[derive(Debug, Default, Deserialize)]
struct WireEmbeddings<'a> {
    #[serde(default)]
    data: LenientList<WireItem>,
    #[serde(borrow, default)]
    model: LenientStr<'a>,
    #[serde(default)]
    usage: LenientObject<WireUsage>,
}

/// One response, read.
#[derive(Debug, PartialEq)]
pub(crate) struct EmbeddingsPart {
    pub(crate) vectors: Vec<Vec<f32>>,
    pub(crate) usage: Option<Usage>,
    pub(crate) model: Option<String>,
    /// Some vector came as a float array.
    pub(crate) floats: bool,
}

/// Reads a response for `expected` inputs: vectors placed by their `index` (by position when
/// it is missing or out of range).
pub(crate) fn parse_embeddings(bytes: &[u8], expected: usize) -> Result<EmbeddingsPart, Error> {
    let wire: WireEmbeddings<'_> =
        serde_json::from_slice(bytes).map_err(|e| super::wire::decode_error("the embeddings", bytes, e))?;
    let mut slots: Vec<Option<Vec<f32>>> = vec![None; expected];
    let mut floats = false;
    let count = wire.data.0.len();
    for (position, item) in wire.data.0.into_iter().enumerate() {
        let Some(values) = item.embedding.values else {
            return Err(Error::decode(format!("embedding {position} of the response has no vector")));
        };
        floats |= !item.embedding.base64;
        let index = item
            .index
            .0
            .and_then(|i| usize::try_from(i).ok())
            .filter(|i| *i < expected && slots[*i].is_none())
            .unwrap_or(position);
        match slots.get_mut(index) {
            Some(slot @ None) => *slot = Some(values),
            _ => return Err(Error::decode(format!("the server returned {count} embeddings for {expected} inputs"))),
        }
    }
    let vectors = slots
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| Error::decode(format!("the server returned {count} embeddings for {expected} inputs")))?;
    Ok(EmbeddingsPart {
        vectors,
        usage: wire.usage.0.as_ref().and_then(WireUsage::to_usage),
        model: wire.model.non_empty().map(str::to_owned),
        floats,
    })
}

/// Whether a failed request was a refusal of `encoding_format` (so floats are asked for).
fn rejects_base64(error: &Error) -> bool {
    if !matches!(error.kind(), ErrorKind::InvalidRequest) {
        return false;
    }
    let text = format!("{} {}", error.message(), error.response_body().unwrap_or("")).to_lowercase();
    text.contains("encoding_format") || text.contains("base64")
}

impl Shared {
    fn embeddings_span(&self, inputs: usize, options: &EmbeddingOptions) -> tracing::Span {
        tracing::info_span!(
            "embeddings",
            otel.name = %format_args!("embeddings {}", self.model),
            gen_ai.operation.name = "embeddings",
            gen_ai.provider.name = self.preset.name(),
            gen_ai.request.model = %self.model,
            gen_ai.embeddings.dimension.count = options.dimensions,
            gen_ai.request.encoding_formats = tracing::field::Empty,
            mamba.embeddings.inputs = inputs,
            server.address = self.embeddings_uri.host().unwrap_or(""),
            server.port = self.embeddings_uri.port_u16(),
            gen_ai.response.model = tracing::field::Empty,
            gen_ai.usage.input_tokens = tracing::field::Empty,
            error.type = tracing::field::Empty,
        )
    }

    /// One request for `inputs` in `format`, with the backend's retries.
    async fn embed_request(
        &self,
        spec: &EmbeddingSpec,
        inputs: &[EmbeddingInput],
        options: &EmbeddingOptions,
        format: Option<EncodingFormat>,
    ) -> Result<EmbeddingsPart, Error> {
        let body = to_embeddings_body(&EmbeddingsRequest {
            model: &self.model,
            inputs,
            options,
            format,
            dimensions_field: spec.dimensions_field,
        })
        .map(bytes::Bytes::from)?;
        // Like a non-streamed chat request: the whole answer comes with the head.
        let deadline = self.deadline(false);
        let attempt = || async {
            let mut response = self
                .post(&self.embeddings_uri, &body, self.timeouts.complete_headers)
                .await
                // Only a server's answer can say that embeddings are switched off.
                .map_err(|e| if e.status().is_some() { disabled(spec, e) } else { e })?;
            let bytes = response.body.read_to_end(self.timeouts.idle, self.max_response_bytes).await?;
            parse_embeddings(&bytes, inputs.len())
        };
        within(deadline, self.retrying(deadline, attempt)).await
    }

    /// One part of a call: base64 where the server is known to honour it, floats after it
    /// answered with floats or refused base64 (remembered for the next calls).
    async fn embed_part(
        &self,
        spec: &EmbeddingSpec,
        inputs: &[EmbeddingInput],
        options: &EmbeddingOptions,
    ) -> Result<EmbeddingsPart, Error> {
        if options.encoding_format.is_some() || options.extra.contains_key("encoding_format") {
            return self.embed_request(spec, inputs, options, options.encoding_format).await;
        }
        if !(spec.base64 && self.embed_base64.load(Ordering::Relaxed)) {
            return self.embed_request(spec, inputs, options, None).await;
        }
        match self.embed_request(spec, inputs, options, Some(EncodingFormat::Base64)).await {
            Ok(part) => {
                if part.floats {
                    tracing::debug!(target_server = spec_name(self), "the server ignores base64; floats from now on");
                    self.embed_base64.store(false, Ordering::Relaxed);
                }
                Ok(part)
            }
            Err(e) if rejects_base64(&e) => {
                tracing::debug!(target_server = spec_name(self), "the server refuses base64; floats from now on");
                self.embed_base64.store(false, Ordering::Relaxed);
                self.embed_request(spec, inputs, options, None).await
            }
            Err(e) => Err(e),
        }
    }
}

fn spec_name(s: &Shared) -> &'static str {
    s.preset.name()
}

/// The error of a server whose embeddings are switched off, as `Unsupported`.
fn disabled(spec: &EmbeddingSpec, error: Error) -> Error {
    if spec.disabled_markers.is_empty() {
        return error;
    }
    let text = format!("{} {}", error.message(), error.response_body().unwrap_or("")).to_lowercase();
    if !spec.disabled_markers.iter().any(|m| text.contains(&m.to_lowercase())) {
        return error;
    }
    let mut out = Error::new(ErrorKind::Unsupported, format!("{} ({})", spec.disabled_help, error.message()))
        .with_code(error.code().map(str::to_owned))
        .with_retryable(false);
    if let Some(status) = error.status() {
        out = out.with_status(status);
    }
    if let Some(body) = error.response_body() {
        out = out.with_body(body);
    }
    out
}

/// The error of one failed part, naming the inputs it carried.
fn part_error(error: Error, range: &Range<usize>, total: usize) -> Error {
    error.prefixed(&format!("inputs {}..{} of {total}", range.start, range.end))
}

#[async_trait]
impl Embedder for OpenAICompatibleBackend {
    async fn embed(&self, inputs: &[EmbeddingInput], options: &EmbeddingOptions) -> Result<Embeddings, Error> {
        let s = &*self.shared;
        let Some(spec) = s.preset.spec().embeddings else {
            return Err(s.finish_error(Error::new(
                ErrorKind::Unsupported,
                format!("the {} server has no embeddings endpoint", s.preset.spec().display_name),
            )));
        };
        if options.dimensions.is_some() && spec.dimensions_field.is_none() && !options.extra.contains_key("dimensions")
        {
            return Err(s.finish_error(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "the {} server has no `dimensions` option; leave it out (or send it in `extra` if your server takes it)",
                    s.preset.spec().display_name
                ),
            )));
        }
        if inputs.is_empty() {
            return Ok(Embeddings::new(Vec::new()));
        }
        let span = s.embeddings_span(inputs.len(), options);
        let batches = plan_batches(inputs, spec.max_inputs, spec.max_tokens);
        let several = batches.len() > 1;
        let total = inputs.len();
        let run = async {
            let mut parts = futures_util::stream::iter(batches.into_iter().map(|range| async move {
                let part = s.embed_part(&spec, &inputs[range.clone()], options).await;
                part.map_err(|e| if several { part_error(e, &range, total) } else { e })
            }))
            .buffered(s.embed_concurrency.max(1));
            let mut out = Embeddings::new(Vec::with_capacity(total));
            while let Some(part) = parts.next().await {
                let part = part?;
                out.vectors.extend(part.vectors);
                out.usage = add_usage(out.usage, part.usage);
                if out.model.is_none() {
                    out.model = part.model;
                }
            }
            Ok(out)
        };
        let result = run.instrument(span.clone()).await.map_err(|e: Error| s.finish_error(e));
        match &result {
            Ok(out) => {
                if let Some(model) = &out.model {
                    span.record("gen_ai.response.model", model.as_str());
                }
                if let Some(usage) = out.usage {
                    span.record("gen_ai.usage.input_tokens", usage.input_tokens);
                }
            }
            Err(e) => {
                span.record("error.type", e.kind().as_str());
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::classify;
    use serde_json::json;

    fn body(request: &EmbeddingsRequest<'_>) -> serde_json::Value {
        serde_json::from_slice(&to_embeddings_body(request).unwrap()).unwrap()
    }

    #[test]
    fn body_fields_and_extra_override() {
        let inputs = vec![EmbeddingInput::from("a"), EmbeddingInput::from("b")];
        let options = EmbeddingOptions::new().dimensions(8).user("u1");
        let req = EmbeddingsRequest {
            model: "m",
            inputs: &inputs,
            options: &options,
            format: Some(EncodingFormat::Base64),
            dimensions_field: Some("dimensions"),
        };
        assert_eq!(
            body(&req),
            json!({"model": "m", "input": ["a", "b"], "encoding_format": "base64", "dimensions": 8, "user": "u1"})
        );
        let options = EmbeddingOptions::new().dimensions(8).extra("encoding_format", json!("float"));
        let tokens = vec![EmbeddingInput::from(vec![1, 2])];
        let req = EmbeddingsRequest {
            model: "m",
            inputs: &tokens,
            options: &options,
            format: Some(EncodingFormat::Base64),
            dimensions_field: Some("output_dimension"),
        };
        assert_eq!(
            body(&req),
            json!({"model": "m", "input": [[1, 2]], "output_dimension": 8, "encoding_format": "float"})
        );
    }

    fn b64(values: &[f32]) -> String {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn base64_decodes_across_slices() {
        for n in [0usize, 1, 2, 3, 767, 768, 769, 1536, 3072, 4000] {
            let values: Vec<f32> = (0..n).map(|i| i as f32 * 0.25 - 3.0).collect();
            assert_eq!(decode_base64_f32(b64(&values).as_bytes()).unwrap(), values, "{n}");
            let unpadded = b64(&values).trim_end_matches('=').to_owned();
            assert_eq!(decode_base64_f32(unpadded.as_bytes()).unwrap(), values, "{n} unpadded");
        }
        assert!(decode_base64_f32(b"AAA=").is_err(), "three bytes are not a float");
        assert!(decode_base64_f32(b"!!!!").is_err());
    }

    #[test]
    fn floats_and_base64_responses() {
        let floats = br#"{"object":"list","data":[{"object":"embedding","index":1,"embedding":[0.5,-1,2e-3]},{"index":0,"embedding":[1,2,3]}],"model":"m1","usage":{"prompt_tokens":4,"total_tokens":4}}"#;
        let part = parse_embeddings(floats, 2).unwrap();
        assert_eq!(part.vectors, vec![vec![1.0, 2.0, 3.0], vec![0.5, -1.0, 0.002]]);
        assert_eq!(part.usage.map(|u| (u.input_tokens, u.total_tokens)), Some((4, 4)));
        assert_eq!(part.model.as_deref(), Some("m1"));
        assert!(part.floats);

        let text = format!(r#"{{"data":[{{"index":0,"embedding":"{}"}}],"usage":null}}"#, b64(&[1.5, -2.0]));
        let part = parse_embeddings(text.as_bytes(), 1).unwrap();
        assert_eq!(part.vectors, vec![vec![1.5, -2.0]]);
        assert!(!part.floats);
        assert_eq!(part.usage, None);
        // An escaped slash in the base64 text.
        let escaped =
            format!(r#"{{"data":[{{"embedding":"{}"}}]}}"#, b64(&[f32::from_bits(0xFFFF_FFFF)]).replace('/', "\\/"));
        assert_eq!(parse_embeddings(escaped.as_bytes(), 1).unwrap().vectors[0][0].to_bits(), 0xFFFF_FFFF);
    }

    #[test]
    fn lenient_indexes_and_strict_counts() {
        // Missing, duplicate or out-of-range indexes fall back to the position.
        let part = parse_embeddings(
            br#"{"data":[{"embedding":[1]},{"index":"x","embedding":[2]},{"index":9,"embedding":[3]}]}"#,
            3,
        )
        .unwrap();
        assert_eq!(part.vectors, vec![vec![1.0], vec![2.0], vec![3.0]]);
        for bad in [
            &br#"{"data":[{"embedding":[1]}]}"#[..],
            br#"{"data":[{"embedding":[1]},{"embedding":[1]},{"embedding":[1]}]}"#,
            br#"{"data":[{"embedding":null},{"embedding":[1]}]}"#,
            br#"{"data":[{"embedding":[[1,2]]},{"embedding":[1]}]}"#,
            br#"{"data":[{"embedding":"@@"},{"embedding":[1]}]}"#,
            b"not json",
            b"",
        ] {
            let e = parse_embeddings(bad, 2).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Decode, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn disabled_llamacpp_errors_become_unsupported() {
        let spec = crate::Preset::LlamaCpp.spec().embeddings.unwrap();
        let server = classify::from_response(
            501,
            &http::HeaderMap::new(),
            br#"{"error":{"code":501,"message":"This server does not support embeddings. Start it with `--embeddings`","type":"not_supported_error"}}"#,
            SystemTime::now(),
        );
        let e = disabled(&spec, server);
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(e.message().contains("--embeddings"), "{e}");
        let python = classify::from_response(
            500,
            &http::HeaderMap::new(),
            br#"{"error":{"message":"Llama model must be created with embedding=True to call this method","type":"internal_server_error"}}"#,
            SystemTime::now(),
        );
        let e = disabled(&spec, python);
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(!e.is_retryable());
        let other = classify::from_response(500, &http::HeaderMap::new(), b"boom", SystemTime::now());
        assert_eq!(disabled(&spec, other).kind(), ErrorKind::Server);
    }

    #[test]
    fn base64_refusals_are_recognised() {
        let e = classify::from_response(
            400,
            &http::HeaderMap::new(),
            br#"{"detail":[{"loc":["body","encoding_format"],"msg":"unexpected value; permitted: 'float'"}]}"#,
            SystemTime::now(),
        );
        assert!(rejects_base64(&e));
        let e = classify::from_response(400, &http::HeaderMap::new(), b"bad input", SystemTime::now());
        assert!(!rejects_base64(&e));
    }
}
