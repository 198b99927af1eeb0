//! `embed`: vectors for texts given as arguments, in a file or on stdin (one per line).

use std::io::{self, BufRead, BufWriter, IsTerminal, Write};

use mamba_backends::{
    embeddings::{Embedder, EmbeddingInput, EmbeddingOptions, Embeddings},
    Preset,
};
use serde::Serialize;

use crate::connect::connect;
use crate::error::CliError;
use crate::input::CappedLines;
use crate::print::{note, report};
use crate::settings::Embed;

/// Inputs sent per call to the backend (which may split them further): the file is read,
/// sent and written this many lines (or [`BATCH_BYTES`]) at a time, so memory stays flat
/// whatever the input's size.
const BATCH_INPUTS: usize = 1024;
/// Text read per batch, at most (one longer line is a batch of its own).
const BATCH_BYTES: usize = 4 * 1024 * 1024;

/// Where the inputs come from: the arguments, else the lines of `--file` or stdin (blank
/// lines skipped), read a batch at a time.
enum Inputs {
    Args(Option<Vec<String>>),
    Lines(CappedLines<Box<dyn BufRead + Send>>),
}

impl Inputs {
    fn open(args: &Embed) -> Result<Inputs, CliError> {
        if !args.texts.is_empty() {
            if args.file.is_some() {
                return Err(CliError::Usage("give texts as arguments or with --file, not both".into()));
            }
            return Ok(Inputs::Args(Some(args.texts.clone())));
        }
        let (reader, what): (Box<dyn BufRead + Send>, String) = match &args.file {
            Some(path) => {
                let file = std::fs::File::open(path)
                    .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))?;
                (Box::new(io::BufReader::with_capacity(1 << 16, file)), path.display().to_string())
            }
            None if io::stdin().is_terminal() => {
                return Err(CliError::Usage(
                    "nothing to embed: give texts as arguments, --file FILE, or lines on stdin".into(),
                ))
            }
            None => (Box::new(io::BufReader::with_capacity(1 << 16, io::stdin())), "stdin".to_owned()),
        };
        Ok(Inputs::Lines(CappedLines::new(reader, args.max_input_bytes, what)))
    }

    /// The next batch of inputs; empty at the end.
    fn next_batch(&mut self) -> Result<Vec<String>, CliError> {
        match self {
            Inputs::Args(texts) => Ok(texts.take().unwrap_or_default()),
            Inputs::Lines(lines) => {
                let mut batch = Vec::new();
                let mut bytes = 0;
                while batch.len() < BATCH_INPUTS && bytes < BATCH_BYTES {
                    let Some(line) = lines.next_line()? else { break };
                    if line.trim().is_empty() {
                        continue;
                    }
                    bytes += line.len();
                    batch.push(line);
                }
                Ok(batch)
            }
        }
    }
}

#[derive(Serialize)]
struct Item<'a> {
    index: usize,
    embedding: &'a [f32],
}

/// The token counts reported, summed over the batches (none when no batch reported any).
#[derive(Serialize)]
struct UsageOut {
    input_tokens: u64,
    total_tokens: u64,
}

/// The fields of the `--json` document after its data; `error` when it failed part way.
#[derive(Serialize)]
struct Tail<'a> {
    model: Option<&'a str>,
    usage: Option<UsageOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<serde_json::Value>,
}

/// Writes the vectors as they come, batch by batch: JSON lines, or (`--json`) one document
/// `{"data": [...], "model": ..., "usage": ...}` whose end is written after the last batch.
struct Writer<W: Write> {
    w: W,
    whole: bool,
    written: usize,
    model: Option<String>,
    usage: Option<UsageOut>,
}

fn json_error(e: serde_json::Error) -> CliError {
    match e.io_error_kind() {
        Some(kind) => CliError::from(io::Error::from(kind)),
        None => CliError::Output(format!("could not write the output: {e}")),
    }
}

impl<W: Write> Writer<W> {
    fn new(w: W, whole: bool) -> Self {
        Writer { w, whole, written: 0, model: None, usage: None }
    }

    fn batch(&mut self, out: &Embeddings) -> Result<(), CliError> {
        if self.model.is_none() {
            self.model.clone_from(&out.model);
        }
        if let Some(u) = out.usage {
            let sum = self.usage.get_or_insert(UsageOut { input_tokens: 0, total_tokens: 0 });
            sum.input_tokens += u.input_tokens;
            sum.total_tokens += u.total_tokens;
        }
        for embedding in &out.vectors {
            let item = Item { index: self.written, embedding };
            if self.whole {
                self.w.write_all(if self.written == 0 { b"{\"data\":[" } else { b"," })?;
                serde_json::to_writer(&mut self.w, &item).map_err(json_error)?;
            } else {
                serde_json::to_writer(&mut self.w, &item).map_err(json_error)?;
                writeln!(self.w)?;
            }
            self.written += 1;
        }
        self.w.flush()?;
        Ok(())
    }

    fn finish(self) -> Result<(), CliError> {
        self.close(None)
    }

    /// After a failure: a `--json` document already begun is closed validly, with the data
    /// written so far and an `"error"` member (`{kind, status, message, ...}` as `--json`
    /// reports failures), and the exit code of `err` is returned, already reported. Otherwise
    /// `err`, for the caller to report.
    fn fail(self, err: CliError) -> CliError {
        if !self.whole || self.written == 0 || matches!(err, CliError::BrokenPipe) {
            return err;
        }
        let body = serde_json::from_str::<serde_json::Value>(&crate::json::error_json(&err))
            .ok()
            .and_then(|mut v| v.get_mut("error").map(serde_json::Value::take));
        let written = self.written;
        match self.close(Some(body.unwrap_or(serde_json::Value::Null))) {
            Ok(()) => {
                report(&err, false);
                note(&format!(
                    "mamba-llm: the --json document holds the {written} embedding(s) made before the error, and the error"
                ));
                CliError::Exit(err.exit_code())
            }
            Err(e) => e,
        }
    }

    fn close(mut self, error: Option<serde_json::Value>) -> Result<(), CliError> {
        if self.whole {
            if self.written == 0 {
                self.w.write_all(b"{\"data\":[")?;
            }
            let tail = Tail { model: self.model.as_deref(), usage: self.usage, error };
            let tail = serde_json::to_string(&tail).map_err(json_error)?;
            // `],` and the tail object's fields without its opening brace.
            write!(self.w, "],{}", tail.strip_prefix('{').unwrap_or(&tail))?;
            writeln!(self.w)?;
        }
        self.w.flush()?;
        Ok(())
    }
}

/// `mamba-llm embed`.
pub(crate) async fn run(args: Embed) -> Result<(), CliError> {
    let mut inputs = Inputs::open(&args)?;
    let first = inputs.next_batch()?;
    if first.is_empty() {
        return Err(CliError::Usage("nothing to embed: the input has no non-blank line".into()));
    }
    let mut server = args.server.clone();
    if server.model.is_none() && crate::settings::env("MAMBA_MODEL").is_none() {
        // A named preset brings its embedding model (OpenAI's text-embedding-3-small,
        // Ollama's nomic-embed-text); otherwise the server's listed model is used.
        let default = server.preset.as_deref().and_then(Preset::from_name).and_then(|p| p.spec().embeddings);
        if let Some(spec) = default.filter(|s| s.default_model != "default") {
            server.model = Some(spec.default_model.to_owned());
        }
    }
    let conn = connect(&server).await?;
    conn.note_if_found();
    let mut options = EmbeddingOptions::new();
    if let Some(n) = args.dimensions {
        if n == 0 {
            return Err(CliError::Usage("--dimensions must be at least 1".into()));
        }
        options = options.dimensions(n);
    }
    let mut writer = Writer::new(BufWriter::with_capacity(1 << 16, io::stdout()), args.json);
    let mut batch = first;
    while !batch.is_empty() {
        let step = match conn.backend.embed(&EmbeddingInput::texts(batch), &options).await {
            Ok(out) => writer.batch(&out).and_then(|()| inputs.next_batch()),
            Err(e) => Err(CliError::from(e)),
        };
        batch = match step {
            Ok(next) => next,
            Err(e) => return Err(writer.fail(e)),
        };
    }
    writer.finish()
}
