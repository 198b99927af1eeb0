//! Real answers recorded from llama-cpp-python 0.3.36 (SmolLM2-135M) and the LiteLLM proxy
//! 1.108.7, replayed byte for byte (tests/data/peers, see its SOURCE.md).

use mamba_backends::{collect, ErrorKind, FinishReason, Message, ModelBackend, ModelResponse, RequestOptions};

use crate::backend;
use crate::support::{data, RawServer, Reply, Transcript};

async fn answer(path: &str, stream: bool) -> Result<ModelResponse, mamba_backends::Error> {
    let server = RawServer::fixed(Reply::transcript(&data(path), 4)).await;
    let b = backend(&server.url());
    let messages = [Message::user("What is the capital of France?")];
    if stream {
        collect(b.stream(&messages, &RequestOptions::new()).await?).await
    } else {
        b.complete(&messages, &RequestOptions::new()).await
    }
}

/// llama.cpp: a plain answer with usage.
#[tokio::test]
async fn llamacpp_chat() {
    let r = answer("peers/llamacpp/chat_nonstream.http", false).await.unwrap();
    assert_eq!(r.content, "The capital of France is Paris.");
    assert_eq!(r.usage.unwrap().total_tokens, 50);
    assert_eq!(r.finish_reason, Some(FinishReason::Stop));
}

/// llama.cpp: a stream with `", "` spacing, role-only first delta, `delta: {}` finish.
#[tokio::test]
async fn llamacpp_stream() {
    let r = answer("peers/llamacpp/chat_stream.http", true).await.unwrap();
    assert_eq!(r.content, "The capital of France is Paris.");
    assert_eq!(r.finish_reason, Some(FinishReason::Stop));
    assert_eq!(r.model.as_deref(), Some("smollm2-135m-instruct"));
}

/// llama.cpp: a long stream with a `: ping - <date>` comment line (excerpt).
#[tokio::test]
async fn llamacpp_stream_with_ping() {
    let r = answer("peers/llamacpp/chat_stream_with_ping_excerpt.http", true).await.unwrap();
    assert!(r.content.starts_with("Once upon"));
    assert_eq!(r.finish_reason, Some(FinishReason::Length));
}

/// llama.cpp (chatml-function-calling): a tool call beside a legacy `function_call` whose
/// name has a stray colon.
#[tokio::test]
async fn llamacpp_tool_call() {
    let r = answer("peers/llamacpp/fc_tools_auto.http", false).await.unwrap();
    assert_eq!(r.tool_calls.len(), 1);
    assert_eq!(r.tool_calls[0].name, "get_weather");
    let args: serde_json::Value = r.tool_calls[0].parse_arguments().unwrap();
    assert_eq!(args["location"], "Paris");
    assert_eq!(r.finish_reason, Some(FinishReason::ToolCalls));
}

/// llama.cpp: a streamed (named) tool call that repeats id, type and name in every chunk.
#[tokio::test]
async fn llamacpp_streamed_tool_call_repeats_everything() {
    for path in ["peers/llamacpp/fc_tools_named_stream.http", "peers/llamacpp/tools_named_stream.http"] {
        let r = answer(path, true).await.unwrap();
        assert_eq!(r.tool_calls.len(), 1, "{path}");
        assert_eq!(r.tool_calls[0].name, "get_weather", "{path}");
        assert!(r.tool_calls[0].id.starts_with("call__0_get_weather"), "{path}");
        let args: serde_json::Value =
            r.tool_calls[0].parse_arguments().unwrap_or_else(|e| panic!("{path}: {e}: {}", r.tool_calls[0].arguments));
        assert!(args.get("location").is_some(), "{path}: {args}");
    }
}

/// llama.cpp: auto tool choice while streaming fails server-side and sends an empty 200.
#[tokio::test]
async fn llamacpp_empty_stream() {
    for path in ["peers/llamacpp/fc_tools_auto_stream.http", "peers/llamacpp/err_context_length_exceeded_stream.http"] {
        let e = answer(path, true).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Stream, "{path}");
    }
}

/// llama.cpp: context overflow in OpenAI's shape; auth failure in FastAPI's; unknown path.
#[tokio::test]
async fn llamacpp_errors() {
    let e = answer("peers/llamacpp/err_context_length_exceeded.http", false).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ContextOverflow);
    assert!(e.message().contains("maximum context length is 2048"));
    assert_eq!(
        answer("peers/llamacpp/auth_wrong_key_chat.http", false).await.unwrap_err().kind(),
        ErrorKind::Authentication
    );
    assert_eq!(
        answer("peers/llamacpp/err_unknown_path.http", false).await.unwrap_err().kind(),
        ErrorKind::InvalidRequest
    );
    let e = answer("peers/llamacpp/rf_json_schema.http", false).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Server);
    assert!(e.message().contains("Input should be 'text' or 'json_object'"));
    let e = answer("peers/llamacpp/err_invalid_json.http", false).await.unwrap_err();
    assert_eq!((e.kind(), e.message()), (ErrorKind::Server, "Internal Server Error"));
    assert_eq!(answer("peers/llamacpp/err_bad_role.http", false).await.unwrap_err().kind(), ErrorKind::Server);
}

/// llama.cpp: `max_tokens: 1` ends with "length"; json_object output.
#[tokio::test]
async fn llamacpp_length_and_json() {
    assert_eq!(
        answer("peers/llamacpp/chat_max_tokens_1.http", false).await.unwrap().finish_reason,
        Some(FinishReason::Length)
    );
    // The grammar-constrained JSON was cut by max_tokens 60: reported as such.
    let r = answer("peers/llamacpp/rf_json_object.http", false).await.unwrap();
    assert!(r.content.starts_with("{\n    \"name\": \"Felix\""), "{}", r.content);
    assert_eq!(r.finish_reason, Some(FinishReason::Length));
}

/// llama.cpp and LiteLLM model lists.
#[tokio::test]
async fn model_lists() {
    for (path, first) in
        [("peers/llamacpp/models_list.http", "smollm2-135m-instruct"), ("peers/litellm/models_list.http", "smollm2")]
    {
        let server = RawServer::fixed(Reply::transcript(&data(path), 1)).await;
        let models = backend(&server.url()).list_models().await.unwrap();
        assert_eq!(models[0].id, first);
    }
}

/// LiteLLM: plain and streamed answers through the proxy; its synthesised usage chunk has a
/// choice with an empty delta (OpenAI's has none).
#[tokio::test]
async fn litellm_chat_and_usage() {
    let r = answer("peers/litellm/chat_nonstream.http", false).await.unwrap();
    assert!(!r.content.is_empty());
    let streamed = answer("peers/litellm/chat_stream.http", true).await.unwrap();
    assert!(!streamed.content.is_empty());
    let with_usage = answer("peers/litellm/chat_stream_include_usage.http", true).await.unwrap();
    assert!(with_usage.usage.is_some_and(|u| u.total_tokens > 0));
    assert_eq!(with_usage.content, "The capital of France is Paris.");
}

/// LiteLLM mock tools: content "" with finish_reason "stop" and a tool call (reported as
/// tool_calls); its stream drops the call entirely (a LiteLLM bug we can only report as is).
#[tokio::test]
async fn litellm_tools() {
    let r = answer("peers/litellm/mock_tools.http", false).await.unwrap();
    assert_eq!(r.tool_calls[0].name, "get_weather");
    assert_eq!(r.finish_reason, Some(FinishReason::ToolCalls));
    let s = answer("peers/litellm/mock_tools_stream.http", true).await.unwrap();
    assert!(s.tool_calls.is_empty());
    assert_eq!(s.finish_reason, Some(FinishReason::Stop));
    let named = answer("peers/litellm/fc_tools_named_stream.http", true).await.unwrap();
    assert_eq!(named.tool_calls.len(), 1);
    assert!(named.tool_calls[0].parse_arguments::<serde_json::Value>().is_ok());
}

/// LiteLLM errors: `code` as a string, `param: "None"`, 529 without a reason phrase.
#[tokio::test]
async fn litellm_errors() {
    for (path, kind) in [
        ("peers/litellm/auth_no_key_chat.http", ErrorKind::Authentication),
        ("peers/litellm/auth_wrong_key_chat.http", ErrorKind::InvalidRequest),
        ("peers/litellm/mock_ratelimit.http", ErrorKind::RateLimited),
        ("peers/litellm/mock_context_window.http", ErrorKind::ContextOverflow),
        ("peers/litellm/mock_internal_error.http", ErrorKind::Server),
        ("peers/litellm/mock_stream_error.http", ErrorKind::Unavailable),
        ("peers/litellm/err_wrong_model.http", ErrorKind::ModelNotFound),
        ("peers/litellm/upstream_down.http", ErrorKind::Server),
        ("peers/litellm/err_context_length_exceeded.http", ErrorKind::ContextOverflow),
        ("peers/litellm/err_invalid_json.http", ErrorKind::InvalidRequest),
    ] {
        let t = Transcript::load(&data(path));
        let e = answer(path, false).await.unwrap_err();
        assert_eq!(e.kind(), kind, "{path}: {e}");
        assert_eq!(e.status(), Some(t.status), "{path}");
    }
    // The same errors on stream requests.
    assert_eq!(answer("peers/litellm/upstream_down_stream.http", true).await.unwrap_err().kind(), ErrorKind::Server);
    assert_eq!(answer("peers/litellm/mock_stream_error.http", true).await.unwrap_err().kind(), ErrorKind::Unavailable);
}

/// LiteLLM hides llama.cpp's empty stream on context overflow as an empty answer that
/// finished with "stop": we report what the proxy said.
#[tokio::test]
async fn litellm_hides_upstream_stream_failure() {
    let r = answer("peers/litellm/err_context_length_exceeded_stream.http", true).await.unwrap();
    assert_eq!((r.content.as_str(), r.finish_reason), ("", Some(FinishReason::Stop)));
}

/// Every recorded answer of llama.cpp, LiteLLM and Prism (119 cases, the big `: ping` stream
/// excepted) replayed: errors keep the recorded status and get a kind that fits it, JSON answers
/// parse, event streams end in an answer or, when the recording holds no event, a Stream error.
#[tokio::test]
async fn every_recorded_transcript() {
    let mut checked = 0;
    for peer in ["llamacpp", "litellm", "prism"] {
        let dir = data(&format!("peers/{peer}"));
        let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).collect();
        files.sort();
        for path in files.iter().filter(|p| p.extension().is_some_and(|e| e == "http")) {
            let request = std::fs::read_to_string(path.with_extension("request")).unwrap_or_default();
            let chat = request.lines().next().is_some_and(|l| l.contains("/chat/completions"));
            let models = request.lines().next().is_some_and(|l| l.contains("/models"));
            let t = Transcript::load(path);
            let name = path.display().to_string();
            let server = RawServer::fixed(Reply::transcript(path, 3)).await;
            let b = backend(&server.url());
            if models {
                let listed = b.list_models().await;
                if t.status == 200 {
                    assert!(!listed.unwrap().is_empty(), "{name}");
                } else {
                    assert_eq!(listed.unwrap_err().status(), Some(t.status), "{name}");
                }
                checked += 1;
                continue;
            }
            if !chat {
                continue; // embeddings, unknown paths: not chat answers
            }
            let messages = [Message::user("hi")];
            let outcome = if t.is_sse() {
                crate::stream_answer(&b, &messages, &RequestOptions::new()).await
            } else {
                b.complete(&messages, &RequestOptions::new()).await
            };
            match (t.status, outcome) {
                (200, Ok(answer)) => assert!(
                    !answer.content.is_empty() || !answer.tool_calls.is_empty() || answer.finish_reason.is_some(),
                    "{name}: an empty answer: {answer:?}"
                ),
                (200, Err(e)) => {
                    let events = String::from_utf8_lossy(&t.body).contains("data:");
                    assert!(t.is_sse() && !events && e.kind() == ErrorKind::Stream, "{name}: {e}");
                }
                (status, Ok(answer)) => panic!("{name}: HTTP {status} gave an answer: {answer:?}"),
                (status, Err(e)) => {
                    assert_eq!(e.status(), Some(status), "{name}");
                    assert!(!e.message().is_empty(), "{name}");
                    let fits = match status {
                        401 => e.kind() == ErrorKind::Authentication,
                        403 => e.kind() == ErrorKind::PermissionDenied,
                        429 => matches!(e.kind(), ErrorKind::RateLimited | ErrorKind::QuotaExceeded),
                        400..=499 => matches!(
                            e.kind(),
                            ErrorKind::InvalidRequest | ErrorKind::ContextOverflow | ErrorKind::ModelNotFound
                        ),
                        _ => matches!(
                            e.kind(),
                            ErrorKind::Server
                                | ErrorKind::Unavailable
                                | ErrorKind::ContextOverflow
                                | ErrorKind::Unsupported
                        ),
                    };
                    assert!(fits, "{name}: HTTP {status} classified as {:?}: {e}", e.kind());
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 100, "only {checked} transcripts checked");
}
