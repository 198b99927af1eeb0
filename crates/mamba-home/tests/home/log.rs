//! The conversation log: schema version, migrations from every older version, redaction,
//! search, history, and the errors a user meets.

use mamba_backends::{ModelResponse, ToolCall, Usage};
use mamba_home::log::{new_conversation_id, SCHEMA_VERSION};
use mamba_home::{ErrorKind, Exchange, Log};
use rusqlite::Connection;

fn exchange(cid: &str, prompt: &str) -> Exchange {
    Exchange { conversation_id: cid.into(), prompt: prompt.into(), ..Exchange::default() }
}

fn version(path: &std::path::Path) -> i64 {
    let conn = Connection::open(path).expect("opens");
    conn.query_row("PRAGMA user_version", [], |r| r.get(0)).expect("a version")
}

#[test]
fn a_new_log_has_the_current_schema_and_full_text_search() {
    let dir = tempfile::tempdir().expect("a temp folder");
    let path = dir.path().join("new").join("logs.db");
    let log = Log::open(&path).expect("creates");
    assert_eq!(log.path(), path);
    drop(log);
    assert_eq!(version(&path), SCHEMA_VERSION as i64);
    assert_eq!(SCHEMA_VERSION, 3);
    let conn = Connection::open(&path).expect("opens");
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('exchanges')")
        .expect("prepares")
        .query_map([], |r| r.get(0))
        .expect("queries")
        .collect::<Result<_, _>>()
        .expect("reads");
    for c in ["conversation_id", "prompt", "answer", "cost_usd", "error", "attachments", "streamed"] {
        assert!(columns.iter().any(|n| n == c), "no column {c} in {columns:?}");
    }
    conn.query_row("SELECT count(*) FROM exchanges_fts", [], |r| r.get::<_, i64>(0)).expect("an FTS5 table");
}

/// A version-1 log (the first schema) is migrated to the current one, its rows kept and
/// searchable, and its stored credentials scrubbed.
#[test]
fn a_version_one_log_is_migrated_and_scrubbed() {
    let dir = tempfile::tempdir().expect("a temp folder");
    let path = dir.path().join("logs.db");
    {
        let conn = Connection::open(&path).expect("opens");
        conn.execute_batch(
            "CREATE TABLE exchanges (
                id INTEGER PRIMARY KEY, conversation_id TEXT NOT NULL, time TEXT NOT NULL, model TEXT,
                endpoint TEXT, system TEXT, prompt TEXT NOT NULL, answer TEXT, reasoning TEXT,
                tool_calls TEXT, input_tokens INTEGER, output_tokens INTEGER, latency_ms INTEGER);
             CREATE INDEX exchanges_conversation ON exchanges (conversation_id, id);
             PRAGMA user_version = 1;",
        )
        .expect("the first schema");
        conn.execute(
            "INSERT INTO exchanges (conversation_id, time, endpoint, prompt, answer) VALUES ('c', 't', ?1, 'old prompt', 'old answer')",
            ["https://h/v1?api_key=sk-v1-LEAK-77"],
        )
        .expect("inserts");
    }
    let log = Log::open(&path).expect("migrates");
    let rows = log.list(0, Some("old answer"), None).expect("searches the migrated rows");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].endpoint.as_deref(), Some("https://h/v1?api_key=[REDACTED]"));
    drop(log);
    assert_eq!(version(&path), SCHEMA_VERSION as i64);
    let raw = std::fs::read(&path).expect("reads");
    assert!(!raw.windows(13).any(|w| w == b"sk-v1-LEAK-77"), "the old key is still in the file");
    // Opening again migrates nothing and keeps the rows.
    assert_eq!(Log::open(&path).expect("opens").list(0, None, None).expect("lists").len(), 1);
}

#[test]
fn a_log_from_a_newer_version_is_refused_untouched() {
    let dir = tempfile::tempdir().expect("a temp folder");
    let path = dir.path().join("logs.db");
    drop(Log::open(&path).expect("creates"));
    Connection::open(&path).expect("opens").pragma_update(None, "user_version", 99).expect("sets");
    let e = Log::open(&path).expect_err("a newer schema");
    assert_eq!(e.kind(), ErrorKind::Log);
    assert!(e.to_string().contains("schema version 99 is newer than this mamba-llm knows (3)"), "{e}");
    assert_eq!(version(&path), 99);
}

#[test]
fn rows_hold_no_credentials_and_round_trip() {
    let dir = tempfile::tempdir().expect("a temp folder");
    let log = Log::open(&dir.path().join("logs.db")).expect("opens");
    let response = ModelResponse::new("the answer")
        .with_reasoning("")
        .with_tool_calls(vec![ToolCall::new("call_1", "f", "{}")])
        .with_usage(Usage::new(3, 4));
    let mut x = Exchange::from_response(&response);
    assert!(x.reasoning.is_none(), "empty reasoning is none");
    x.conversation_id = "c".into();
    x.prompt = "q".into();
    x.endpoint = Some("https://bob:pw-9@h/v1?token=t-9&x=1".into());
    x.error = Some("said Authorization: Bearer sk-err-secret-123456".into());
    x.attachments = vec!["a.png".into()];
    x.streamed = Some(true);
    let id = log.insert(&x).expect("inserts");
    let row = log.list(1, None, None).expect("lists").remove(0);
    assert_eq!(row.id, id);
    assert_eq!((row.input_tokens, row.output_tokens, row.streamed), (Some(3), Some(4), Some(true)));
    assert_eq!(row.attachments, ["a.png"]);
    assert!(row.time.ends_with('Z') && row.time.contains('T'), "{}", row.time);
    let endpoint = row.endpoint.expect("an endpoint");
    assert!(!endpoint.contains("pw-9") && !endpoint.contains("t-9") && endpoint.contains("x=1"), "{endpoint}");
    assert!(!row.error.expect("an error").contains("sk-err-secret-123456"));
    // A failed exchange is left out of the history; an answer's tool call comes back, with
    // the caller's tool result.
    assert!(log.history("c", "-").expect("history").is_empty());
    let mut answered = Exchange::from_response(&response);
    answered.conversation_id = "c".into();
    answered.prompt = "q2".into();
    log.insert(&answered).expect("inserts");
    let history = log.history("c", "no tools here").expect("history");
    let roles: Vec<&str> = history.iter().map(|m| m.role.as_str()).collect();
    assert_eq!(roles, ["user", "assistant", "tool"]);
    assert_eq!(history[2].text(), "no tools here");
    let e = log.history("zzz", "-").expect_err("no conversation");
    assert_eq!(e.kind(), ErrorKind::NoConversation);
    assert_ne!(new_conversation_id(), new_conversation_id());
}

#[test]
fn search_limit_and_conversation_filters() {
    let dir = tempfile::tempdir().expect("a temp folder");
    let log = Log::open(&dir.path().join("logs.db")).expect("opens");
    assert!(log.last_conversation().expect("reads").is_none());
    for (cid, prompt) in [("a", "one \"quoted\" word"), ("b", "two: AND OR"), ("a", "three NEAR(x)")] {
        log.insert(&exchange(cid, prompt)).expect("inserts");
    }
    assert_eq!(log.last_conversation().expect("reads").as_deref(), Some("a"));
    let prompts = |v: Vec<Exchange>| v.into_iter().map(|x| x.prompt).collect::<Vec<_>>();
    assert_eq!(prompts(log.list(2, None, None).expect("lists")), ["two: AND OR", "three NEAR(x)"]);
    assert_eq!(prompts(log.list(0, None, Some("a")).expect("lists")).len(), 2);
    // Search words are words, never FTS5 syntax.
    for q in ["\"quoted\"", "AND OR", "NEAR(x)", "two:", ""] {
        log.list(0, Some(q), None).unwrap_or_else(|e| panic!("{q:?}: {e}"));
    }
    assert_eq!(log.list(0, Some("AND OR"), None).expect("searches").len(), 1);
    assert_eq!(log.list(0, Some("three"), Some("b")).expect("searches").len(), 0);
}

#[test]
fn a_damaged_file_says_what_to_do() {
    let dir = tempfile::tempdir().expect("a temp folder");
    let path = dir.path().join("logs.db");
    std::fs::write(&path, vec![b'x'; 4096]).expect("writes");
    let e = Log::open(&path).expect_err("a damaged file opened");
    assert_eq!(e.kind(), ErrorKind::Log);
    assert!(e.to_string().contains("damaged") && e.to_string().contains("move it away"), "{e}");
}

/// Another process holding the database: a write waits a moment, then fails with a message
/// that says to try again; the log works again once it is free.
#[test]
fn a_locked_log_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("a temp folder");
    let path = dir.path().join("logs.db");
    let log = Log::open(&path).expect("opens");
    let other = Connection::open(&path).expect("opens");
    other.execute_batch("BEGIN EXCLUSIVE").expect("locks");
    let e = log.insert(&exchange("c", "p")).expect_err("locked");
    assert_eq!(e.kind(), ErrorKind::Log);
    assert!(e.to_string().contains("locked by another process; try again, or pass --no-log"), "{e}");
    other.execute_batch("COMMIT").expect("unlocks");
    log.insert(&exchange("c", "p")).expect("inserts once free");
}

#[cfg(unix)]
#[test]
fn unix_the_log_and_its_folder_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("a temp folder");
    let folder = dir.path().join("data");
    let path = folder.join("logs.db");
    drop(Log::open(&path).expect("creates"));
    let mode = |p: &std::path::Path| std::fs::metadata(p).expect("exists").permissions().mode() & 0o777;
    assert_eq!((mode(&path), mode(&folder)), (0o600, 0o700));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    drop(Log::open(&path).expect("opens"));
    assert_eq!((mode(&path), mode(&folder)), (0o600, 0o700));
}
