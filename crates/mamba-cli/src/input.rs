//! Reading prompts and inputs from stdin and files within a size limit (`--max-input-bytes`),
//! without ever holding more than the limit: a 1 GB stdin fails after the limit is read.

use std::io::{BufRead, Read};

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

use crate::error::CliError;

/// The default limit of a prompt on stdin and of one input line: 20 MiB, as for attachments.
pub(crate) const DEFAULT_MAX_INPUT_BYTES: u64 = crate::attach::DEFAULT_LIMIT;

/// The error of an input over the limit: names it, the limit and the flag that raises it.
pub(crate) fn too_large(what: &str, limit: u64) -> CliError {
    CliError::Usage(format!(
        "{what} is larger than {} (the limit of --max-input-bytes); pass --max-input-bytes N to allow more",
        human(limit)
    ))
}

/// `20 MiB`, `512 KiB`, `100 bytes`.
fn human(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB && bytes % MIB == 0 {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= 1024 && bytes % 1024 == 0 {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

/// All of `reader` as text, failing as soon as it has more than `limit` bytes.
pub(crate) fn read_capped(reader: impl Read, limit: u64, what: &str) -> Result<String, CliError> {
    let mut buf = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| CliError::Usage(format!("cannot read {what}: {e}")))?;
    if buf.len() as u64 > limit {
        return Err(too_large(what, limit));
    }
    String::from_utf8(buf).map_err(|_| CliError::Usage(format!("cannot read {what}: it is not UTF-8 text")))
}

/// `buf` without its line end (`\n` or `\r\n`); whether it had one.
fn strip_line_end(buf: &mut Vec<u8>) -> bool {
    if buf.last() != Some(&b'\n') {
        return false;
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    true
}

/// Lines of a reader, each at most `limit` bytes, read one at a time.
pub(crate) struct CappedLines<R> {
    reader: R,
    limit: u64,
    what: String,
    line: usize,
}

impl<R: BufRead> CappedLines<R> {
    pub(crate) fn new(reader: R, limit: u64, what: impl Into<String>) -> Self {
        CappedLines { reader, limit, what: what.into(), line: 0 }
    }

    /// The next line without its line end; `None` at the end.
    pub(crate) fn next_line(&mut self) -> Result<Option<String>, CliError> {
        let mut buf = Vec::new();
        // The limit, plus `\r\n`.
        let n = (&mut self.reader)
            .take(self.limit.saturating_add(2))
            .read_until(b'\n', &mut buf)
            .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", self.what)))?;
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        strip_line_end(&mut buf);
        if buf.len() as u64 > self.limit {
            return Err(too_large(&format!("line {} of {}", self.line, self.what), self.limit));
        }
        String::from_utf8(buf).map(Some).map_err(|_| {
            CliError::Usage(format!("cannot read line {} of {}: it is not UTF-8 text", self.line, self.what))
        })
    }
}

/// The next line of an async reader (a conversation on stdin), at most `limit` bytes: `None`
/// at the end (or when reading fails); a longer line, or one that is not text, is skipped to
/// its end and reported as `Some(Err(…))`.
pub(crate) async fn next_line_capped<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    limit: u64,
) -> Option<Result<String, CliError>> {
    let mut buf = Vec::new();
    let n = (&mut *reader).take(limit.saturating_add(2)).read_until(b'\n', &mut buf).await.ok()?;
    if n == 0 {
        return None;
    }
    let ended = strip_line_end(&mut buf);
    if buf.len() as u64 > limit {
        // Skip the rest of the line, a piece at a time.
        let mut rest = ended;
        while !rest {
            buf.clear();
            let n = (&mut *reader).take(64 * 1024).read_until(b'\n', &mut buf).await.ok()?;
            rest = n == 0 || buf.last() == Some(&b'\n');
        }
        return Some(Err(too_large("the line", limit)));
    }
    Some(String::from_utf8(buf).map_err(|_| CliError::Usage("the line is not UTF-8 text; it was skipped".into())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_input_is_capped() {
        assert_eq!(read_capped(&b"hello"[..], 5, "stdin").expect("fits"), "hello");
        let e = read_capped(&b"hello!"[..], 5, "stdin").expect_err("too large");
        let CliError::Usage(m) = e else { panic!("not a usage error") };
        assert!(m.contains("stdin is larger than 5 bytes") && m.contains("--max-input-bytes"), "{m}");
        // Only the limit (and one byte) is read of an endless reader.
        let endless = std::io::repeat(b'x');
        assert!(read_capped(endless, 1024, "stdin").is_err());
    }

    #[test]
    fn lines_are_capped_one_by_one() {
        let mut lines = CappedLines::new(&b"ab\r\ncd\n\nabcdef\nx"[..], 4, "f.txt");
        assert_eq!(lines.next_line().expect("ok").as_deref(), Some("ab"));
        assert_eq!(lines.next_line().expect("ok").as_deref(), Some("cd"));
        assert_eq!(lines.next_line().expect("ok").as_deref(), Some(""));
        let CliError::Usage(m) = lines.next_line().expect_err("too long") else { panic!("not a usage error") };
        assert!(m.starts_with("line 4 of f.txt is larger than 4 bytes"), "{m}");
        let mut lines = CappedLines::new(&b"abcd\r\nabcd"[..], 4, "f");
        assert_eq!(lines.next_line().expect("ok").as_deref(), Some("abcd"));
        assert_eq!(lines.next_line().expect("ok").as_deref(), Some("abcd"));
        assert_eq!(lines.next_line().expect("ok"), None);
        let mut lines = CappedLines::new(std::io::BufReader::new(std::io::repeat(b'y')), 100, "stdin");
        assert!(lines.next_line().is_err());
    }

    #[tokio::test]
    async fn conversation_lines_are_capped_and_skipped() {
        let mut input = &b"hi\nthis line is too long\nok\n"[..];
        assert_eq!(next_line_capped(&mut input, 8).await.expect("a line").expect("ok"), "hi");
        assert!(next_line_capped(&mut input, 8).await.expect("a line").is_err());
        assert_eq!(next_line_capped(&mut input, 8).await.expect("a line").expect("ok"), "ok");
        assert!(next_line_capped(&mut input, 8).await.is_none());
    }
}
