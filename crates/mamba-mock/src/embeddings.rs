//! `POST /v1/embeddings`: deterministic vectors derived from each input, as floats or base64.

use base64::Engine;
use serde_json::{json, Map, Value};

use crate::render::ChatRequest;

/// Vector length when the request does not ask for `dimensions`.
pub(crate) const DEFAULT_DIMENSIONS: usize = 8;

/// An embeddings request, read.
#[derive(Debug)]
pub(crate) struct EmbeddingsRequest {
    pub(crate) model: String,
    /// Each input as the bytes its vector is derived from (a text's UTF-8, token ids as
    /// little-endian `u32`s), with its token count.
    pub(crate) inputs: Vec<(Vec<u8>, u64)>,
    /// The texts, joined, for rules that match on `contains`.
    pub(crate) text: String,
    pub(crate) base64: bool,
    pub(crate) dimensions: Option<usize>,
}

impl EmbeddingsRequest {
    pub(crate) fn parse(body: &Value) -> Result<EmbeddingsRequest, String> {
        let Some(object) = body.as_object() else { return Err("the body must be a JSON object".into()) };
        let tokens = |ids: &[Value]| -> Option<(Vec<u8>, u64)> {
            let mut bytes = Vec::with_capacity(ids.len() * 4);
            for id in ids {
                bytes.extend_from_slice(&u32::try_from(id.as_u64()?).ok()?.to_le_bytes());
            }
            Some((bytes, ids.len() as u64))
        };
        let text = |t: &str| (t.as_bytes().to_vec(), t.len().div_ceil(4).max(1) as u64);
        let mut texts = Vec::new();
        let inputs: Vec<(Vec<u8>, u64)> = match object.get("input") {
            Some(Value::String(t)) => {
                texts.push(t.as_str());
                vec![text(t)]
            }
            Some(Value::Array(items)) if items.is_empty() => return Err("'input' must not be empty".into()),
            Some(Value::Array(items)) if items.iter().all(Value::is_number) => {
                vec![tokens(items).ok_or("'input' token ids must be non-negative integers")?]
            }
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(t) => {
                        texts.push(t.as_str());
                        Ok(text(t))
                    }
                    Value::Array(ids) => {
                        tokens(ids).ok_or_else(|| "'input' token ids must be non-negative integers".to_owned())
                    }
                    _ => Err("'input' items must be strings or arrays of token ids".to_owned()),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("'input' must be a string or an array".into()),
            None => return Err("'input' is required".into()),
        };
        let base64 = match object.get("encoding_format") {
            None | Some(Value::Null) => false,
            Some(Value::String(f)) if f == "float" => false,
            Some(Value::String(f)) if f == "base64" => true,
            Some(_) => return Err("'encoding_format' must be \"float\" or \"base64\"".into()),
        };
        let dimensions = match object.get("dimensions") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64() {
                Some(n @ 1..=65_536) => Some(n as usize),
                _ => return Err("'dimensions' must be an integer from 1 to 65536".into()),
            },
        };
        Ok(EmbeddingsRequest {
            model: object.get("model").and_then(Value::as_str).unwrap_or("mock-embedding").to_owned(),
            text: texts.join("\n"),
            inputs,
            base64,
            dimensions,
        })
    }

    /// The request as rules see it: the texts are the last user message; never a stream.
    pub(crate) fn as_chat(&self) -> ChatRequest {
        ChatRequest {
            model: self.model.clone(),
            stream: false,
            include_usage: false,
            last_role: "user".into(),
            last_text: self.text.clone(),
            last_user_text: self.text.clone(),
            prompt_words: 0,
            text_completion: false,
            api: "embeddings",
            encrypted_reasoning: false,
        }
    }

    /// The response body. `model` overrides the request's model in the answer;
    /// `force_floats` answers with floats whatever was asked (a server that ignores base64).
    pub(crate) fn to_json(&self, model: Option<&str>, force_floats: bool) -> Vec<u8> {
        let dims = self.dimensions.unwrap_or(DEFAULT_DIMENSIONS);
        let data: Vec<Value> = self
            .inputs
            .iter()
            .enumerate()
            .map(|(index, (bytes, _))| {
                let vector = vector_for(bytes, dims);
                let embedding = if self.base64 && !force_floats {
                    let raw: Vec<u8> = vector.iter().flat_map(|v| v.to_le_bytes()).collect();
                    Value::String(base64::engine::general_purpose::STANDARD.encode(raw))
                } else {
                    Value::Array(vector.iter().map(|v| json!(v)).collect())
                };
                let mut item = Map::new();
                item.insert("object".into(), json!("embedding"));
                item.insert("index".into(), json!(index));
                item.insert("embedding".into(), embedding);
                Value::Object(item)
            })
            .collect();
        let tokens: u64 = self.inputs.iter().map(|(_, t)| t).sum();
        json!({
            "object": "list",
            "data": data,
            "model": model.unwrap_or(&self.model),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        })
        .to_string()
        .into_bytes()
    }
}

/// A unit vector of `dims` values derived from `bytes` (FNV-1a seeding xorshift64*): the same
/// input always gets the same vector, different inputs different ones.
pub fn vector_for(bytes: &[u8], dims: usize) -> Vec<f32> {
    let mut state: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        state ^= u64::from(*b);
        state = state.wrapping_mul(0x0000_0100_0000_01b3);
    }
    state |= 1;
    let mut out: Vec<f32> = (0..dims)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let r = state.wrapping_mul(0x2545_f491_4f6c_dd1d);
            ((r >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    let norm = out.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        out.iter_mut().for_each(|v| *v /= norm);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_deterministic_unit_vectors() {
        let a = vector_for(b"hello", 16);
        assert_eq!(a, vector_for(b"hello", 16));
        assert_ne!(a, vector_for(b"hello!", 16));
        let norm: f32 = a.iter().map(|v| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-5);
        assert_eq!(vector_for(b"", 3).len(), 3);
    }

    #[test]
    fn inputs_in_every_shape() {
        let r = EmbeddingsRequest::parse(&json!({"model": "e", "input": "abcdefgh"})).unwrap();
        assert_eq!(r.inputs, vec![(b"abcdefgh".to_vec(), 2)]);
        let r = EmbeddingsRequest::parse(&json!({"input": [1, 2, 3], "encoding_format": "base64"})).unwrap();
        assert_eq!(r.inputs.len(), 1);
        assert!(r.base64);
        let r = EmbeddingsRequest::parse(&json!({"input": ["a", [1], "b"], "dimensions": 4})).unwrap();
        assert_eq!((r.inputs.len(), r.dimensions, r.text.as_str()), (3, Some(4), "a\nb"));
        for bad in [
            json!({}),
            json!({"input": []}),
            json!({"input": [{}]}),
            json!({"input": "a", "dimensions": 0}),
            json!({"input": "a", "encoding_format": "int8"}),
        ] {
            assert!(EmbeddingsRequest::parse(&bad).is_err(), "{bad}");
        }
    }
}
