//! Tool calling through the model's own chat template: which call syntax a template teaches,
//! the grammar that makes the model write a valid call, and the parser that turns the answer
//! (whole, or piece by piece as it streams) back into content and [`ToolCall`]s.
//!
//! The syntax is read from the template's text, never from the family's name: the same Qwen
//! weights fine-tuned with another template call tools another way. A template that teaches
//! no syntax this module knows has no tools, and requests with tools are refused.

use mamba_backends::{Error, ErrorKind, ToolCall, ToolChoice, ToolDefinition};

use crate::think::partial_tag;
use serde_json::{json, Value};

/// How a template's model writes its tool calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ToolSyntax {
    /// One block per call, `<tool_call>\n{"name": …, "arguments": {…}}\n</tool_call>`, with text
    /// possibly before (Qwen2.5, Qwen3, Hermes, SmolLM3 and other ChatML tool templates).
    Tagged,
    /// The whole answer is one JSON object, `{"name": …, "parameters": {…}}` (Llama 3.1–3.3's
    /// JSON tool calling).
    BareJson,
    /// `[TOOL_CALLS]` then one JSON array of `{"name": …, "arguments": {…}}`, to the end of the
    /// answer (Mistral 7B Instruct v0.3 and the other Mistral templates of its generation). Call
    /// ids are 9 letters and digits, which those templates check when they render a call back.
    CallList,
}

impl ToolSyntax {
    /// The text that opens the calls, when the syntax has one.
    pub(crate) fn marker(self) -> Option<&'static str> {
        match self {
            ToolSyntax::Tagged => Some(OPEN),
            ToolSyntax::CallList => Some(LIST_OPEN),
            ToolSyntax::BareJson => None,
        }
    }
}

/// One row per syntax: the texts a template that teaches it contains (all of them), first match
/// wins. Every template must also use the `tools` variable.
const SYNTAXES: &[(ToolSyntax, &[&str])] = &[
    (ToolSyntax::Tagged, &["<tool_call>", "</tool_call>"]),
    (ToolSyntax::CallList, &["[TOOL_CALLS]"]),
    (ToolSyntax::BareJson, &["\"parameters\"", "\"name\""]),
];

/// Opening and closing tags of [`ToolSyntax::Tagged`].
const OPEN: &str = "<tool_call>";
const CLOSE: &str = "</tool_call>";
/// What opens the calls of [`ToolSyntax::CallList`].
const LIST_OPEN: &str = "[TOOL_CALLS]";

/// The tool-call syntax `template_source` teaches, if any.
pub(crate) fn detect(template_source: &str) -> Option<ToolSyntax> {
    if !template_source.contains("tools") {
        return None;
    }
    SYNTAXES.iter().find(|(_, markers)| markers.iter().all(|m| template_source.contains(m))).map(|(syntax, _)| *syntax)
}

/// What a request with tools asks of the engine.
#[derive(Debug, Clone)]
pub(crate) struct ToolPlan {
    pub(crate) syntax: ToolSyntax,
    /// The tools rendered into the prompt (none under `tool_choice: none`).
    pub(crate) rendered: Vec<ToolDefinition>,
    /// The names calls may use.
    pub(crate) names: Vec<String>,
    /// How the grammar applies.
    pub(crate) mode: GrammarMode,
}

/// When the tool grammar constrains the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GrammarMode {
    /// Not at all: the model writes freely and nothing is parsed (`tool_choice: none`).
    Off,
    /// From the first token: the answer is calls only (`required`, or one named function).
    Forced,
    /// Each time the model opens a call block (the trigger text): the rest of that call
    /// (`auto` with a syntax that opens its calls with a tag).
    Triggered(String),
    /// Never, but the answer is parsed (`auto` with a syntax that has no opening tag).
    ParseOnly,
}

impl ToolPlan {
    /// The plan for `tools` and `choice` with `syntax`.
    ///
    /// # Errors
    /// `InvalidRequest` when `choice` names a function that is not among `tools`, or asks for
    /// a call without tools.
    pub(crate) fn new(
        syntax: ToolSyntax,
        tools: &[ToolDefinition],
        choice: Option<&ToolChoice>,
    ) -> Result<ToolPlan, Error> {
        let invalid = |message: String| Error::new(ErrorKind::InvalidRequest, message);
        let all: Vec<String> = tools.iter().map(|t| t.name.clone()).collect();
        let (names, mode) = match choice {
            None | Some(ToolChoice::Auto) => {
                let mode = match syntax.marker() {
                    Some(marker) => GrammarMode::Triggered(marker.to_owned()),
                    None => GrammarMode::ParseOnly,
                };
                (all, mode)
            }
            Some(ToolChoice::None) => (Vec::new(), GrammarMode::Off),
            Some(ToolChoice::Required) => {
                if all.is_empty() {
                    return Err(invalid("tool_choice \"required\" needs at least one tool".to_owned()));
                }
                (all, GrammarMode::Forced)
            }
            Some(ToolChoice::Function(name)) => {
                if !all.contains(name) {
                    return Err(invalid(format!(
                        "tool_choice names the function {name:?}, which is not among the request's tools ({})",
                        if all.is_empty() { "none".to_owned() } else { all.join(", ") }
                    )));
                }
                (vec![name.clone()], GrammarMode::Forced)
            }
        };
        let rendered = if mode == GrammarMode::Off { Vec::new() } else { tools.to_vec() };
        Ok(ToolPlan { syntax, rendered, names, mode })
    }

    /// The grammar of what follows the trigger ([`GrammarMode::Triggered`]) or of the whole
    /// answer ([`GrammarMode::Forced`]), as llguidance's Lark; `None` when no grammar applies.
    pub(crate) fn grammar(&self) -> Option<String> {
        let (call, list) = self.call_grammars()?;
        let one_only = self.names.len() == 1;
        match (&self.mode, self.syntax) {
            (GrammarMode::Off | GrammarMode::ParseOnly, _) => None,
            (GrammarMode::Triggered(_), ToolSyntax::Tagged) => {
                Some(format!("start: \"\\n\" call \"\\n{CLOSE}\"\ncall: %json {call}\n"))
            }
            (GrammarMode::Triggered(_), ToolSyntax::BareJson) => None,
            (GrammarMode::Forced, ToolSyntax::Tagged) => {
                let repeat = if one_only { "" } else { "(\"\\n\" block)*" };
                Some(format!("start: block {repeat}\nblock: \"{OPEN}\\n\" call \"\\n{CLOSE}\"\ncall: %json {call}\n"))
            }
            (GrammarMode::Forced, ToolSyntax::BareJson) => Some(format!("start: call\ncall: %json {call}\n")),
            // After the marker: the templates write a space before the list.
            (GrammarMode::Triggered(_), ToolSyntax::CallList) => {
                Some(format!("start: \" \" calls\ncalls: %json {list}\n"))
            }
            // Forced: the list alone (a model's marker is often a control token, which a grammar
            // over text cannot write; the parser takes a list without it).
            (GrammarMode::Forced, ToolSyntax::CallList) => Some(format!("start: calls\ncalls: %json {list}\n")),
        }
    }

    /// With `tool_choice` auto and a `response_format`: the whole answer is either calls or the
    /// format's JSON (`answer`, a schema with its grammar options), as OpenAI's API has it. Each
    /// alone would be wrong: the format's grammar alone forbids the calls, the calls' trigger
    /// alone lets the answer leave the format. `None` when calls are not optional here.
    pub(crate) fn grammar_or_answer(&self, answer: &Value) -> Option<String> {
        if !matches!(self.mode, GrammarMode::Triggered(_) | GrammarMode::ParseOnly) {
            return None;
        }
        let (call, list) = self.call_grammars()?;
        let answer = serde_json::to_string(answer).ok()?;
        let calls = match self.syntax {
            ToolSyntax::Tagged => {
                format!("block (\"\\n\" block)*\nblock: \"{OPEN}\\n\" call \"\\n{CLOSE}\"\ncall: %json {call}")
            }
            ToolSyntax::BareJson => format!("call\ncall: %json {call}"),
            ToolSyntax::CallList => format!("calls\ncalls: %json {list}"),
        };
        Some(format!("start: answer | {calls}\nanswer: %json {answer}\n"))
    }

    /// One call's JSON and a list of them, as `%json` schemas with the templates' spacing.
    fn call_grammars(&self) -> Option<(String, String)> {
        let calls: Vec<Value> = self
            .rendered
            .iter()
            .filter(|t| self.names.contains(&t.name))
            .map(|t| call_schema(self.syntax, &t.name, &t.parameters))
            .collect();
        let one_only = self.names.len() == 1;
        let list = json!({
            "type": "array",
            "items": {"anyOf": calls.clone()},
            "minItems": 1,
            "maxItems": if one_only { 1 } else { 16 },
            "x-guidance": call_json_options()
        });
        let call = json!({"anyOf": calls, "x-guidance": call_json_options()});
        Some((serde_json::to_string(&call).ok()?, serde_json::to_string(&list).ok()?))
    }
}

/// The JSON of one call to `name`: the name first (so it is known early), then its arguments
/// under the key the syntax uses.
fn call_schema(syntax: ToolSyntax, name: &str, parameters: &Value) -> Value {
    let key = match syntax {
        ToolSyntax::Tagged | ToolSyntax::CallList => "arguments",
        ToolSyntax::BareJson => "parameters",
    };
    let mut parameters = parameters.clone();
    crate::constrain::close_objects(&mut parameters, false);
    json!({
        "type": "object",
        "properties": {"name": {"const": name}, key: parameters},
        "required": ["name", key],
        "additionalProperties": false
    })
}

/// Calls are written as the templates show them (Python's `json.dumps`: `", "` and `": "`),
/// which is what the models were trained on.
fn call_json_options() -> Value {
    json!({
        "whitespace_flexible": false,
        "item_separator": ", ",
        "key_separator": ": ",
        "coerce_one_of": true,
        "lenient": true
    })
}

/// A new call id: `call_` and 24 letters and digits, unique enough to match answers to calls;
/// for [`ToolSyntax::CallList`], 9 letters and digits (what its templates accept).
fn call_id(syntax: ToolSyntax) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let (mut id, length) = match syntax {
        ToolSyntax::CallList => (String::new(), 9),
        ToolSyntax::Tagged | ToolSyntax::BareJson => (String::from("call_"), 24),
    };
    let mut bits = 0u64;
    for i in 0..length {
        if i % 8 == 0 {
            bits = crate::random_u64();
        }
        id.push(ALPHABET[(bits % ALPHABET.len() as u64) as usize] as char);
        bits /= ALPHABET.len() as u64;
    }
    id
}

/// One call's JSON as a [`ToolCall`]: a name among `names`, and arguments that are an object
/// (or a string holding one, as some models write them). `None` for anything else.
fn to_call(value: &Value, names: &[String], syntax: ToolSyntax) -> Option<ToolCall> {
    let object = value.as_object()?;
    let name = object.get("name")?.as_str()?;
    if !names.iter().any(|n| n == name) {
        return None;
    }
    let arguments = match object.get("arguments").or_else(|| object.get("parameters")) {
        None | Some(Value::Null) => "{}".to_owned(),
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            Ok(parsed @ Value::Object(_)) => parsed.to_string(),
            _ => return None,
        },
        Some(args @ Value::Object(_)) => args.to_string(),
        Some(_) => return None,
    };
    Some(ToolCall::new(call_id(syntax), name, arguments))
}

/// The calls in an answer that is only calls without tags: one object, an array of them, or
/// objects separated by `;` (all must be calls), possibly in a markdown code fence. Llama 3.x
/// answers so; Qwen2.5-Coder often does too, without its template's `<tool_call>` tags (as
/// llama.cpp, we take both). `None` when the text is not calls: then it is content.
fn bare_calls(text: &str, names: &[String], syntax: ToolSyntax) -> Option<Vec<ToolCall>> {
    let mut text = text.trim();
    if let Some(fenced) = text.strip_prefix("```") {
        let fenced = fenced.strip_suffix("```")?;
        text = fenced.trim_start_matches(|c: char| c.is_ascii_alphabetic()).trim();
    }
    if !text.starts_with(['{', '[']) {
        return None;
    }
    let values: Vec<Value> = match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => items,
        Ok(one) => vec![one],
        Err(_) => {
            text.split(';').map(|part| serde_json::from_str::<Value>(part.trim())).collect::<Result<_, _>>().ok()?
        }
    };
    let calls: Option<Vec<ToolCall>> = values.iter().map(|v| to_call(v, names, syntax)).collect();
    calls.filter(|c| !c.is_empty())
}

/// Whether an answer starting with `text` may still be calls without tags: a JSON object whose
/// first key is `name` (or Llama's `type`), or an array of them, possibly in a `json` code
/// fence. Anything else streams as content at once (a JSON answer, a fenced program).
fn may_be_calls(text: &str) -> bool {
    let mut text = text.trim_start();
    if let Some(rest) = text.strip_prefix("```") {
        let Some(end) = rest.find('\n') else {
            return rest.chars().all(|c| c.is_ascii_alphabetic());
        };
        let language = rest[..end].trim();
        if !(language.is_empty() || language.eq_ignore_ascii_case("json")) {
            return false;
        }
        text = rest[end + 1..].trim_start();
    }
    let start: String = text.chars().filter(|c| !c.is_whitespace()).take(8).collect();
    ["{\"name\"", "[{\"name\"", "{\"type\""].iter().any(|p| p.starts_with(&start) || start.starts_with(p))
}

/// What one piece of answer text became.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Parsed {
    pub(crate) content: String,
    pub(crate) calls: Vec<ToolCall>,
}

/// Where the parser is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before any text but blanks: a `{`, `[` or code fence may start an answer of calls.
    Start,
    /// Free text, watching for an opening tag.
    Text,
    /// Inside a `<tool_call>` block.
    Call,
    /// After `[TOOL_CALLS]`: the list of calls, held to the end of the answer.
    List,
    /// The answer may be calls without tags, held until it ends.
    Held,
}

/// Where the `</tool_call>` closing a call's JSON body is: the first one outside a JSON string
/// (an argument may contain the tag itself: `{"q": "a</tool_call>"}`).
fn close_of_call(body: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let (mut in_string, mut escaped) = (false, false);
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else if b == b'"' {
            in_string = true;
        } else if b == b'<' && body[i..].starts_with(CLOSE) {
            return Some(i);
        }
    }
    None
}

/// Splits a streamed answer into content and tool calls. Content streams as it comes, except
/// text that may be the start of a call (held until known); each call comes out whole, as soon
/// as its block closes. Text that looked like a call but is not one (bad JSON, an unknown
/// function) comes out as content, never lost.
#[derive(Debug)]
pub(crate) struct ToolParser {
    syntax: ToolSyntax,
    names: Vec<String>,
    state: State,
    pending: String,
    /// Whether any content came out yet (blank lines between calls are dropped otherwise).
    calls: usize,
}

impl ToolParser {
    pub(crate) fn new(syntax: ToolSyntax, names: Vec<String>) -> ToolParser {
        ToolParser { syntax, names, state: State::Start, pending: String::new(), calls: 0 }
    }

    /// Calls found so far.
    pub(crate) fn calls(&self) -> usize {
        self.calls
    }

    /// Parses the next piece of answer text.
    pub(crate) fn push(&mut self, text: &str) -> Parsed {
        let mut out = Parsed::default();
        self.pending.push_str(text);
        loop {
            match self.state {
                State::Start => {
                    let trimmed = self.pending.trim_start();
                    if trimmed.is_empty() || "```".starts_with(trimmed) {
                        return out;
                    }
                    let calls_maybe = trimmed.starts_with(['{', '[', '`']);
                    self.state = if calls_maybe { State::Held } else { State::Text };
                }
                State::Held => {
                    if may_be_calls(&self.pending) {
                        return out;
                    }
                    self.state = State::Text;
                }
                State::Text if self.syntax == ToolSyntax::BareJson => {
                    out.content.push_str(&self.pending);
                    self.pending.clear();
                    return out;
                }
                State::Text => {
                    let open = self.syntax.marker().unwrap_or(OPEN);
                    // The line breaks (and for a list, the spaces) before a marker are the syntax's.
                    let blank: &[char] = if self.syntax == ToolSyntax::CallList { &['\n', ' '] } else { &['\n'] };
                    if let Some(i) = self.pending.find(open) {
                        out.content.push_str(self.pending[..i].trim_end_matches(blank));
                        self.pending.drain(..i + open.len());
                        self.state = if self.syntax == ToolSyntax::CallList { State::List } else { State::Call };
                        continue;
                    }
                    let keep = partial_tag(&self.pending, open);
                    // Blank lines before a tag are the syntax's, not content: held too.
                    let body = &self.pending[..self.pending.len() - keep];
                    let upto = body.trim_end_matches(blank).len();
                    let upto = if self.calls > 0 && body[..upto].trim().is_empty() { 0 } else { upto };
                    out.content.push_str(&self.pending[..upto]);
                    self.pending.drain(..upto);
                    return out;
                }
                State::List => return out,
                State::Call => {
                    let Some(i) = close_of_call(&self.pending) else { return out };
                    let block = self.pending[..i].to_owned();
                    self.pending.drain(..i + CLOSE.len());
                    self.state = State::Text;
                    self.block(&block, true, &mut out);
                }
            }
        }
    }

    /// The calls of one `<tool_call>` block, or its text as content when it holds none.
    fn block(&mut self, block: &str, closed: bool, out: &mut Parsed) {
        let call = serde_json::from_str::<Value>(block.trim()).ok().and_then(|v| to_call(&v, &self.names, self.syntax));
        match call {
            Some(call) => {
                self.calls += 1;
                out.calls.push(call);
            }
            None => {
                out.content.push_str(OPEN);
                out.content.push_str(block);
                if closed {
                    out.content.push_str(CLOSE);
                }
            }
        }
    }

    /// The end of the answer: what was held back.
    pub(crate) fn finish(&mut self) -> Parsed {
        let mut out = Parsed::default();
        let text = std::mem::take(&mut self.pending);
        match self.state {
            State::Call => self.block(&text, false, &mut out),
            State::List => match bare_calls(&text, &self.names, self.syntax) {
                Some(calls) => {
                    self.calls += calls.len();
                    out.calls = calls;
                }
                None => {
                    out.content.push_str(LIST_OPEN);
                    out.content.push_str(&text);
                }
            },
            State::Held => match bare_calls(&text, &self.names, self.syntax) {
                Some(calls) => {
                    self.calls += calls.len();
                    out.calls = calls;
                }
                // Not calls without tags: text, with any tagged calls in it.
                None => {
                    self.state = State::Text;
                    out = self.push(&text);
                    let rest = self.finish();
                    out.content.push_str(&rest.content);
                    out.calls.extend(rest.calls);
                }
            },
            State::Start | State::Text => {
                if !(self.calls > 0 && text.trim().is_empty()) {
                    out.content = text;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["get_weather".to_owned(), "search".to_owned()]
    }

    /// The answer fed in pieces: content, and the calls as (name, arguments).
    fn run(syntax: ToolSyntax, pieces: &[&str]) -> (String, Vec<(String, String)>) {
        let mut p = ToolParser::new(syntax, names());
        let mut all = Parsed::default();
        for piece in pieces {
            let out = p.push(piece);
            all.content.push_str(&out.content);
            all.calls.extend(out.calls);
        }
        let out = p.finish();
        all.content.push_str(&out.content);
        all.calls.extend(out.calls);
        assert_eq!(p.calls(), all.calls.len());
        (all.content, all.calls.into_iter().map(|c| (c.name, c.arguments)).collect())
    }

    /// Every cut into two pieces, and character by character, gives the same result.
    fn every_cut(syntax: ToolSyntax, text: &str) -> (String, Vec<(String, String)>) {
        crate::test_support::same_at_every_cut(text, |pieces| run(syntax, pieces))
    }

    fn call(name: &str, args: &str) -> (String, String) {
        (name.to_owned(), args.to_owned())
    }

    #[test]
    fn syntaxes_are_read_from_the_template() {
        let chatml_tools = "{% if tools %}<tools>{% for t in tools %}{{ t | tojson }}{% endfor %}</tools> <tool_call>\n{\"name\": …}\n</tool_call>{% endif %}";
        assert_eq!(detect(chatml_tools), Some(ToolSyntax::Tagged));
        let llama =
            "{% if tools %}Respond in the format {\"name\": function name, \"parameters\": dictionary}{% endif %}";
        assert_eq!(detect(llama), Some(ToolSyntax::BareJson));
        assert_eq!(detect("{% for m in messages %}<|im_start|>{{ m.content }}{% endfor %}"), None);
        assert_eq!(detect("<tool_call></tool_call> without the variable"), None);
        let mistral = "{% if tools %}[AVAILABLE_TOOLS] {{ tools | tojson }}[/AVAILABLE_TOOLS]{% endif %}\
                       {% if m.tool_calls %}[TOOL_CALLS] [{% for c in m.tool_calls %}{\"name\": \"{{ c.name }}\"}{% endfor %}]{% endif %}";
        assert_eq!(detect(mistral), Some(ToolSyntax::CallList));
    }

    /// Mistral's list: content before the marker, the calls after it, at every cut; ids of 9
    /// letters and digits; a list that is not calls stays content with its marker.
    #[test]
    fn listed_calls_are_parsed_at_every_cut() {
        let text = "Checking. [TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}, {\"name\": \"search\", \"arguments\": {\"q\": \"x\"}}]";
        let (content, calls) = every_cut(ToolSyntax::CallList, text);
        assert_eq!(content, "Checking.");
        assert_eq!(calls, vec![call("get_weather", r#"{"city":"Paris"}"#), call("search", r#"{"q":"x"}"#)]);
        // The list alone (a forced call, or a marker the vocabulary does not show).
        let (content, calls) = every_cut(ToolSyntax::CallList, "[{\"name\": \"search\", \"arguments\": {}}]");
        assert_eq!((content.as_str(), calls), ("", vec![call("search", "{}")]));
        let bad = "[TOOL_CALLS] [{\"name\": \"rm\", \"arguments\": {}}]";
        assert_eq!(every_cut(ToolSyntax::CallList, bad), (bad.to_owned(), Vec::new()));
        let mut p = ToolParser::new(ToolSyntax::CallList, names());
        p.push("[TOOL_CALLS] [{\"name\": \"search\", \"arguments\": {}}]");
        let id = &p.finish().calls[0].id;
        assert!(id.len() == 9 && id.chars().all(|c| c.is_ascii_alphanumeric()), "{id}");
    }

    #[test]
    fn tagged_calls_are_parsed_at_every_cut() {
        let text = "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 2}}\n</tool_call>\n<tool_call>\n{\"name\": \"search\", \"arguments\": {\"q\": \"é <b>\"}}\n</tool_call>";
        let (content, calls) = every_cut(ToolSyntax::Tagged, text);
        assert_eq!(content, "Let me check.");
        assert_eq!(
            calls,
            vec![call("get_weather", r#"{"city":"Paris","days":2}"#), call("search", r#"{"q":"é <b>"}"#)]
        );
        // Arguments written as a JSON string, and no arguments at all.
        let text = "<tool_call>{\"name\": \"search\", \"arguments\": \"{\\\"q\\\": 1}\"}</tool_call><tool_call>{\"name\": \"search\"}</tool_call>";
        assert_eq!(
            every_cut(ToolSyntax::Tagged, text),
            (String::new(), vec![call("search", r#"{"q":1}"#), call("search", "{}")])
        );
    }

    #[test]
    fn a_closing_tag_inside_an_argument_does_not_close_the_call() {
        let text =
            "<tool_call>\n{\"name\": \"search\", \"arguments\": {\"q\": \"Paris</tool_call>\\\"\"}}\n</tool_call>";
        let (content, calls) = every_cut(ToolSyntax::Tagged, text);
        assert_eq!(content, "");
        assert_eq!(calls, vec![call("search", r#"{"q":"Paris</tool_call>\""}"#)]);
        assert_eq!(close_of_call("{\"a\": \"</tool_call>\"} </tool_call>"), Some(22));
        assert_eq!(close_of_call("{\"a\": \"</tool_call>"), None);
    }

    #[test]
    fn text_that_is_not_a_call_stays_content() {
        // Plain text, a tag-like text, an unknown function, bad JSON, a block cut by max_tokens.
        assert_eq!(
            every_cut(ToolSyntax::Tagged, "Paris is sunny.\n\nYes."),
            ("Paris is sunny.\n\nYes.".to_owned(), vec![])
        );
        assert_eq!(every_cut(ToolSyntax::Tagged, "a <tool b"), ("a <tool b".to_owned(), vec![]));
        let unknown = "<tool_call>{\"name\": \"rm_rf\", \"arguments\": {}}</tool_call>";
        assert_eq!(every_cut(ToolSyntax::Tagged, unknown), (unknown.to_owned(), vec![]));
        let bad = "x<tool_call>{\"name\": \"search\", \"arguments\": {</tool_call>";
        assert_eq!(every_cut(ToolSyntax::Tagged, bad).0, bad);
        let cut = "<tool_call>\n{\"name\": \"search\", \"argu";
        assert_eq!(every_cut(ToolSyntax::Tagged, cut), (cut.to_owned(), vec![]));
        // A block the answer ended in before its closing tag, whose JSON is whole: a call.
        let unclosed = "<tool_call>\n{\"name\": \"search\", \"arguments\": {\"q\": \"x\"}}\n";
        assert_eq!(every_cut(ToolSyntax::Tagged, unclosed), (String::new(), vec![call("search", r#"{"q":"x"}"#)]));
    }

    #[test]
    fn bare_json_calls_are_parsed_at_every_cut() {
        let text = " {\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}";
        assert_eq!(
            every_cut(ToolSyntax::BareJson, text),
            (String::new(), vec![call("get_weather", r#"{"city":"Oslo"}"#)])
        );
        let two = "{\"name\": \"search\", \"parameters\": {\"q\": \"a\"}}; {\"name\": \"search\", \"parameters\": {\"q\": \"b\"}}";
        assert_eq!(
            every_cut(ToolSyntax::BareJson, two).1,
            vec![call("search", r#"{"q":"a"}"#), call("search", r#"{"q":"b"}"#)]
        );
        let array = "[{\"name\": \"search\", \"arguments\": {}}]";
        assert_eq!(every_cut(ToolSyntax::BareJson, array).1, vec![call("search", "{}")]);
        // JSON that is not a call, and text, are content.
        for text in ["{\"answer\": 42}", "The weather is fine.", "{\"name\": \"nope\", \"parameters\": {}}", "{broken"]
        {
            assert_eq!(every_cut(ToolSyntax::BareJson, text), (text.to_owned(), vec![]), "{text}");
        }
    }

    #[test]
    fn tagged_syntax_also_takes_calls_without_tags() {
        // Qwen2.5-Coder's way: the call's JSON alone, or in a fence.
        let bare = "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}";
        assert_eq!(
            every_cut(ToolSyntax::Tagged, bare),
            (String::new(), vec![call("get_weather", r#"{"city":"Paris"}"#)])
        );
        let fenced = "```json\n{\"name\": \"search\", \"arguments\": {}}\n```";
        assert_eq!(every_cut(ToolSyntax::Tagged, fenced), (String::new(), vec![call("search", "{}")]));
        // JSON answers and programs are content; tags after a held start still make calls.
        for text in ["{\"city\": \"Paris\"}", "```python\nprint(1)\n```", "[1, 2]", "{\"name\": \"Ada\"} is a name"] {
            assert_eq!(every_cut(ToolSyntax::Tagged, text), (text.to_owned(), vec![]), "{text}");
        }
        let mixed = "{\"name\": 1} <tool_call>{\"name\": \"search\", \"arguments\": {}}</tool_call>";
        assert_eq!(every_cut(ToolSyntax::Tagged, mixed), ("{\"name\": 1} ".to_owned(), vec![call("search", "{}")]));
    }

    #[test]
    fn only_what_may_be_calls_is_held() {
        for held in
            ["{", "{\"na", "{ \"name\": 1", "[{\"name\"", "```", "```js", "```json\n{\"name", "{\"type\": \"function\""]
        {
            assert!(may_be_calls(held), "{held}");
        }
        for free in ["{\"city", "[1", "```python\n", "{\"names\"x"] {
            assert!(!may_be_calls(free), "{free}");
        }
    }

    #[test]
    fn call_ids_are_distinct() {
        let ids: std::collections::HashSet<String> = (0..100).map(|_| call_id(ToolSyntax::Tagged)).collect();
        assert_eq!(ids.len(), 100);
        assert!(ids.iter().all(|id| id.len() == 29 && id.starts_with("call_")));
    }

    fn tools() -> Vec<ToolDefinition> {
        vec![
            ToolDefinition::function(
                "get_weather",
                "Weather",
                json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
            ),
            ToolDefinition::function(
                "search",
                "Search",
                json!({"type": "object", "properties": {"q": {"type": "string"}}}),
            ),
        ]
    }

    #[test]
    fn tool_choice_sets_the_grammar() {
        let auto = ToolPlan::new(ToolSyntax::Tagged, &tools(), None).unwrap();
        assert_eq!(auto.mode, GrammarMode::Triggered("<tool_call>".to_owned()));
        assert_eq!(auto.rendered.len(), 2);
        let g = auto.grammar().unwrap();
        assert!(g.starts_with("start: \"\\n\" call \"\\n</tool_call>\""), "{g}");
        assert!(g.contains("\"const\":\"get_weather\"") && g.contains("\"additionalProperties\":false"), "{g}");

        let none = ToolPlan::new(ToolSyntax::Tagged, &tools(), Some(&ToolChoice::None)).unwrap();
        assert_eq!((none.mode.clone(), none.rendered.len(), none.grammar()), (GrammarMode::Off, 0, None));

        let named = ToolPlan::new(ToolSyntax::Tagged, &tools(), Some(&ToolChoice::Function("search".into()))).unwrap();
        let g = named.grammar().unwrap();
        assert!(g.starts_with("start: block \nblock: \"<tool_call>\\n\""), "{g}");
        assert!(!g.contains("get_weather"), "only the named function: {g}");

        let required = ToolPlan::new(ToolSyntax::BareJson, &tools(), Some(&ToolChoice::Required)).unwrap();
        let g = required.grammar().unwrap();
        assert!(g.starts_with("start: call\n") && g.contains("\"parameters\""), "{g}");
        assert_eq!(ToolPlan::new(ToolSyntax::BareJson, &tools(), None).unwrap().mode, GrammarMode::ParseOnly);

        let listed = ToolPlan::new(ToolSyntax::CallList, &tools(), None).unwrap();
        assert_eq!(listed.mode, GrammarMode::Triggered("[TOOL_CALLS]".to_owned()));
        let g = listed.grammar().unwrap();
        assert!(g.starts_with("start: \" \" calls\n") && g.contains("\"type\":\"array\""), "{g}");
        let forced =
            ToolPlan::new(ToolSyntax::CallList, &tools(), Some(&ToolChoice::Function("search".into()))).unwrap();
        let g = forced.grammar().unwrap();
        assert!(g.starts_with("start: calls\n") && g.contains("\"maxItems\":1") && !g.contains("get_weather"), "{g}");

        // With a response format, auto: calls or the format's answer; forced: calls only.
        let answer = json!({"type": "object"});
        let g = auto.grammar_or_answer(&answer).unwrap();
        assert!(
            g.starts_with("start: answer | block (\"\\n\" block)*\n")
                && g.contains("answer: %json {\"type\":\"object\"}"),
            "{g}"
        );
        let bare = ToolPlan::new(ToolSyntax::BareJson, &tools(), None).unwrap().grammar_or_answer(&answer).unwrap();
        assert!(bare.starts_with("start: answer | call\n"), "{bare}");
        assert!(listed.grammar_or_answer(&answer).unwrap().starts_with("start: answer | calls\n"));
        assert_eq!(forced.grammar_or_answer(&answer), None);
        assert_eq!(none.grammar_or_answer(&answer), None);

        let e = ToolPlan::new(ToolSyntax::Tagged, &tools(), Some(&ToolChoice::Function("nope".into()))).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidRequest);
        assert!(e.to_string().contains("get_weather, search"), "{e}");
        assert!(ToolPlan::new(ToolSyntax::Tagged, &[], Some(&ToolChoice::Required)).is_err());
    }
}
