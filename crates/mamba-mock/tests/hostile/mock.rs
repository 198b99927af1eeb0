//! Hostile use of the mock: a long run must not keep every request body it ever saw.

use mamba_mock::MockServer;
use serde_json::json;

use super::{ask, chat};

/// The mock keeps only the newest N requests (a ring), and still counts them all.
#[tokio::test]
async fn the_request_record_is_a_ring_of_the_newest() {
    let server = MockServer::builder().keep_requests(3).start().await.unwrap();
    for i in 0..10 {
        assert_eq!(chat(&server, ask(&format!("q{i}"), false)).await.status, 200);
    }
    let kept = server.requests();
    assert_eq!(kept.len(), 3);
    let texts: Vec<String> =
        kept.iter().map(|r| r.json.as_ref().unwrap()["messages"][0]["content"].as_str().unwrap().to_owned()).collect();
    assert_eq!(texts, ["q7", "q8", "q9"]);
    assert_eq!(server.chat_requests().len(), 3);
    assert_eq!(server.request_count(), 10);
    server.clear_requests();
    assert!(server.requests().is_empty());
    assert_eq!(server.request_count(), 10);
}

/// The default keeps 1,000; `keep_all_requests` keeps every one; 0 keeps none.
#[tokio::test]
async fn default_limit_and_keep_all() {
    assert_eq!(mamba_mock::DEFAULT_KEPT_REQUESTS, 1000);
    let all = MockServer::builder().keep_all_requests().start().await.unwrap();
    let none = MockServer::builder().keep_requests(0).start().await.unwrap();
    for i in 0..5 {
        chat(&all, json!({"model": "m", "messages": [{"role": "user", "content": format!("{i}")}]})).await;
        chat(&none, ask("x", false)).await;
    }
    assert_eq!(all.requests().len(), 5);
    assert!(none.requests().is_empty());
    assert_eq!(none.request_count(), 5);
}
