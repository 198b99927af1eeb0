//! `async-openai` 0.43 as a user would call it for embeddings with its base64 support on:
//! the typed request built per call, `embeddings().create_base64()`, each vector decoded with
//! its `Vec<f32>::from(Base64EmbeddingVector)`.

use async_openai::config::OpenAIConfig;
use async_openai::types::embeddings::{CreateEmbeddingRequestArgs, EncodingFormat};
use async_openai::Client;
use embed_bench::{check, parse_args, run, texts, MODEL};

fn main() {
    let args = parse_args();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = OpenAIConfig::new().with_api_base(&args.base_url).with_api_key("sk-bench");
    let client = Client::with_config(config);
    let inputs = texts();
    let code = run("async-openai", &args, move || {
        let client = client.clone();
        let inputs = inputs.clone();
        async move {
            let request = CreateEmbeddingRequestArgs::default()
                .model(MODEL)
                .input(inputs)
                .encoding_format(EncodingFormat::Base64)
                .build()
                .map_err(|e| e.to_string())?;
            let response = client.embeddings().create_base64(request).await.map_err(|e| e.to_string())?;
            let vectors: Vec<Vec<f32>> = response.data.into_iter().map(|d| Vec::<f32>::from(d.embedding)).collect();
            check(&vectors)
        }
    });
    std::process::exit(code)
}
