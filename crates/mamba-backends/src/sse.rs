//! A server-sent events decoder over any byte stream, following the WHATWG event-stream
//! grammar: lines end in CR, LF or CRLF (also when the CR and LF arrive in different reads);
//! `:` lines are comments (llama.cpp pings, `: OPENROUTER PROCESSING`, `: keep-alive`);
//! `data:` with or without a space; several `data:` lines join with `\n`; `event:`, `id:` and
//! `retry:` are read and ignored except the event name; a blank line dispatches; a leading BOM
//! is dropped; the unterminated tail is dispatched at the end.
//!
//! It works on bytes, so a UTF-8 character split across reads needs no care: only the JSON
//! parser sees the text, once the event is whole. Events borrow from the decoder, so the common
//! single-line event costs no allocation and no copy.

use memchr::memchr2;

/// The longest event accepted, in bytes; a server that sends more without a line end is broken.
pub(crate) const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// One dispatched event.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Event<'a> {
    /// The data lines, joined with `\n`.
    pub(crate) data: &'a [u8],
    /// True when the event had `event: error`.
    pub(crate) is_error_event: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Data {
    /// No data line yet.
    #[default]
    None,
    /// One data line, still in the input buffer at this range.
    Range(usize, usize),
    /// Several lines (or one that had to outlive a compaction), joined in `joined`.
    Joined,
}

/// The decoder. Append bytes to [`buffer`](SseDecoder::buffer), take events with
/// [`next_event`](SseDecoder::next_event), and at the end of input call
/// [`finish`](SseDecoder::finish) to get the unterminated tail.
#[derive(Debug, Default)]
pub(crate) struct SseDecoder {
    buf: Vec<u8>,
    /// Bytes of `buf` before this are consumed.
    start: usize,
    data: Data,
    joined: Vec<u8>,
    error_event: bool,
    /// The previous line ended in CR; an LF right after it belongs to that line end.
    skip_lf: bool,
    seen_first_byte: bool,
    at_eof: bool,
    /// Lines that are no SSE field at all (a non-SSE body).
    foreign_lines: usize,
}

/// Why decoding failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooLong;

impl SseDecoder {
    pub(crate) fn new() -> SseDecoder {
        SseDecoder::default()
    }

    /// Appends input. Call [`next_event`](SseDecoder::next_event) until it returns `None`
    /// before pushing again, so that every event is seen.
    #[cfg(test)]
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.buffer().extend_from_slice(bytes);
    }

    /// The buffer to append input to (already-consumed bytes are dropped first), so a reader
    /// can receive straight into it.
    pub(crate) fn buffer(&mut self) -> &mut Vec<u8> {
        if self.start > 0 {
            self.compact();
        }
        &mut self.buf
    }

    /// Marks the end of input: the unterminated last line and event are then dispatched.
    pub(crate) fn finish(&mut self) {
        self.at_eof = true;
    }

    /// True when no unconsumed input is buffered.
    #[cfg(test)]
    pub(crate) fn is_drained(&self) -> bool {
        self.start >= self.buf.len() && self.data == Data::None
    }

    fn compact(&mut self) {
        if let Data::Range(a, b) = self.data {
            self.joined.clear();
            self.joined.extend_from_slice(&self.buf[a..b]);
            self.data = Data::Joined;
        }
        self.buf.drain(..self.start);
        self.start = 0;
    }

    /// The next complete event, if the input holds one.
    pub(crate) fn next_event(&mut self) -> Result<Option<Event<'_>>, TooLong> {
        if !self.seen_first_byte {
            const BOM: &[u8] = b"\xEF\xBB\xBF";
            let rest = &self.buf[self.start..];
            if rest.len() < BOM.len() && BOM.starts_with(rest) && !self.at_eof {
                return Ok(None);
            }
            self.seen_first_byte = true;
            if rest.starts_with(BOM) {
                self.start += BOM.len();
            }
        }
        loop {
            if self.skip_lf && self.start < self.buf.len() {
                if self.buf[self.start] == b'\n' {
                    self.start += 1;
                }
                self.skip_lf = false;
            }
            let rest = &self.buf[self.start..];
            let (line_end, next) = match memchr2(b'\n', b'\r', rest) {
                Some(i) => {
                    let next = if rest[i] == b'\r' {
                        if i + 1 < rest.len() {
                            if rest[i + 1] == b'\n' {
                                i + 2
                            } else {
                                i + 1
                            }
                        } else {
                            self.skip_lf = true;
                            i + 1
                        }
                    } else {
                        i + 1
                    };
                    (self.start + i, self.start + next)
                }
                None if self.at_eof && !rest.is_empty() => (self.buf.len(), self.buf.len()),
                None if self.at_eof => {
                    // End of input: dispatch what is pending even without its blank line.
                    if !self.has_data() {
                        self.data = Data::None;
                        return Ok(None);
                    }
                    return Ok(Some(self.dispatch()));
                }
                None => {
                    let pending = rest.len() + if self.data == Data::Joined { self.joined.len() } else { 0 };
                    if pending > MAX_EVENT_BYTES {
                        return Err(TooLong);
                    }
                    return Ok(None);
                }
            };
            let line_start = self.start;
            self.start = next;
            if line_end == line_start {
                if self.has_data() {
                    return Ok(Some(self.dispatch()));
                }
                // An event without data (or with only empty `data:` lines) carries nothing.
                self.data = Data::None;
                self.error_event = false;
                continue;
            }
            let line = &self.buf[line_start..line_end];
            if line[0] == b':' {
                continue;
            }
            let (field, value_start) = match memchr::memchr(b':', line) {
                Some(colon) => {
                    let mut v = colon + 1;
                    if line.get(v) == Some(&b' ') {
                        v += 1;
                    }
                    (&line[..colon], line_start + v)
                }
                None => (line, line_end),
            };
            match field {
                b"data" => self.add_data(value_start, line_end),
                b"event" => self.error_event = &self.buf[value_start..line_end] == b"error",
                b"id" | b"retry" => {}
                _ => self.foreign_lines += 1, // ignored, as the spec says, but counted
            }
        }
    }

    /// How many lines were not SSE fields (`<html>`, a JSON body, …).
    pub(crate) fn foreign_lines(&self) -> usize {
        self.foreign_lines
    }

    fn has_data(&self) -> bool {
        match self.data {
            Data::None => false,
            Data::Range(a, b) => b > a,
            Data::Joined => !self.joined.is_empty(),
        }
    }

    fn add_data(&mut self, a: usize, b: usize) {
        match self.data {
            Data::None => self.data = Data::Range(a, b),
            Data::Range(pa, pb) => {
                self.joined.clear();
                self.joined.extend_from_slice(&self.buf[pa..pb]);
                self.joined.push(b'\n');
                self.joined.extend_from_slice(&self.buf[a..b]);
                self.data = Data::Joined;
            }
            Data::Joined => {
                self.joined.push(b'\n');
                self.joined.extend_from_slice(&self.buf[a..b]);
            }
        }
    }

    fn dispatch(&mut self) -> Event<'_> {
        let data = std::mem::replace(&mut self.data, Data::None);
        let is_error_event = std::mem::take(&mut self.error_event);
        let data = match data {
            Data::Range(a, b) => &self.buf[a..b],
            Data::Joined => &self.joined[..],
            Data::None => &[][..],
        };
        Event { data, is_error_event }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `pieces` fed one after another; returns the data of every event.
    fn decode(pieces: &[&[u8]]) -> Vec<String> {
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        for p in pieces {
            d.push(p);
            while let Some(e) = d.next_event().unwrap() {
                out.push(String::from_utf8(e.data.to_vec()).unwrap());
            }
        }
        d.finish();
        while let Some(e) = d.next_event().unwrap() {
            out.push(String::from_utf8(e.data.to_vec()).unwrap());
        }
        out
    }

    fn every_split(input: &[u8]) -> Vec<String> {
        let whole = decode(&[input]);
        for i in 0..=input.len() {
            assert_eq!(
                decode(&[&input[..i], &input[i..]]),
                whole,
                "split at {i} of {:?}",
                String::from_utf8_lossy(input)
            );
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(decode(&bytes), whole, "byte by byte");
        whole
    }

    #[test]
    fn basic_framing() {
        assert_eq!(every_split(b"data: {\"a\":1}\n\ndata: [DONE]\n\n"), vec!["{\"a\":1}", "[DONE]"]);
    }

    #[test]
    fn data_without_space_and_extra_spaces() {
        assert_eq!(every_split(b"data:{\"a\":1}\n\ndata:  two\n\n"), vec!["{\"a\":1}", " two"]);
    }

    #[test]
    fn line_endings_cr_lf_crlf() {
        assert_eq!(every_split(b"data: a\r\n\r\ndata: b\r\rdata: c\n\ndata: d\r\n\n"), vec!["a", "b", "c", "d"]);
    }

    #[test]
    fn comments_event_id_retry_are_skipped() {
        let input = b": OPENROUTER PROCESSING\n\n:\n\n: ping - 2026-11-25 14:34:12\r\nevent: message\nid: 7\nretry: 100\ndata: x\n\n";
        assert_eq!(every_split(input), vec!["x"]);
    }

    #[test]
    fn multi_line_data_joins_with_newline() {
        assert_eq!(every_split(b"data: {\"a\":\ndata: 1}\n\n"), vec!["{\"a\":\n1}"]);
        assert_eq!(every_split(b"data: a\ndata:\ndata: b\n\n"), vec!["a\n\nb"]);
    }

    #[test]
    fn unterminated_tail_is_dispatched() {
        assert_eq!(every_split(b"data: a\n\ndata: [DONE]"), vec!["a", "[DONE]"]);
        assert_eq!(every_split(b"data: a\n\ndata: [DONE]\n"), vec!["a", "[DONE]"]);
        assert_eq!(every_split(b"data: a\r"), vec!["a"]);
    }

    #[test]
    fn utf8_split_anywhere() {
        let input = "data: {\"c\":\"héllo 🙂 wörld\"}\n\n".as_bytes();
        assert_eq!(every_split(input), vec!["{\"c\":\"héllo 🙂 wörld\"}"]);
    }

    #[test]
    fn bom_and_blank_lines_and_field_without_colon() {
        assert_eq!(every_split(b"\xEF\xBB\xBF\n\n\ndata: a\n\ndata\n\n"), vec!["a"]);
    }

    #[test]
    fn error_event_name_is_reported() {
        let mut d = SseDecoder::new();
        d.push(b"event: error\ndata: {\"message\":\"x\"}\n\ndata: y\n\n");
        let e = d.next_event().unwrap().unwrap();
        assert!(e.is_error_event);
        let e = d.next_event().unwrap().unwrap();
        assert!(!e.is_error_event);
        assert!(d.next_event().unwrap().is_none());
        assert!(d.is_drained());
    }

    #[test]
    fn overlong_line_is_an_error_not_unbounded_memory() {
        let mut d = SseDecoder::new();
        let chunk = vec![b'x'; 1024 * 1024];
        let mut failed = false;
        for _ in 0..20 {
            d.push(&chunk);
            if d.next_event().is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed);
    }

    #[test]
    fn pending_event_survives_compaction() {
        let mut d = SseDecoder::new();
        d.push(b"data: first\n\ndata: sec");
        assert_eq!(d.next_event().unwrap().unwrap().data, b"first");
        assert!(d.next_event().unwrap().is_none());
        d.push(b"ond\ndata: more\n");
        assert!(d.next_event().unwrap().is_none());
        d.push(b"\n");
        assert_eq!(d.next_event().unwrap().unwrap().data, b"second\nmore");
    }
}
