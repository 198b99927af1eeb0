//! Connecting (issue 15, section 3): IPv6 literals, and one connect timeout for the whole
//! attempt against an address that never answers. The race of addresses itself (Happy
//! Eyeballs with a black-holed first address) is unit-tested in `src/http/connect.rs`, where
//! the addresses can be given directly.

use std::time::Duration;

use mamba_backends::{ErrorKind, Message, ModelBackend, RequestOptions, RetryPolicy};
use tokio::net::{TcpSocket, TcpStream};

use crate::builder;
use crate::support::{RawServer, Reply};

const OK_BODY: &str = r#"{"choices":[{"message":{"content":"v6"},"finish_reason":"stop"}]}"#;

#[tokio::test]
async fn ipv6_literal_urls() {
    let listener = tokio::net::TcpListener::bind("[::1]:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    // The raw server listens on 127.0.0.1; a tiny forwarder on [::1] hands each connection on.
    let server = RawServer::fixed(Reply::json(200, OK_BODY)).await;
    let target = server.addr;
    let front = tokio::net::TcpListener::bind(("::1", port)).await.unwrap();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = front.accept().await {
            tokio::spawn(async move {
                let mut outbound = TcpStream::connect(target).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    let b = builder(&format!("http://[::1]:{port}/v1")).build().unwrap();
    let r = b.complete(&[Message::user("hi")], &RequestOptions::new()).await.unwrap();
    assert_eq!(r.content, "v6");
    assert_eq!(server.requests()[0].header("host"), Some(format!("[::1]:{port}").as_str()));
}

/// An address whose accept queue is full never answers a connection attempt: the connect
/// timeout ends the whole attempt once (not once per address), and the error says so.
#[tokio::test]
async fn connect_timeout_bounds_the_whole_attempt() {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await {
            Ok(Ok(s)) => fillers.push(s),
            _ => break,
        }
        assert!(fillers.len() < 64, "the accept queue never filled");
    }
    let b = builder(&format!("http://{addr}/v1"))
        .connect_timeout(Duration::from_millis(700))
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let t = std::time::Instant::now();
    let e = b.complete(&[Message::user("hi")], &RequestOptions::new()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.message().contains("connecting to 127.0.0.1"), "{e}");
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(650) && took < Duration::from_secs(3), "{took:?}");
}
