//! Spans carry the OpenTelemetry GenAI attributes, never the API key, and the conversation
//! only when asked for.

use std::io::Write;
use std::sync::{Arc, Mutex};

use mamba_backends::{Message, ModelBackend, OpenAICompatibleBackend, RequestOptions, RetryPolicy};
use mamba_mock::{MockServer, Reply, Script};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

async fn traced(trace_content: bool) -> String {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(capture.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let script = Script::new()
        .rule(mamba_mock::Rule::new(mamba_mock::Match::any(), Reply::status(503)).times(1))
        .always(Reply::text("THE-ANSWER").usage(11, 3));
    let server = MockServer::start_with(script).await.unwrap();
    let b = OpenAICompatibleBackend::builder("traced-model")
        .base_url(server.base_url())
        .api_key("sk-TRACE-SECRET")
        .retry_policy(RetryPolicy::default().initial_backoff(std::time::Duration::from_millis(1)))
        .trace_content(trace_content)
        .build()
        .unwrap();
    let r = b.complete(&[Message::user("THE-PROMPT")], &RequestOptions::new().max_tokens(5)).await.unwrap();
    assert_eq!(r.content, "THE-ANSWER");
    let s = mamba_backends::collect(b.stream(&[Message::user("THE-PROMPT")], &RequestOptions::new()).await.unwrap())
        .await
        .unwrap();
    assert_eq!(s.content, "THE-ANSWER");
    drop(b);
    let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    text
}

#[tokio::test]
async fn spans_have_genai_attributes_and_no_secrets() {
    let text = traced(false).await;
    assert!(text.contains("gen_ai.request.model=traced-model"), "{text}");
    assert!(text.contains("gen_ai.operation.name=\"chat\""), "{text}");
    assert!(text.contains("gen_ai.request.max_tokens=5"), "{text}");
    assert!(text.contains("gen_ai.usage.input_tokens=11"), "{text}");
    assert!(text.contains("gen_ai.usage.output_tokens=3"), "{text}");
    assert!(text.contains("gen_ai.response.finish_reasons=\"stop\""), "{text}");
    assert!(text.contains("retrying"), "the retry is an event: {text}");
    assert!(!text.contains("TRACE-SECRET"), "{text}");
    assert!(!text.contains("THE-PROMPT") && !text.contains("THE-ANSWER"), "{text}");
}

#[tokio::test]
async fn content_only_when_opted_in() {
    let text = traced(true).await;
    assert!(text.contains("THE-PROMPT") && text.contains("THE-ANSWER"), "{text}");
    // The streamed answer too (once from complete(), once from the stream).
    assert_eq!(text.matches("gen_ai.completion=THE-ANSWER").count(), 2, "{text}");
    assert!(!text.contains("TRACE-SECRET"), "{text}");
}

/// Embedding calls have their own span: the GenAI `embeddings` operation, the model, the input
/// tokens, and no key or input text.
#[tokio::test]
async fn embeddings_span() {
    use mamba_backends::embeddings::{Embedder, EmbeddingInput, EmbeddingOptions};
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(capture.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let server = MockServer::start().await.unwrap();
    let b = OpenAICompatibleBackend::builder("embed-model")
        .base_url(server.base_url())
        .api_key("sk-TRACE-SECRET")
        .build()
        .unwrap();
    b.embed(&EmbeddingInput::texts(["THE-INPUT"]), &EmbeddingOptions::new()).await.unwrap();
    let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("gen_ai.operation.name=\"embeddings\""), "{text}");
    assert!(text.contains("gen_ai.request.model=embed-model"), "{text}");
    assert!(text.contains("gen_ai.usage.input_tokens=3"), "{text}");
    assert!(!text.contains("TRACE-SECRET") && !text.contains("THE-INPUT"), "{text}");
}
