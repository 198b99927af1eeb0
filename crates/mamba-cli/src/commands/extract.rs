//! `mamba-llm extract --schema FILE [PROMPT]`: structured output from the command line.
//!
//! The schema is read and compiled before anything is sent (not JSON, or not valid JSON
//! Schema: a usage error, exit 2). Each input (the argument, else each non-blank line of
//! `--file` or stdin) is one extraction with the library's [`Extract`]: the answer is parsed
//! leniently, validated, and sent back with its errors up to `--attempts` requests. The value
//! is printed as one JSON line; with `--json` each line is an object with the value and how it
//! was obtained (or the error), so the output has exactly one line per input.
//!
//! An input whose answer is still invalid after the last attempt (or refused, or cut by the
//! token limit) is reported on stderr and the next input goes on; the exit code is then 1. Any
//! other failure (the server unreachable, a bad key) stops the run, as it would fail every
//! input.

use std::io::{self, BufRead, IsTerminal};

use mamba_backends::structured::{attempts_of, Validator};
use mamba_backends::{
    Error, ErrorKind, Extract, ExtractMode, ExtractOptions, Extracted, Message, ModelBackend, RequestOptions,
};
use serde_json::{json, Value};

use crate::connect::{find_server, Found};
use crate::error::{one_line, CliError};
use crate::input::CappedLines;
use crate::local::{self, Why};
use crate::print::{line, note};
use crate::settings::Extract as Settings;

/// The inputs: the argument, else the lines of `--file` or stdin (blank lines skipped).
enum Inputs {
    One(Option<String>),
    Lines(CappedLines<Box<dyn BufRead>>),
}

impl Inputs {
    fn open(args: &Settings) -> Result<Inputs, CliError> {
        if let Some(prompt) = &args.prompt {
            return Ok(Inputs::One(Some(prompt.clone())));
        }
        let (reader, what): (Box<dyn BufRead>, String) = match &args.file {
            Some(path) => {
                let file = std::fs::File::open(path)
                    .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))?;
                (Box::new(io::BufReader::new(file)), path.display().to_string())
            }
            None if io::stdin().is_terminal() => {
                return Err(CliError::Usage(
                    "nothing to extract from: give a text as an argument, --file FILE, or lines on stdin".into(),
                ))
            }
            None => (Box::new(io::BufReader::new(io::stdin())), "stdin".to_owned()),
        };
        Ok(Inputs::Lines(CappedLines::new(reader, args.max_input_bytes, what)))
    }

    /// The next input; `None` at the end.
    fn next(&mut self) -> Result<Option<String>, CliError> {
        match self {
            Inputs::One(prompt) => Ok(prompt.take()),
            Inputs::Lines(lines) => loop {
                match lines.next_line()? {
                    Some(text) if text.trim().is_empty() => continue,
                    other => return Ok(other),
                }
            },
        }
    }
}

/// `--mode`'s name as the library's mode.
fn mode(name: &str) -> Result<ExtractMode, CliError> {
    ExtractMode::parse(&name.replace('-', "_"))
        .ok_or_else(|| CliError::Usage(format!("--mode {name}: use auto, json-schema, json-object, tool or prompt")))
}

/// The schema of `--schema`, checked to be valid JSON Schema: a usage error (exit 2) otherwise.
fn read_schema(path: &std::path::Path) -> Result<Value, CliError> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| CliError::Usage(format!("--schema {shown}: {e}")))?;
    let schema: Value = serde_json::from_str(&text).map_err(|e| {
        CliError::Usage(format!("--schema {shown} is not JSON ({e}); give a file holding one JSON Schema object"))
    })?;
    Validator::new(&schema).map_err(|e| {
        CliError::Usage(format!("--schema {shown} is not valid JSON Schema: {}; fix the schema", one_line(e.message())))
    })?;
    Ok(schema)
}

/// The backend that answers: `--local`/`--model-file` → the built-in model; else a
/// configured server; else one running on this machine; else the built-in model.
async fn choose(args: &Settings) -> Result<Box<dyn ModelBackend>, CliError> {
    if args.force_local {
        return Ok(local::open(&args.local_model(), Why::Asked).await?.0);
    }
    match find_server(&args.server, |builder| builder).await? {
        Found::Server(conn) => {
            conn.note_if_found();
            Ok(Box::new(conn.backend))
        }
        Found::Nothing { searched } => Ok(local::open(&args.local_model(), Why::NoServer(searched)).await?.0),
    }
}

/// Whether `e` is the failure of one input (its answer), after which the next input goes on.
fn is_per_input(e: &Error) -> bool {
    matches!(e.kind(), ErrorKind::InvalidOutput | ErrorKind::Refusal | ErrorKind::Truncated)
}

/// An input's failure as one line, ending with what to do next in this command's flags (the
/// library's own advice, in its API's terms, is replaced).
fn describe(e: &Error, attempts: u32) -> String {
    let message = one_line(e.message());
    let hint = match e.kind() {
        ErrorKind::InvalidOutput if attempts < 5 => {
            "; try more --attempts, another --mode (tool, json-schema), a simpler schema or a larger model"
        }
        ErrorKind::InvalidOutput => "; try another --mode (tool, json-schema), a simpler schema or a larger model",
        ErrorKind::Truncated => "; raise --max-tokens or ask for less",
        _ => return message,
    };
    // The library's advice is the message's last clause; the model's text before it may hold
    // the same words.
    let own = message.rfind("; raise ").map_or(message.as_str(), |at| &message[..at]);
    format!("{own}{hint}")
}

/// The `--json` line of a success.
fn success_json(index: usize, out: &Extracted<Value>) -> Value {
    let repairs: Vec<&str> = out.attempts.iter().flat_map(|a| a.repairs.iter().map(|r| r.as_str())).collect();
    json!({
        "index": index,
        "value": out.value,
        "attempts": out.attempts.len(),
        "repairs": repairs,
        "usage": out.usage,
    })
}

/// The `--json` line of a failed input: the error as `--json` reports failures, and every
/// attempt's text and error when it was invalid output.
fn failure_json(index: usize, e: &Error, attempts: u32) -> Value {
    let tried: Vec<Value> = attempts_of(e)
        .unwrap_or_default()
        .iter()
        .map(|a| {
            let repairs: Vec<&str> = a.repairs.iter().map(|r| r.as_str()).collect();
            // A server that echoes the request could put a key in the answer's text.
            let text = mamba_backends::redact::redact_text(&a.text);
            let error = a.error.as_deref().map(mamba_backends::redact::redact_text);
            json!({"text": text, "error": error, "repairs": repairs})
        })
        .collect();
    json!({
        "index": index,
        "error": {
            "kind": e.kind().as_str(),
            "status": e.status(),
            "message": describe(e, attempts),
            "retryable": e.is_retryable(),
        },
        "attempts": tried,
    })
}

/// `mamba-llm extract`.
pub(crate) async fn run(args: Settings) -> Result<(), CliError> {
    let schema = read_schema(&args.schema)?;
    let mode = mode(&args.mode)?;
    let mut inputs = Inputs::open(&args)?;
    let Some(mut input) = inputs.next()? else {
        return Err(CliError::Usage("nothing to extract from: the input has no non-blank line".into()));
    };
    let backend = choose(&args).await?;
    let mut request = RequestOptions::new();
    if let Some(t) = args.temperature {
        request = request.temperature(t);
    }
    if let Some(n) = args.max_tokens {
        request = request.max_tokens(n);
    }
    let options = ExtractOptions::new().attempts(args.attempts).mode(mode).request(request);
    let several = matches!(inputs, Inputs::Lines(_));
    let mut failed = 0usize;
    let mut index = 0usize;
    loop {
        let mut messages = Vec::with_capacity(2);
        if let Some(system) = &args.system {
            messages.push(Message::system(system));
        }
        messages.push(Message::user(input.as_str()));
        match backend.as_ref().extract_value(&schema, &messages, &options).await {
            Ok(out) if args.json => line(&success_json(index, &out).to_string())?,
            Ok(out) => line(&out.value.to_string())?,
            Err(e) if is_per_input(&e) => {
                failed += 1;
                if args.json {
                    line(&failure_json(index, &e, args.attempts).to_string())?;
                }
                let which = if several { format!("input {}: ", index + 1) } else { String::new() };
                note(&format!("mamba-llm: error: {which}{}: {}", e.kind(), describe(&e, args.attempts)));
            }
            Err(e) => return Err(CliError::Backend(e)),
        }
        index += 1;
        match inputs.next()? {
            Some(next) => input = next,
            None => break,
        }
    }
    if failed > 0 {
        if several {
            note(&format!("mamba-llm: {failed} of {index} input(s) gave no valid value"));
        }
        return Err(CliError::Exit(1));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_end_with_the_flags_to_change() {
        let e = Error::new(
            ErrorKind::InvalidOutput,
            "still invalid after 3 attempt(s): /: bad; raise the attempts, or else",
        );
        assert_eq!(
            describe(&e, 3),
            "still invalid after 3 attempt(s): /: bad; try more --attempts, another --mode (tool, json-schema), a simpler schema or a larger model"
        );
        let e = Error::new(ErrorKind::Truncated, "attempt 1 stopped at the limit inside its JSON; raise max_tokens");
        assert_eq!(
            describe(&e, 3),
            "attempt 1 stopped at the limit inside its JSON; raise --max-tokens or ask for less"
        );
    }

    #[test]
    fn modes_take_dashes() {
        assert_eq!(mode("json-schema").ok(), Some(ExtractMode::JsonSchema));
        assert_eq!(mode("json-object").ok(), Some(ExtractMode::JsonObject));
        assert_eq!(mode("auto").ok(), Some(ExtractMode::Auto));
        assert!(mode("xml").is_err());
    }

    #[test]
    fn bad_schemas_are_usage_errors() {
        let dir = std::env::temp_dir().join(format!("mamba-extract-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("write");
            path
        };
        let not_json = read_schema(&write("a.json", "{nope")).expect_err("not JSON");
        assert!(matches!(&not_json, CliError::Usage(m) if m.contains("is not JSON")), "{not_json:?}");
        let not_schema = read_schema(&write("b.json", r#"{"type": 12}"#)).expect_err("not a schema");
        assert!(matches!(&not_schema, CliError::Usage(m) if m.contains("not valid JSON Schema")), "{not_schema:?}");
        assert_eq!(not_schema.exit_code(), 2);
        assert!(read_schema(&write("c.json", r#"{"type": "object"}"#)).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
