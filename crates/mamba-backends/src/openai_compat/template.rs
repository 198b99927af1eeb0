//! Reading the common stream event without a JSON parser.
//!
//! Most events of a streamed answer are the same bytes apart from one string: the piece of
//! content (`{"id":"c1",…,"choices":[{"index":0,"delta":{"content":"PIECE"},…}],…}`). Once one
//! such event has been read in full, its bytes before and after that string are a template:
//! a later event made of the same bytes around another valid JSON string means exactly what
//! the first meant with the other text, so it is answered by two comparisons and a scan for
//! the closing quote instead of a parse (a tenth of the work; the server's prefix, choices and
//! nulls are compared, never trusted).
//!
//! A template is only learnt after a proof: the candidate string is replaced by a marker and
//! the result parsed in full; the marker must come back as the content of a plain piece (no
//! error, no usage, no finish reason, no reasoning, no tool call) and nothing else may say
//! otherwise. Anything else — another shape, an escape the scan cannot judge, a control
//! character — goes to the full parse, which gives the answer and the errors it always gave.

use std::borrow::Cow;
use std::sync::LazyLock;

use memchr::memmem::Finder;

use super::scan::{string_end, wire_response};
use super::wire::WireResponse;

/// The marker put in place of the candidate string while learning (as JSON text, and decoded).
const MARKER_JSON: &[u8] = b"mamba\\u0000template";
const MARKER: &str = "mamba\u{0}template";

/// Learning attempts per stream: a stream whose events all differ (a counter in every event)
/// stops trying, so it costs at most this many extra parses.
const LEARN_BUDGET: u8 = 3;

/// Keys whose string value can be the piece of text (`delta.content`, and `text` for legacy
/// text completions).
const KEYS: [&[u8]; 2] = [b"\"content\":", b"\"text\":"];

/// The checked prefix of the event being learnt (see `PrefixCache` in `response.rs`): its
/// length (up to `,"choices":`) and its `model` and `id`. The proof then parses only what
/// follows it, as the stream parser itself does.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KnownPrefix<'a> {
    pub(crate) len: usize,
    pub(crate) model: Option<&'a str>,
    pub(crate) id: Option<&'a str>,
}

#[derive(Debug)]
pub(crate) struct ContentTemplate {
    /// The event's bytes up to and including the opening quote of the piece; empty when no
    /// template is learnt.
    before: Vec<u8>,
    /// From the closing quote of the piece to the end of the event.
    after: Vec<u8>,
    /// The event's `model` and `id`, when it has them.
    pub(crate) model: Option<String>,
    pub(crate) id: Option<String>,
    budget: u8,
}

impl Default for ContentTemplate {
    fn default() -> Self {
        ContentTemplate { before: Vec::new(), after: Vec::new(), model: None, id: None, budget: LEARN_BUDGET }
    }
}

impl ContentTemplate {
    /// [`learn`](Self::learn) without a known prefix.
    #[cfg(test)]
    fn learn_whole(&mut self, event: &[u8]) -> bool {
        self.learn(event, None)
    }

    /// A template that never learns (to compare with the full parse in tests).
    #[cfg(test)]
    pub(crate) fn disabled() -> ContentTemplate {
        ContentTemplate { budget: 0, ..ContentTemplate::default() }
    }

    /// True when a template is learnt.
    #[cfg(test)]
    pub(crate) fn is_learnt(&self) -> bool {
        !self.before.is_empty()
    }

    /// The piece of text of an event of the learnt shape, decoded; `None` when the event has
    /// another shape, or a string the full parse must judge.
    pub(crate) fn matches<'e>(&self, event: &'e [u8]) -> Option<Cow<'e, str>> {
        let start = self.before.len();
        if start == 0 || event.len() < start + self.after.len() || !event.starts_with(&self.before) {
            return None;
        }
        let (end, escaped) = string_end(event, start)?;
        if event[end..] != self.after[..] {
            return None;
        }
        decode(&event[start - 1..=end], escaped)
    }

    /// Tries to learn the shape of `event`, a whole event that parsed into a plain piece of
    /// text. Returns whether it did.
    pub(crate) fn learn(&mut self, event: &[u8], prefix: Option<KnownPrefix<'_>>) -> bool {
        if self.budget == 0 {
            return false;
        }
        self.budget -= 1;
        // With a known prefix, the candidate is looked for after it and the proof parses `{`
        // and what follows the prefix.
        let skip = prefix.map_or(0, |p| p.len);
        let mut probe = Vec::with_capacity(event.len() + MARKER_JSON.len());
        static FINDERS: LazyLock<[Finder<'static>; 2]> = LazyLock::new(|| KEYS.map(Finder::new));
        for finder in FINDERS.iter() {
            for at in finder.find_iter(&event[skip..]) {
                let mut open = skip + at + finder.needle().len();
                while event.get(open).is_some_and(u8::is_ascii_whitespace) {
                    open += 1;
                }
                if event.get(open) != Some(&b'"') {
                    continue;
                }
                let Some((end, _)) = string_end(event, open + 1) else { continue };
                probe.clear();
                if skip > 0 {
                    probe.push(b'{');
                    probe.extend_from_slice(&event[skip + 1..=open]);
                } else {
                    probe.extend_from_slice(&event[..=open]);
                }
                probe.extend_from_slice(MARKER_JSON);
                probe.extend_from_slice(&event[end..]);
                let Ok(wire) = wire_response(&probe) else { continue };
                if plain_text(&wire) != Some(MARKER) {
                    continue;
                }
                let (model, id) = prefix.map_or((None, None), |p| (p.model, p.id));
                self.model = wire.model.non_empty().or(model).map(str::to_owned);
                self.id = wire.id.non_empty().or(id).map(str::to_owned);
                self.before.clear();
                self.before.extend_from_slice(&event[..=open]);
                self.after.clear();
                self.after.extend_from_slice(&event[end..]);
                return true;
            }
        }
        false
    }
}

/// The text of an event that carries nothing but a piece of text, as the stream parser reads
/// it: `None` for anything with an error, usage, a finish reason, reasoning or tool calls.
fn plain_text<'w>(wire: &'w WireResponse<'_>) -> Option<&'w str> {
    if wire.error.as_ref().is_some_and(|e| !e.is_null()) || wire.usage.0.is_some() {
        return None;
    }
    let choice = wire.first_choice()?;
    if choice.finish_reason.0.is_some() {
        return None;
    }
    match choice.delta.0.as_ref().or(choice.message.0.as_ref()) {
        Some(message) => {
            let plain = message.reasoning_content.0.is_none()
                && message.reasoning.0.is_none()
                && message.content.thinking.is_none()
                && message.tool_calls.0.is_empty()
                && message.function_call.0.is_none();
            plain.then_some(message.content.text.as_deref()?)
        }
        None => choice.text.0.as_deref(),
    }
}

/// The text of a JSON string token (quotes included) that [`string_end`] delimited; `None`
/// when it is not valid JSON.
fn decode(token: &[u8], escaped: bool) -> Option<Cow<'_, str>> {
    if escaped {
        return serde_json::from_slice::<String>(token).ok().map(Cow::Owned);
    }
    std::str::from_utf8(&token[1..token.len() - 1]).ok().map(Cow::Borrowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: &str = r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"#;
    const SUFFIX: &str = r#"},"logprobs":null,"finish_reason":null}],"usage":null}"#;

    fn event(piece: &str) -> Vec<u8> {
        format!("{PREFIX}{piece}{SUFFIX}").into_bytes()
    }

    fn learnt() -> ContentTemplate {
        let mut t = ContentTemplate::default();
        assert!(t.learn_whole(&event(r#""Hello""#)));
        t
    }

    #[test]
    fn pieces_of_the_learnt_shape_are_read() {
        let t = learnt();
        assert_eq!(t.model.as_deref(), Some("m"));
        assert_eq!(t.id.as_deref(), Some("c1"));
        assert_eq!(t.matches(&event(r#"" world""#)).as_deref(), Some(" world"));
        assert_eq!(t.matches(&event(r#""""#)).as_deref(), Some(""));
        assert_eq!(t.matches(&event(r#""a \"quoted\" \\ \u00e9\n""#)).as_deref(), Some("a \"quoted\" \\ é\n"));
        assert_eq!(t.matches(&event(r#""naïve ✓""#)).as_deref(), Some("naïve ✓"));
    }

    #[test]
    fn anything_else_goes_to_the_full_parse() {
        let t = learnt();
        for other in [
            // Not a string, or not only a string.
            "null".to_owned(),
            "1".to_owned(),
            r#""a","reasoning_content":"b""#.to_owned(),
            r#""a"},"finish_reason":"stop"}]}"#.to_owned(),
            // Invalid strings: a raw control character, a lone surrogate, a bad escape.
            "\"a\u{1}b\"".to_owned(),
            r#""\ud800""#.to_owned(),
            r#""\x""#.to_owned(),
            // Unterminated.
            r#""abc"#.to_owned(),
        ] {
            assert_eq!(t.matches(&event(&other)), None, "{other}");
        }
        assert_eq!(t.matches(b"[DONE]"), None);
        assert_eq!(t.matches(&event(r#""x""#)[..PREFIX.len() + 2]), None, "cut short");
        let mut invalid_utf8 = event(r#""ab""#);
        invalid_utf8[PREFIX.len() + 1] = 0xff;
        assert_eq!(t.matches(&invalid_utf8), None);
        let mut extra = event(r#""ab""#);
        extra.push(b' ');
        assert_eq!(t.matches(&extra), None);
    }

    #[test]
    fn only_plain_pieces_are_learnt() {
        for (json, why) in [
            (r#"{"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":"stop"}]}"#, "finish reason"),
            (r#"{"choices":[{"index":0,"delta":{"content":"a","reasoning":"r"}}]}"#, "reasoning"),
            (r#"{"choices":[{"index":0,"delta":{"content":"a"}}],"usage":{"prompt_tokens":1}}"#, "usage"),
            (r#"{"choices":[{"index":0,"delta":{"content":"a","tool_calls":[{"index":0}]}}]}"#, "tool calls"),
            (r#"{"choices":[{"index":0,"delta":{"role":"assistant"}}],"note":{"content":"a"}}"#, "another content"),
            (r#"{"choices":[{"index":0,"delta":{"content":"a","content":"b"}}]}"#, "a duplicate key"),
            (r#"{"error":{"message":"x"},"choices":[{"delta":{"content":"a"}}]}"#, "error"),
            (r#"{"choices":[{"index":1,"delta":{"content":"a"}},{"index":0,"delta":{}}]}"#, "another choice"),
        ] {
            let mut t = ContentTemplate { budget: 1, ..ContentTemplate::default() };
            assert!(!t.learn_whole(json.as_bytes()), "{why}");
            assert!(!t.is_learnt(), "{why}");
        }
        // Spaces after the colon, and legacy text completions, are learnt.
        let mut t = ContentTemplate::default();
        assert!(t.learn_whole(br#"{"choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": null}]}"#));
        assert_eq!(
            t.matches(br#"{"choices": [{"index": 0, "delta": {"content": "bc"}, "finish_reason": null}]}"#).as_deref(),
            Some("bc")
        );
        let mut t = ContentTemplate::default();
        assert!(t.learn_whole(br#"{"choices":[{"text":"a","index":0,"finish_reason":null}],"model":"m"}"#));
        assert_eq!(t.model.as_deref(), Some("m"));
    }

    /// With the stream's checked prefix known, the proof parses what follows it, and the
    /// model and id come from the prefix.
    #[test]
    fn a_known_prefix_is_not_parsed_again() {
        let e = event(r#""Hello""#);
        let len = PREFIX.find(r#","choices":"#).unwrap();
        let mut t = ContentTemplate::default();
        assert!(t.learn(&e, Some(KnownPrefix { len, model: Some("pm"), id: None })));
        assert_eq!((t.model.as_deref(), t.id.as_deref()), (Some("pm"), None));
        assert_eq!(t.matches(&event(r#""x""#)).as_deref(), Some("x"));
        // A candidate inside the prefix is not one.
        let mut t = ContentTemplate::default();
        let e = br#"{"note":{"content":"a"},"choices":[{"delta":{"role":"assistant"}}]}"#;
        assert!(!t.learn(e, Some(KnownPrefix { len: 23, model: None, id: None })));
    }

    #[test]
    fn learning_stops_after_its_budget() {
        let mut t = ContentTemplate::default();
        let refused = br#"{"choices":[{"delta":{"content":"a"},"finish_reason":"stop"}]}"#;
        for _ in 0..LEARN_BUDGET {
            assert!(!t.learn_whole(refused));
        }
        assert!(!t.learn_whole(&event(r#""ok""#)), "no budget left");
    }
}
