//! Streaming types: [`StreamChunk`], [`ToolCallDelta`], [`StreamAccumulator`] and [`collect`].

use futures_core::Stream;
use futures_util::StreamExt;

use crate::error::Error;
use crate::types::{
    infer_finish_reason, normalise_tool_call, FinishReason, ModelResponse, ReasoningItem, ToolCall, Usage,
};

/// A piece of a tool call as it streams in.
///
/// `index` is the call's position in the final [`ModelResponse::tool_calls`]: the backend
/// resolves servers that omit it or reuse it, so consumers can rely on it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ToolCallDelta {
    /// Which call this piece belongs to.
    pub index: usize,
    /// The call's id, on the first piece (some servers repeat it on every piece).
    pub id: Option<String>,
    /// The function name, on the first piece (some servers repeat it).
    pub name: Option<String>,
    /// The next piece of the JSON arguments, split anywhere.
    pub arguments: String,
}

/// One event of a streamed answer.
///
/// A successful stream yields one chunk per server event that carried a choice, then exactly
/// one chunk with `is_final` set, which repeats the finish reason and carries the usage when
/// the server sent any. A stream that breaks yields an `Err` instead of the final chunk.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct StreamChunk {
    /// New text.
    pub content: String,
    /// New reasoning text.
    pub reasoning: String,
    /// New tool-call pieces.
    pub tool_calls: Vec<ToolCallDelta>,
    /// Set on the chunk where the server said why it stopped, and on the final chunk.
    pub finish_reason: Option<FinishReason>,
    /// True on the last chunk only.
    pub is_final: bool,
    /// Token counts: on the final chunk, the last usage the server sent.
    pub usage: Option<Usage>,
    /// The model name, on the first chunk that names it.
    pub model: Option<String>,
    /// The response id, on the first chunk that has a non-empty one.
    pub id: Option<String>,
    /// Responses API reasoning items, complete (on the final chunk), for
    /// [`ModelResponse::reasoning_items`].
    pub reasoning_items: Vec<ReasoningItem>,
}

impl StreamChunk {
    /// True when the chunk carries no text, reasoning or tool-call piece.
    pub fn is_empty(&self) -> bool {
        self.content.is_empty() && self.reasoning.is_empty() && self.tool_calls.is_empty()
    }

    /// A chunk of answer text.
    pub fn text(text: impl Into<String>) -> StreamChunk {
        StreamChunk { content: text.into(), ..StreamChunk::default() }
    }

    /// A chunk of reasoning text.
    pub fn reasoning_text(text: impl Into<String>) -> StreamChunk {
        StreamChunk { reasoning: text.into(), ..StreamChunk::default() }
    }

    /// A chunk with pieces of tool calls.
    pub fn tool_call_deltas(deltas: Vec<ToolCallDelta>) -> StreamChunk {
        StreamChunk { tool_calls: deltas, ..StreamChunk::default() }
    }

    /// The last chunk of a stream: why it stopped and the token counts.
    pub fn final_chunk(finish_reason: Option<FinishReason>, usage: Option<Usage>) -> StreamChunk {
        StreamChunk { finish_reason, usage, is_final: true, ..StreamChunk::default() }
    }

    /// The same chunk naming the model that answers.
    #[must_use]
    pub fn with_model(mut self, model: impl Into<String>) -> StreamChunk {
        self.model = Some(model.into());
        self
    }

    /// The same chunk with the response id.
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> StreamChunk {
        self.id = Some(id.into());
        self
    }

    /// The same chunk with a finish reason (without making it the final chunk).
    #[must_use]
    pub fn with_finish_reason(mut self, finish_reason: FinishReason) -> StreamChunk {
        self.finish_reason = Some(finish_reason);
        self
    }

    /// A whole answer as the two chunks of a stream: everything it says, then the final chunk.
    /// `collect` of them gives back the same answer (less the raw body).
    pub fn from_response(response: &ModelResponse) -> [StreamChunk; 2] {
        let body = StreamChunk {
            content: response.content.clone(),
            reasoning: response.reasoning.clone().unwrap_or_default(),
            tool_calls: response
                .tool_calls
                .iter()
                .enumerate()
                .map(|(index, c)| ToolCallDelta {
                    index,
                    id: Some(c.id.clone()),
                    name: Some(c.name.clone()),
                    arguments: c.arguments.clone(),
                })
                .collect(),
            finish_reason: response.finish_reason.clone(),
            model: response.model.clone(),
            id: response.id.clone(),
            ..StreamChunk::default()
        };
        let mut last = StreamChunk::final_chunk(response.finish_reason.clone(), response.usage);
        last.reasoning_items.clone_from(&response.reasoning_items);
        [body, last]
    }
}

impl ToolCallDelta {
    /// A piece of the tool call at `index`.
    pub fn new(index: usize, arguments: impl Into<String>) -> ToolCallDelta {
        ToolCallDelta { index, arguments: arguments.into(), ..ToolCallDelta::default() }
    }

    /// The same piece carrying the call's id.
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> ToolCallDelta {
        self.id = Some(id.into());
        self
    }

    /// The same piece carrying the function name.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> ToolCallDelta {
        self.name = Some(name.into());
        self
    }
}

/// Builds a [`ModelResponse`] out of stream chunks: text and reasoning concatenated, tool calls
/// assembled whole, the last usage and finish reason kept.
///
/// For the same answer, the result equals what `complete()` returns.
#[derive(Debug, Default, Clone)]
pub struct StreamAccumulator {
    content: String,
    reasoning: String,
    tool_calls: Vec<ToolCall>,
    usage: Option<Usage>,
    model: Option<String>,
    id: Option<String>,
    finish_reason: Option<FinishReason>,
    finished: bool,
    reasoning_items: Vec<ReasoningItem>,
}

impl StreamAccumulator {
    /// An empty accumulator.
    pub fn new() -> StreamAccumulator {
        StreamAccumulator::default()
    }

    /// Adds one chunk.
    pub fn push(&mut self, chunk: &StreamChunk) {
        self.content.push_str(&chunk.content);
        self.reasoning.push_str(&chunk.reasoning);
        for delta in &chunk.tool_calls {
            if self.tool_calls.len() <= delta.index {
                self.tool_calls.resize_with(delta.index + 1, ToolCall::default);
            }
            let call = &mut self.tool_calls[delta.index];
            if let Some(id) = delta.id.as_deref().filter(|id| !id.is_empty()) {
                if call.id.is_empty() {
                    call.id = id.to_owned();
                }
            }
            if let Some(name) = delta.name.as_deref().filter(|n| !n.is_empty()) {
                // Servers either send the name once or repeat it whole on every piece.
                if call.name.is_empty() {
                    call.name = name.to_owned();
                } else if call.name != name {
                    call.name.push_str(name);
                }
            }
            call.arguments.push_str(&delta.arguments);
        }
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
        if chunk.finish_reason.is_some() {
            self.finish_reason.clone_from(&chunk.finish_reason);
        }
        if self.model.is_none() {
            self.model.clone_from(&chunk.model);
        }
        if self.id.is_none() {
            self.id.clone_from(&chunk.id);
        }
        self.reasoning_items.extend_from_slice(&chunk.reasoning_items);
        self.finished |= chunk.is_final;
    }

    /// True once the final chunk was pushed.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The text so far.
    pub fn content(&self) -> &str {
        &self.content
    }

    /// The answer so far.
    pub fn finish(self) -> ModelResponse {
        let mut tool_calls = self.tool_calls;
        // Slots a server skipped (index 0 and 2 but no 1) carry nothing worth keeping.
        tool_calls.retain(|c| !(c.name.is_empty() && c.arguments.is_empty() && c.id.is_empty()));
        for (i, call) in tool_calls.iter_mut().enumerate() {
            normalise_tool_call(call, i);
        }
        let finish_reason = infer_finish_reason(self.finish_reason, !tool_calls.is_empty());
        ModelResponse {
            content: self.content,
            reasoning: (!self.reasoning.is_empty()).then_some(self.reasoning),
            tool_calls,
            usage: self.usage,
            model: self.model,
            finish_reason,
            id: self.id,
            reasoning_items: self.reasoning_items,
            raw: None,
        }
    }
}

impl Extend<StreamChunk> for StreamAccumulator {
    fn extend<I: IntoIterator<Item = StreamChunk>>(&mut self, iter: I) {
        for chunk in iter {
            self.push(&chunk);
        }
    }
}

/// Consumes a stream into the complete answer. The first error ends it and is returned.
///
/// ```
/// # async fn run(backend: &dyn mamba_backends::ModelBackend) -> Result<(), mamba_backends::Error> {
/// use mamba_backends::{collect, Message, RequestOptions};
/// let stream = backend.stream(&[Message::user("Hi")], &RequestOptions::new()).await?;
/// let answer = collect(stream).await?;
/// println!("{}", answer.content);
/// # Ok(()) }
/// ```
pub async fn collect<S>(stream: S) -> Result<ModelResponse, Error>
where
    S: Stream<Item = Result<StreamChunk, Error>>,
{
    let mut stream = std::pin::pin!(stream);
    let mut acc = StreamAccumulator::new();
    while let Some(chunk) = stream.next().await {
        acc.push(&chunk?);
    }
    Ok(acc.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(index: usize, id: Option<&str>, name: Option<&str>, args: &str) -> ToolCallDelta {
        ToolCallDelta { index, id: id.map(Into::into), name: name.map(Into::into), arguments: args.into() }
    }

    fn chunk_with(calls: Vec<ToolCallDelta>) -> StreamChunk {
        StreamChunk { tool_calls: calls, ..Default::default() }
    }

    #[test]
    fn assembles_openai_style_fragments() {
        let mut acc = StreamAccumulator::new();
        acc.push(&chunk_with(vec![delta(0, Some("call_1"), Some("get_weather"), "")]));
        acc.push(&chunk_with(vec![delta(0, None, None, "{\"ci")]));
        acc.push(&chunk_with(vec![delta(0, None, None, "ty\":\"Paris\"}")]));
        acc.push(&StreamChunk { finish_reason: Some(FinishReason::ToolCalls), ..Default::default() });
        acc.push(&StreamChunk::final_chunk(
            Some(FinishReason::ToolCalls),
            Some(Usage { input_tokens: 1, output_tokens: 2, total_tokens: 3, ..Default::default() }),
        ));
        assert!(acc.is_finished());
        let r = acc.finish();
        assert_eq!(r.tool_calls, vec![ToolCall::new("call_1", "get_weather", "{\"city\":\"Paris\"}")]);
        assert_eq!(r.finish_reason, Some(FinishReason::ToolCalls));
        assert_eq!(r.usage.map(|u| u.total_tokens), Some(3));
    }

    #[test]
    fn repeated_id_and_name_are_not_doubled() {
        let mut acc = StreamAccumulator::new();
        for piece in ["{\"a\"", ":1}"] {
            acc.push(&chunk_with(vec![delta(0, Some("x"), Some("f"), piece)]));
        }
        assert_eq!(acc.finish().tool_calls, vec![ToolCall::new("x", "f", "{\"a\":1}")]);
    }

    #[test]
    fn parallel_calls_and_missing_ids() {
        let mut acc = StreamAccumulator::new();
        acc.push(&chunk_with(vec![delta(0, None, Some("a"), "{}"), delta(1, None, Some("b"), "")]));
        acc.push(&StreamChunk { finish_reason: Some(FinishReason::Stop), ..Default::default() });
        let r = acc.finish();
        assert_eq!(r.tool_calls, vec![ToolCall::new("call_0", "a", "{}"), ToolCall::new("call_1", "b", "{}")]);
        // "stop" with tool calls is reported as tool_calls.
        assert_eq!(r.finish_reason, Some(FinishReason::ToolCalls));
    }

    #[test]
    fn usage_is_the_last_one_not_a_sum() {
        let u = |n| Some(Usage { input_tokens: n, output_tokens: n, total_tokens: 2 * n, ..Default::default() });
        let mut acc = StreamAccumulator::new();
        acc.push(&StreamChunk { usage: u(5), ..Default::default() });
        acc.push(&StreamChunk { usage: None, ..Default::default() });
        acc.push(&StreamChunk { usage: u(7), ..Default::default() });
        assert_eq!(acc.finish().usage, u(7));
    }

    #[test]
    fn first_model_and_id_win() {
        let mut acc = StreamAccumulator::new();
        acc.push(&StreamChunk {
            content: "a".into(),
            model: Some("m1".into()),
            id: Some("c1".into()),
            ..Default::default()
        });
        acc.push(&StreamChunk {
            content: "b".into(),
            reasoning: "r".into(),
            model: Some("m2".into()),
            ..Default::default()
        });
        let r = acc.finish();
        assert_eq!(
            (r.content.as_str(), r.reasoning.as_deref(), r.model.as_deref(), r.id.as_deref()),
            ("ab", Some("r"), Some("m1"), Some("c1"))
        );
    }

    #[tokio::test]
    async fn collect_stops_at_the_first_error() {
        let items = vec![
            Ok(StreamChunk { content: "a".into(), ..Default::default() }),
            Err(Error::stream("cut")),
            Ok(StreamChunk::final_chunk(None, None)),
        ];
        let err = collect(futures_util::stream::iter(items)).await.unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Stream);
    }
}
