//! A direct reader for the common shapes of chat-completion JSON.
//!
//! serde's derived readers cost several thousand instructions per stream event (a field
//! match per key, a visitor per value, moves of the large lenient structs). This reader walks
//! the bytes once and fills the same [`WireResponse`] for the shapes servers actually send: a
//! top-level object of `id`, `model`, `choices`, `usage` and members it skips; choices with
//! `index`, `delta`/`message`, `finish_reason`, `text`; messages with string content,
//! reasoning and refusal. It gives up (`None`) on everything else — a tool call, content
//! parts, an error, an escaped key, a duplicate key, an unusual number, an escape in a
//! skipped string, deep nesting — and the caller then runs serde, so the answer for any
//! input is serde's. The input must be valid UTF-8 (a `&str`): strings are borrowed as they
//! are, and those with escapes are decoded by serde_json.
//!
//! Every reader ends in a struct literal naming each field of its wire type (the wire types
//! have no `Default`), so a field added to `wire.rs` does not compile until this reader says
//! how it reads it. Tests compare the two readers with `==` on every recorded stream, on
//! mutated copies of them, and on generated events (`differential_tests.rs`).

use std::borrow::Cow;

use super::wire::{
    LenientContent, LenientCount, LenientList, LenientObject, LenientStr, WireChoice, WireDetails, WireMessage,
    WireResponse, WireUsage,
};

/// Deeper skipped values are left to serde.
const MAX_DEPTH: usize = 16;

/// Reads a chat-completion object (a whole answer or a stream event), here when it can, else
/// with serde: the same result and the same errors either way.
pub(crate) fn wire_response(bytes: &[u8]) -> serde_json::Result<WireResponse<'_>> {
    match std::str::from_utf8(bytes) {
        Ok(text) => match response(text) {
            Some(wire) => Ok(wire),
            None => serde_json::from_str(text),
        },
        // serde_json says where the bad byte is.
        Err(_) => serde_json::from_slice(bytes),
    }
}

/// Reads `text` as a chat-completion object; `None` when serde must.
pub(crate) fn response(text: &str) -> Option<WireResponse<'_>> {
    response_with_keys(text).map(|(wire, _)| wire)
}

/// [`response`], and the known top-level keys `text` has.
pub(crate) fn response_with_keys(text: &str) -> Option<(WireResponse<'_>, TopKeys)> {
    let mut s = Scanner { b: text.as_bytes(), text, pos: 0 };
    let read = s.response()?;
    s.ws();
    (s.pos == s.b.len()).then_some(read)
}

/// A set of the top-level keys serde reads in a chat-completion object (each at most once:
/// serde refuses a duplicate). Unknown keys are skipped, twice or not, so they are not here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TopKeys(u16);

impl TopKeys {
    pub(crate) const ID: TopKeys = TopKeys(1);
    pub(crate) const MODEL: TopKeys = TopKeys(1 << 1);
    pub(crate) const CHOICES: TopKeys = TopKeys(1 << 2);
    pub(crate) const USAGE: TopKeys = TopKeys(1 << 3);
    pub(crate) const ERROR: TopKeys = TopKeys(1 << 4);
    /// Each key, and its name as an unescaped JSON string token.
    pub(crate) const NAMED: [(TopKeys, &'static [u8]); 5] = [
        (TopKeys::ID, b"\"id\""),
        (TopKeys::MODEL, b"\"model\""),
        (TopKeys::CHOICES, b"\"choices\""),
        (TopKeys::USAGE, b"\"usage\""),
        (TopKeys::ERROR, b"\"error\""),
    ];

    /// Both sets together.
    pub(crate) fn with(self, other: TopKeys) -> TopKeys {
        TopKeys(self.0 | other.0)
    }

    /// True when the sets have a key in common.
    pub(crate) fn shares(self, other: TopKeys) -> bool {
        self.0 & other.0 != 0
    }
}

/// The index of the closing quote of the JSON string whose text starts at `from`, and whether
/// the text has escapes (which it skips, unjudged). `None` when the string does not end, or
/// holds a control character (invalid in JSON strings).
pub(crate) fn string_end(bytes: &[u8], from: usize) -> Option<(usize, bool)> {
    // A byte loop: keys and most values are a few bytes long, shorter than a vectorised search
    // needs to pay off.
    let mut i = from;
    let mut escaped = false;
    while let Some(&c) = bytes.get(i) {
        match c {
            b'"' => return Some((i, escaped)),
            b'\\' => {
                escaped = true;
                i += 2;
            }
            0..=0x1f => return None,
            _ => i += 1,
        }
    }
    None
}

struct Scanner<'a> {
    b: &'a [u8],
    text: &'a str,
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.ws();
        self.b[self.pos..].starts_with(word).then(|| self.pos += word.len())
    }

    /// `null` (consumed) → true; anything else is left in place → false.
    fn null(&mut self) -> bool {
        self.literal(b"null").is_some()
    }

    /// The members of an object, each handed to `member` with its key; `member` reads the
    /// value. Keys with escapes are left to serde.
    fn object(&mut self, mut member: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            let (key, escaped) = self.string_token()?;
            if escaped {
                return None;
            }
            self.eat(b':')?;
            member(self, key)?;
            match self.peek()? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// The elements of an array, each read by `element`.
    fn array(&mut self, mut element: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.eat(b'[')?;
        if self.eat(b']').is_some() {
            return Some(());
        }
        loop {
            element(self)?;
            match self.peek()? {
                b',' => self.pos += 1,
                b']' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A string's text between its quotes, and whether it has escapes. Control characters
    /// (invalid in JSON strings) are left to serde.
    fn string_token(&mut self) -> Option<(&'a str, bool)> {
        self.eat(b'"')?;
        let start = self.pos;
        let (end, escaped) = string_end(self.b, start)?;
        self.pos = end + 1;
        // Quotes are ASCII, so these are character boundaries.
        Some((&self.text[start..end], escaped))
    }

    /// A string value, decoded.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        let open = self.pos_of_next();
        let (text, escaped) = self.string_token()?;
        if !escaped {
            return Some(Cow::Borrowed(text));
        }
        serde_json::from_str::<String>(&self.text[open..self.pos]).ok().map(Cow::Owned)
    }

    fn pos_of_next(&mut self) -> usize {
        self.ws();
        self.pos
    }

    /// A string or null.
    fn lenient_str(&mut self) -> Option<LenientStr<'a>> {
        if self.null() {
            return Some(LenientStr(None));
        }
        Some(LenientStr(Some(self.string()?)))
    }

    /// A non-negative integer that fits in 18 digits, or null.
    fn count(&mut self) -> Option<LenientCount> {
        if self.null() {
            return Some(LenientCount(None));
        }
        let start = self.pos_of_next();
        let digits = self.b[start..].iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || digits > 18 || (digits > 1 && self.b[start] == b'0') {
            return None;
        }
        if matches!(self.b.get(start + digits), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        self.pos = start + digits;
        self.text[start..self.pos].parse().ok().map(|n| LenientCount(Some(n)))
    }

    /// Skips any value serde would skip, within the limits above.
    fn skip(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'n' => self.literal(b"null"),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'"' => match self.string_token()? {
                (_, false) => Some(()),
                (_, true) => None,
            },
            b'{' => self.object(|s, _| s.skip(depth + 1)),
            b'[' => self.array(|s| s.skip(depth + 1)),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// A number in JSON's grammar, without an exponent.
    fn number(&mut self) -> Option<()> {
        let mut i = self.pos;
        if self.b.get(i) == Some(&b'-') {
            i += 1;
        }
        let int = self.b[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        if int == 0 || int > 18 || (int > 1 && self.b[i] == b'0') {
            return None;
        }
        i += int;
        if self.b.get(i) == Some(&b'.') {
            let frac = self.b[i + 1..].iter().take_while(|b| b.is_ascii_digit()).count();
            if frac == 0 || frac > 18 {
                return None;
            }
            i += 1 + frac;
        }
        if matches!(self.b.get(i), Some(b'e' | b'E')) {
            return None;
        }
        self.pos = i;
        Some(())
    }

    // Each reader below ends in a struct literal that names every field of the wire type, so
    // a field added to `wire.rs` does not compile here until the reader says how it reads it
    // (or that it leaves the key to serde).

    /// The object, and its known keys (the bits of [`TopKeys`]).
    fn response(&mut self) -> Option<(WireResponse<'a>, TopKeys)> {
        let (mut id, mut model) = (LenientStr(None), LenientStr(None));
        let (mut choices, mut usage) = (LenientList(Vec::new()), LenientObject(None));
        let mut seen = Seen::default();
        self.object(|s, key| match key {
            "id" => seen.put(0, &mut id, s.lenient_str()),
            "model" => seen.put(1, &mut model, s.lenient_str()),
            "choices" => {
                seen.once(2)?;
                if !s.null() {
                    let mut list = Vec::with_capacity(1);
                    s.array(|s| {
                        list.push(s.choice()?);
                        Some(())
                    })?;
                    choices = LenientList(list);
                }
                Some(())
            }
            "usage" => {
                seen.once(3)?;
                if !s.null() {
                    usage = LenientObject(Some(s.usage()?));
                }
                Some(())
            }
            // An error frame is serde's to read.
            "error" => {
                seen.once(4)?;
                s.null().then_some(())
            }
            _ => s.skip(1),
        })?;
        Some((WireResponse { id, model, choices, usage, error: None }, TopKeys(seen.0)))
    }

    fn choice(&mut self) -> Option<WireChoice<'a>> {
        let (mut index, mut finish_reason, mut text) = (LenientCount(None), LenientStr(None), LenientStr(None));
        let (mut delta, mut message) = (LenientObject(None), LenientObject(None));
        let mut seen = Seen::default();
        self.object(|s, key| match key {
            "index" => seen.put(0, &mut index, s.count()),
            "delta" => seen.put(1, &mut delta, s.message()),
            "message" => seen.put(2, &mut message, s.message()),
            "finish_reason" => seen.put(3, &mut finish_reason, s.lenient_str()),
            "text" => seen.put(4, &mut text, s.lenient_str()),
            _ => s.skip(2),
        })?;
        Some(WireChoice { index, message, delta, finish_reason, text })
    }

    fn message(&mut self) -> Option<LenientObject<WireMessage<'a>>> {
        if self.null() {
            return Some(LenientObject(None));
        }
        let mut content = LenientContent { text: None, thinking: None };
        let (mut reasoning_content, mut reasoning, mut refusal) =
            (LenientStr(None), LenientStr(None), LenientStr(None));
        let mut seen = Seen::default();
        self.object(|s, key| match key {
            "content" => {
                seen.once(0)?;
                if !s.null() {
                    content = LenientContent { text: Some(s.string()?), thinking: None };
                }
                Some(())
            }
            "reasoning_content" => seen.put(1, &mut reasoning_content, s.lenient_str()),
            "reasoning" => seen.put(2, &mut reasoning, s.lenient_str()),
            "refusal" => seen.put(3, &mut refusal, s.lenient_str()),
            // Tool calls are serde's to read; none at all is the common case.
            "tool_calls" => {
                seen.once(4)?;
                if !s.null() {
                    s.array(|_| None)?;
                }
                Some(())
            }
            "function_call" => {
                seen.once(5)?;
                s.null().then_some(())
            }
            _ => s.skip(3),
        })?;
        Some(LenientObject(Some(WireMessage {
            content,
            reasoning_content,
            reasoning,
            // Only `null` or `[]` get here.
            tool_calls: LenientList(Vec::new()),
            // Only `null` gets here.
            function_call: LenientObject(None),
            refusal,
        })))
    }

    fn usage(&mut self) -> Option<WireUsage> {
        let [mut prompt_tokens, mut completion_tokens, mut total_tokens, mut input_tokens, mut output_tokens, mut prompt_cache_hit_tokens] =
            [LenientCount(None); 6];
        let (mut prompt_tokens_details, mut completion_tokens_details) = (LenientObject(None), LenientObject(None));
        let mut seen = Seen::default();
        self.object(|s, key| match key {
            "prompt_tokens" => seen.put(0, &mut prompt_tokens, s.count()),
            "completion_tokens" => seen.put(1, &mut completion_tokens, s.count()),
            "total_tokens" => seen.put(2, &mut total_tokens, s.count()),
            "input_tokens" => seen.put(3, &mut input_tokens, s.count()),
            "output_tokens" => seen.put(4, &mut output_tokens, s.count()),
            "prompt_cache_hit_tokens" => seen.put(5, &mut prompt_cache_hit_tokens, s.count()),
            "prompt_tokens_details" => seen.put(6, &mut prompt_tokens_details, s.details()),
            "completion_tokens_details" => seen.put(7, &mut completion_tokens_details, s.details()),
            _ => s.skip(2),
        })?;
        Some(WireUsage {
            prompt_tokens,
            completion_tokens,
            total_tokens,
            input_tokens,
            output_tokens,
            prompt_tokens_details,
            completion_tokens_details,
            prompt_cache_hit_tokens,
        })
    }

    fn details(&mut self) -> Option<LenientObject<WireDetails>> {
        if self.null() {
            return Some(LenientObject(None));
        }
        let (mut cached_tokens, mut reasoning_tokens) = (LenientCount(None), LenientCount(None));
        let mut seen = Seen::default();
        self.object(|s, key| match key {
            "cached_tokens" => seen.put(0, &mut cached_tokens, s.count()),
            "reasoning_tokens" => seen.put(1, &mut reasoning_tokens, s.count()),
            _ => s.skip(3),
        })?;
        Some(LenientObject(Some(WireDetails { cached_tokens, reasoning_tokens })))
    }
}

/// The known keys of one object already read: serde refuses a duplicate.
#[derive(Default)]
struct Seen(u16);

impl Seen {
    fn once(&mut self, bit: u8) -> Option<()> {
        let mask = 1 << bit;
        if self.0 & mask != 0 {
            return None;
        }
        self.0 |= mask;
        Some(())
    }

    /// Stores the value read for key `bit` in `slot`; `None` when the key came before or the
    /// value could not be read.
    fn put<T>(&mut self, bit: u8, slot: &mut T, value: Option<T>) -> Option<()> {
        self.once(bit)?;
        *slot = value?;
        Some(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Whether the direct reader reads `json`; when it does, it must read what serde reads
    /// (and serde must accept it), else this panics. Shared with `replay_tests.rs`.
    pub(crate) fn same_as_serde(json: &str) -> bool {
        let Some(direct) = response(json) else { return false };
        match serde_json::from_str::<WireResponse<'_>>(json) {
            Ok(serde) => assert!(direct == serde, "{json}\ndirect: {direct:?}\nserde: {serde:?}"),
            Err(e) => panic!("the direct reader accepts what serde refuses ({e}): {json}\n{direct:?}"),
        }
        true
    }

    #[test]
    fn common_events_are_read_as_serde_reads_them() {
        for json in [
            r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","system_fingerprint":"fp","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{"content":"a \"b\" \u00e9\n"},"finish_reason":null}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}"#,
            r#"{"id":"c1","choices":[],"usage":{"prompt_tokens":16,"completion_tokens":16,"total_tokens":32,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":3}}}"#,
            r#" { "choices" : [ { "index" : 0 , "delta" : { "reasoning_content" : "hm" , "content" : null } } ] , "timings" : { "a" : -1.5 , "b" : [ true , false , null , "x" ] } } "#,
            r#"{"choices":[{"text":"legacy","index":0,"finish_reason":null}],"model":"m"}"#,
            r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"whole","tool_calls":[]},"finish_reason":"stop"}],"usage":{"input_tokens":1,"output_tokens":2}}"#,
            r#"{"choices":null,"id":null,"model":null,"error":null}"#,
            r#"{}"#,
        ] {
            assert!(same_as_serde(json), "not read: {json}");
        }
    }

    #[test]
    fn unusual_shapes_are_left_to_serde() {
        for json in [
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"f"}}]}}]}"#,
            r#"{"choices":[{"delta":{"content":[{"type":"text","text":"a"}]}}]}"#,
            r#"{"choices":[{"delta":{"function_call":{"name":"f"}}}]}"#,
            r#"{"error":{"message":"boom"}}"#,
            r#"{"id":"a","id":"b"}"#,
            r#"{"\u0069d":"a"}"#,
            r#"{"choices":[{"index":"0"}]}"#,
            r#"{"choices":[{"index":1.0}]}"#,
            r#"{"choices":[{"index":-1}]}"#,
            r#"{"model":7}"#,
            r#"{"created":1e3}"#,
            r#"{"created":01}"#,
            r#"{"x":"a\nb"}"#,
            r#"{"x":"\"escaped in a skipped string\""}"#,
            r#"{"x":[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]}"#,
            "{\"x\":\"raw \u{1} control\"}",
            r#"{"id":"a"} trailing"#,
            r#"{"id":"a",}"#,
            r#"[1]"#,
            r#"{"id":"a""#,
        ] {
            assert!(!same_as_serde(json), "read: {json}");
        }
    }
}
