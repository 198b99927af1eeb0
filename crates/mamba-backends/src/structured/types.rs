//! The values of an extraction: its options and mode, the value it returns with every
//! attempt, the streamed items, and the attempts an error carries.

use std::fmt;
use std::pin::Pin;

use futures_core::Stream;

use super::repair::Repair;
use crate::error::Error;
use crate::options::RequestOptions;
use crate::types::{FinishReason, Usage};

/// How one extraction runs: the request's options, the number of attempts, the mode.
///
/// ```
/// use mamba_backends::{ExtractMode, ExtractOptions, RequestOptions};
///
/// let options = ExtractOptions::new()
///     .attempts(2)
///     .mode(ExtractMode::Tool)
///     .request(RequestOptions::new().temperature(0.0));
/// assert_eq!(options.attempts, 2);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ExtractOptions {
    /// The options of each request (temperature, max tokens, …). Its `response_format`,
    /// `tools` and `tool_choice` are set by the mode.
    pub request: RequestOptions,
    /// Requests at most (each parse or validation failure is sent back as feedback); 3 by
    /// default, at least 1.
    pub attempts: u32,
    /// How the schema is asked for.
    pub mode: ExtractMode,
    /// The schema's name on the wire; by default the schema's `title`, else `"output"`.
    pub name: Option<String>,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        ExtractOptions { request: RequestOptions::new(), attempts: 3, mode: ExtractMode::Auto, name: None }
    }
}

impl ExtractOptions {
    /// Three attempts, [`ExtractMode::Auto`], default request options.
    pub fn new() -> ExtractOptions {
        ExtractOptions::default()
    }

    /// Sets the request options.
    #[must_use]
    pub fn request(mut self, request: RequestOptions) -> ExtractOptions {
        self.request = request;
        self
    }

    /// Sets the number of attempts (at least 1).
    #[must_use]
    pub fn attempts(mut self, attempts: u32) -> ExtractOptions {
        self.attempts = attempts.max(1);
        self
    }

    /// Sets the mode.
    #[must_use]
    pub fn mode(mut self, mode: ExtractMode) -> ExtractOptions {
        self.mode = mode;
        self
    }

    /// Sets the schema's name.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> ExtractOptions {
        self.name = Some(name.into());
        self
    }
}

/// How the schema is asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExtractMode {
    /// The server's own form (its preset's
    /// [`StructuredOutput`](crate::preset::StructuredOutput)), adapted per endpoint of a pool.
    #[default]
    Auto,
    /// `response_format: json_schema` as given, not adapted.
    JsonSchema,
    /// `response_format: json_object`, the schema in the prompt.
    JsonObject,
    /// A forced function tool whose parameters are the schema; the answer is its arguments.
    Tool,
    /// The schema in the prompt only, no `response_format`.
    Prompt,
}

impl ExtractMode {
    /// Parses `auto`, `json_schema`, `json_object`, `tool` or `prompt`.
    pub fn parse(value: &str) -> Option<ExtractMode> {
        Some(match value {
            "auto" => ExtractMode::Auto,
            "json_schema" => ExtractMode::JsonSchema,
            "json_object" => ExtractMode::JsonObject,
            "tool" => ExtractMode::Tool,
            "prompt" => ExtractMode::Prompt,
            _ => return None,
        })
    }

    /// The mode as text (`"auto"`, `"json_schema"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ExtractMode::Auto => "auto",
            ExtractMode::JsonSchema => "json_schema",
            ExtractMode::JsonObject => "json_object",
            ExtractMode::Tool => "tool",
            ExtractMode::Prompt => "prompt",
        }
    }
}

/// A validated value, with how it was obtained.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Extracted<T> {
    /// The value.
    pub value: T,
    /// The text of the successful attempt, as the model wrote it.
    pub raw: String,
    /// Every attempt, the successful one last.
    pub attempts: Vec<Attempt>,
    /// The usage of every attempt, summed.
    pub usage: Usage,
}

/// One request of an extraction.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Attempt {
    /// The answer's text (or the forced tool call's arguments).
    pub text: String,
    /// Why it was rejected (the parse or validation errors, one line each); `None` for the
    /// accepted one.
    pub error: Option<String>,
    /// The local repairs its text needed.
    pub repairs: Vec<Repair>,
    /// Its usage, when the server reported it.
    pub usage: Option<Usage>,
    /// Why the server stopped.
    pub finish_reason: Option<FinishReason>,
}

/// An item of [`Extract::extract_stream`](crate::structured::Extract::extract_stream).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Partial<T> {
    /// The JSON so far, closed up to parse (not validated). `attempt` counts from 1.
    Value {
        /// Which attempt the value is of.
        attempt: u32,
        /// The value so far.
        value: serde_json::Value,
    },
    /// The end: the validated value.
    Done(Extracted<T>),
}

/// The stream [`Extract::extract_stream`](crate::structured::Extract::extract_stream) returns (it borrows the backend, which it calls again
/// for each further attempt).
pub type ExtractStream<'a, T> = Pin<Box<dyn Stream<Item = Result<Partial<T>, Error>> + Send + 'a>>;

/// Every attempt's text and error, on an error from [`Extract`](crate::structured::Extract)
/// that ended the extraction after at least one answer: [`ErrorKind::InvalidOutput`](crate::ErrorKind::InvalidOutput),
/// [`ErrorKind::Refusal`](crate::ErrorKind::Refusal), [`ErrorKind::Truncated`](crate::ErrorKind::Truncated),
/// and an error of the request of a later attempt (a timeout, a server error); `None` on any
/// other error (one before any answer). The attempts carry their usage.
pub fn attempts_of(err: &Error) -> Option<&[Attempt]> {
    let source = std::error::Error::source(err)?;
    source.downcast_ref::<AttemptLog>().map(|log| log.0.as_slice())
}

/// The attempts an error from [`Extract`](crate::structured::Extract) carries, as its source;
/// with the source it took the place of (an error from the transport in the middle of the
/// loop), if any. It prints as that source and passes on to that source's own source, so a
/// printed chain reads as before and every deeper cause is still reachable.
#[derive(Debug)]
pub(crate) struct AttemptLog(pub(crate) Vec<Attempt>, pub(crate) Option<Box<dyn std::error::Error + Send + Sync>>);

impl fmt::Display for AttemptLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Empty without a source: the error's own message already names the last error, and
        // the attempts are read with `attempts_of`.
        match &self.1 {
            Some(source) => f.write_str(&crate::redact::redact_text(&source.to_string())),
            None => Ok(()),
        }
    }
}

impl std::error::Error for AttemptLog {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.1.as_deref().and_then(|s| s.source())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn modes_read_back() {
        for mode in [
            ExtractMode::Auto,
            ExtractMode::JsonSchema,
            ExtractMode::JsonObject,
            ExtractMode::Tool,
            ExtractMode::Prompt,
        ] {
            assert_eq!(ExtractMode::parse(mode.as_str()), Some(mode));
        }
        assert_eq!(ExtractMode::parse("grammar"), None);
    }

    #[test]
    fn attempts_are_read_from_the_error_only_when_it_has_them() {
        let attempt = Attempt {
            text: "{}".into(),
            error: Some("/: \"a\" is a required property".into()),
            repairs: vec![Repair::Fence],
            usage: None,
            finish_reason: None,
        };
        let e =
            Error::new(ErrorKind::InvalidOutput, "still invalid").with_source(AttemptLog(vec![attempt.clone()], None));
        assert_eq!(attempts_of(&e), Some(&[attempt][..]));
        // The log adds nothing to the printed error.
        assert_eq!(e.to_string(), "the answer is not valid structured output: still invalid");
        assert_eq!(attempts_of(&Error::new(ErrorKind::Server, "x")), None);
        assert_eq!(ExtractOptions::new().attempts(0).attempts, 1);
    }
}
