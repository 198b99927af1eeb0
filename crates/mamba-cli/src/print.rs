//! Writing to stdout and stderr: lines, notes, tables, a failure, and an answer as it
//! streams ([`Printer`]).

use std::io::{self, IsTerminal, Write};

use mamba_backends::ModelResponse;

use crate::error::CliError as Error;

/// One line on stderr; failures to write it are ignored (there is nowhere left to report them).
pub(crate) fn note(line: &str) {
    let mut err = io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

/// Prints a failure: one line on stderr, or the JSON object on stdout with `--json`.
pub(crate) fn report(err: &Error, as_json: bool) {
    if matches!(err, Error::BrokenPipe | Error::Exit(_)) {
        return;
    }
    if as_json {
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "{}", crate::json::error_json(err));
        return;
    }
    match err {
        Error::Usage(_) => note(&format!("mamba-llm: usage error: {err}")),
        _ => note(&format!("mamba-llm: error: {err}")),
    }
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

    pub(crate) fn reasoning(&mut self, text: &str) -> Result<(), Error> {
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

    fn end_reasoning(&mut self, out: &mut impl Write) -> Result<(), Error> {
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

    pub(crate) fn content(&mut self, text: &str) -> Result<(), Error> {
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
    pub(crate) fn finish(&mut self, response: &ModelResponse) -> Result<(), Error> {
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
pub(crate) fn line(text: &str) -> Result<(), Error> {
    let mut out = io::stdout().lock();
    writeln!(out, "{text}")?;
    Ok(())
}

/// Writes rows as a table: columns padded to their widest cell, two spaces apart.
pub(crate) fn table(rows: &[Vec<String>]) -> Result<(), Error> {
    let widths: Vec<usize> = (0..rows.first().map_or(0, Vec::len))
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        line(cells.join("  ").trim_end())?;
    }
    Ok(())
}
