//! Resuming: what an existing output file already holds.
//!
//! The output is read line by line (never whole). A last line without its line end is what a
//! crash in the middle of a write leaves: it is cut off (unless it is a whole record, which
//! gets its line end). Lines answered with status 200 are done; a failed line is done too
//! with `--no-retry-failed`, else it is removed and its request sent again. Lines repeating
//! a custom_id (two runs that wrote the same output at once, before outputs were locked) are
//! removed but one: the first answered with status 200, else the first. A line that is not an output record
//! (not JSON, or without a custom_id, or without both `response` and `error`: a request line,
//! say) is moved to `OUT.invalid`, appended, never lost. Removing lines rewrites the output
//! through a temporary file renamed over it. The set of done custom_ids is kept as sorted
//! 64-bit FNV-1a hashes, 8 bytes a line; the ids themselves are read again only for hashes
//! that repeat, so a hash collision is never taken for a duplicate.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use serde::{Deserialize, Deserializer};

use crate::estimate::{usage_of_value, Prices};
use crate::guard::invalid_lines_path;
use crate::shard::fnv1a64;

/// How many duplicated custom_ids, and how many numbers of invalid lines, are named.
const NAMED_IDS: usize = 5;
const NAMED_LINES: usize = 10;

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
    /// Lines repeating the custom_id of an earlier kept line (removed).
    pub(crate) duplicates: u64,
    /// The first few of those ids.
    pub(crate) duplicate_ids: Vec<String>,
    /// Lines that were not output records (moved to `OUT.invalid`).
    pub(crate) invalid_lines: u64,
    /// The numbers of the first few, from 1.
    pub(crate) invalid_line_numbers: Vec<u64>,
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
    custom_id: Cow<'a, str>,
    /// `Some(None)`: `"response": null`; `None`: no `response` key.
    #[serde(default, deserialize_with = "present")]
    response: Option<Option<Status>>,
    #[serde(default, deserialize_with = "present")]
    error: Option<Option<serde::de::IgnoredAny>>,
}

/// A member that is there (even `null`) is `Some`; a missing one is `None` (the default).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
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
    fn charge(&mut self, response: Option<&Status>) -> Charge {
        let Some(Status { body: Some(BodyProbe { model, usage: Some(usage) }), .. }) = response else {
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

/// What becomes of one line of the output.
enum Verdict<'a> {
    /// A record to keep as done (`ok`: answered with status 200).
    Keep { hash: u64, id: Cow<'a, str>, ok: bool, charge: Charge },
    /// A failed record to remove and send again.
    Retry,
    /// Whitespace.
    Blank,
    /// Not an output record.
    Invalid,
}

fn verdict<'a>(line: &'a [u8], retry_failed: bool, prices: &mut PriceCache) -> Verdict<'a> {
    let record = match serde_json::from_slice::<Record<'_>>(line) {
        Ok(r) if r.response.is_some() || r.error.is_some() => r,
        _ if line.trim_ascii().is_empty() => return Verdict::Blank,
        _ => return Verdict::Invalid,
    };
    let response = record.response.flatten();
    let ok = response.as_ref().is_some_and(|r| r.status_code == 200);
    if !ok && retry_failed {
        return Verdict::Retry;
    }
    let charge = prices.charge(response.as_ref());
    Verdict::Keep { hash: fnv1a64(record.custom_id.as_bytes()), id: record.custom_id, ok, charge }
}

/// Calls `f` with each line of the file and whether it has its line end (only the last one
/// may not).
fn each_line(path: &Path, mut f: impl FnMut(&[u8], bool) -> io::Result<()>) -> io::Result<()> {
    let mut reader = BufReader::with_capacity(64 * 1024, File::open(path)?);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            return Ok(());
        }
        let terminated = buf.last() == Some(&b'\n');
        f(&buf, terminated)?;
        if !terminated {
            return Ok(());
        }
    }
}

/// Finds the lines that repeat a kept line's custom_id, among those whose hash is in
/// `suspects` (sorted): of the lines of each such id, the first answered with status 200 is
/// kept (an earlier failure never replaces a success), else the first; the others repeat.
struct Repeats<'a> {
    suspects: &'a [u64],
    /// Each suspect id and the number (from 1) of its line to keep.
    kept: HashMap<String, u64>,
}

impl<'a> Repeats<'a> {
    /// No repeated id: every line is its id's only one.
    fn none() -> Repeats<'a> {
        Repeats { suspects: &[], kept: HashMap::new() }
    }

    /// Reads the output once to choose, for each suspect id, the line to keep.
    fn choose(path: &Path, retry_failed: bool, suspects: &'a [u64]) -> io::Result<Repeats<'a>> {
        // Per id: the first line, and whether it was answered with 200.
        let mut first: HashMap<String, (u64, bool)> = HashMap::new();
        let mut prices = PriceCache::default();
        let mut number = 0u64;
        each_line(path, |line, _| {
            number += 1;
            if let Verdict::Keep { hash, id, ok, .. } = verdict(line, retry_failed, &mut prices) {
                if suspects.binary_search(&hash).is_ok() {
                    let entry = first.entry(id.into_owned()).or_insert((number, ok));
                    if ok && !entry.1 {
                        *entry = (number, true);
                    }
                }
            }
            Ok(())
        })?;
        Ok(Repeats { suspects, kept: first.into_iter().map(|(id, (n, _))| (id, n)).collect() })
    }

    /// Whether line `number` with this id repeats the line kept for it.
    fn check(&self, hash: u64, id: &str, number: u64) -> bool {
        self.suspects.binary_search(&hash).is_ok() && self.kept.get(id).is_some_and(|&n| n != number)
    }
}

/// Reads (and, unless `dry_run`, repairs and compacts) the output at `path`.
pub(crate) fn scan(path: &Path, retry_failed: bool, dry_run: bool) -> io::Result<Done> {
    let mut done = Done::default();
    if let Err(e) = File::open(path) {
        if e.kind() == io::ErrorKind::NotFound {
            return Ok(done);
        }
        return Err(io::Error::new(e.kind(), format!("cannot read {}: {e}", path.display())));
    }
    let mut whole_len = 0u64;
    let mut number = 0u64;
    let mut drop_some = false;
    let mut needs_line_end = false;
    let mut prices = PriceCache::default();
    each_line(path, |line, terminated| {
        number += 1;
        match verdict(line, retry_failed, &mut prices) {
            Verdict::Keep { hash, charge, .. } => {
                done.spent_usd += charge.cost;
                done.input_tokens += charge.input;
                done.output_tokens += charge.output;
                done.hashes.push(hash);
                done.kept += 1;
                needs_line_end = !terminated;
            }
            Verdict::Retry => {
                done.removed_failed += 1;
                drop_some = true;
            }
            Verdict::Blank => {}
            Verdict::Invalid if !terminated => done.repaired_torn = true,
            Verdict::Invalid => {
                done.invalid_lines += 1;
                if done.invalid_line_numbers.len() < NAMED_LINES {
                    done.invalid_line_numbers.push(number);
                }
                drop_some = true;
            }
        }
        if terminated {
            whole_len += line.len() as u64;
        }
        Ok(())
    })?;
    done.hashes.sort_unstable();
    let mut suspects: Vec<u64> = done.hashes.windows(2).filter(|w| w[0] == w[1]).map(|w| w[0]).collect();
    suspects.dedup();
    // Which line of each repeated id stays, chosen once for the count and the rewrite.
    let repeats = if suspects.is_empty() { Repeats::none() } else { Repeats::choose(path, retry_failed, &suspects)? };
    if !suspects.is_empty() {
        count_repeats(path, retry_failed, &repeats, &mut done)?;
        done.hashes.dedup();
        drop_some = true;
    }
    if dry_run {
        return Ok(done);
    }
    if drop_some {
        rewrite(path, retry_failed, &repeats)?;
    } else if done.repaired_torn {
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(whole_len)?;
        file.sync_all()?;
    } else if needs_line_end {
        let mut file = open_append(path)?;
        file.write_all(b"\n")?;
        file.sync_all()?;
    }
    Ok(done)
}

/// Counts the repeated lines into `done` (and takes what they cost out of it).
fn count_repeats(path: &Path, retry_failed: bool, repeats: &Repeats<'_>, done: &mut Done) -> io::Result<()> {
    let mut prices = PriceCache::default();
    let mut number = 0u64;
    each_line(path, |line, _| {
        number += 1;
        if let Verdict::Keep { hash, id, charge, .. } = verdict(line, retry_failed, &mut prices) {
            if repeats.check(hash, &id, number) {
                done.duplicates += 1;
                done.kept -= 1;
                done.spent_usd -= charge.cost;
                done.input_tokens = done.input_tokens.saturating_sub(charge.input);
                done.output_tokens = done.output_tokens.saturating_sub(charge.output);
                if done.duplicate_ids.len() < NAMED_IDS && !done.duplicate_ids.iter().any(|d| *d == id) {
                    done.duplicate_ids.push(id.into_owned());
                }
            }
        }
        Ok(())
    })
}

/// Writes the lines to keep to `path.tmp` (a whole last line without its line end gets one;
/// a torn one is left out), appends the lines that are not records to `path.invalid`, and
/// renames the first over `path`.
fn rewrite(path: &Path, retry_failed: bool, repeats: &Repeats<'_>) -> io::Result<()> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = Path::new(&tmp_name);
    let mut out = BufWriter::with_capacity(64 * 1024, File::create(tmp)?);
    let aside_path = invalid_lines_path(path);
    let mut aside: Option<BufWriter<File>> = None;
    let mut prices = PriceCache::default();
    let mut number = 0u64;
    each_line(path, |line, terminated| {
        number += 1;
        match verdict(line, retry_failed, &mut prices) {
            Verdict::Keep { hash, id, .. } if !repeats.check(hash, &id, number) => {
                out.write_all(line)?;
                if !terminated {
                    out.write_all(b"\n")?;
                }
            }
            Verdict::Invalid if terminated => {
                let aside = match &mut aside {
                    Some(a) => a,
                    None => aside.insert(BufWriter::new(open_append(&aside_path)?)),
                };
                aside.write_all(line)?;
            }
            _ => {}
        }
        Ok(())
    })?;
    // The lines set aside are on disk before the output loses them.
    if let Some(aside) = aside {
        aside.into_inner().map_err(|e| e.into_error())?.sync_all()?;
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

    /// Two runs that wrote the same output at once: every id twice. A resume reports the
    /// repeats, keeps the first line of each, and the output holds each id once.
    #[test]
    fn repeated_ids_are_reported_and_kept_once() {
        let ok = |id: &str, n: u32| {
            format!(
                r#"{{"id":"batch_req_{n}","custom_id":"{id}","response":{{"status_code":200,"request_id":"","body":{{"n":{n}}}}},"error":null}}"#
            )
        };
        let text = [ok("a", 1), ok("b", 2), ok("a", 3), ok("c", 4), ok("b", 5), ok("a", 6)].join("\n") + "\n";
        let (_d, path) = file_with(&text);
        let dry = scan(&path, true, true).unwrap();
        assert_eq!((dry.kept, dry.duplicates), (3, 3));
        assert_eq!(dry.duplicate_ids, vec!["a".to_owned(), "b".to_owned()]);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "a dry run changes nothing");
        let done = scan(&path, true, false).unwrap();
        assert_eq!((done.kept, done.duplicates), (3, 3));
        assert!(done.contains("a") && done.contains("b") && done.contains("c"));
        let left = std::fs::read_to_string(&path).unwrap();
        assert_eq!(left, [ok("a", 1), ok("b", 2), ok("c", 4)].join("\n") + "\n", "the first of each id");
        let again = scan(&path, true, false).unwrap();
        assert_eq!((again.kept, again.duplicates), (3, 0));
    }

    /// With --no-retry-failed, failed lines are kept: when an id repeats, its success is the
    /// line kept, wherever it is, never an earlier failure; without a success, the first line.
    #[test]
    fn a_success_wins_over_an_earlier_failure() {
        let line = |id: &str, n: u32, status: u16| {
            format!(
                r#"{{"id":"batch_req_{n}","custom_id":"{id}","response":{{"status_code":{status},"request_id":"","body":{{"n":{n}}}}},"error":null}}"#
            )
        };
        let text = [line("a", 1, 500), line("b", 2, 500), line("a", 3, 200), line("b", 4, 429), line("a", 5, 200)]
            .join("\n")
            + "\n";
        let (_d, path) = file_with(&text);
        let dry = scan(&path, false, true).unwrap();
        assert_eq!((dry.kept, dry.duplicates), (2, 3));
        let done = scan(&path, false, false).unwrap();
        assert_eq!((done.kept, done.duplicates), (2, 3));
        let left = std::fs::read_to_string(&path).unwrap();
        assert_eq!(left, [line("b", 2, 500), line("a", 3, 200)].join("\n") + "\n", "a's success, b's first failure");
        // Retrying failures: the failures go, the success stays.
        let (_d, path) = file_with(&text);
        let done = scan(&path, true, false).unwrap();
        assert_eq!((done.kept, done.duplicates, done.removed_failed), (1, 1, 3));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), line("a", 3, 200) + "\n");
    }

    /// Lines that are not records (text, a JSON value without a custom_id, a request line
    /// without `response` and `error`) are reported with their numbers and moved aside, never
    /// lost; the records stay.
    #[test]
    fn lines_that_are_not_records_are_moved_aside() {
        let request = r#"{"custom_id":"r","method":"POST","url":"/v1/chat/completions","body":{}}"#;
        let text = format!("{OK}\nnot json at all\n\n[1,2]\n{request}\n{FAILED}\n");
        let (dir, path) = file_with(&text);
        let dry = scan(&path, false, true).unwrap();
        assert_eq!((dry.kept, dry.invalid_lines), (2, 3));
        assert_eq!(dry.invalid_line_numbers, vec![2, 4, 5]);
        assert!(!dir.path().join("out.jsonl.invalid").exists(), "a dry run moves nothing");
        let done = scan(&path, false, false).unwrap();
        assert_eq!((done.kept, done.invalid_lines), (2, 3));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{OK}\n{FAILED}\n"));
        let aside = dir.path().join("out.jsonl.invalid");
        assert_eq!(std::fs::read_to_string(&aside).unwrap(), format!("not json at all\n[1,2]\n{request}\n"));
        // A later resume that finds more appends: what was set aside before stays.
        std::fs::write(&path, format!("{OK}\nmore junk\n")).unwrap();
        scan(&path, false, false).unwrap();
        assert!(std::fs::read_to_string(&aside).unwrap().ends_with(&format!("{request}\nmore junk\n")));
    }

    /// A whole record without its line end (an edited file, a copy) is kept, not cut off as
    /// a torn line.
    #[test]
    fn a_whole_last_record_without_line_end_is_kept() {
        let (_d, path) = file_with(&format!("{OK}\n{NO_ANSWER}"));
        let done = scan(&path, false, false).unwrap();
        assert!(!done.repaired_torn);
        assert_eq!(done.kept, 2);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{OK}\n{NO_ANSWER}\n"));
    }

    #[test]
    fn missing_output_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let done = scan(&dir.path().join("none.jsonl"), true, false).unwrap();
        assert_eq!(done.kept, 0);
    }
}
