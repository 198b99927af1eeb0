//! Embeddings: the [`Embedder`] trait, its inputs, options and result, and how a call is
//! split into requests a server accepts. Pure; the HTTP side is the backends'
//! ([`OpenAICompatibleBackend`](crate::OpenAICompatibleBackend) and
//! [`BackendPool`](crate::BackendPool) implement [`Embedder`]).

use std::ops::Range;

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::error::Error;
use crate::types::Usage;

/// One input to embed: text, or the token ids of a text (for servers that take them, such as
/// OpenAI and vLLM).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EmbeddingInput {
    /// A text.
    Text(String),
    /// Token ids.
    Tokens(Vec<u32>),
}

impl EmbeddingInput {
    /// Inputs from texts.
    ///
    /// ```
    /// use mamba_backends::embeddings::EmbeddingInput;
    ///
    /// let inputs = EmbeddingInput::texts(["first", "second"]);
    /// assert_eq!(inputs[1], EmbeddingInput::Text("second".into()));
    /// ```
    pub fn texts<I, S>(texts: I) -> Vec<EmbeddingInput>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        texts.into_iter().map(|t| EmbeddingInput::Text(t.into())).collect()
    }

    /// An estimate of the input's tokens, for batching: a text counts one token per four
    /// bytes (rounded up, at least one), token ids count exactly.
    pub fn estimated_tokens(&self) -> usize {
        match self {
            EmbeddingInput::Text(text) => text.len().div_ceil(4).max(1),
            EmbeddingInput::Tokens(ids) => ids.len().max(1),
        }
    }

    fn is_tokens(&self) -> bool {
        matches!(self, EmbeddingInput::Tokens(_))
    }
}

impl From<&str> for EmbeddingInput {
    fn from(text: &str) -> Self {
        EmbeddingInput::Text(text.to_owned())
    }
}

impl From<String> for EmbeddingInput {
    fn from(text: String) -> Self {
        EmbeddingInput::Text(text)
    }
}

impl From<Vec<u32>> for EmbeddingInput {
    fn from(ids: Vec<u32>) -> Self {
        EmbeddingInput::Tokens(ids)
    }
}

/// How vectors travel on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EncodingFormat {
    /// JSON arrays of numbers.
    Float,
    /// Base64 of little-endian `f32`s: a quarter of the bytes, no float parsing.
    Base64,
}

impl EncodingFormat {
    /// The wire name (`float`, `base64`).
    pub fn as_str(self) -> &'static str {
        match self {
            EncodingFormat::Float => "float",
            EncodingFormat::Base64 => "base64",
        }
    }
}

/// Options of one embeddings call. Every field is optional.
///
/// ```
/// use mamba_backends::embeddings::{EmbeddingOptions, EncodingFormat};
///
/// let options = EmbeddingOptions::new().dimensions(256).encoding_format(EncodingFormat::Float);
/// assert_eq!(options.dimensions, Some(256));
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct EmbeddingOptions {
    /// Shorter vectors, for models trained for it (OpenAI `text-embedding-3-*`). Servers
    /// without the option refuse it with [`ErrorKind::Unsupported`](crate::ErrorKind) before
    /// any request.
    pub dimensions: Option<u32>,
    /// The wire format. `None` (the default) asks for base64 where the server honours it, else
    /// floats; the vectors returned are `f32` either way.
    pub encoding_format: Option<EncodingFormat>,
    /// An end-user id, sent as `user`.
    pub user: Option<String>,
    /// Body fields sent as they are; they override the typed ones of the same name.
    pub extra: Map<String, Value>,
}

impl EmbeddingOptions {
    /// No options set.
    pub fn new() -> EmbeddingOptions {
        EmbeddingOptions::default()
    }

    /// Asks for vectors of `n` dimensions.
    pub fn dimensions(mut self, n: u32) -> Self {
        self.dimensions = Some(n);
        self
    }

    /// The wire format.
    pub fn encoding_format(mut self, format: EncodingFormat) -> Self {
        self.encoding_format = Some(format);
        self
    }

    /// The end-user id.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// A body field sent as it is.
    pub fn extra(mut self, key: impl Into<String>, value: Value) -> Self {
        self.extra.insert(key.into(), value);
        self
    }
}

/// The result of an embeddings call.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Embeddings {
    /// One vector per input, in the order of the inputs.
    pub vectors: Vec<Vec<f32>>,
    /// Tokens counted by the server, summed over the requests of the call; `None` when no
    /// server said.
    pub usage: Option<Usage>,
    /// The model the server says answered.
    pub model: Option<String>,
}

impl Embeddings {
    /// Vectors with no usage or model.
    pub fn new(vectors: Vec<Vec<f32>>) -> Embeddings {
        Embeddings { vectors, usage: None, model: None }
    }

    /// With the usage.
    pub fn with_usage(mut self, usage: Usage) -> Self {
        self.usage = Some(usage);
        self
    }

    /// With the model.
    pub fn with_model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }
}

/// Something that turns texts into vectors, usable as `&dyn Embedder` or
/// `Arc<dyn Embedder>`. Implemented by
/// [`OpenAICompatibleBackend`](crate::OpenAICompatibleBackend) and
/// [`BackendPool`](crate::BackendPool).
///
/// ```no_run
/// use mamba_backends::embeddings::{Embedder, EmbeddingInput, EmbeddingOptions};
/// use mamba_backends::{OpenAICompatibleBackend, Preset};
///
/// # async fn run() -> Result<(), mamba_backends::Error> {
/// let backend = OpenAICompatibleBackend::builder("nomic-embed-text").preset(Preset::Ollama).build()?;
/// let embedder: &dyn Embedder = &backend;
/// let inputs = EmbeddingInput::texts(["a cat", "a dog"]);
/// let out = embedder.embed(&inputs, &EmbeddingOptions::new()).await?;
/// assert_eq!(out.vectors.len(), 2);
/// # Ok(()) }
/// ```
#[async_trait]
pub trait Embedder: Send + Sync {
    /// One vector per input, in input order. Inputs beyond what one request may carry are
    /// split into several requests; when one of them fails, the call fails and the error
    /// names the inputs it carried.
    async fn embed(&self, inputs: &[EmbeddingInput], options: &EmbeddingOptions) -> Result<Embeddings, Error>;
}

/// Splits `inputs` into consecutive ranges of at most `max_inputs` inputs and, estimated, at
/// most `max_tokens` tokens (an input larger than that alone gets a range of its own, and
/// the server decides). Texts and token ids never share a request (the wire `input` is one
/// or the other).
pub(crate) fn plan_batches(inputs: &[EmbeddingInput], max_inputs: usize, max_tokens: usize) -> Vec<Range<usize>> {
    let max_inputs = max_inputs.max(1);
    let mut out = Vec::new();
    let mut start = 0;
    let mut tokens = 0;
    for (i, input) in inputs.iter().enumerate() {
        let t = input.estimated_tokens();
        let full = i - start >= max_inputs
            || (i > start && tokens + t > max_tokens)
            || (i > start && input.is_tokens() != inputs[start].is_tokens());
        if full {
            out.push(start..i);
            start = i;
            tokens = 0;
        }
        tokens += t;
    }
    if start < inputs.len() {
        out.push(start..inputs.len());
    }
    out
}

/// Adds two optional usages.
pub(crate) fn add_usage(a: Option<Usage>, b: Option<Usage>) -> Option<Usage> {
    match (a, b) {
        (Some(mut a), Some(b)) => {
            a.input_tokens += b.input_tokens;
            a.output_tokens += b.output_tokens;
            a.total_tokens += b.total_tokens;
            Some(a)
        }
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(lens: &[usize]) -> Vec<EmbeddingInput> {
        lens.iter().map(|n| EmbeddingInput::Text("x".repeat(*n))).collect()
    }

    #[test]
    fn batches_by_count() {
        let inputs = texts(&[4; 10]);
        assert_eq!(plan_batches(&inputs, 4, usize::MAX), [0..4, 4..8, 8..10]);
        assert_eq!(plan_batches(&inputs, 100, usize::MAX), vec![0..10]);
        assert_eq!(plan_batches(&inputs, 0, usize::MAX).len(), 10, "a zero limit means one per request");
        assert!(plan_batches(&[], 4, 4).is_empty());
    }

    #[test]
    fn batches_by_estimated_tokens() {
        // 40 bytes = 10 tokens each; 25 tokens per request fit two.
        let inputs = texts(&[40, 40, 40, 40, 40]);
        assert_eq!(plan_batches(&inputs, 100, 25), [0..2, 2..4, 4..5]);
        // A single input above the limit goes alone.
        let inputs = texts(&[4, 400, 4]);
        assert_eq!(plan_batches(&inputs, 100, 10), [0..1, 1..2, 2..3]);
        assert_eq!(EmbeddingInput::Text(String::new()).estimated_tokens(), 1);
        assert_eq!(EmbeddingInput::Tokens(vec![1, 2, 3]).estimated_tokens(), 3);
    }

    #[test]
    fn texts_and_tokens_do_not_share_a_request() {
        let inputs = vec![
            EmbeddingInput::from("a"),
            EmbeddingInput::from(vec![1, 2]),
            EmbeddingInput::from(vec![3]),
            EmbeddingInput::from("b".to_owned()),
        ];
        assert_eq!(plan_batches(&inputs, 100, 1000), [0..1, 1..3, 3..4]);
    }

    #[test]
    fn usages_add() {
        assert_eq!(add_usage(None, None), None);
        assert_eq!(add_usage(Some(Usage::new(2, 0)), None), Some(Usage::new(2, 0)));
        assert_eq!(add_usage(Some(Usage::new(2, 0)), Some(Usage::new(3, 0))), Some(Usage::new(5, 0)));
    }

    #[test]
    fn options_builder() {
        let o = EmbeddingOptions::new().dimensions(8).user("u").extra("truncate", Value::Bool(true));
        assert_eq!(o.dimensions, Some(8));
        assert_eq!(o.user.as_deref(), Some("u"));
        assert_eq!(o.extra["truncate"], Value::Bool(true));
        assert_eq!(EncodingFormat::Base64.as_str(), "base64");
    }
}
