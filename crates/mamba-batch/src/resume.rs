//! Resuming: what an existing output file already holds.
//!
//! The output is read line by line (never whole). A last line without its line end is what a
//! crash in the middle of a write leaves: it is cut off. Lines answered with status 200 are
//! done; a failed line is done too with `--no-retry-failed`, else it is removed (the output is
//! rewritten without it, through a temporary file renamed over the output) and its request
//! sent again. The set of done custom_ids is kept as sorted 64-bit FNV-1a hashes, 8 bytes a line.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use serde::Deserialize;

use crate::estimate::{usage_of_value, Prices};
use crate::shard::fnv1a64;

/// What the existing output holds.
#[derive(Debug, Default)]
pub(crate) struct Done {
    hashes: Vec<u64>,
    /// Lines kept as done.
    pub(crate) kept: u64,
    /// Failed lines removed, to be retried.
    pub(crate) removed_failed: u64,
    /// A torn last line was cut off.
    pub(crate) repaired_torn: bool,
    /// Lines that were not output records (removed).
    pub(crate) removed_garbage: u64,
    /// USD the kept lines cost, by their reported usage and the profiles' prices.
    pub(crate) spent_usd: f64,
    /// Input and output tokens the kept lines' answers reported.
    pub(crate) input_tokens: u64,
    pub(crate) output_tokens: u64,
}

impl Done {
    pub(crate) fn contains(&self, custom_id: &str) -> bool {
        self.hashes.binary_search(&fnv1a64(custom_id.as_bytes())).is_ok()
    }
}

#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow)]
    custom_id: std::borrow::Cow<'a, str>,
    #[serde(default)]
    response: Option<Status>,
}

#[derive(Deserialize)]
struct Status {
    status_code: u16,
    #[serde(default)]
    body: Option<BodyProbe>,
}

#[derive(Deserialize)]
struct BodyProbe {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<serde_json::Value>,
}

/// Prices by model, looked up once each.
#[derive(Debug, Default)]
struct PriceCache(std::collections::HashMap<String, Prices>);

impl PriceCache {
    /// The tokens a record's answer reported and what they cost (0 for a model without
    /// prices).
    fn charge(&mut self, record: &Record<'_>) -> Charge {
        let Some(Status { body: Some(BodyProbe { model, usage: Some(usage) }), .. }) = &record.response else {
            return Charge::default();
        };
        let Some((input, output)) = usage_of_value(usage) else { return Charge::default() };
        let cost = model.as_ref().map_or(0.0, |model| {
            let prices = *self.0.entry(model.clone()).or_insert_with(|| Prices::of(model));
            prices.cost(input, output)
        });
        Charge { input, output, cost }
    }
}

/// A record's reported usage and its cost.
#[derive(Debug, Default, Clone, Copy)]
struct Charge {
    input: u64,
    output: u64,
    cost: f64,
}

/// Reads (and, unless `dry_run`, repairs and compacts) the output at `path`.
pub(crate) fn scan(path: &Path, retry_failed: bool, dry_run: bool) -> io::Result<Done> {
    let mut done = Done::default();
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(done),
        Err(e) => return Err(io::Error::new(e.kind(), format!("cannot read {}: {e}", path.display()))),
    };
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    let mut buf = Vec::new();
    let mut whole_len = 0u64;
    let mut drop_some = false;
    let mut prices = PriceCache::default();
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf)?;
        if n == 0 {
            break;
        }
        if buf.last() != Some(&b'\n') {
            done.repaired_torn = true;
            break;
        }
        whole_len += n as u64;
        match keep(&buf, retry_failed, &mut prices) {
            Some((Some(hash), charge)) => {
                done.spent_usd += charge.cost;
                done.input_tokens += charge.input;
                done.output_tokens += charge.output;
                done.hashes.push(hash);
                done.kept += 1;
            }
            Some((None, _)) => {
                done.removed_failed += 1;
                drop_some = true;
            }
            None if buf.trim_ascii().is_empty() => {}
            None => {
                done.removed_garbage += 1;
                drop_some = true;
            }
        }
    }
    done.hashes.sort_unstable();
    if dry_run {
        return Ok(done);
    }
    if drop_some {
        rewrite(path, retry_failed)?;
    } else if done.repaired_torn {
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(whole_len)?;
        file.sync_all()?;
    }
    Ok(done)
}

/// `Some((Some(hash), charge))`: a line to keep; `Some((None, _))`: a failed line to retry;
/// `None`: not a record.
fn keep(line: &[u8], retry_failed: bool, prices: &mut PriceCache) -> Option<(Option<u64>, Charge)> {
    let record: Record<'_> = serde_json::from_slice(line).ok()?;
    let ok = record.response.as_ref().is_some_and(|r| r.status_code == 200);
    let charge = prices.charge(&record);
    Some(((ok || !retry_failed).then(|| fnv1a64(record.custom_id.as_bytes())), charge))
}

/// Writes the lines to keep to `path.tmp` and renames it over `path`.
fn rewrite(path: &Path, retry_failed: bool) -> io::Result<()> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = Path::new(&tmp_name);
    let mut reader = BufReader::with_capacity(64 * 1024, File::open(path)?);
    let mut out = BufWriter::with_capacity(64 * 1024, File::create(tmp)?);
    let mut buf = Vec::new();
    let mut prices = PriceCache::default();
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 || buf.last() != Some(&b'\n') {
            break;
        }
        if matches!(keep(&buf, retry_failed, &mut prices), Some((Some(_), _))) {
            out.write_all(&buf)?;
        }
    }
    let mut file = out.into_inner().map_err(|e| e.into_error())?;
    file.flush()?;
    file.sync_all()?;
    std::fs::rename(tmp, path)?;
    Ok(())
}

/// Opens the output for appending, creating it.
pub(crate) fn open_append(path: &Path) -> io::Result<File> {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display())))?;
    f.seek(SeekFrom::End(0))?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str =
        r#"{"id":"batch_req_1","custom_id":"a","response":{"status_code":200,"request_id":"","body":{}},"error":null}"#;
    const FAILED: &str =
        r#"{"id":"batch_req_2","custom_id":"b","response":{"status_code":500,"request_id":"","body":{}},"error":null}"#;
    const NO_ANSWER: &str =
        r#"{"id":"batch_req_3","custom_id":"c","response":null,"error":{"code":"connect","message":"x"}}"#;

    fn file_with(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn torn_last_line_is_cut() {
        let (_d, path) = file_with(&format!("{OK}\n{}", &FAILED[..40]));
        let done = scan(&path, true, false).unwrap();
        assert!(done.repaired_torn);
        assert!(done.contains("a") && !done.contains("b"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{OK}\n"));
    }

    #[test]
    fn failed_lines_are_removed_or_kept() {
        let text = format!("{OK}\n{FAILED}\n{NO_ANSWER}\n");
        let (_d, path) = file_with(&text);
        let done = scan(&path, false, false).unwrap();
        assert_eq!((done.kept, done.removed_failed), (3, 0));
        assert!(done.contains("b") && done.contains("c"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        let done = scan(&path, true, true).unwrap();
        assert_eq!((done.kept, done.removed_failed), (1, 2));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "a dry run changes nothing");
        let done = scan(&path, true, false).unwrap();
        assert_eq!((done.kept, done.removed_failed), (1, 2));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{OK}\n"));
    }

    #[test]
    fn missing_output_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let done = scan(&dir.path().join("none.jsonl"), true, false).unwrap();
        assert_eq!(done.kept, 0);
    }
}
