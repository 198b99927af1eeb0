//! The floor: a pooled hyper 1.x client, the request a `serde_json::Value` serialized per
//! call, the answer parsed into `serde_json::Value`, each base64 vector decoded with the
//! `base64` crate into bytes and then `f32`s.

use base64::Engine;
use bytes::Bytes;
use embed_bench::{check, parse_args, run, texts, MODEL};
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

fn main() {
    let args = parse_args();
    let mut conn = HttpConnector::new();
    conn.set_nodelay(true);
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(conn);
    let uri: Uri = format!("{}/embeddings", args.base_url).parse().expect("base url");
    let body = json!({"model": MODEL, "input": texts(), "encoding_format": "base64"});
    let code = run("floor", &args, move || {
        let (client, uri, body) = (client.clone(), uri.clone(), body.clone());
        async move {
            let bytes = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
            let mut req = Request::new(Full::new(Bytes::from(bytes)));
            *req.method_mut() = Method::POST;
            *req.uri_mut() = uri;
            req.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            req.headers_mut().insert(AUTHORIZATION, HeaderValue::from_static("Bearer sk-bench"));
            let resp = client.request(req).await.map_err(|e| e.to_string())?;
            let bytes = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
            let value: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
            let data = value["data"].as_array().ok_or("no data")?;
            let mut vectors = Vec::with_capacity(data.len());
            for item in data {
                let text = item["embedding"].as_str().ok_or("not base64")?;
                let raw = base64::engine::general_purpose::STANDARD.decode(text).map_err(|e| e.to_string())?;
                vectors.push(raw.chunks_exact(4).map(|w| f32::from_le_bytes([w[0], w[1], w[2], w[3]])).collect());
            }
            check(&vectors)
        }
    });
    std::process::exit(code)
}
