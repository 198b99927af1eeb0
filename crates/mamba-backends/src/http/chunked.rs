//! `Transfer-Encoding: chunked`, decoded in place: framing bytes are removed from the buffer
//! the body was read into, so the data is never copied a second time.

use std::fmt;

/// The longest chunk extension accepted after a chunk size, as in hyper: a server sending an
/// endless one sends no data and must not keep the reader busy.
pub(crate) const MAX_EXTENSION: usize = 16 * 1024;
/// The largest trailer section accepted after the last chunk.
pub(crate) const MAX_TRAILERS: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    /// Reading the hex size of the next chunk.
    #[default]
    Size,
    /// After the size: extensions or whitespace until the line end.
    SizeRest,
    /// Inside a chunk's data.
    Data,
    /// After a chunk's data: its CRLF.
    DataEnd,
    /// After the last (empty) chunk: at the start of a trailer line or the final CRLF.
    TrailerStart,
    /// Inside a trailer field line.
    TrailerLine,
    /// The body is complete.
    Done,
}

/// A malformed chunked body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChunkedError(&'static str);

impl fmt::Display for ChunkedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed chunked body: {}", self.0)
    }
}

impl std::error::Error for ChunkedError {}

/// The decoder's state across reads.
#[derive(Debug, Clone, Default)]
pub(crate) struct ChunkedDecoder {
    state: State,
    /// Bytes left in the current chunk, or the size being read.
    size: u64,
    digits: u8,
    /// Bytes of the current size line's extensions, or of the trailer section.
    extra: usize,
}

/// What one call decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decoded {
    /// Data bytes now at the end of the buffer (from the `from` position).
    pub(crate) data: usize,
    /// The body ended in this call.
    pub(crate) done: bool,
    /// Bytes that followed the end of the body (the connection cannot be reused).
    pub(crate) excess: usize,
}

impl ChunkedDecoder {
    #[cfg(test)]
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes `buf[from..]` in place: on return `buf[from..from + data]` holds the chunk data
    /// and the buffer is truncated there.
    pub(crate) fn decode(&mut self, buf: &mut Vec<u8>, from: usize) -> Result<Decoded, ChunkedError> {
        let end = buf.len();
        let mut read = from;
        let mut write = from;
        while read < end {
            match self.state {
                State::Size => {
                    let b = buf[read];
                    read += 1;
                    match b {
                        b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                            let digit = (b as char).to_digit(16).unwrap_or(0) as u64;
                            if self.digits >= 15 {
                                return Err(ChunkedError("chunk size too large"));
                            }
                            self.size = self.size * 16 + digit;
                            self.digits += 1;
                        }
                        b'\r' | b' ' | b'\t' | b';' if self.digits > 0 => self.state = State::SizeRest,
                        b'\n' if self.digits > 0 => self.end_size_line(),
                        _ => return Err(ChunkedError("invalid chunk size")),
                    }
                }
                State::SizeRest => {
                    let b = buf[read];
                    read += 1;
                    if b == b'\n' {
                        self.end_size_line();
                    } else {
                        self.extra += 1;
                        if self.extra > MAX_EXTENSION {
                            return Err(ChunkedError("a chunk extension is longer than 16 KiB"));
                        }
                    }
                }
                State::Data => {
                    let take = (self.size.min((end - read) as u64)) as usize;
                    buf.copy_within(read..read + take, write);
                    read += take;
                    write += take;
                    self.size -= take as u64;
                    if self.size == 0 {
                        self.state = State::DataEnd;
                    }
                }
                State::DataEnd => {
                    let b = buf[read];
                    read += 1;
                    match b {
                        b'\r' => {}
                        b'\n' => self.state = State::Size,
                        _ => return Err(ChunkedError("missing CRLF after chunk data")),
                    }
                }
                State::TrailerStart => {
                    let b = buf[read];
                    read += 1;
                    self.count_trailer()?;
                    match b {
                        b'\r' => {}
                        b'\n' => self.state = State::Done,
                        _ => self.state = State::TrailerLine,
                    }
                }
                State::TrailerLine => {
                    let b = buf[read];
                    read += 1;
                    self.count_trailer()?;
                    if b == b'\n' {
                        self.state = State::TrailerStart;
                    }
                }
                State::Done => break,
            }
        }
        let excess = end - read;
        buf.truncate(write);
        Ok(Decoded { data: write - from, done: self.state == State::Done, excess })
    }

    fn count_trailer(&mut self) -> Result<(), ChunkedError> {
        self.extra += 1;
        if self.extra > MAX_TRAILERS {
            return Err(ChunkedError("the trailers are longer than 16 KiB"));
        }
        Ok(())
    }

    fn end_size_line(&mut self) {
        self.digits = 0;
        self.extra = 0;
        self.state = if self.size == 0 { State::TrailerStart } else { State::Data };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in `pieces`, as a body reader would.
    fn decode(pieces: &[&[u8]]) -> Result<(Vec<u8>, bool, usize), ChunkedError> {
        let mut d = ChunkedDecoder::default();
        let mut out = b"prefix".to_vec();
        let mut excess = 0;
        for piece in pieces {
            let from = out.len();
            out.extend_from_slice(piece);
            let r = d.decode(&mut out, from)?;
            assert_eq!(out.len(), from + r.data);
            excess += r.excess;
        }
        Ok((out[6..].to_vec(), d.is_done(), excess))
    }

    #[test]
    fn every_split_point() {
        let body: &[u8] =
            b"5\r\nhello\r\n7;ext=1\r\n, world\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nTrailer: x\r\n\r\n";
        let whole = decode(&[body]).unwrap();
        assert_eq!(whole, (b"hello, worldabcdefghijklmnopqrstuvwxyz".to_vec(), true, 0));
        for i in 0..=body.len() {
            for j in i..=body.len() {
                assert_eq!(decode(&[&body[..i], &body[i..j], &body[j..]]).unwrap(), whole, "split {i},{j}");
            }
        }
    }

    #[test]
    fn bare_lf_and_uppercase_hex() {
        assert_eq!(decode(&[b"A\nabcdefghij\n0\n\n"]).unwrap(), (b"abcdefghij".to_vec(), true, 0));
    }

    #[test]
    fn incomplete_and_excess() {
        assert_eq!(decode(&[b"5\r\nhel"]).unwrap(), (b"hel".to_vec(), false, 0));
        assert_eq!(decode(&[b"0\r\n\r\nEXTRA"]).unwrap(), (Vec::new(), true, 5));
    }

    #[test]
    fn endless_extensions_and_trailers_are_refused() {
        let mut long_ext = b"5;".to_vec();
        long_ext.extend(std::iter::repeat_n(b'x', MAX_EXTENSION + 1));
        assert_eq!(decode(&[&long_ext]).unwrap_err(), ChunkedError("a chunk extension is longer than 16 KiB"));
        // Extensions below the cap on every chunk are fine.
        let mut ok = Vec::new();
        for _ in 0..10 {
            ok.extend_from_slice(b"1;");
            ok.extend(std::iter::repeat_n(b'e', MAX_EXTENSION - 2));
            ok.extend_from_slice(b"\r\na\r\n");
        }
        ok.extend_from_slice(b"0\r\n\r\n");
        assert_eq!(decode(&[&ok]).unwrap(), (b"aaaaaaaaaa".to_vec(), true, 0));
        let mut trailers = b"0\r\n".to_vec();
        for _ in 0..2000 {
            trailers.extend_from_slice(b"x-t: 0123456789\r\n");
        }
        let e = decode(&[&trailers]).unwrap_err();
        assert_eq!(e, ChunkedError("the trailers are longer than 16 KiB"));
    }

    #[test]
    fn malformed() {
        assert!(decode(&[b"zz\r\n"]).is_err());
        assert!(decode(&[b"\r\n"]).is_err());
        assert!(decode(&[b"2\r\nabX"]).is_err());
        assert!(decode(&[b"ffffffffffffffff\r\n"]).is_err());
    }
}
