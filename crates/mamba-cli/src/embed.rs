//! `embed`: vectors for texts given as arguments, in a file or on stdin (one per line).

use std::io::{self, BufWriter, IsTerminal, Read, Write};

use mamba_backends::{Embedder, EmbeddingInput, EmbeddingOptions, Embeddings, ModelBackend, Preset};
use serde::Serialize;

use crate::args::EmbedArgs;
use crate::connect::{connect, Source};
use crate::output::{note, CliError};

/// The inputs: the arguments, else the lines of `--file` or stdin (blank lines skipped).
fn inputs(args: &EmbedArgs) -> Result<Vec<String>, CliError> {
    if !args.texts.is_empty() {
        if args.file.is_some() {
            return Err(CliError::Usage("give texts as arguments or with --file, not both".into()));
        }
        return Ok(args.texts.clone());
    }
    let text = match &args.file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))?,
        None if io::stdin().is_terminal() => {
            return Err(CliError::Usage(
                "nothing to embed: give texts as arguments, --file FILE, or lines on stdin".into(),
            ))
        }
        None => {
            let mut text = String::new();
            io::stdin().read_to_string(&mut text).map_err(|e| CliError::Usage(format!("cannot read stdin: {e}")))?;
            text
        }
    };
    let lines: Vec<String> =
        text.lines().map(|l| l.trim_end_matches('\r')).filter(|l| !l.trim().is_empty()).map(str::to_owned).collect();
    if lines.is_empty() {
        return Err(CliError::Usage("nothing to embed: the input has no non-blank line".into()));
    }
    Ok(lines)
}

#[derive(Serialize)]
struct Item<'a> {
    index: usize,
    embedding: &'a [f32],
}

#[derive(Serialize)]
struct UsageOut {
    input_tokens: u64,
    total_tokens: u64,
}

#[derive(Serialize)]
struct Whole<'a> {
    model: Option<&'a str>,
    usage: Option<UsageOut>,
    data: Vec<Item<'a>>,
}

fn write(out: &Embeddings, whole: bool) -> Result<(), CliError> {
    let mut w = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let items = out.vectors.iter().enumerate().map(|(index, v)| Item { index, embedding: v });
    let json_error = |e: serde_json::Error| match e.io_error_kind() {
        Some(kind) => CliError::from(io::Error::from(kind)),
        None => CliError::Output(format!("could not write the output: {e}")),
    };
    if whole {
        let doc = Whole {
            model: out.model.as_deref(),
            usage: out.usage.map(|u| UsageOut { input_tokens: u.input_tokens, total_tokens: u.total_tokens }),
            data: items.collect(),
        };
        serde_json::to_writer(&mut w, &doc).map_err(json_error)?;
        writeln!(w)?;
    } else {
        for item in items {
            serde_json::to_writer(&mut w, &item).map_err(json_error)?;
            writeln!(w)?;
        }
    }
    w.flush()?;
    Ok(())
}

pub(crate) async fn run(args: EmbedArgs) -> Result<(), CliError> {
    let texts = inputs(&args)?;
    let mut conn_args = args.conn.clone();
    if conn_args.model.is_none() && !std::env::var("MAMBA_MODEL").is_ok_and(|m| !m.trim().is_empty()) {
        // A named preset brings its embedding model (OpenAI's text-embedding-3-small,
        // Ollama's nomic-embed-text); otherwise the server's listed model is used.
        let default = conn_args.preset.as_deref().and_then(Preset::from_name).and_then(|p| p.spec().embeddings);
        if let Some(spec) = default.filter(|s| s.default_model != "default") {
            conn_args.model = Some(spec.default_model.to_owned());
        }
    }
    let conn = connect(&conn_args).await?;
    if let Source::Local(name) = &conn.source {
        note(&format!("mamba-llm: using {name} at {} (model {})", conn.backend.base_url(), conn.backend.model()));
    }
    let mut options = EmbeddingOptions::new();
    if let Some(n) = args.dimensions {
        if n == 0 {
            return Err(CliError::Usage("--dimensions must be at least 1".into()));
        }
        options = options.dimensions(n);
    }
    let out = conn.backend.embed(&EmbeddingInput::texts(texts), &options).await?;
    write(&out, args.conn.json)
}
