//! A fast embeddings mock: `POST */embeddings` answers a precomputed body of 16 vectors of
//! 1,536 values, base64 when the request says `"encoding_format":"base64"`, else floats
//! written as OpenAI writes them. Hand-written HTTP/1.1 with keep-alive on a current-thread
//! runtime. `embed-mock PORT` (0: any) prints `listening on 127.0.0.1:PORT`.

#![allow(clippy::print_stdout)]

use base64::Engine;
use embed_bench::{DIMS, INPUTS, MODEL};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn vectors() -> Vec<Vec<f32>> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..INPUTS)
        .map(|_| {
            (0..DIMS)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1
                })
                .collect()
        })
        .collect()
}

fn body(base64: bool) -> Vec<u8> {
    let mut data = String::new();
    for (i, v) in vectors().iter().enumerate() {
        if i > 0 {
            data.push(',');
        }
        let embedding = if base64 {
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            format!("\"{}\"", base64::engine::general_purpose::STANDARD.encode(bytes))
        } else {
            // OpenAI prints about ten significant digits.
            let items: Vec<String> = v.iter().map(|x| format!("{:.10}", x)).collect();
            format!("[{}]", items.join(","))
        };
        data.push_str(&format!("{{\"object\":\"embedding\",\"index\":{i},\"embedding\":{embedding}}}"));
    }
    let json = format!(
        "{{\"object\":\"list\",\"data\":[{data}],\"model\":\"{MODEL}\",\"usage\":{{\"prompt_tokens\":{t},\"total_tokens\":{t}}}}}",
        t = INPUTS * 20
    );
    let mut out = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", json.len())
        .into_bytes();
    out.extend_from_slice(json.as_bytes());
    out
}

async fn serve(mut socket: TcpStream, floats: &'static [u8], base64: &'static [u8]) {
    let _ = socket.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut tmp = vec![0u8; 16 * 1024];
    loop {
        let head_end = loop {
            if let Some(i) = memchr::memmem::find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            match socket.read(&mut tmp).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + length {
            match socket.read(&mut tmp).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        }
        let body = &buf[head_end..head_end + length];
        let wants_base64 = memchr::memmem::find(body, b"\"base64\"").is_some();
        let reply = if wants_base64 { base64 } else { floats };
        if socket.write_all(reply).await.is_err() {
            return;
        }
        buf.drain(..head_end + length);
    }
}

fn main() {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    let floats: &'static [u8] = Box::leak(body(false).into_boxed_slice());
    let base64: &'static [u8] = Box::leak(body(true).into_boxed_slice());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        println!("listening on {}", listener.local_addr().expect("addr"));
        loop {
            if let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, floats, base64));
            }
        }
    });
}
