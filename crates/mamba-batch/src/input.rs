//! Reading the input: a file or stdin, plain or gzip, streamed line by line; parsing and
//! checking one line.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek};
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::estimate;

/// Where the input lines come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A file, plain or gzip-compressed (recognised by its first bytes).
    Path(PathBuf),
    /// Standard input, plain or gzip. It is copied to an unnamed temporary file as it is read,
    /// since the lines are read twice (checked, then sent).
    Stdin,
}

impl Input {
    /// `-` is stdin, anything else a path.
    pub fn parse(arg: &str) -> Input {
        if arg == "-" {
            Input::Stdin
        } else {
            Input::Path(PathBuf::from(arg))
        }
    }
}

/// The input's bytes, readable from the start as many times as needed.
#[derive(Debug)]
pub(crate) struct Source {
    file: File,
    name: String,
}

impl Source {
    /// Opens a file, or copies stdin to a temporary file.
    pub(crate) fn open(input: &Input) -> io::Result<Source> {
        match input {
            Input::Path(path) => {
                let file = File::open(path)
                    .map_err(|e| io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display())))?;
                Ok(Source { file, name: path.display().to_string() })
            }
            Input::Stdin => {
                let mut file = tempfile::tempfile()?;
                io::copy(&mut io::stdin().lock(), &mut file)?;
                Ok(Source { file, name: "stdin".into() })
            }
        }
    }

    /// The input's name for messages.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// A reader of the lines from the start, decompressing gzip.
    pub(crate) fn lines(&self) -> io::Result<Lines> {
        let mut file = self.file.try_clone()?;
        file.rewind()?;
        let mut buffered = BufReader::with_capacity(64 * 1024, file);
        let gzip = buffered.fill_buf()?.starts_with(&[0x1f, 0x8b]);
        let reader: Box<dyn BufRead + Send> = if gzip {
            Box::new(BufReader::with_capacity(64 * 1024, flate2::bufread::MultiGzDecoder::new(buffered)))
        } else {
            Box::new(buffered)
        };
        Ok(Lines { reader, number: 0 })
    }
}

/// The lines of an input, numbered from 1.
pub(crate) struct Lines {
    reader: Box<dyn BufRead + Send>,
    number: u64,
}

impl std::fmt::Debug for Lines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lines").field("number", &self.number).finish_non_exhaustive()
    }
}

impl Lines {
    /// Reads the next line into `buf` (without its line end); its number, or `None` at the end.
    pub(crate) fn next_line(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<u64>> {
        buf.clear();
        if self.reader.read_until(b'\n', buf)? == 0 {
            return Ok(None);
        }
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        self.number += 1;
        Ok(Some(self.number))
    }
}

#[derive(Deserialize)]
struct WireLine<'a> {
    #[serde(borrow, default)]
    custom_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    url: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    body: Option<&'a RawValue>,
}

/// The members of a request body that the checks and the estimates read, borrowed from the
/// line (no copy of the texts, no map of the whole body). Keys it does not name are skipped.
#[derive(Deserialize, Default)]
pub(crate) struct BodyProbe<'a> {
    #[serde(borrow, default)]
    pub(crate) model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) messages: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) input: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) instructions: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) prompt: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) tools: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) max_completion_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) max_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) max_output_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) stream: Option<&'a RawValue>,
}

/// The endpoints a line may name, with the path under the backend's base URL (which ends
/// in `/v1`).
const ENDPOINTS: &[(&str, &str)] = &[
    ("/v1/chat/completions", "/chat/completions"),
    ("/v1/embeddings", "/embeddings"),
    ("/v1/responses", "/responses"),
    ("/v1/completions", "/completions"),
];

/// The URLs lines may name, for messages.
pub fn supported_urls() -> Vec<&'static str> {
    ENDPOINTS.iter().map(|(url, _)| *url).collect()
}

/// One valid request line.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) custom_id: String,
    /// The path under the base URL.
    pub(crate) path: &'static str,
    /// The model the body names (or `-m` filled in).
    pub(crate) model: String,
    /// The body to send: the line's own bytes when it named a model, else with the model added.
    pub(crate) body: bytes::Bytes,
    /// Estimated prompt tokens and the output limit the body asks for.
    pub(crate) prompt_tokens: u64,
    pub(crate) max_output_tokens: u64,
}

/// Parses and checks one line. `Err` is the reason it is invalid.
pub(crate) fn parse_line(line: &[u8], default_model: Option<&str>) -> Result<Request, String> {
    parse_line_with(line, default_model, true)
}

/// [`parse_line`], with the prompt-token estimate only when `estimate` (it reads every
/// message again; a run without `--tpm` or `--max-cost` does not need it once the input is
/// checked, and then has 0).
pub(crate) fn parse_line_with(line: &[u8], default_model: Option<&str>, estimate: bool) -> Result<Request, String> {
    let wire: WireLine<'_> = serde_json::from_slice(line).map_err(|e| format!("not a JSON object: {e}"))?;
    let custom_id = match wire.custom_id {
        None => return Err("custom_id is missing".into()),
        Some(raw) => match serde_json::from_str::<Value>(raw.get()) {
            Ok(Value::String(s)) if !s.is_empty() => s,
            Ok(Value::String(_)) => return Err("custom_id is empty".into()),
            _ => return Err("custom_id must be a string".into()),
        },
    };
    match wire.method.as_deref() {
        Some("POST") => {}
        Some(other) => return Err(format!("method must be \"POST\", not {other:?}")),
        None => return Err("method is missing".into()),
    }
    let url = wire.url.ok_or("url is missing")?;
    let path = ENDPOINTS
        .iter()
        .find(|(u, _)| *u == url)
        .map(|(_, p)| *p)
        .ok_or_else(|| format!("url {url:?} is not supported (supported: {})", supported_urls().join(", ")))?;
    let raw_body = wire.body.ok_or("body is missing")?;
    let body: BodyProbe<'_> = serde_json::from_str(raw_body.get()).map_err(|e| {
        if raw_body.get().starts_with('{') {
            format!("body: {e}")
        } else {
            "body must be a JSON object".to_owned()
        }
    })?;
    let named = match body.model {
        None => None,
        Some(raw) if raw.get() == "null" => None,
        Some(raw) => match serde_json::from_str::<Cow<'_, str>>(raw.get()) {
            Ok(m) if m.is_empty() => None,
            Ok(m) => Some(m),
            Err(_) => return Err("body.model must be a string".into()),
        },
    };
    let (model, bytes) = match (named, default_model) {
        (Some(m), _) => (m.into_owned(), bytes::Bytes::copy_from_slice(raw_body.get().as_bytes())),
        (None, Some(m)) => {
            // The one case that rewrites the body: every other line is sent as written.
            let mut map: Map<String, Value> =
                serde_json::from_str(raw_body.get()).map_err(|_| "body must be a JSON object".to_owned())?;
            map.insert("model".into(), Value::String(m.to_owned()));
            let bytes = serde_json::to_vec(&map).map_err(|e| format!("body: {e}"))?;
            (m.to_owned(), bytes::Bytes::from(bytes))
        }
        (None, None) => return Err("body.model is missing (give -m MODEL to fill it in)".into()),
    };
    if path == "/chat/completions" && !body.messages.is_some_and(|m| is_non_empty_array(m.get())) {
        return Err("body.messages must be a non-empty array".into());
    }
    if (path == "/embeddings" || path == "/responses") && body.input.is_none() {
        return Err("body.input is missing".into());
    }
    if path == "/completions" && body.prompt.is_none() {
        return Err("body.prompt is missing".into());
    }
    if body.stream.is_some_and(|s| s.get() == "true") {
        return Err("body.stream must not be true in a batch".into());
    }
    let prompt_tokens = if estimate { estimate::prompt_tokens(&body) } else { 0 };
    let max_output_tokens = estimate::max_output_tokens(&body);
    Ok(Request { custom_id, path, model, body: bytes, prompt_tokens, max_output_tokens })
}

/// A JSON text (already known to be valid) that is an array with at least one element.
fn is_non_empty_array(json: &str) -> bool {
    json.strip_prefix('[').is_some_and(|rest| !rest.trim_start().starts_with(']'))
}

/// Whether a line is blank (skipped).
pub(crate) fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str, m: Option<&str>) -> Request {
        parse_line(line.as_bytes(), m).unwrap()
    }

    fn err(line: &str) -> String {
        parse_line(line.as_bytes(), None).unwrap_err()
    }

    #[test]
    fn valid_lines() {
        let line = r#"{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"m","messages":[{"role":"user","content":"hello there"}],"max_tokens":7}}"#;
        let r = ok(line, Some("other"));
        assert_eq!(r.model, "m", "-m never overrides a model");
        assert_eq!(r.path, "/chat/completions");
        assert_eq!(
            &r.body[..],
            br#"{"model":"m","messages":[{"role":"user","content":"hello there"}],"max_tokens":7}"#
        );
        assert_eq!(r.max_output_tokens, 7);
        let line = r#"{"custom_id":"b","method":"POST","url":"/v1/embeddings","body":{"input":"x"}}"#;
        let r = ok(line, Some("emb"));
        assert_eq!(r.model, "emb");
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["model"], "emb");
        assert_eq!(body["input"], "x");
    }

    #[test]
    fn reasons() {
        assert!(err("{").starts_with("not a JSON object"));
        assert_eq!(err(r#"{"method":"POST"}"#), "custom_id is missing");
        assert_eq!(err(r#"{"custom_id":3}"#), "custom_id must be a string");
        assert_eq!(err(r#"{"custom_id":"a","method":"GET"}"#), "method must be \"POST\", not \"GET\"");
        assert!(err(r#"{"custom_id":"a","method":"POST","url":"/v1/images/generations"}"#).contains("not supported"));
        assert_eq!(
            err(r#"{"custom_id":"a","method":"POST","url":"/v1/responses","body":{"model":"m"}}"#),
            "body.input is missing"
        );
        assert_eq!(
            err(r#"{"custom_id":"a","method":"POST","url":"/v1/completions","body":{"model":"m"}}"#),
            "body.prompt is missing"
        );
        assert_eq!(err(r#"{"custom_id":"a","method":"POST","url":"/v1/embeddings"}"#), "body is missing");
        assert!(err(r#"{"custom_id":"a","method":"POST","url":"/v1/embeddings","body":{"input":"x"}}"#)
            .contains("-m MODEL"));
        assert_eq!(
            err(r#"{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"m"}}"#),
            "body.messages must be a non-empty array"
        );
    }

    #[test]
    fn gzip_and_plain_read_the_same() {
        use std::io::Write;
        let text = b"{\"a\":1}\r\n\n{\"b\":2}";
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(text).unwrap();
        let gz = gz.finish().unwrap();
        for bytes in [&text[..], &gz[..]] {
            let mut file = tempfile::tempfile().unwrap();
            file.write_all(bytes).unwrap();
            let source = Source { file, name: "t".into() };
            let mut lines = source.lines().unwrap();
            let mut buf = Vec::new();
            let mut got = Vec::new();
            while let Some(n) = lines.next_line(&mut buf).unwrap() {
                got.push((n, String::from_utf8(buf.clone()).unwrap()));
            }
            assert_eq!(got, vec![(1, "{\"a\":1}".into()), (2, String::new()), (3, "{\"b\":2}".into())]);
        }
    }
}
