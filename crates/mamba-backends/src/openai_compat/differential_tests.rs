//! Differential property tests of the parsing fast paths against plain serde.
//!
//! Two fast paths stand in front of serde when a chat-completion event is read: the direct
//! reader (`scan.rs`) and the learned shape of a stream's events (`event_shape.rs`). Both must
//! give exactly what serde gives, errors included. These tests generate what servers send —
//! chat-completion events and whole streams in the shapes seen in the wild — plus mutations of
//! them (nulls, missing, extra and unknown members, members in any order, escapes, invalid
//! strings, tool calls, content parts, odd numbers, duplicate keys — in a stream, also keys
//! after `"choices"` that repeat one before it —, deep nesting, truncation, stray and invalid
//! UTF-8 bytes), and feed the same bytes to the fast paths and to serde:
//!
//! - one event: `scan::wire_response` (and the direct reader alone) against
//!   `serde_json::from_slice::<WireResponse>`, compared with `==`, and the same error text;
//! - a stream: the real stream decoder with every layer on against one that reads every event
//!   with serde alone (`EventDecoder::serde_only`), split at a random byte: the same chunks and
//!   the same outcome (answer, or error kind and message).
//!
//! proptest picks a new seed on every run and prints the smallest failing input it finds. The
//! case counts keep both under a few seconds in a debug build.

use std::cell::Cell;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use super::event_decoder::EventDecoder;
use super::replay_tests::decode;
use super::scan;
use super::wire::WireResponse;

/// A JSON value as a server writes it. Leaves are raw tokens, so that a string can hold any
/// escape (valid or not) and a number any spelling; keys are raw tokens too (an escaped key).
#[derive(Debug, Clone)]
enum J {
    Raw(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl J {
    fn render(&self, spaced: bool, out: &mut String) {
        let sep = |out: &mut String, c: char| {
            out.push(c);
            if spaced {
                out.push(' ');
            }
        };
        match self {
            J::Raw(token) => out.push_str(token),
            J::Arr(items) => {
                sep(out, '[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        sep(out, ',');
                    }
                    item.render(spaced, out);
                }
                out.push(']');
            }
            J::Obj(members) => {
                sep(out, '{');
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        sep(out, ',');
                    }
                    out.push_str(key);
                    sep(out, ':');
                    value.render(spaced, out);
                }
                out.push('}');
            }
        }
    }

    fn text(&self, spaced: bool) -> String {
        let mut out = String::new();
        self.render(spaced, &mut out);
        out
    }
}

fn raw(token: &str) -> J {
    J::Raw(token.to_owned())
}

fn key(name: &str) -> String {
    format!("\"{name}\"")
}

/// A JSON string token: mostly valid text with the escapes servers use, rarely an invalid one.
fn string_token() -> BoxedStrategy<J> {
    prop_oneof![12 => valid_string(), 1 => invalid_string()].boxed()
}

const FRAGMENTS: &[&str] = &[
    "a",
    "Hello",
    " world",
    " Rust's",
    "é",
    "naïve ✓",
    "😀",
    "<think>",
    "</think>",
    " ",
    "",
    "content",
    "\\\"",
    "\\\\",
    "\\n",
    "\\t",
    "\\/",
    "\\u00e9",
    "\\u0000",
    "\\ud83d\\ude00",
    "\\\"choices\\\":",
];

/// A valid JSON string token, with the escapes servers use.
fn valid_string() -> BoxedStrategy<J> {
    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..4)
        .prop_map(|parts| J::Raw(format!("\"{}\"", parts.concat())))
        .boxed()
}

/// A string token that is not valid JSON: a lone surrogate, a bad escape, a raw control
/// character, somewhere in valid text.
fn invalid_string() -> BoxedStrategy<J> {
    let bad = prop::sample::select(vec!["\\ud800", "\\x", "\u{1}", "\\u12", "\t", "\n"]);
    (prop::sample::select(FRAGMENTS), bad, prop::sample::select(FRAGMENTS))
        .prop_map(|(a, bad, b)| J::Raw(format!("\"{a}{bad}{b}\"")))
        .boxed()
}

/// A number token, in the spellings servers use and some they should not.
fn number_token() -> BoxedStrategy<J> {
    prop::sample::select(vec![
        "0",
        "1",
        "7",
        "42",
        "1764072000",
        "-1",
        "-0",
        "1.0",
        "1.5",
        "0.25",
        "1e3",
        "1E2",
        "-1.5e-3",
        "01",
        "123456789012345678",
        "1234567890123456789",
        "18446744073709551615",
        "18446744073709551616",
    ])
    .prop_map(raw)
    .boxed()
}

fn scalar() -> BoxedStrategy<J> {
    prop_oneof![3 => string_token(), 2 => number_token(), 1 => prop::sample::select(vec!["null", "true", "false"]).prop_map(raw)]
        .boxed()
}

/// Any value, nested a little (what a skipped member holds).
fn any_value() -> BoxedStrategy<J> {
    scalar()
        .prop_recursive(3, 12, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(J::Arr),
                prop::collection::vec((prop::sample::select(vec!["a", "x", "content", "choices", "id"]), inner), 0..3)
                    .prop_map(|m| J::Obj(m.into_iter().map(|(k, v)| (key(k), v)).collect())),
            ]
        })
        .boxed()
}

/// Deep nesting, around the direct reader's limit.
fn deep_value() -> BoxedStrategy<J> {
    (12usize..20).prop_map(|depth| J::Raw(format!("{}1{}", "[".repeat(depth), "]".repeat(depth)))).boxed()
}

/// Mostly `T`, sometimes null, rarely anything at all.
fn lenient(value: BoxedStrategy<J>) -> BoxedStrategy<J> {
    prop_oneof![12 => value, 2 => Just(raw("null")), 1 => any_value()].boxed()
}

fn count() -> BoxedStrategy<J> {
    lenient(prop_oneof![5 => (0u64..5000).prop_map(|n| J::Raw(n.to_string())), 1 => number_token()].boxed())
}

fn text_value() -> BoxedStrategy<J> {
    lenient(string_token())
}

/// An object of the given candidate members: a random subset in a random order, sometimes a
/// member twice, sometimes an unknown member, rarely an escaped key.
fn object(candidates: Vec<(&'static str, BoxedStrategy<J>)>) -> BoxedStrategy<J> {
    let n = candidates.len();
    let mut all: BoxedStrategy<Vec<(String, J)>> = Just(Vec::new()).boxed();
    for (name, value) in candidates {
        all = (all, value)
            .prop_map(move |(mut v, j)| {
                v.push((key(name), j));
                v
            })
            .boxed();
    }
    let extra = prop_oneof![
        6 => Just(None),
        2 => (prop::sample::select(vec!["x_unknown", "logprobs", "annotations", "timings"]), any_value())
            .prop_map(|(k, v)| Some((key(k), v))),
        1 => deep_value().prop_map(|v| Some((key("nested"), v))),
    ];
    (all, prop::collection::vec(any::<bool>(), n), any::<u64>(), extra, 0u8..20)
        .prop_map(|(all, keep, mut order, extra, twist)| {
            let mut members: Vec<(String, J)> = all.into_iter().zip(keep).filter(|(_, k)| *k).map(|(m, _)| m).collect();
            if let Some(extra) = extra {
                members.push(extra);
            }
            // Most servers keep one order; some events shuffle it.
            if twist < 4 {
                for i in (1..members.len()).rev() {
                    order ^= order << 13;
                    order ^= order >> 7;
                    order ^= order << 17;
                    members.swap(i, (order % (i as u64 + 1)) as usize);
                }
            }
            match twist {
                // A duplicate key.
                4 if !members.is_empty() => members.push(members[0].clone()),
                // An escaped key (`"\u0069d"` is `"id"`).
                5 if !members.is_empty() => {
                    let k = members[0].0.replacen('i', "\\u0069", 1);
                    members[0].0 = k;
                }
                _ => {}
            }
            J::Obj(members)
        })
        .boxed()
}

fn function() -> BoxedStrategy<J> {
    let arguments = prop_oneof![3 => string_token(), 1 => any_value()].boxed();
    lenient(object(vec![("name", text_value()), ("arguments", lenient(arguments))]))
}

fn tool_calls() -> BoxedStrategy<J> {
    let call = object(vec![
        ("index", count()),
        ("id", text_value()),
        ("type", Just(raw("\"function\"")).boxed()),
        ("function", function()),
    ]);
    lenient(prop::collection::vec(call, 0..3).prop_map(J::Arr).boxed())
}

fn content() -> BoxedStrategy<J> {
    let part = object(vec![
        (
            "type",
            prop::sample::select(vec!["\"text\"", "\"thinking\"", "\"output_text\"", "\"image\""])
                .prop_map(raw)
                .boxed(),
        ),
        ("text", text_value()),
        ("thinking", text_value()),
    ]);
    prop_oneof![8 => string_token(), 2 => Just(raw("null")), 1 => prop::collection::vec(part, 0..3).prop_map(J::Arr), 1 => any_value()]
        .boxed()
}

fn message() -> BoxedStrategy<J> {
    lenient(object(vec![
        ("role", lenient(Just(raw("\"assistant\"")).boxed())),
        ("content", content()),
        ("reasoning_content", text_value()),
        ("reasoning", text_value()),
        ("refusal", text_value()),
        ("tool_calls", prop_oneof![3 => Just(raw("null")), 2 => Just(J::Arr(Vec::new())), 2 => tool_calls()].boxed()),
        ("function_call", prop_oneof![4 => Just(raw("null")), 1 => function()].boxed()),
    ]))
}

fn choice() -> BoxedStrategy<J> {
    let finish = lenient(
        prop_oneof![
            3 => prop::sample::select(vec!["\"stop\"", "\"length\"", "\"tool_calls\"", "\"\"", "\"eos\""]).prop_map(raw),
            1 => string_token(),
        ]
        .boxed(),
    );
    object(vec![
        ("index", count()),
        ("delta", message()),
        ("message", message()),
        ("logprobs", Just(raw("null")).boxed()),
        ("finish_reason", finish),
        ("text", text_value()),
    ])
}

fn usage() -> BoxedStrategy<J> {
    let details =
        || lenient(object(vec![("cached_tokens", count()), ("reasoning_tokens", count()), ("audio_tokens", count())]));
    lenient(object(vec![
        ("prompt_tokens", count()),
        ("completion_tokens", count()),
        ("total_tokens", count()),
        ("input_tokens", count()),
        ("output_tokens", count()),
        ("prompt_cache_hit_tokens", count()),
        ("prompt_tokens_details", details()),
        ("completion_tokens_details", details()),
    ]))
}

/// One chat-completion object (a stream event or a whole answer).
fn event() -> BoxedStrategy<J> {
    let error = prop_oneof![
        6 => Just(raw("null")),
        1 => Just(J::Obj(vec![(key("message"), raw("\"boom\"")), (key("type"), raw("\"server_error\""))])),
        1 => any_value(),
    ];
    object(vec![
        ("id", text_value()),
        ("object", Just(raw("\"chat.completion.chunk\"")).boxed()),
        ("created", prop_oneof![3 => number_token(), 1 => any_value()].boxed()),
        ("model", text_value()),
        ("system_fingerprint", text_value()),
        ("choices", lenient(prop::collection::vec(choice(), 0..3).prop_map(J::Arr).boxed())),
        ("usage", usage()),
        ("error", error.boxed()),
    ])
}

/// Damage to apply to some bytes: (kind: replace, insert or cut; where; which byte).
type Damage = Vec<(u8, usize, u8)>;

/// Byte-level damage: a byte replaced or inserted (invalid UTF-8 among them), or the text cut
/// short; none for most cases.
fn damage() -> BoxedStrategy<Damage> {
    let noise = prop::sample::select(b"\xff\xc3\x80\"\\{}[],: \0\nn0-.e".to_vec());
    prop_oneof![3 => Just(Vec::new()), 1 => prop::collection::vec((0u8..3, any::<usize>(), noise), 1..3)].boxed()
}

fn damaged(mut bytes: Vec<u8>, damage: &[(u8, usize, u8)]) -> Vec<u8> {
    for &(kind, at, byte) in damage {
        if bytes.is_empty() {
            break;
        }
        let at = at % bytes.len();
        match kind {
            0 => bytes[at] = byte,
            1 => bytes.insert(at, byte),
            _ => bytes.truncate(at),
        }
    }
    bytes
}

/// Generated bytes, shown as text (lossily) when proptest reports a failing case.
#[derive(Clone)]
struct Text(Vec<u8>);

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

fn config(cases: u32) -> Config {
    Config { cases, failure_persistence: None, ..Config::default() }
}

/// One event: the fast path reads exactly what serde reads, or fails with serde's error.
#[test]
fn an_event_reads_as_serde_reads_it() {
    let strategy =
        (event(), any::<bool>(), damage()).prop_map(|(e, spaced, d)| Text(damaged(e.text(spaced).into_bytes(), &d)));
    let direct = Cell::new(0usize);
    let ran = Cell::new(0usize);
    TestRunner::new(config(3000))
        .run(&strategy, |Text(bytes)| {
            ran.set(ran.get() + 1);
            let plain = serde_json::from_slice::<WireResponse<'_>>(&bytes);
            let show = || String::from_utf8_lossy(&bytes).into_owned();
            match (scan::wire_response(&bytes), &plain) {
                (Ok(fast), Ok(plain)) => prop_assert!(fast == *plain, "{}\nfast: {fast:?}\nserde: {plain:?}", show()),
                (Err(fast), Err(plain)) => prop_assert_eq!(fast.to_string(), plain.to_string(), "{}", show()),
                (fast, plain) => {
                    return Err(TestCaseError::fail(format!("{}\nfast: {fast:?}\nserde: {plain:?}", show())))
                }
            }
            // The direct reader alone, where it reads.
            if let Some(fast) = std::str::from_utf8(&bytes).ok().and_then(scan::response) {
                direct.set(direct.get() + 1);
                prop_assert!(plain.as_ref().is_ok_and(|plain| fast == *plain), "{}\ndirect: {fast:?}", show());
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    // The generator must reach the direct reader, not only its fallback.
    assert!(
        direct.get() * 10 > ran.get(),
        "only {} of {} generated events were read directly",
        direct.get(),
        ran.get()
    );
}

/// What one event of a generated stream is.
#[derive(Debug, Clone)]
enum Ev {
    /// The role event, then the pieces: the server's members around a delta.
    Role,
    Piece(J),
    Reasoning(J),
    Tool(J),
    Finish(J),
    Usage(J),
    /// Any event at all.
    Other(J),
    Done,
    Blank,
}

fn ev() -> BoxedStrategy<Ev> {
    prop_oneof![
        40 => valid_string().prop_map(Ev::Piece),
        1 => invalid_string().prop_map(Ev::Piece),
        3 => valid_string().prop_map(Ev::Reasoning),
        3 => tool_calls().prop_map(Ev::Tool),
        1 => Just(Ev::Role),
        1 => usage().prop_map(Ev::Usage),
        1 => event().prop_map(Ev::Other),
        1 => Just(Ev::Blank),
    ]
    .boxed()
}

/// The events of a stream as servers send them: a role event, pieces and other events, a
/// finish reason, a usage trailer and `[DONE]`, each of the ends sometimes missing.
fn stream_events() -> BoxedStrategy<Vec<Ev>> {
    let finish = prop::sample::select(vec!["\"stop\"", "\"length\"", "\"tool_calls\"", "\"weird\""]).prop_map(raw);
    (
        prop::option::weighted(0.8, Just(Ev::Role)),
        prop::collection::vec(ev(), 0..24),
        prop::option::weighted(0.85, finish.prop_map(Ev::Finish)),
        prop::option::weighted(0.5, usage().prop_map(Ev::Usage)),
        prop::option::weighted(0.7, Just(Ev::Done)),
    )
        .prop_map(|(role, body, finish, usage, done)| {
            role.into_iter().chain(body).chain(finish).chain(usage).chain(done).collect()
        })
        .boxed()
}

/// The members a server repeats before `"choices"` in every event: OpenAI's, a few, none, some
/// with a null usage or error, or one that changes every event (a counter).
fn members() -> BoxedStrategy<(String, bool)> {
    prop_oneof![
        4 => Just((r#""id":"chatcmpl-1","object":"chat.completion.chunk","created":1764072000,"model":"gpt-4o-mini","service_tier":"default","system_fingerprint":"fp_1","#.to_owned(), false)),
        2 => Just((r#""id":"c1","model":"m","#.to_owned(), false)),
        1 => Just((r#""id":"c1","usage":null,"error":null,"model":"m","#.to_owned(), false)),
        1 => Just((String::new(), false)),
        1 => Just((r#""id":"c1","seq":"#.to_owned(), true)),
        1 => event().prop_map(|e| match e {
            J::Obj(mut m) => {
                m.retain(|(k, _)| k != "\"choices\"");
                let text = J::Obj(m).text(false);
                (if text.len() > 2 { format!("{},", &text[1..text.len() - 1]) } else { String::new() }, false)
            }
            _ => (String::new(), false),
        }),
    ]
    .boxed()
}

/// Members an event may have after `"choices"`, beside the stream's usual end: mostly none;
/// else keys that may repeat one before `"choices"` (serde refuses a known one twice: `id`,
/// `model`, `usage`, `error`, an escaped `id`) or not.
fn tail() -> BoxedStrategy<Vec<(String, J)>> {
    let keys = vec!["id", "model", "created", "object", "usage", "error", "system_fingerprint", "x_new", "\\u0069d"];
    let value = prop_oneof![3 => Just(raw("null")), 2 => Just(raw("\"x\"")), 1 => scalar(), 1 => any_value()];
    prop_oneof![
        8 => Just(Vec::new()),
        1 => prop::collection::vec((prop::sample::select(keys), value), 1..3)
            .prop_map(|m| m.into_iter().map(|(k, v)| (key(k), v)).collect()),
    ]
    .boxed()
}

/// One generated event: what it is, its members after `"choices"` and its damage.
type GenEvent = (Ev, Vec<(String, J)>, Damage);

/// The stream's bytes; `usage_null`: whether its events end with `"usage":null` (never when
/// the members have a usage: each event would be refused).
fn render_stream(members: &str, counter: bool, usage_null: bool, events: &[GenEvent], spaced: bool) -> Vec<u8> {
    let usage_null = usage_null && !members.contains(r#""usage""#);
    let mut body = Vec::new();
    for (i, (ev, tail, damage)) in events.iter().enumerate() {
        let members = if counter { format!("{members}{i},") } else { members.to_owned() };
        let mut end = String::from(if usage_null { r#","usage":null"# } else { "" });
        for (k, v) in tail {
            end.push_str(&format!(",{k}:{}", v.text(false)));
        }
        let around = |delta: String, finish: &str| {
            format!(
                r#"{{{members}"choices":[{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish}}}]{end}}}"#
            )
        };
        let data = match ev {
            Ev::Role => around(r#"{"role":"assistant","content":"","refusal":null}"#.to_owned(), "null"),
            Ev::Piece(text) => around(format!(r#"{{"content":{}}}"#, text.text(false)), "null"),
            Ev::Reasoning(text) => around(format!(r#"{{"reasoning_content":{}}}"#, text.text(false)), "null"),
            Ev::Tool(calls) => around(format!(r#"{{"tool_calls":{}}}"#, calls.text(false)), "null"),
            Ev::Finish(reason) => around("{}".to_owned(), &reason.text(false)),
            Ev::Usage(usage) => format!(r#"{{{members}"choices":[],"usage":{}}}"#, usage.text(false)),
            Ev::Other(event) => event.text(spaced),
            Ev::Done => "[DONE]".to_owned(),
            Ev::Blank => String::new(),
        };
        body.extend_from_slice(b"data: ");
        body.extend_from_slice(&damaged(data.into_bytes(), damage));
        body.extend_from_slice(b"\n\n");
    }
    body
}

/// A whole stream: the decoder with every layer on gives the chunks and the outcome of one
/// that reads every event with serde alone, wherever the bytes are split.
#[test]
fn a_stream_decodes_as_serde_decodes_it() {
    let event_damage = prop_oneof![9 => Just(Vec::new()), 1 => damage()].boxed();
    let strategy = (
        members(),
        stream_events().prop_flat_map(move |events| {
            let n = events.len();
            (Just(events), prop::collection::vec(tail(), n), prop::collection::vec(event_damage.clone(), n))
        }),
        any::<bool>(),
        any::<usize>(),
        prop_oneof![9 => Just(false), 1 => Just(true)],
        prop_oneof![3 => Just(true), 1 => Just(false)],
        // Members after "choices" in one stream of five (any repeat makes the stream an error),
        // and damaged events in one stream of four (most damage makes it an error too).
        (prop_oneof![4 => Just(false), 1 => Just(true)], prop_oneof![3 => Just(false), 1 => Just(true)]),
    )
        .prop_map(
            |(
                (members, counter),
                (events, tails, damage),
                spaced,
                cut,
                truncate,
                usage_null,
                (with_tails, with_damage),
            )| {
                let events: Vec<GenEvent> = events
                    .into_iter()
                    .zip(tails)
                    .zip(damage)
                    .map(|((e, t), d)| {
                        (e, if with_tails { t } else { Vec::new() }, if with_damage { d } else { Vec::new() })
                    })
                    .collect();
                let mut body = render_stream(&members, counter, usage_null, &events, spaced);
                if truncate && !body.is_empty() {
                    body.truncate(cut % body.len());
                }
                let cut = if body.is_empty() { 0 } else { cut % body.len() };
                (Text(body), cut)
            },
        );
    let answered = Cell::new(0usize);
    let ran = Cell::new(0usize);
    // A fresh seed each run: about 42 % of the generated streams are answered (417–436 of 1000
    // over six runs), far above the one-third check below, which only guards the generator's
    // health. The differential check holds for every seed.
    TestRunner::new(config(1000))
        .run(&strategy, |(Text(body), cut)| {
            ran.set(ran.get() + 1);
            let pieces: [&[u8]; 2] = [&body[..cut], &body[cut..]];
            let fast = decode(EventDecoder::new(true), &pieces);
            let plain = decode(EventDecoder::serde_only(true), &pieces);
            answered.set(answered.get() + usize::from(matches!(plain.1, super::replay_tests::Outcome::Answer(_))));
            prop_assert!(
                fast == plain,
                "{}\nall layers: {fast:?}\nserde only: {plain:?}",
                String::from_utf8_lossy(&body)
            );
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(answered.get() * 3 > ran.get(), "only {} of {} generated streams were answered", answered.get(), ran.get());
}
