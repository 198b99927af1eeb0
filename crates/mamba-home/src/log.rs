//! The conversation log: every exchange in SQLite (`logs.db` in the data folder), searched with
//! FTS5. The schema is versioned with `PRAGMA user_version` and migrated forward on open; a
//! log from a newer version is refused, never rewritten.
//!
//! Nothing secret is stored: credentials in the endpoint URL (`user:password@`, `?api_key=…`)
//! and anything that looks like a secret in an error are redacted before a row is written,
//! and logs written before that rule (schema version 2) are scrubbed on their migration to
//! version 3 with `secure_delete` on, so the old text does not stay in free pages. The log
//! and its folder are private to the user (see the crate's
//! [platform notes](crate#platforms)).

use std::path::{Path, PathBuf};
use std::time::Duration;

use mamba_backends::{Message, ModelResponse, ToolCall};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::error::{Error, ErrorKind};

/// Each migration takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE exchanges (
        id INTEGER PRIMARY KEY,
        conversation_id TEXT NOT NULL,
        time TEXT NOT NULL,
        model TEXT,
        endpoint TEXT,
        system TEXT,
        prompt TEXT NOT NULL,
        answer TEXT,
        reasoning TEXT,
        tool_calls TEXT,
        input_tokens INTEGER,
        output_tokens INTEGER,
        latency_ms INTEGER
    );
    CREATE INDEX exchanges_conversation ON exchanges (conversation_id, id);",
    // 2: cost, failures, attachments, streamed or not, and full-text search.
    "ALTER TABLE exchanges ADD COLUMN cost_usd REAL;
    ALTER TABLE exchanges ADD COLUMN error TEXT;
    ALTER TABLE exchanges ADD COLUMN attachments TEXT;
    ALTER TABLE exchanges ADD COLUMN streamed INTEGER;
    CREATE VIRTUAL TABLE exchanges_fts USING fts5 (
        prompt, system, answer, reasoning, content='exchanges', content_rowid='id'
    );
    INSERT INTO exchanges_fts (rowid, prompt, system, answer, reasoning)
        SELECT id, prompt, coalesce(system, ''), coalesce(answer, ''), coalesce(reasoning, '') FROM exchanges;
    CREATE TRIGGER exchanges_ai AFTER INSERT ON exchanges BEGIN
        INSERT INTO exchanges_fts (rowid, prompt, system, answer, reasoning)
        VALUES (new.id, new.prompt, coalesce(new.system, ''), coalesce(new.answer, ''), coalesce(new.reasoning, ''));
    END;
    CREATE TRIGGER exchanges_ad AFTER DELETE ON exchanges BEGIN
        INSERT INTO exchanges_fts (exchanges_fts, rowid, prompt, system, answer, reasoning)
        VALUES ('delete', old.id, old.prompt, coalesce(old.system, ''), coalesce(old.answer, ''), coalesce(old.reasoning, ''));
    END;",
    // 3: the credentials earlier versions stored in `endpoint` and `error` are redacted (in
    // Rust, by `scrub`, when a log moves to this version).
    "SELECT 1;",
];

/// The schema version from which stored endpoints and errors hold no credentials.
const SCRUBBED_VERSION: usize = 3;

/// The schema version this build writes.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// Redacts the credentials that earlier versions stored in `endpoint` (a key in the base
/// URL's query) and `error`, with `secure_delete` on so that the old text is overwritten in
/// the file rather than left in free pages.
fn scrub(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "secure_delete", true)?;
    let rows: Vec<(i64, Option<String>, Option<String>)> = conn
        .prepare("SELECT id, endpoint, error FROM exchanges WHERE endpoint IS NOT NULL OR error IS NOT NULL")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    for (id, endpoint, error) in rows {
        let new_endpoint = endpoint.as_deref().map(mamba_backends::redact::redact_url);
        let new_error = error.as_deref().map(|e| mamba_backends::redact::redact_text(e).into_owned());
        if new_endpoint != endpoint || new_error != error {
            conn.execute(
                "UPDATE exchanges SET endpoint = ?1, error = ?2 WHERE id = ?3",
                params![new_endpoint, new_error, id],
            )?;
        }
    }
    Ok(())
}

/// An open log.
#[derive(Debug)]
pub struct Log {
    conn: Connection,
    path: PathBuf,
}

/// One exchange, as stored: a prompt and its answer or failure. As JSON (`mamba-llm logs
/// --json`) it has these fields in this order.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Exchange {
    /// The row id, increasing (0 before it is stored).
    pub id: i64,
    /// The conversation it belongs to ([`new_conversation_id`]).
    pub conversation_id: String,
    /// When it was stored, UTC, `YYYY-MM-DDTHH:MM:SS.sssZ` (set by [`Log::insert`]).
    pub time: String,
    /// The model that answered (or was asked).
    pub model: Option<String>,
    /// The server's URL, credentials redacted.
    pub endpoint: Option<String>,
    /// The system message sent with it.
    pub system: Option<String>,
    /// The user's text.
    pub prompt: String,
    /// The answer's text.
    pub answer: Option<String>,
    /// The answer's reasoning, when the server sent any.
    pub reasoning: Option<String>,
    /// The answer's tool calls, as the JSON array of [`ToolCall`]s.
    pub tool_calls: Option<serde_json::Value>,
    /// Prompt tokens.
    pub input_tokens: Option<u64>,
    /// Answer tokens.
    pub output_tokens: Option<u64>,
    /// The cost in US dollars, when the model's prices are known.
    pub cost_usd: Option<f64>,
    /// Time to the whole answer in milliseconds.
    pub latency_ms: Option<u64>,
    /// Whether the answer was streamed.
    pub streamed: Option<bool>,
    /// The names of the attached files and URLs.
    pub attachments: Vec<String>,
    /// The failure instead of an answer (redacted before it is stored).
    pub error: Option<String>,
}

fn db_error(path: &Path, e: rusqlite::Error) -> Error {
    let what = match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            "the database is locked by another process; try again, or pass --no-log".to_owned()
        }
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => {
            format!("the database is damaged ({e}); move it away to start a new log, or pass --no-log")
        }
        _ => e.to_string(),
    };
    Error::with_source(ErrorKind::Log, format!("conversation log {}: {what}", path.display()), e)
}

impl Log {
    /// Opens (creating and migrating as needed) the log at `path`. The log and its folder are
    /// private to the user (0600 and 0700 on Unix; existing ones are tightened): it holds
    /// every prompt and answer.
    pub fn open(path: &Path) -> Result<Log, Error> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::private::make_private(path, dir)
                .map_err(|e| Error::new(ErrorKind::Log, format!("conversation log {}: {e}", path.display())))?;
        }
        let err = |e: rusqlite::Error| db_error(path, e);
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(Duration::from_millis(1500)).map_err(err)?;
        let mut log = Log { conn, path: path.to_owned() };
        log.migrate()?;
        Ok(log)
    }

    /// Opens the log in the data folder ([`log_path`](crate::paths::log_path)).
    pub fn open_default() -> Result<Log, Error> {
        Log::open(&crate::paths::log_path()?)
    }

    /// Where the log is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: rusqlite::Error) -> Error {
        db_error(&self.path, e)
    }

    fn migrate(&mut self) -> Result<(), Error> {
        let version: usize = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
            .map_err(|e| self.err(e))?
            .try_into()
            .unwrap_or(0);
        if version > SCHEMA_VERSION {
            return Err(Error::new(
                ErrorKind::Log,
                format!(
                    "conversation log {}: schema version {version} is newer than this mamba-llm knows ({SCHEMA_VERSION}); update mamba-llm",
                    self.path.display()
                ),
            ));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            let tx = self.conn.transaction().map_err(|e| db_error(&self.path, e))?;
            tx.execute_batch(sql).map_err(|e| db_error(&self.path, e))?;
            if i + 1 == SCRUBBED_VERSION {
                scrub(&tx).map_err(|e| db_error(&self.path, e))?;
            }
            tx.pragma_update(None, "user_version", (i + 1) as i64).map_err(|e| db_error(&self.path, e))?;
            tx.commit().map_err(|e| db_error(&self.path, e))?;
        }
        Ok(())
    }

    /// Stores an exchange; returns its id. Credentials in the endpoint URL (`user:password@`,
    /// `?api_key=…`) and anything that looks like a secret in the error are redacted first.
    pub fn insert(&self, x: &Exchange) -> Result<i64, Error> {
        let endpoint = x.endpoint.as_deref().map(mamba_backends::redact::redact_url);
        let error = x.error.as_deref().map(|e| mamba_backends::redact::redact_text(e).into_owned());
        let tool_calls = x.tool_calls.as_ref().map(|v| v.to_string());
        let attachments = if x.attachments.is_empty() { None } else { serde_json::to_string(&x.attachments).ok() };
        self.conn
            .execute(
                "INSERT INTO exchanges (conversation_id, time, model, endpoint, system, prompt, answer, reasoning,
                    tool_calls, input_tokens, output_tokens, latency_ms, cost_usd, error, attachments, streamed)
                 VALUES (?1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                params![
                    x.conversation_id,
                    x.model,
                    endpoint,
                    x.system,
                    x.prompt,
                    x.answer,
                    x.reasoning,
                    tool_calls,
                    x.input_tokens.map(|n| n as i64),
                    x.output_tokens.map(|n| n as i64),
                    x.latency_ms.map(|n| n as i64),
                    x.cost_usd,
                    error,
                    attachments,
                    x.streamed,
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// The conversation of the newest exchange.
    pub fn last_conversation(&self) -> Result<Option<String>, Error> {
        self.conn
            .query_row("SELECT conversation_id FROM exchanges ORDER BY id DESC LIMIT 1", [], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The newest `limit` exchanges (0: all), matching `query` (FTS5 syntax; plain words
    /// match words) and `cid` when given, oldest first.
    pub fn list(&self, limit: usize, query: Option<&str>, cid: Option<&str>) -> Result<Vec<Exchange>, Error> {
        let mut sql = String::from(
            "SELECT e.id, e.conversation_id, e.time, e.model, e.endpoint, e.system, e.prompt, e.answer, e.reasoning,
                    e.tool_calls, e.input_tokens, e.output_tokens, e.cost_usd, e.latency_ms, e.streamed, e.attachments, e.error
             FROM exchanges e",
        );
        let mut args: Vec<String> = Vec::new();
        let mut conditions = Vec::new();
        if let Some(q) = query {
            sql.push_str(" JOIN exchanges_fts f ON f.rowid = e.id");
            conditions.push("exchanges_fts MATCH ?");
            args.push(fts_query(q));
        }
        if let Some(cid) = cid {
            conditions.push("e.conversation_id = ?");
            args.push(cid.to_owned());
        }
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        sql.push_str(" ORDER BY e.id DESC");
        if limit > 0 {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args.iter()), |r| {
                let tool_calls: Option<String> = r.get(9)?;
                let attachments: Option<String> = r.get(15)?;
                Ok(Exchange {
                    id: r.get(0)?,
                    conversation_id: r.get(1)?,
                    time: r.get(2)?,
                    model: r.get(3)?,
                    endpoint: r.get(4)?,
                    system: r.get(5)?,
                    prompt: r.get(6)?,
                    answer: r.get(7)?,
                    reasoning: r.get(8)?,
                    tool_calls: tool_calls.and_then(|t| serde_json::from_str(&t).ok()),
                    input_tokens: r.get::<_, Option<i64>>(10)?.map(|n| n as u64),
                    output_tokens: r.get::<_, Option<i64>>(11)?.map(|n| n as u64),
                    cost_usd: r.get(12)?,
                    latency_ms: r.get::<_, Option<i64>>(13)?.map(|n| n as u64),
                    streamed: r.get(14)?,
                    attachments: attachments.and_then(|a| serde_json::from_str(&a).ok()).unwrap_or_default(),
                    error: r.get(16)?,
                })
            })
            .map_err(|e| self.err(e))?;
        let mut out = rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))?;
        out.reverse();
        Ok(out)
    }

    /// The messages of conversation `cid` to send again: its system message, then each
    /// answered exchange's prompt and answer (failed ones are left out). The log holds no
    /// tool results: each tool call of an answer is followed by a tool message of
    /// `tool_result`. No such conversation: [`ErrorKind::NoConversation`].
    pub fn history(&self, cid: &str, tool_result: &str) -> Result<Vec<Message>, Error> {
        let exchanges = self.list(0, None, Some(cid))?;
        if exchanges.is_empty() {
            return Err(Error::new(
                ErrorKind::NoConversation,
                format!("no conversation {cid:?} in the log (see mamba-llm logs)"),
            ));
        }
        let mut messages = Vec::new();
        if let Some(system) = exchanges.iter().find_map(|x| x.system.clone()) {
            messages.push(Message::system(system));
        }
        for x in exchanges.iter().filter(|x| x.error.is_none()) {
            messages.push(Message::user(x.prompt.clone()));
            let calls: Vec<ToolCall> =
                x.tool_calls.clone().and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
            messages.push(Message::assistant_with_tool_calls(x.answer.clone().unwrap_or_default(), calls.clone()));
            for call in &calls {
                messages.push(Message::tool(&call.id, tool_result));
            }
        }
        Ok(messages)
    }
}

/// Plain words become quoted FTS5 terms (all must match), so punctuation in a search is not
/// FTS5 syntax.
fn fts_query(text: &str) -> String {
    let terms: Vec<String> = text.split_whitespace().map(|w| format!("\"{}\"", w.replace('"', "\"\""))).collect();
    if terms.is_empty() {
        "\"\"".to_owned()
    } else {
        terms.join(" ")
    }
}

/// A new conversation id: time and process, in base 36.
pub fn new_conversation_id() -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    let mut n = nanos ^ (u128::from(std::process::id()) << 64);
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    while n > 0 {
        out.push(digits[(n % 36) as usize]);
        n /= 36;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

impl Exchange {
    /// The answer part of an exchange from a response: the answer, the reasoning (when
    /// any), the tool calls and the token counts; the caller fills in the rest.
    pub fn from_response(response: &ModelResponse) -> Exchange {
        Exchange {
            answer: Some(response.content.clone()),
            reasoning: response.reasoning.clone().filter(|r| !r.is_empty()),
            tool_calls: if response.tool_calls.is_empty() {
                None
            } else {
                serde_json::to_value(&response.tool_calls).ok()
            },
            input_tokens: response.usage.as_ref().map(|u| u.input_tokens),
            output_tokens: response.usage.as_ref().map(|u| u.output_tokens),
            ..Exchange::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log path in a new temporary folder, removed when the guard is dropped.
    fn temp() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("a temp folder");
        let path = dir.path().join("data").join("logs.db");
        (dir, path)
    }

    /// The log and its folder are private, existing ones are tightened, and the endpoint
    /// column never holds a key of the URL.
    #[test]
    fn private_files_and_no_secret_in_the_endpoint() {
        let (_dir, path) = temp();
        let log = Log::open(&path).expect("opens");
        log.insert(&Exchange {
            conversation_id: "c".into(),
            prompt: "p".into(),
            endpoint: Some("http://bob:pw-1@h:1/v1?api_key=sk-q-1&key=k-2&token=t-3&sig=s-4&x=1".into()),
            error: Some("upstream said: Authorization: Basic Ym9iOnMzY3JldA==".into()),
            ..Exchange::default()
        })
        .expect("inserts");
        let row = &log.list(0, None, None).expect("lists")[0];
        let endpoint = row.endpoint.as_deref().expect("endpoint");
        for secret in ["pw-1", "sk-q-1", "k-2", "t-3", "s-4"] {
            assert!(!endpoint.contains(secret), "{endpoint}");
        }
        assert!(endpoint.contains("h:1/v1") && endpoint.contains("x=1"), "{endpoint}");
        assert!(!row.error.as_deref().expect("error").contains("Ym9iOnMzY3JldA=="));
        drop(log);
        let raw = std::fs::read(&path).expect("reads");
        assert!(!raw.windows(6).any(|w| w == b"sk-q-1"), "the key is in the file");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).expect("exists").permissions().mode() & 0o777;
            let dir = path.parent().expect("folder");
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(dir), 0o700);
            // An existing world-readable log is tightened.
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
            drop(Log::open(&path).expect("opens"));
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(dir), 0o700);
        }
    }

    /// A log written by an earlier version, with a key in an endpoint, is scrubbed when it
    /// is opened, and the old text does not stay in the file.
    #[test]
    fn old_logs_are_scrubbed() {
        let (_dir, path) = temp();
        std::fs::create_dir_all(path.parent().expect("folder")).expect("mkdir");
        {
            let conn = Connection::open(&path).expect("opens");
            for (i, sql) in MIGRATIONS[..2].iter().enumerate() {
                conn.execute_batch(sql).expect("migrates");
                conn.pragma_update(None, "user_version", (i + 1) as i64).expect("version");
            }
            conn.execute(
                "INSERT INTO exchanges (conversation_id, time, endpoint, prompt) VALUES ('c', 't', ?1, 'p')",
                ["http://h/v1?api_key=sk-old-LEAK-4242"],
            )
            .expect("inserts");
        }
        let log = Log::open(&path).expect("opens");
        assert_eq!(
            log.list(0, None, None).expect("lists")[0].endpoint.as_deref(),
            Some("http://h/v1?api_key=[REDACTED]")
        );
        drop(log);
        let raw = std::fs::read(&path).expect("reads");
        assert!(!raw.windows(13).any(|w| w == b"sk-old-LEAK-4"), "the old key is still in the file");
    }

    #[test]
    fn fts5_is_compiled_in() {
        let conn = Connection::open_in_memory().expect("opens");
        conn.execute_batch("CREATE VIRTUAL TABLE t USING fts5 (x)").expect("FTS5 is available");
    }

    #[test]
    fn insert_list_search_and_history() {
        let (_dir, path) = temp();
        let log = Log::open(&path).expect("opens");
        let x = |cid: &str, prompt: &str, answer: &str| Exchange {
            conversation_id: cid.into(),
            prompt: prompt.into(),
            answer: Some(answer.into()),
            system: Some("sys".into()),
            ..Exchange::default()
        };
        log.insert(&x("a", "capital of France?", "Paris.")).expect("inserts");
        log.insert(&Exchange { error: Some("boom".into()), ..x("a", "failed one", "") }).expect("inserts");
        log.insert(&x("b", "hello (there)", "hi")).expect("inserts");
        log.insert(&x("a", "and Italy?", "Rome.")).expect("inserts");
        assert_eq!(log.last_conversation().expect("reads").as_deref(), Some("a"));
        assert_eq!(
            log.list(2, None, None).expect("lists").iter().map(|x| x.prompt.as_str()).collect::<Vec<_>>(),
            ["hello (there)", "and Italy?"]
        );
        assert_eq!(log.list(0, Some("rome"), None).expect("searches").len(), 1);
        assert_eq!(log.list(0, Some("(there)"), None).expect("punctuation is no syntax").len(), 1);
        assert_eq!(log.list(0, None, Some("a")).expect("lists").len(), 3);
        let history = log.history("a", "no tools").expect("history");
        let roles: Vec<&str> = history.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["system", "user", "assistant", "user", "assistant"]);
        assert_eq!(history[4].text(), "Rome.");
        assert!(log.history("zzz", "no tools").expect_err("none").kind() == ErrorKind::NoConversation);
    }

    #[test]
    fn corrupt_file_is_a_clear_error() {
        let (_dir, path) = temp();
        std::fs::create_dir_all(path.parent().expect("a folder")).expect("mkdir");
        std::fs::write(&path, vec![b'x'; 4096]).expect("writes");
        let e = Log::open(&path).expect_err("a corrupt file opened");
        assert_eq!(e.kind(), ErrorKind::Log);
        let m = e.to_string();
        assert!(m.contains("damaged") && m.contains("--no-log"), "{m}");
        assert!(std::error::Error::source(&e).is_some(), "the SQLite error is its source");
    }

    #[test]
    fn conversation_ids_differ() {
        assert_ne!(new_conversation_id(), new_conversation_id());
    }
}
