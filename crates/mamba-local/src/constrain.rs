//! Constrained decoding: a request's `response_format` (a JSON Schema, or any JSON object) turned
//! into a mask over the vocabulary at every step, so that the built-in model can only write text
//! that parses and validates.
//!
//! The grammar engine is llguidance, run over the GGUF's own tokenizer: each token id stands for
//! the bytes it adds to the answer (control tokens are marked special and never allowed by a
//! JSON grammar), and the end-of-generation tokens are the grammar's stop tokens. The token
//! environment is built once per model, on the first constrained request, so unconstrained
//! requests do no work of it at all. JSON is constrained to its compact form (no whitespace
//! between tokens): fewer tokens, and a small model cannot loop on blank lines.

use std::sync::Arc;

use llguidance::api::TopLevelGrammar;
use llguidance::toktrie::{TokEnv, TokRxInfo, TokTrie, TokenId, TokenizerEnv};
use llguidance::{Matcher, ParserFactory};
use mamba_backends::{Error, ErrorKind, ResponseFormat};
use serde_json::{json, Value};

use crate::tokenizer::Tokenizer;

/// The grammar compiler of one model: its token environment and llguidance's precomputed
/// token slices. Built once, shared by the requests.
pub(crate) struct Grammars {
    factory: ParserFactory,
}

impl std::fmt::Debug for Grammars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grammars").field("vocab", &self.factory.tok_env().tok_trie().vocab_size()).finish()
    }
}

/// The bytes a token stands for in the grammar: what it adds to the answer, or for a control
/// token its text after llguidance's special-token marker (0xFF), which no JSON grammar allows.
fn token_words(tokenizer: &Tokenizer) -> Vec<Vec<u8>> {
    (0..tokenizer.vocab_size() as u32)
        .map(|id| {
            if tokenizer.is_control(id) {
                let text = tokenizer.token_text(id).unwrap_or_default();
                if text.is_empty() {
                    return Vec::new();
                }
                let mut word = Vec::with_capacity(text.len() + 1);
                word.push(TokTrie::SPECIAL_TOKEN_MARKER);
                word.extend_from_slice(text.as_bytes());
                word
            } else {
                tokenizer.piece(id).to_vec()
            }
        })
        .collect()
}

/// llguidance's view of the GGUF tokenizer.
struct GgufTokEnv {
    trie: TokTrie,
    tokenizer: Arc<Tokenizer>,
}

impl TokenizerEnv for GgufTokEnv {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    /// Our tokenizer gives llama.cpp's (canonical BPE) ids; bytes that are not UTF-8 (never the
    /// case for JSON) fall back to the trie's greedy split.
    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        match std::str::from_utf8(s) {
            Ok(text) => self.tokenizer.encode(text, false),
            Err(_) => self.trie.greedy_tokenize(s),
        }
    }
}

/// The trie over `words` with `eog` as its stop tokens (the first is the main one).
fn build_trie(words: &[Vec<u8>], eog: &[u32]) -> Result<TokTrie, String> {
    let vocab = u32::try_from(words.len()).map_err(|_| "the vocabulary is too large".to_owned())?;
    let Some(&eos) = eog.iter().find(|&&id| id < vocab) else {
        return Err("the model has no end-of-generation token".to_owned());
    };
    let stops: Vec<u32> = eog.iter().copied().filter(|&id| id < vocab).collect();
    let info = TokRxInfo::new(vocab, eos);
    // toktrie asserts on malformed vocabularies (tokens longer than it can store): a model file
    // is input, so a panic there becomes an error.
    std::panic::catch_unwind(|| TokTrie::from(&info, words).with_eos_tokens(&stops))
        .map_err(|_| "its vocabulary cannot be indexed for constrained decoding".to_owned())
}

fn unsupported(message: String) -> Error {
    Error::new(ErrorKind::Unsupported, message)
}

impl Grammars {
    /// The grammar compiler for `tokenizer`'s vocabulary.
    pub(crate) fn new(tokenizer: Arc<Tokenizer>) -> Result<Grammars, Error> {
        let trie = build_trie(&token_words(&tokenizer), tokenizer.eog_ids())
            .map_err(|e| unsupported(format!("the built-in model cannot constrain its output: {e}")))?;
        let env: TokEnv = Arc::new(GgufTokEnv { trie, tokenizer });
        let mut factory = ParserFactory::new_simple(&env).map_err(|e| {
            unsupported(format!("the built-in model cannot constrain its output: {e}; use an HTTP backend"))
        })?;
        factory.quiet();
        Ok(Grammars { factory })
    }

    /// A fresh matcher for a schema from [`answer_schema`] (a response format's).
    ///
    /// # Errors
    /// `Unsupported` naming llguidance's reason when the schema cannot be compiled (an
    /// unsupported keyword, an unsatisfiable schema, …), before any generation.
    pub(crate) fn compile_schema(&self, schema: Value) -> Result<Constraint, Error> {
        self.create(TopLevelGrammar::from_json_schema(schema), "this JSON Schema")
    }

    /// The constraint for a Lark grammar (tool calls: `crate::tools`); `what` names it in errors.
    ///
    /// # Errors
    /// `Unsupported` naming llguidance's reason when the grammar cannot be compiled.
    pub(crate) fn compile_lark(&self, grammar: String, what: &str) -> Result<Constraint, Error> {
        self.create(TopLevelGrammar::from_lark(grammar), what)
    }

    fn create(&self, grammar: TopLevelGrammar, what: &str) -> Result<Constraint, Error> {
        let parser = self.factory.create_parser(grammar).map_err(|e| {
            unsupported(format!(
                "the built-in model cannot enforce {what}: {}; simplify the schema or use an HTTP backend",
                one_line(&e.to_string())
            ))
        })?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(e) = matcher.get_error() {
            return Err(unsupported(format!("the built-in model cannot enforce {what}: {}", one_line(&e))));
        }
        Ok(Constraint { matcher })
    }
}

/// The schema a JSON `format` holds the answer to, with the grammar's options (`None` for plain
/// text): what [`Grammars::compile_schema`] enforces, also for a grammar that embeds it.
pub(crate) fn answer_schema(format: Option<&ResponseFormat>) -> Option<Value> {
    let mut schema = match format {
        Some(ResponseFormat::JsonObject) => any_object(),
        Some(ResponseFormat::JsonSchema { schema, .. }) => schema.clone(),
        _ => return None,
    };
    close_objects(&mut schema, false);
    Some(compact(schema))
}

/// `json_object` as a grammar: any JSON object, within bounds a small model needs to finish
/// (at most 8 properties or items per level, 3 levels, strings of at most 64 characters),
/// since a free object lets it write numbers or nested arrays until `max_tokens` runs out.
fn any_object() -> Value {
    let leaf = json!({"type": ["null", "boolean", "number", "string"], "maxLength": 64});
    let level = |inner: Value| {
        json!({"anyOf": [
            leaf.clone(),
            {"type": "array", "items": inner.clone(), "maxItems": 8},
            {"type": "object", "additionalProperties": inner, "maxProperties": 8}
        ]})
    };
    json!({"type": "object", "additionalProperties": level(level(leaf.clone())), "maxProperties": 8})
}

/// The schema with llguidance's options for compact JSON: no whitespace between tokens, `,` and
/// `:` as separators; `oneOf` is enforced as `anyOf` (schemars writes `oneOf` for enums with
/// data, whose branches exclude each other, so the two agree there). Keywords and formats the
/// grammar engine does not implement (`uniqueItems`, schemars' `format: "double"`, …) are left out
/// of the grammar (`lenient`) rather than refused: the answer is still checked against the whole
/// schema by whoever asked for it (`Extract` validates and retries), so a `HashSet` or `f64`
/// field does not make a type unusable here. A schema that sets its own `x-guidance` options
/// keeps them. A schema that is not an object (`true`) is wrapped so the options have a place.
fn compact(schema: Value) -> Value {
    let options = json!({
        "whitespace_flexible": false,
        "item_separator": ",",
        "key_separator": ":",
        "coerce_one_of": true,
        "lenient": true
    });
    match schema {
        Value::Object(mut map) => {
            map.entry("x-guidance").or_insert(options);
            Value::Object(map)
        }
        Value::Bool(true) => json!({"x-guidance": options}),
        other => json!({"allOf": [other], "x-guidance": options}),
    }
}

/// Objects that list their `properties` and say nothing of others get `additionalProperties:
/// false` in the grammar (not in the schema the answer is checked against): JSON Schema allows
/// any other property by default, and a small model given that room invents properties until
/// `max_tokens` runs out (schemars writes no `additionalProperties` unless told to). Every answer
/// of the closed grammar still validates against the open schema. Objects combined through
/// `allOf`, or beside `$ref`, `anyOf`/`oneOf` (schemars' flattened enums), `if`/`then`/`else`,
/// `dependentSchemas` or `unevaluatedProperties`, are left open, since closing one part would
/// forbid the properties another part adds.
pub(crate) fn close_objects(schema: &mut Value, in_all_of: bool) {
    match schema {
        Value::Object(map) => {
            let open = map.contains_key("properties")
                && !in_all_of
                && ![
                    "additionalProperties",
                    "patternProperties",
                    "unevaluatedProperties",
                    "allOf",
                    "anyOf",
                    "oneOf",
                    "if",
                    "then",
                    "else",
                    "dependentSchemas",
                    "$ref",
                ]
                .iter()
                .any(|k| map.contains_key(*k));
            if open {
                map.insert("additionalProperties".to_owned(), Value::Bool(false));
            }
            // Branches beside the object's own properties add to them (schemars' flattened
            // enums): closing a branch would forbid the parent's properties.
            let beside_properties = map.contains_key("properties");
            for (key, value) in map.iter_mut() {
                match key.as_str() {
                    // Values that are not schemas.
                    "enum" | "const" | "default" | "examples" | "required" | "x-guidance" => {}
                    // Maps of names to schemas, and lists of schemas.
                    "properties" | "patternProperties" | "$defs" | "definitions" | "dependentSchemas" => {
                        if let Value::Object(children) = value {
                            children.values_mut().for_each(|child| close_objects(child, false));
                        }
                    }
                    "allOf" => {
                        if let Value::Array(parts) = value {
                            parts.iter_mut().for_each(|part| close_objects(part, true));
                        }
                    }
                    "anyOf" | "oneOf" => {
                        if let Value::Array(parts) = value {
                            parts.iter_mut().for_each(|part| close_objects(part, beside_properties));
                        }
                    }
                    _ => close_objects(value, false),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| close_objects(item, false)),
        _ => {}
    }
}

/// llguidance's errors can span lines; ours are one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The grammar state of one constrained generation.
#[derive(Clone)]
pub(crate) struct Constraint {
    matcher: Matcher,
}

impl std::fmt::Debug for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Constraint").field("done", &self.matcher.is_stopped()).finish()
    }
}

fn grammar_error(message: &str) -> Error {
    Error::new(ErrorKind::Server, format!("the built-in model's grammar failed: {}", one_line(message)))
}

impl Constraint {
    /// Sets every logit the grammar does not allow next to minus infinity (ids past the
    /// vocabulary too).
    ///
    /// # Errors
    /// `Server` when the grammar engine fails or allows nothing (a bug, not a user error).
    pub(crate) fn mask(&mut self, logits: &mut [f32]) -> Result<(), Error> {
        let mask = self.matcher.compute_mask().map_err(|e| grammar_error(&e.to_string()))?;
        let words = mask.as_slice();
        let vocab = mask.len();
        let mut any = false;
        for (w, chunk) in logits.chunks_mut(32).enumerate() {
            let bits = words.get(w).copied().unwrap_or(0);
            if bits == u32::MAX && (w + 1) * 32 <= vocab {
                any = true;
                continue;
            }
            for (b, logit) in chunk.iter_mut().enumerate() {
                if w * 32 + b >= vocab || bits & (1 << b) == 0 {
                    *logit = f32::NEG_INFINITY;
                } else {
                    any = true;
                }
            }
        }
        if any {
            Ok(())
        } else {
            Err(grammar_error("no token is allowed next"))
        }
    }

    /// Advances the grammar over the sampled token.
    ///
    /// # Errors
    /// `Server` when the token is not one the mask allowed (a bug).
    pub(crate) fn consume(&mut self, id: u32) -> Result<(), Error> {
        self.matcher.consume_token(id).map_err(|e| grammar_error(&e.to_string()))
    }

    /// The grammar is complete and nothing may follow: the answer ends here.
    pub(crate) fn is_done(&self) -> bool {
        self.matcher.is_stopped()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Grammars {
        /// The constraint for `format`, as a request's: `None` for plain text.
        fn compile(&self, format: Option<&ResponseFormat>) -> Result<Option<Constraint>, Error> {
            answer_schema(format).map(|schema| self.compile_schema(schema)).transpose()
        }
    }

    /// A tiny vocabulary: single bytes for the JSON alphabet, a few merged tokens, and control
    /// tokens; the end-of-turn token last.
    fn tiny() -> (Vec<Vec<u8>>, Vec<u32>) {
        let mut words: Vec<Vec<u8>> = (0x20u8..0x7F).map(|b| vec![b]).collect();
        for merged in ["{\"", "\":", "true", "false", "null", "é"] {
            words.push(merged.as_bytes().to_vec());
        }
        words.push(b"\xFF<|im_start|>".to_vec());
        words.push(b"\xFF<|im_end|>".to_vec());
        let eog = vec![words.len() as u32 - 1];
        (words, eog)
    }

    #[test]
    fn every_token_keeps_its_bytes_in_the_trie() {
        let (words, eog) = tiny();
        let trie = build_trie(&words, &eog).unwrap();
        assert_eq!(trie.vocab_size(), words.len());
        for (id, word) in words.iter().enumerate() {
            assert_eq!(trie.token(id as u32), word.as_slice(), "token {id}");
        }
        assert_eq!(trie.eos_tokens(), eog.as_slice());
        let ids: Vec<u32> = trie.greedy_tokenize(b"{\"a\":true}");
        let back: Vec<u8> = ids.iter().flat_map(|&id| trie.token(id).to_vec()).collect();
        assert_eq!(back, b"{\"a\":true}");
        assert!(trie.is_special_token(eog[0]));
        assert!(!trie.is_special_token(0));
    }

    #[test]
    fn a_vocabulary_without_an_end_token_is_an_error() {
        let (words, _) = tiny();
        assert!(build_trie(&words, &[]).err().unwrap().contains("end-of-generation"));
        assert!(build_trie(&words, &[10_000]).is_err());
    }

    #[test]
    fn compact_json_options_are_added_and_kept() {
        let s = compact(json!({"type": "object"}));
        assert_eq!(s["x-guidance"]["whitespace_flexible"], json!(false));
        let own = compact(json!({"type": "object", "x-guidance": {"whitespace_flexible": true}}));
        assert_eq!(own["x-guidance"]["whitespace_flexible"], json!(true));
        assert_eq!(compact(json!(true))["x-guidance"]["item_separator"], json!(","));
    }

    #[test]
    fn objects_with_properties_are_closed_unless_combined() {
        let mut s = json!({
            "type": "object",
            "properties": {"a": {"type": "object", "properties": {"b": {"type": "string"}}}, "m": {"type": "object"}},
            "$defs": {"D": {"properties": {"x": {"enum": [{"properties": {}}]}}}},
            "anyOf": [{"properties": {"c": {}}}],
            "allOf": [{"properties": {"d": {}}}]
        });
        close_objects(&mut s, false);
        assert!(s.get("additionalProperties").is_none(), "beside allOf: open");
        assert_eq!(s["properties"]["a"]["additionalProperties"], json!(false));
        assert!(s["properties"]["m"].get("additionalProperties").is_none(), "no properties: a map, open");
        assert_eq!(s["$defs"]["D"]["additionalProperties"], json!(false));
        assert_eq!(s["$defs"]["D"]["properties"]["x"]["enum"], json!([{"properties": {}}]), "values untouched");
        assert!(s["anyOf"][0].get("additionalProperties").is_none(), "a branch beside properties: open");
        assert!(s["allOf"][0].get("additionalProperties").is_none());
        // schemars' flattened enum: neither the parent nor its branches are closed, so
        // {"x": 1, "B": "b"} stays possible.
        let mut flat = json!({"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"],
            "oneOf": [{"type": "object", "properties": {"B": {"type": "string"}}, "required": ["B"]}]});
        close_objects(&mut flat, false);
        assert!(flat.get("additionalProperties").is_none());
        assert!(flat["oneOf"][0].get("additionalProperties").is_none());
        // A plain enum of objects (no properties beside it): each variant is closed.
        let mut variants = json!({"oneOf": [{"type": "object", "properties": {"Circle": {"type": "number"}}, "required": ["Circle"]}]});
        close_objects(&mut variants, false);
        assert_eq!(variants["oneOf"][0]["additionalProperties"], json!(false));
        let mut own = json!({"properties": {"a": {}}, "additionalProperties": {"type": "integer"}});
        close_objects(&mut own, false);
        assert_eq!(own["additionalProperties"], json!({"type": "integer"}));
    }

    /// The real GGUF tokenizer, when the model file is on this machine (the integration tests
    /// need it anyway; they say how to get it).
    fn real_tokenizer() -> Option<Arc<Tokenizer>> {
        let home = std::env::var_os("HOME").map(std::path::PathBuf::from)?;
        let candidates = [
            std::env::var_os("MAMBA_MODEL_FILE").map(std::path::PathBuf::from),
            Some(home.join(".cache/mamba-peers/models/SmolLM2-135M-Instruct.Q4_1.gguf")),
            Some(home.join(".cache/mamba/models/SmolLM2-135M-Instruct.Q4_1.gguf")),
        ];
        let path = candidates.into_iter().flatten().find(|p| p.is_file())?;
        let (_, content) = crate::gguf::open(&path).ok()?;
        Tokenizer::from_meta(crate::gguf::Meta(&content.metadata)).ok().map(Arc::new)
    }

    #[test]
    fn the_gguf_vocabulary_round_trips_through_the_token_environment() {
        let Some(tokenizer) = real_tokenizer() else { return };
        let words = token_words(&tokenizer);
        let trie = build_trie(&words, tokenizer.eog_ids()).unwrap();
        for id in 0..tokenizer.vocab_size() as u32 {
            if tokenizer.is_control(id) {
                assert!(trie.is_special_token(id) || trie.token(id).is_empty(), "control token {id}");
            } else {
                assert_eq!(trie.token(id), tokenizer.piece(id), "token {id}");
            }
        }
        let env = GgufTokEnv { trie, tokenizer: tokenizer.clone() };
        for text in ["{\"name\":\"Ada Lovelace\",\"age\":36}", "[1,2.5,-3e4]", "{\"é\":\"日本\"}"] {
            let ids = env.tokenize_bytes(text.as_bytes());
            assert_eq!(ids, tokenizer.encode(text, false));
            let back: Vec<u8> = ids.iter().flat_map(|&id| env.tok_trie().token(id).to_vec()).collect();
            assert_eq!(back, text.as_bytes());
        }
        let end = tokenizer.encode("<|im_end|>", true);
        assert!(env.tok_trie().eos_tokens().contains(&end[0]));
    }

    /// The mask's cost per token on the real vocabulary, replaying a valid answer: printed for
    /// the report (no timing is asserted; it depends on the machine).
    #[test]
    #[allow(clippy::print_stderr)]
    fn mask_cost_per_token() {
        let Some(tokenizer) = real_tokenizer() else { return };
        let started = std::time::Instant::now();
        let grammars = Grammars::new(tokenizer.clone()).unwrap();
        let setup = started.elapsed();
        let schema = json!({
            "type": "object",
            "properties": {
                "name": {"type": "string", "maxLength": 40},
                "age": {"type": "integer", "minimum": 0, "maximum": 120},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 4},
                "address": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
            },
            "required": ["name", "age", "tags", "address"]
        });
        let answer = r#"{"name":"Ada Lovelace","age":36,"tags":["math","poetry"],"address":{"city":"London"}}"#;
        let tokens = tokenizer.encode(answer, false);
        let format = if std::env::var_os("MASK_COST_JSON_OBJECT").is_some() {
            ResponseFormat::JsonObject
        } else {
            ResponseFormat::json_schema("p", schema)
        };
        let mut logits = vec![0.0f32; tokenizer.vocab_size()];
        let (mut compile, mut mask) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
        let rounds = 5;
        for _ in 0..rounds {
            let started = std::time::Instant::now();
            let mut c = grammars.compile(Some(&format)).unwrap().unwrap();
            compile += started.elapsed();
            for &id in &tokens {
                logits.fill(0.0);
                let started = std::time::Instant::now();
                c.mask(&mut logits).unwrap();
                mask += started.elapsed();
                assert!(logits[id as usize].is_finite(), "token {id} of a valid answer is allowed");
                c.consume(id).unwrap();
            }
            assert!(c.is_done());
        }
        let steps = (rounds * tokens.len()) as u32;
        eprintln!(
            "token environment {setup:?}; compile {:?} per schema; mask {:?} per token over {} tokens",
            compile / rounds as u32,
            mask / steps,
            tokens.len()
        );
    }

    #[test]
    fn schemas_compile_or_say_why_not() {
        let Some(tokenizer) = real_tokenizer() else { return };
        let grammars = Grammars::new(tokenizer).unwrap();
        assert!(grammars.compile(None).unwrap().is_none());
        assert!(grammars.compile(Some(&ResponseFormat::Text)).unwrap().is_none());
        assert!(grammars.compile(Some(&ResponseFormat::JsonObject)).unwrap().is_some());
        let ok = ResponseFormat::json_schema("p", json!({"type": "object", "properties": {"a": {"type": "integer"}}}));
        assert!(grammars.compile(Some(&ok)).unwrap().is_some());
        let bad = ResponseFormat::json_schema("p", json!({"type": "string", "minLength": 5, "maxLength": 2}));
        let e = grammars.compile(Some(&bad)).err().unwrap();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(!e.to_string().contains('\n'), "{e}");
    }

    #[test]
    fn the_mask_forbids_what_the_grammar_does_not_allow() {
        let Some(tokenizer) = real_tokenizer() else { return };
        let grammars = Grammars::new(tokenizer.clone()).unwrap();
        let mut c = grammars.compile(Some(&ResponseFormat::JsonObject)).unwrap().unwrap();
        // Two extra logits past the vocabulary, as a padded output layer has.
        let mut logits = vec![0.0f32; tokenizer.vocab_size() + 2];
        c.mask(&mut logits).unwrap();
        let allowed: Vec<u32> = (0..logits.len() as u32).filter(|&i| logits[i as usize].is_finite()).collect();
        assert!(!allowed.is_empty());
        for id in &allowed {
            assert!(tokenizer.piece(*id).starts_with(b"{"), "{:?}", String::from_utf8_lossy(tokenizer.piece(*id)));
        }
        for id in tokenizer.encode("{}", false) {
            c.consume(id).unwrap();
        }
        assert!(c.is_done());
    }
}
