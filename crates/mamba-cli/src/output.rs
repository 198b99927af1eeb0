//! Writing to stdout and stderr, the JSON shapes, and failures.

use std::io::{self, IsTerminal, Write};

use mamba_backends::{Error, ModelResponse};

/// Why a command failed.
#[derive(Debug)]
pub(crate) enum CliError {
    /// Bad arguments: exit 2.
    Usage(String),
    /// The backend failed.
    Backend(Error),
    /// Anything else: exit 1, with the error kind `--json` reports (`connect`, `unavailable`,
    /// `io`, …).
    Failed(&'static str, String),
    /// stdout could not be written (a full disk, a closed terminal): exit 1.
    Output(String),
    /// stdout was closed (`| head`): not an error, exit 0.
    BrokenPipe,
    /// Already reported by the command: exit with this code.
    Exit(u8),
}

impl CliError {
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Backend(e) if e.kind() == mamba_backends::ErrorKind::Config => 2,
            CliError::BrokenPipe => 0,
            CliError::Exit(code) => *code,
            CliError::Backend(_) | CliError::Failed(..) | CliError::Output(_) => 1,
        }
    }
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        CliError::Backend(e)
    }
}

/// The config file, the keys file and the log: a problem the user fixes in the file or the
/// flags is a usage error (exit 2); one with the files themselves fails under the kind
/// `--json` has always reported for them (exit 1).
impl From<mamba_home::Error> for CliError {
    fn from(e: mamba_home::Error) -> Self {
        let kind = match e.kind() {
            mamba_home::ErrorKind::NoHome => "config",
            mamba_home::ErrorKind::Keys => "keys",
            mamba_home::ErrorKind::Log => "log",
            _ => return CliError::Usage(e.to_string()),
        };
        CliError::Failed(kind, e.to_string())
    }
}

impl From<io::Error> for CliError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::BrokenPipe {
            CliError::BrokenPipe
        } else {
            CliError::Output(format!("could not write the output: {e}"))
        }
    }
}

/// One line on stderr; failures to write it are ignored (there is nowhere left to report them).
pub(crate) fn note(line: &str) {
    let mut err = io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    kind: &'a str,
    status: Option<u16>,
    message: String,
    retryable: bool,
    retry_after_s: Option<f64>,
}

#[derive(serde::Serialize)]
struct ErrorJson<'a> {
    error: ErrorBody<'a>,
}

/// The failure's JSON shape: `{"error": {kind, status, message, retryable, retry_after_s}}`.
pub(crate) fn error_json(err: &CliError) -> String {
    let (kind, status, message, retryable, retry_after_s) = match err {
        CliError::Backend(e) => (
            e.kind().as_str(),
            e.status(),
            e.message().to_owned(),
            e.is_retryable(),
            e.retry_after().map(|d| d.as_secs_f64()),
        ),
        CliError::Usage(m) => ("config", None, m.clone(), false, None),
        CliError::Failed(kind, m) => (*kind, None, m.clone(), false, None),
        CliError::Output(m) => ("output", None, m.clone(), false, None),
        CliError::BrokenPipe => ("broken_pipe", None, "stdout was closed".to_owned(), false, None),
        CliError::Exit(code) => ("failed", None, format!("exit code {code}"), false, None),
    };
    let body = ErrorJson { error: ErrorBody { kind, status, message, retryable, retry_after_s } };
    serde_json::to_string(&body).unwrap_or_default()
}

/// Prints a failure: one line on stderr, or the JSON object on stdout with `--json`.
pub(crate) fn report(err: &CliError, as_json: bool) {
    if matches!(err, CliError::BrokenPipe | CliError::Exit(_)) {
        return;
    }
    if as_json {
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "{}", error_json(err));
        return;
    }
    let line = match err {
        CliError::Backend(e) => {
            let mut line = format!("mamba-llm: error: {}", e.kind());
            if let Some(status) = e.status() {
                line.push_str(&format!(" (HTTP {status})"));
            }
            line.push_str(&format!(": {}", one_line(e.message())));
            if let Some(wait) = e.retry_after() {
                line.push_str(&format!(" (retry after {:.1}s)", wait.as_secs_f64()));
            }
            line
        }
        CliError::Usage(m) => format!("mamba-llm: usage error: {}", one_line(m)),
        CliError::Failed(_, m) | CliError::Output(m) => format!("mamba-llm: error: {}", one_line(m)),
        CliError::BrokenPipe | CliError::Exit(_) => return,
    };
    note(&line);
}

/// The answer's JSON shape, fields in their documented order.
pub(crate) fn response_json(response: &ModelResponse) -> String {
    serde_json::to_string(response).unwrap_or_else(|_| "null".to_owned())
}

/// Writes an answer as it streams: content to stdout, reasoning dimmed on a terminal or to
/// stderr, tool calls after the text.
pub(crate) struct Printer {
    show_reasoning: bool,
    dim: bool,
    in_reasoning: bool,
    wrote_any: bool,
    ends_with_newline: bool,
}

impl Printer {
    pub(crate) fn new(show_reasoning: bool) -> Printer {
        let tty = io::stdout().is_terminal();
        Printer {
            show_reasoning,
            dim: tty && std::env::var_os("NO_COLOR").is_none(),
            in_reasoning: false,
            wrote_any: false,
            ends_with_newline: true,
        }
    }

    pub(crate) fn reasoning(&mut self, text: &str) -> Result<(), CliError> {
        if !self.show_reasoning || text.is_empty() {
            return Ok(());
        }
        if self.dim {
            let mut out = io::stdout().lock();
            if !self.in_reasoning {
                write!(out, "\x1b[2m")?;
                self.in_reasoning = true;
            }
            write!(out, "{text}")?;
            out.flush()?;
            self.wrote_any = true;
            self.ends_with_newline = text.ends_with('\n');
        } else {
            let mut err = io::stderr().lock();
            let _ = write!(err, "{text}");
            let _ = err.flush();
        }
        Ok(())
    }

    fn end_reasoning(&mut self, out: &mut impl Write) -> Result<(), CliError> {
        if self.in_reasoning {
            write!(out, "\x1b[0m")?;
            if !self.ends_with_newline {
                writeln!(out)?;
            }
            writeln!(out)?;
            self.in_reasoning = false;
            self.ends_with_newline = true;
        }
        Ok(())
    }

    pub(crate) fn content(&mut self, text: &str) -> Result<(), CliError> {
        if text.is_empty() {
            return Ok(());
        }
        let mut out = io::stdout().lock();
        self.end_reasoning(&mut out)?;
        write!(out, "{text}")?;
        out.flush()?;
        self.wrote_any = true;
        self.ends_with_newline = text.ends_with('\n');
        Ok(())
    }

    /// Ends the answer: tool calls, then a final newline.
    pub(crate) fn finish(&mut self, response: &ModelResponse) -> Result<(), CliError> {
        let mut out = io::stdout().lock();
        self.end_reasoning(&mut out)?;
        if self.wrote_any && !self.ends_with_newline {
            writeln!(out)?;
        }
        for call in &response.tool_calls {
            writeln!(out, "[tool call {}] {}({})", call.id, call.name, call.arguments)?;
        }
        out.flush()?;
        self.wrote_any = false;
        self.ends_with_newline = true;
        Ok(())
    }

    /// Ends a broken answer with a newline so the error line starts clean.
    pub(crate) fn interrupt(&mut self) {
        let mut out = io::stdout().lock();
        if self.in_reasoning {
            let _ = write!(out, "\x1b[0m");
            self.in_reasoning = false;
        }
        if self.wrote_any && !self.ends_with_newline {
            let _ = writeln!(out);
        }
        let _ = out.flush();
    }
}

/// Writes one line to stdout.
pub(crate) fn line(text: &str) -> Result<(), CliError> {
    let mut out = io::stdout().lock();
    writeln!(out, "{text}")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(err: &CliError) -> String {
        let v: serde_json::Value = serde_json::from_str(&error_json(err)).expect("JSON");
        v["error"]["kind"].as_str().expect("a kind").to_owned()
    }

    #[test]
    fn json_error_kinds() {
        let write = CliError::from(io::Error::new(io::ErrorKind::StorageFull, "disk full"));
        assert!(matches!(write, CliError::Output(_)));
        assert_eq!(kind(&write), "output");
        assert_eq!(write.exit_code(), 1);
        let pipe = CliError::from(io::Error::new(io::ErrorKind::BrokenPipe, "closed"));
        assert!(matches!(pipe, CliError::BrokenPipe));
        assert_eq!(kind(&pipe), "broken_pipe");
        assert_eq!(pipe.exit_code(), 0);
        assert_eq!(kind(&CliError::Failed("unavailable", "down".into())), "unavailable");
        assert_eq!(kind(&CliError::Usage("bad".into())), "config");
    }
}
