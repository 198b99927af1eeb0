//! A tool loop on a GGUF model whose chat template has tools (Qwen2.5, Qwen3, Llama 3.x, Mistral v0.3): the
//! model calls `get_weather`, the example answers the call, and the model writes its reply.
//!
//! ```text
//! cargo run --release -p mamba-local --example tool-call -- MODEL.gguf ["What is the weather in Paris?"]
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use mamba_backends::{Message, ModelBackend, RequestOptions, ToolDefinition};
use mamba_local::{LocalBackend, LocalOptions};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: tool-call MODEL.gguf [QUESTION]");
        std::process::exit(2);
    };
    let question = args.next().unwrap_or_else(|| "What is the weather in Paris right now?".to_owned());
    let backend = LocalBackend::load_async(&path, LocalOptions::new()).await?;
    let weather = ToolDefinition::function(
        "get_weather",
        "The current weather in a city",
        serde_json::json!({"type": "object", "properties": {
            "city": {"type": "string", "description": "The city's name"},
            "unit": {"enum": ["celsius", "fahrenheit"]}
        }, "required": ["city"]}),
    );
    let options = RequestOptions::new().tool(weather).temperature(0.0).max_tokens(256);
    let mut history = vec![Message::user(question)];
    let started = std::time::Instant::now();
    let answer = backend.complete(&history, &options).await?;
    println!("first answer in {:.2?}: {:?}, finish {:?}", started.elapsed(), answer.content, answer.finish_reason);
    if answer.tool_calls.is_empty() {
        return Ok(());
    }
    history.push(answer.to_message());
    for call in &answer.tool_calls {
        println!("call {} {}({})", call.id, call.name, call.arguments);
        history.push(Message::tool(call.id.clone(), r#"{"temperature": 18, "sky": "sunny"}"#));
    }
    let started = std::time::Instant::now();
    let reply = backend.complete(&history, &options).await?;
    let cached = reply.usage.as_ref().and_then(|u| u.cached_input_tokens).unwrap_or(0);
    println!("reply in {:.2?} ({cached} prompt tokens cached): {}", started.elapsed(), reply.content);
    Ok(())
}
