//! Turning a stream of token bytes into text without ever splitting a character.

/// Accumulates token bytes and hands out the longest prefix that is complete UTF-8.
///
/// A character split across tokens (an emoji is often 2–4 byte tokens) stays buffered until its
/// last byte arrives. Bytes that can never become valid UTF-8 come out as U+FFFD.
#[derive(Debug, Default)]
pub(crate) struct Utf8Decoder {
    pending: Vec<u8>,
}

impl Utf8Decoder {
    /// Adds `bytes` and returns the text that is now complete (possibly empty).
    pub(crate) fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(text) => {
                    out.push_str(text);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // Safe split: `valid` bytes are UTF-8 by the error's contract.
                    out.push_str(&String::from_utf8_lossy(&self.pending[..valid]));
                    match e.error_len() {
                        // An incomplete character at the end: wait for more bytes.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        // Invalid bytes: replace them and go on.
                        Some(bad) => {
                            out.push('\u{FFFD}');
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// Ends the stream: whatever is still buffered comes out (lossily).
    pub(crate) fn finish(&mut self) -> String {
        let rest = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_character_split_across_tokens_comes_out_whole() {
        let text = "né 👋🏽 日本";
        let bytes = text.as_bytes();
        // Every way of cutting the bytes in two and in single bytes gives the same text, and no
        // piece handed out is ever broken.
        for cut in 0..=bytes.len() {
            let mut d = Utf8Decoder::default();
            let mut got = d.push(&bytes[..cut]);
            got.push_str(&d.push(&bytes[cut..]));
            got.push_str(&d.finish());
            assert_eq!(got, text, "cut at {cut}");
        }
        let mut d = Utf8Decoder::default();
        let mut pieces = Vec::new();
        for b in bytes {
            pieces.push(d.push(std::slice::from_ref(b)));
        }
        assert!(pieces.iter().all(|p| !p.contains('\u{FFFD}')));
        assert_eq!(pieces.concat(), text);
        assert_eq!(pieces.iter().filter(|p| p.is_empty()).count(), bytes.len() - text.chars().count());
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let mut d = Utf8Decoder::default();
        assert_eq!(d.push(b"a\xFFb"), "a\u{FFFD}b");
        assert_eq!(d.push(b"\xE2\x82"), "");
        assert_eq!(d.finish(), "\u{FFFD}");
    }
}
