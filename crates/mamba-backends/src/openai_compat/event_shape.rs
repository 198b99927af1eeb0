//! The learned shape of a stream's events: what lets most events skip most of the JSON parse.
//!
//! Servers send nearly every event of a streamed answer as the same bytes around one string.
//! Two parts of that shape are learnt, from events that were first read in full, and kept
//! here in one place:
//!
//! - **The members before `"choices"`** (`{"id":…,"object":…,"created":…,"model":…,` — half of
//!   each event's bytes). Once such a run has been checked (a whole run of top-level members,
//!   holding no usage, no error and no choices), a later event that starts with the same bytes
//!   is parsed from `"choices"` on, with the members' `id` and `model` taken from here — unless
//!   what follows repeats a key serde reads (`id`, `model`, `usage`, `error`, even `null`, even
//!   escaped) that the members hold: serde refuses such an event as a duplicate, so it goes to
//!   the full parse. The direct reader names the keys it read, so the common event (nothing or
//!   new keys after `"choices"`) costs no extra scan; a rest only serde reads is searched for
//!   the learnt keys' names and for `\u` escapes instead. A stream whose members change every
//!   event (a counter) gives up after [`MAX_MEMBER_MISSES`].
//! - **The whole event around its piece of text** (`…"delta":{"content":"PIECE"},…`). Once a
//!   plain piece has been read in full, its bytes before and after the string are learnt: a
//!   later event made of the same bytes around another valid JSON string means exactly what the
//!   first meant with the other text, so it is answered by two comparisons and a scan for the
//!   closing quote instead of a parse (the server's members, choices and nulls are compared,
//!   never trusted). It is only learnt after a proof: the candidate string is replaced by a
//!   marker and the event (after its checked members, when it has them) parsed again; the
//!   marker must come back as the content of a plain piece (no error, no usage, no finish
//!   reason, no reasoning, no tool call). A stream whose events all differ stops trying after
//!   [`LEARN_BUDGET`] attempts.
//!
//! Anything else — another shape, an escape the quote scan cannot judge, a control character —
//! goes to the full parse, which gives the answer and the errors it always gave. The stream
//! parser (`chat_stream.rs`) is the only user; the differential test there feeds the same
//! bytes through it with and without this shape.

use std::borrow::Cow;
use std::sync::LazyLock;

use memchr::memmem::{self, Finder};
use serde::de::{Deserialize, Deserializer, IgnoredAny};

use super::scan::{response_with_keys, string_end, wire_response, TopKeys};
use super::wire::WireResponse;

/// The marker put in place of the candidate string while learning (as JSON text, and decoded).
const MARKER_JSON: &[u8] = b"mamba\\u0000shape";
const MARKER: &str = "mamba\u{0}shape";

/// Attempts at learning the whole event's shape per stream.
const LEARN_BUDGET: u8 = 3;

/// Events in a row whose members could not be used; past this many, the stream stops learning
/// them.
const MAX_MEMBER_MISSES: u8 = 4;

/// Keys whose string value can be the piece of text (`delta.content`, and `text` for legacy
/// text completions).
const KEYS: [&[u8]; 2] = [b"\"content\":", b"\"text\":"];

/// What follows the learnt members in an event that has them.
const CHOICES_KEY: &[u8] = b",\"choices\":";

/// The `id` and `model` of the checked members an event had but was not parsed from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KnownMembers<'a> {
    pub(crate) id: Option<&'a str>,
    pub(crate) model: Option<&'a str>,
}

/// The learned shape of one stream's events (see the module doc).
#[derive(Debug)]
pub(crate) struct LearnedShape {
    /// `{` and the members before `,"choices":`, as the last checked event had them; empty when
    /// none are learnt.
    members: Vec<u8>,
    /// The keys serde reads that the learnt members have (a later event must not repeat them).
    member_keys: TopKeys,
    /// The learnt members' `id` and `model`, for a stream whose first chunk came without them.
    members_id: Option<String>,
    members_model: Option<String>,
    /// Events in a row whose members could not be used.
    member_misses: u8,
    /// `{` and the rest of an event after its learnt members; also the buffer of the check.
    scratch: Vec<u8>,
    /// The whole event's bytes up to and including the opening quote of the piece; empty when
    /// that shape is not learnt.
    before: Vec<u8>,
    /// From the closing quote of the piece to the end of the event.
    after: Vec<u8>,
    /// The `model` and `id` an event of the whole shape names.
    model: Option<String>,
    id: Option<String>,
    /// Attempts left at learning the whole shape.
    budget: u8,
}

impl Default for LearnedShape {
    fn default() -> Self {
        LearnedShape {
            members: Vec::new(),
            member_keys: TopKeys::default(),
            members_id: None,
            members_model: None,
            member_misses: 0,
            scratch: Vec::new(),
            before: Vec::new(),
            after: Vec::new(),
            model: None,
            id: None,
            budget: LEARN_BUDGET,
        }
    }
}

impl LearnedShape {
    /// A shape that never learns: every event is read in full (to compare with, in tests).
    #[cfg(test)]
    pub(crate) fn disabled() -> LearnedShape {
        LearnedShape { member_misses: MAX_MEMBER_MISSES, budget: 0, ..LearnedShape::default() }
    }

    /// The learnt members (empty when none).
    #[cfg(test)]
    pub(crate) fn members(&self) -> &[u8] {
        &self.members
    }

    /// True once the stream stopped learning members.
    #[cfg(test)]
    pub(crate) fn gave_up_on_members(&self) -> bool {
        self.member_misses >= MAX_MEMBER_MISSES
    }

    /// True when the last event's members were used.
    #[cfg(test)]
    pub(crate) fn members_used(&self) -> bool {
        self.member_misses == 0
    }

    /// True when the whole event's shape is learnt.
    #[cfg(test)]
    pub(crate) fn is_learnt(&self) -> bool {
        !self.before.is_empty()
    }

    /// The piece of text of an event of the learnt whole shape, decoded; `None` when the event
    /// has another shape, or a string the full parse must judge.
    pub(crate) fn piece<'e>(&self, event: &'e [u8]) -> Option<Cow<'e, str>> {
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

    /// The `model` an event of the learnt whole shape names.
    pub(crate) fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// The `id` an event of the learnt whole shape names.
    pub(crate) fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// When `event` starts with the learnt members, then `"choices"`: puts `{` and the rest of
    /// the event in the buffer read by [`rest`](Self::rest) and returns true.
    pub(crate) fn cut(&mut self, event: &[u8]) -> bool {
        if !self.covers(event) {
            return false;
        }
        let n = self.members.len();
        self.scratch.clear();
        self.scratch.push(b'{');
        self.scratch.extend_from_slice(&event[n + 1..]);
        true
    }

    /// The event [`cut`](Self::cut) last cut, read without its members; `None` when it must be
    /// read in full: the rest does not parse, or it repeats a key of the learnt members (which
    /// serde refuses in the whole event).
    pub(crate) fn read_rest(&self) -> Option<WireResponse<'_>> {
        let text = std::str::from_utf8(&self.scratch).ok()?;
        if let Some((wire, keys)) = response_with_keys(text) {
            return (!keys.shares(self.member_keys)).then_some(wire);
        }
        // A key equal to a learnt one is either its plain name or holds a `\u` escape.
        let bytes = text.as_bytes();
        let may_repeat = memmem::find(bytes, b"\\u").is_some()
            || TopKeys::NAMED
                .iter()
                .any(|(key, name)| self.member_keys.shares(*key) && memmem::find(bytes, name).is_some());
        if may_repeat {
            return None;
        }
        serde_json::from_str(text).ok()
    }

    /// Records that the last event was read by its cut: the members are worth keeping.
    pub(crate) fn cut_was_used(&mut self) {
        self.member_misses = 0;
    }

    /// The `id` and `model` of the learnt members.
    pub(crate) fn known_members(&self) -> KnownMembers<'_> {
        KnownMembers { id: self.members_id.as_deref(), model: self.members_model.as_deref() }
    }

    /// True when `event` starts with the learnt members, then `"choices"`.
    fn covers(&self, event: &[u8]) -> bool {
        let n = self.members.len();
        n > 0 && event.len() > n && event.starts_with(&self.members) && event[n..].starts_with(CHOICES_KEY)
    }

    /// Learns the members of a fully parsed event, unless this stream gave up: after a few
    /// events in a row that could not use them (members that change every event, or none).
    pub(crate) fn learn_members(&mut self, event: &[u8]) {
        if self.member_misses >= MAX_MEMBER_MISSES {
            self.members.clear();
            return;
        }
        self.member_misses += 1;
        static FINDER: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(CHOICES_KEY));
        let Some(at) = FINDER.find(event) else { return };
        let members = &event[..at];
        if members.first() != Some(&b'{') {
            return;
        }
        // The candidate is a whole run of top-level members exactly when closing it gives a
        // JSON object (an occurrence inside a string or a nested object leaves it unbalanced).
        self.scratch.clear();
        self.scratch.extend_from_slice(members);
        self.scratch.push(b'}');
        let Ok(wire) = wire_response(&self.scratch) else { return };
        if wire.usage.0.is_some() || wire.error.as_ref().is_some_and(|e| !e.is_null()) || !wire.choices.0.is_empty() {
            return;
        }
        let Ok(keys) = serde_json::from_slice::<MemberKeys>(&self.scratch) else { return };
        self.member_keys = keys.set();
        self.members_id = wire.id.non_empty().map(str::to_owned);
        self.members_model = wire.model.non_empty().map(str::to_owned);
        self.members.clear();
        self.members.extend_from_slice(members);
    }

    /// Tries to learn the whole shape of `event`, an event that was read in full into a plain
    /// piece of text. Returns whether it did.
    pub(crate) fn learn_piece(&mut self, event: &[u8]) -> bool {
        if self.budget == 0 {
            return false;
        }
        self.budget -= 1;
        // With the learnt members, the candidate is looked for after them, the proof parses
        // `{` and what follows them, and the model and id come from them.
        let known = self.covers(event);
        let skip = if known { self.members.len() } else { 0 };
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
                let (model, id) =
                    if known { (self.members_model.as_deref(), self.members_id.as_deref()) } else { (None, None) };
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

/// Which keys serde reads an object has, `null` or not, as serde decodes keys (escapes too):
/// the fields of `WireResponse` (a field added there belongs here and in `TopKeys`).
#[derive(serde::Deserialize)]
struct MemberKeys {
    #[serde(default)]
    id: Present,
    #[serde(default)]
    model: Present,
    #[serde(default)]
    choices: Present,
    #[serde(default)]
    usage: Present,
    #[serde(default)]
    error: Present,
}

impl MemberKeys {
    fn set(&self) -> TopKeys {
        [
            (self.id.0, TopKeys::ID),
            (self.model.0, TopKeys::MODEL),
            (self.choices.0, TopKeys::CHOICES),
            (self.usage.0, TopKeys::USAGE),
            (self.error.0, TopKeys::ERROR),
        ]
        .into_iter()
        .filter(|(present, _)| *present)
        .fold(TopKeys::default(), |set, (_, key)| set.with(key))
    }
}

/// Whether a member was there, whatever its value.
#[derive(Default)]
struct Present(bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(d).map(|_| Present(true))
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

    fn learnt() -> LearnedShape {
        let mut t = LearnedShape::default();
        assert!(t.learn_piece(&event(r#""Hello""#)));
        t
    }

    #[test]
    fn pieces_of_the_learnt_shape_are_read() {
        let t = learnt();
        assert_eq!(t.model(), Some("m"));
        assert_eq!(t.id(), Some("c1"));
        assert_eq!(t.piece(&event(r#"" world""#)).as_deref(), Some(" world"));
        assert_eq!(t.piece(&event(r#""""#)).as_deref(), Some(""));
        assert_eq!(t.piece(&event(r#""a \"quoted\" \\ \u00e9\n""#)).as_deref(), Some("a \"quoted\" \\ é\n"));
        assert_eq!(t.piece(&event(r#""naïve ✓""#)).as_deref(), Some("naïve ✓"));
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
            assert_eq!(t.piece(&event(&other)), None, "{other}");
        }
        assert_eq!(t.piece(b"[DONE]"), None);
        assert_eq!(t.piece(&event(r#""x""#)[..PREFIX.len() + 2]), None, "cut short");
        let mut invalid_utf8 = event(r#""ab""#);
        invalid_utf8[PREFIX.len() + 1] = 0xff;
        assert_eq!(t.piece(&invalid_utf8), None);
        let mut extra = event(r#""ab""#);
        extra.push(b' ');
        assert_eq!(t.piece(&extra), None);
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
            let mut t = LearnedShape { budget: 1, ..LearnedShape::default() };
            assert!(!t.learn_piece(json.as_bytes()), "{why}");
            assert!(!t.is_learnt(), "{why}");
        }
        // Spaces after the colon, and legacy text completions, are learnt.
        let mut t = LearnedShape::default();
        assert!(t.learn_piece(br#"{"choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": null}]}"#));
        assert_eq!(
            t.piece(br#"{"choices": [{"index": 0, "delta": {"content": "bc"}, "finish_reason": null}]}"#).as_deref(),
            Some("bc")
        );
        let mut t = LearnedShape::default();
        assert!(t.learn_piece(br#"{"choices":[{"text":"a","index":0,"finish_reason":null}],"model":"m"}"#));
        assert_eq!(t.model(), Some("m"));
    }

    /// With the stream's members learnt, the proof parses what follows them, and the model
    /// and id come from them.
    #[test]
    fn learnt_members_are_not_parsed_again() {
        let e = br#"{"model":"pm","choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}]}"#;
        let mut t = LearnedShape::default();
        t.learn_members(e);
        assert_eq!(t.members(), br#"{"model":"pm""#);
        assert!(t.learn_piece(e));
        assert_eq!((t.model(), t.id()), (Some("pm"), None));
        let x = br#"{"model":"pm","choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}]}"#;
        assert_eq!(t.piece(x).as_deref(), Some("x"));
        // A candidate inside the members is not one.
        let mut t = LearnedShape::default();
        let e = br#"{"note":{"content":"a"},"choices":[{"delta":{"role":"assistant"}}]}"#;
        t.learn_members(e);
        assert_eq!(t.members().len(), 23);
        assert!(!t.learn_piece(e));
    }

    #[test]
    fn learning_stops_after_its_budget() {
        let mut t = LearnedShape::default();
        let refused = br#"{"choices":[{"delta":{"content":"a"},"finish_reason":"stop"}]}"#;
        for _ in 0..LEARN_BUDGET {
            assert!(!t.learn_piece(refused));
        }
        assert!(!t.learn_piece(&event(r#""ok""#)), "no budget left");
    }
}
