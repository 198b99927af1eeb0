//! The persistent response cache: answers on disk, keyed by a hash of the function, model,
//! options and prompt, so a re-run of a failed query (or a task a cluster retries) pays only
//! for rows not answered before.
//!
//! SQLite (bundled) in WAL mode: several processes (executors on one host, a re-run beside a
//! running query) may share one file, and a killed process loses at most the answers not yet
//! flushed (written every [`FLUSH_EVERY`](crate::run) answers and at the end of each batch).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

/// A cache key: SHA-256 of what determines an answer.
pub(crate) type Key = [u8; 32];

/// The key of one request: the function, the model, the canonical options, the schema
/// (`llm_json`) and the prompt, each length-prefixed so no two differ only in where a field
/// ends.
pub(crate) fn key(function: &str, model: &str, options: &str, schema: &str, prompt: &str) -> Key {
    let mut h = Sha256::new();
    for part in [function, model, options, schema, prompt] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().into()
}

/// A cached answer: its bytes (UTF-8 text, or an embedding's f32s little-endian) and the
/// tokens it cost when it was first paid for.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Entry {
    pub(crate) value: Vec<u8>,
    pub(crate) input_tokens: u64,
    pub(crate) output_tokens: u64,
}

/// Answers on disk. Cheap to share (`Arc`); calls block briefly, so callers run them on
/// tokio's blocking pool.
#[derive(Debug)]
pub struct ResponseCache {
    conn: Mutex<Connection>,
    path: PathBuf,
}

/// Why the cache could not be opened or used.
#[derive(Debug)]
pub struct CacheError(String);

impl std::fmt::Display for CacheError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CacheError {}

impl ResponseCache {
    /// Opens (creating it and its directory if needed) the cache file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<ResponseCache, CacheError> {
        let path = path.as_ref().to_path_buf();
        let fail =
            |e: &dyn std::fmt::Display| CacheError(format!("cannot open the response cache {}: {e}", path.display()));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
        }
        let conn = Connection::open(&path).map_err(|e| fail(&e))?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(|e| fail(&e))?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(|e| fail(&e))?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(|e| fail(&e))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS answers (
                key BLOB PRIMARY KEY,
                value BLOB NOT NULL,
                input_tokens INTEGER NOT NULL,
                output_tokens INTEGER NOT NULL,
                created INTEGER NOT NULL
            ) WITHOUT ROWID",
        )
        .map_err(|e| fail(&e))?;
        Ok(ResponseCache { conn: Mutex::new(conn), path })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many answers it holds.
    pub fn len(&self) -> Result<u64, CacheError> {
        let conn = self.lock();
        conn.query_row("SELECT count(*) FROM answers", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.error(&e))
    }

    /// Whether it holds no answer.
    pub fn is_empty(&self) -> Result<bool, CacheError> {
        self.len().map(|n| n == 0)
    }

    /// The entries of `keys`, in order.
    pub(crate) fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Entry>>, CacheError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT value, input_tokens, output_tokens FROM answers WHERE key = ?1")
            .map_err(|e| self.error(&e))?;
        keys.iter()
            .map(|k| {
                stmt.query_row([&k[..]], |r| {
                    Ok(Entry {
                        value: r.get(0)?,
                        input_tokens: r.get::<_, i64>(1)? as u64,
                        output_tokens: r.get::<_, i64>(2)? as u64,
                    })
                })
                .optional()
                .map_err(|e| self.error(&e))
            })
            .collect()
    }

    /// Stores `entries` in one transaction (a key already there is replaced).
    pub(crate) fn put_many(&self, entries: &[(Key, Entry)]) -> Result<(), CacheError> {
        if entries.is_empty() {
            return Ok(());
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(|e| self.error(&e))?;
        {
            let mut stmt = tx
                .prepare_cached("INSERT OR REPLACE INTO answers VALUES (?1, ?2, ?3, ?4, ?5)")
                .map_err(|e| self.error(&e))?;
            for (k, e) in entries {
                stmt.execute(params![&k[..], &e.value, e.input_tokens as i64, e.output_tokens as i64, now])
                    .map_err(|e| self.error(&e))?;
            }
        }
        tx.commit().map_err(|e| self.error(&e))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves a connection that is still usable.
        self.conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn error(&self, e: &rusqlite::Error) -> CacheError {
        CacheError(format!("the response cache {} failed: {e}", self.path.display()))
    }
}

/// An embedding as cache bytes.
pub(crate) fn vector_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Cache bytes as an embedding; `None` when the length is not a whole number of f32s.
pub(crate) fn bytes_vector(b: &[u8]) -> Option<Vec<f32>> {
    b.len().is_multiple_of(4).then(|| b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn answers_survive_reopening_and_replace_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/cache.sqlite");
        let k1 = key("llm", "m", "{}", "", "hello");
        let k2 = key("llm", "m", "{}", "", "world");
        let e = |s: &str| Entry { value: s.as_bytes().to_vec(), input_tokens: 3, output_tokens: 4 };
        {
            let c = ResponseCache::open(&path).unwrap();
            assert!(c.is_empty().unwrap());
            c.put_many(&[(k1, e("a")), (k2, e("b"))]).unwrap();
            c.put_many(&[(k1, e("c"))]).unwrap();
        }
        let c = ResponseCache::open(&path).unwrap();
        assert_eq!(c.len().unwrap(), 2);
        let got = c.get_many(&[k1, key("llm", "m", "{}", "", "other"), k2]).unwrap();
        assert_eq!(got, vec![Some(e("c")), None, Some(e("b"))]);
    }

    #[test]
    fn keys_separate_every_field() {
        let base = key("llm", "m", "{}", "", "p");
        for other in [
            key("embed", "m", "{}", "", "p"),
            key("llm", "n", "{}", "", "p"),
            key("llm", "m", "{\"seed\":1}", "", "p"),
            key("llm", "m", "{}", "{}", "p"),
            key("llm", "m", "{}", "", "q"),
            // The same characters split differently between two fields.
            key("llm", "mp", "{}", "", ""),
        ] {
            assert_ne!(base, other);
        }
        assert_eq!(base, key("llm", "m", "{}", "", "p"));
    }

    #[test]
    fn vectors_round_trip_through_bytes() {
        let v = vec![0.5f32, -1.25, f32::MAX, 0.0];
        assert_eq!(bytes_vector(&vector_bytes(&v)).unwrap(), v);
        assert_eq!(bytes_vector(&[1, 2, 3]), None);
    }

    #[test]
    fn an_unusable_path_is_a_one_line_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let err = ResponseCache::open(file.join("cache.sqlite")).unwrap_err().to_string();
        assert!(err.starts_with("cannot open the response cache"), "{err}");
        assert!(!err.contains('\n'));
    }
}
