//! `sql`: a DataFusion query with `llm()`, `llm_json()` and `embed()` over the configured
//! server. Tables are files named in the query (`FROM 'reviews.parquet'`) or `--table
//! NAME=PATH`; the result streams to the terminal as a table, or to `-o FILE` (Parquet, CSV or
//! JSON lines), so memory stays flat whatever the input's size.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use mamba_datafusion::datafusion::arrow::array::RecordBatch;
use mamba_datafusion::datafusion::arrow::csv::Writer as CsvWriter;
use mamba_datafusion::datafusion::arrow::datatypes::SchemaRef;
use mamba_datafusion::datafusion::arrow::json::LineDelimitedWriter;
use mamba_datafusion::datafusion::arrow::util::pretty::pretty_format_batches;
use mamba_datafusion::datafusion::common::stats::Precision;
use mamba_datafusion::datafusion::common::TableReference;
use mamba_datafusion::datafusion::error::DataFusionError;
use mamba_datafusion::datafusion::execution::options::{CsvReadOptions, JsonReadOptions, ParquetReadOptions};
use mamba_datafusion::datafusion::parquet::arrow::ArrowWriter;
use mamba_datafusion::datafusion::physical_plan::statistics::{StatisticsArgs, StatisticsContext};
use mamba_datafusion::datafusion::physical_plan::{execute_stream, ExecutionPlan};
use mamba_datafusion::datafusion::prelude::SessionContext;
use mamba_datafusion::{LlmFunctions, OnError, ResponseCache, Stats};

use crate::connect::connect;
use crate::error::CliError;
use crate::print::note;
use crate::settings::{check_max_cost, Sql};

/// A file's format, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Parquet,
    Csv,
    JsonLines,
}

impl Format {
    fn of(path: &str) -> Option<Format> {
        let lower = path.to_ascii_lowercase();
        let ext = lower.rsplit_once('.').map(|(_, e)| e)?;
        match ext {
            "parquet" => Some(Format::Parquet),
            "csv" => Some(Format::Csv),
            "jsonl" | "ndjson" | "json" => Some(Format::JsonLines),
            _ => None,
        }
    }

    /// The format of `-o PATH`.
    fn of_output(path: &Path) -> Result<Format, CliError> {
        Format::of(&path.to_string_lossy()).ok_or_else(|| {
            CliError::Usage(format!("-o {}: give a .parquet, .csv, .jsonl, .ndjson or .json file", path.display()))
        })
    }

    fn extension(path: &str) -> String {
        path.rsplit_once('.').map(|(_, e)| format!(".{e}")).unwrap_or_default()
    }
}

/// The quoted strings of a query that name existing files of a known format: the tables it
/// reads (`FROM 'reviews.parquet'`).
fn quoted_files(query: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = query;
    while let Some(start) = rest.find('\'') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('\'') else { break };
        let text = &after[..end];
        if Format::of(text).is_some() && Path::new(text).exists() && !out.iter().any(|t| t == text) {
            out.push(text.to_owned());
        }
        rest = &after[end + 1..];
    }
    out
}

async fn register_table(ctx: &SessionContext, name: &str, path: &str) -> Result<(), CliError> {
    let format = Format::of(path).ok_or_else(|| {
        CliError::Usage(format!("{path}: unknown table format (give a .parquet, .csv, .jsonl, .ndjson or .json file)"))
    })?;
    if !Path::new(path).exists() {
        return Err(CliError::Usage(format!("{path}: no such file")));
    }
    let ext = Format::extension(path);
    let table = TableReference::bare(name);
    let done = match format {
        Format::Parquet => ctx.register_parquet(table, path, ParquetReadOptions::default().file_extension(&ext)).await,
        Format::Csv => ctx.register_csv(table, path, CsvReadOptions::new().file_extension(&ext)).await,
        Format::JsonLines => ctx.register_json(table, path, JsonReadOptions::default().file_extension(&ext)).await,
    };
    done.map_err(|e| CliError::Usage(format!("cannot read {path}: {}", one_line(&e))))
}

/// A DataFusion error as one line: its "Error during planning:" style prefixes dropped, and a
/// call that matches no signature said in a sentence (DataFusion's own text for it runs to
/// several lines and calls itself a bug).
fn one_line(e: &DataFusionError) -> String {
    let text = e.to_string();
    let mut line = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ");
    const NO_MATCH: &str = "No function matches the given name and argument types '";
    if let Some(at) = line.find(NO_MATCH) {
        let rest = &line[at + NO_MATCH.len()..];
        let call = rest.split('\'').next().unwrap_or_default();
        let candidates = rest
            .split_once("Candidate functions:")
            .map(|(_, c)| c.split(") ").map(|c| c.trim().trim_end_matches(')').to_owned() + ")").collect::<Vec<_>>())
            .unwrap_or_default();
        return format!(
            "{call} matches no form of the function ({}); cast arguments to text, e.g. CAST(x AS VARCHAR)",
            candidates.join(", ")
        );
    }
    for prefix in ["Error during planning: ", "Execution error: ", "Internal error: ", "External error: "] {
        while let Some(rest) = line.strip_prefix(prefix) {
            line = rest.to_owned();
        }
    }
    line
}

/// The Parquet output's row groups close at about this many bytes in memory.
const PARQUET_ROW_GROUP_BYTES: usize = 16 << 20;

/// Where the result goes.
enum Sink {
    Table(BufWriter<io::Stdout>),
    Parquet(ArrowWriter<File>),
    Csv(CsvWriter<BufWriter<File>>),
    Json(LineDelimitedWriter<BufWriter<File>>),
}

impl Sink {
    fn open(output: Option<&Path>, schema: SchemaRef) -> Result<Sink, CliError> {
        let Some(path) = output else { return Ok(Sink::Table(BufWriter::new(io::stdout()))) };
        let format = Format::of_output(path)?;
        let text = path.to_string_lossy();
        let file = File::create(path).map_err(|e| CliError::Io(format!("cannot write {text}: {e}")))?;
        Ok(match format {
            Format::Parquet => Sink::Parquet(
                ArrowWriter::try_new(file, schema, None)
                    .map_err(|e| CliError::Io(format!("cannot write {text}: {e}")))?,
            ),
            Format::Csv => Sink::Csv(CsvWriter::new(BufWriter::new(file))),
            Format::JsonLines => Sink::Json(LineDelimitedWriter::new(BufWriter::new(file))),
        })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<(), CliError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let fail = |e: &dyn std::fmt::Display| CliError::Output(format!("could not write the result: {e}"));
        match self {
            Sink::Table(out) => {
                let table = pretty_format_batches(std::slice::from_ref(batch)).map_err(|e| fail(&e))?;
                writeln!(out, "{table}")?;
                out.flush()?;
            }
            Sink::Parquet(w) => {
                w.write(batch).map_err(|e| fail(&e))?;
                // A row group is held in memory until it is written: closed at a size, not
                // at the writer's default of 1M rows, so long answers keep memory flat.
                if w.in_progress_size() >= PARQUET_ROW_GROUP_BYTES {
                    w.flush().map_err(|e| fail(&e))?;
                }
            }
            Sink::Csv(w) => w.write(batch).map_err(|e| fail(&e))?,
            Sink::Json(w) => w.write(batch).map_err(|e| fail(&e))?,
        }
        Ok(())
    }

    fn finish(self) -> Result<(), CliError> {
        let fail = |e: &dyn std::fmt::Display| CliError::Output(format!("could not write the result: {e}"));
        match self {
            Sink::Table(mut out) => out.flush()?,
            Sink::Parquet(w) => {
                w.close().map_err(|e| fail(&e))?;
            }
            Sink::Csv(w) => w.into_inner().flush()?,
            Sink::Json(mut w) => {
                w.finish().map_err(|e| fail(&e))?;
                w.into_inner().flush()?;
            }
        }
        Ok(())
    }
}

/// The progress line: rows done (of the input's row count when the plan knows it exactly),
/// requests, cache hits and cost.
fn progress(total: Option<u64>) -> Option<ProgressBar> {
    if !io::stderr().is_terminal() {
        return None;
    }
    let (bar, template) = match total {
        Some(n) => (
            ProgressBar::new(n),
            "{spinner} [{elapsed_precise}] [{bar:30}] {pos}/{len} rows ({per_sec}, eta {eta}) {msg}",
        ),
        None => (ProgressBar::new_spinner(), "{spinner} [{elapsed_precise}] {pos} rows ({per_sec}) {msg}"),
    };
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    Some(bar)
}

fn summary(s: &Stats) -> String {
    let mut line = format!("{} requests, {} from cache", s.requests, s.cache_hits);
    if s.merged > 0 {
        line.push_str(&format!(", {} repeats merged", s.merged));
    }
    if s.failed > 0 {
        line.push_str(&format!(", {} failed", s.failed));
    }
    line.push_str(&format!(", {} tokens in, {} out, ${:.4}", s.input_tokens, s.output_tokens, s.cost_usd));
    if s.unpriced > 0 {
        line.push_str(" (no price known for some models)");
    }
    line
}

/// The result's row count when the plan knows it exactly (a scan of Parquet files with no
/// filter), for the progress bar's length.
fn exact_rows(plan: &dyn ExecutionPlan) -> Option<u64> {
    let stats = StatisticsContext::new().compute(plan, &StatisticsArgs::new()).ok()?;
    match stats.num_rows {
        Precision::Exact(n) if n > 0 => Some(n as u64),
        _ => None,
    }
}

/// `mamba-llm sql`.
pub(crate) async fn run(args: Sql) -> Result<(), CliError> {
    check_max_cost(args.max_cost)?;
    let on_error =
        OnError::parse(&args.on_error).ok_or_else(|| CliError::Usage("--on-error must be fail or null".into()))?;
    // Checked before connecting; the file is created once the query is planned.
    args.output.as_deref().map(Format::of_output).transpose()?;
    let cache = match &args.cache {
        Some(path) => Some(Arc::new(ResponseCache::open(path).map_err(|e| CliError::Io(e.to_string()))?)),
        None => None,
    };

    // Tables first: a missing file or a bad query fails before connecting.
    let ctx = SessionContext::new().enable_url_table();
    for spec in &args.tables {
        let (name, path) = spec
            .split_once('=')
            .filter(|(n, p)| !n.is_empty() && !p.is_empty())
            .ok_or_else(|| CliError::Usage(format!("--table {spec}: give NAME=PATH")))?;
        register_table(&ctx, name, path).await?;
    }
    // Quoted file names are tables under their own name; DataFusion reads .parquet, .csv and
    // .json by itself, not .jsonl or .ndjson.
    for path in quoted_files(&args.query) {
        register_table(&ctx, &path, &path).await?;
    }

    let conn = connect(&args.server).await?;
    conn.note_if_found();
    let mut builder = LlmFunctions::builder(Arc::new(conn.backend)).concurrency(args.concurrency).on_error(on_error);
    if let Some(cache) = cache {
        builder = builder.cache(cache);
    }
    if let Some(cap) = args.max_cost {
        builder = builder.max_cost(cap);
    }
    let functions = builder.build();
    functions.register(&ctx);

    let df = ctx.sql(&args.query).await.map_err(|e| CliError::Usage(one_line(&e)))?;
    let plan = df.create_physical_plan().await.map_err(|e| CliError::Usage(one_line(&e)))?;
    let total = exact_rows(plan.as_ref());
    let schema = plan.schema();
    let mut stream = execute_stream(plan, ctx.task_ctx()).map_err(|e| CliError::Usage(one_line(&e)))?;
    let mut sink = Sink::open(args.output.as_deref(), schema)?;
    let bar = if args.output.is_some() { progress(total) } else { None };
    let mut rows = 0u64;
    let result = async {
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(|e| CliError::Unavailable(one_line(&e)))?;
            rows += batch.num_rows() as u64;
            if let Some(bar) = &bar {
                let s = functions.stats();
                bar.set_position(rows.max(s.done).min(total.unwrap_or(u64::MAX)));
                bar.set_message(summary(&s));
            }
            sink.write(&batch)?;
        }
        Ok::<(), CliError>(())
    }
    .await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let stats = functions.stats();
    match result {
        Ok(()) => {
            sink.finish()?;
            let to = args.output.as_ref().map(|p| format!(" to {}", p.display())).unwrap_or_default();
            note(&format!("mamba-llm: {rows} rows{to}; {}", summary(&stats)));
            Ok(())
        }
        Err(e) => {
            if rows > 0 || stats.requests > 0 {
                note(&format!("mamba-llm: stopped after {rows} rows; {}", summary(&stats)));
            }
            if args.cache.is_none() && stats.requests > 0 {
                note("mamba-llm: run with --cache FILE to keep answers, so a re-run pays only for the rest");
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datafusion_errors_become_one_plain_line() {
        let e = DataFusionError::Plan("Execution error: llm(): unknown model \"x\"".into());
        assert_eq!(one_line(&e), "llm(): unknown model \"x\"");
        let e = DataFusionError::Plan(
            "Internal error: Function 'llm' failed to match any signature.\nThis issue was likely caused by a bug. \
             No function matches the given name and argument types 'llm(Int64)'. You might need to add explicit type casts.\n\t\
             Candidate functions:\n\tllm(String)\n\tllm(String, String)"
                .into(),
        );
        assert_eq!(
            one_line(&e),
            "llm(Int64) matches no form of the function (llm(String), llm(String, String)); cast arguments to text, e.g. CAST(x AS VARCHAR)"
        );
    }

    #[test]
    fn formats_come_from_extensions() {
        assert_eq!(Format::of("a/b.PARQUET"), Some(Format::Parquet));
        assert_eq!(Format::of("x.csv"), Some(Format::Csv));
        for p in ["x.jsonl", "x.ndjson", "x.json"] {
            assert_eq!(Format::of(p), Some(Format::JsonLines));
        }
        assert_eq!(Format::of("x.txt"), None);
        assert_eq!(Format::of("noext"), None);
    }

    #[test]
    fn only_quoted_names_of_existing_files_are_tables() {
        let dir = std::env::temp_dir().join(format!("mamba-sql-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok();
        let file = dir.join("r.jsonl");
        std::fs::write(&file, "{}\n").ok();
        let f = file.display().to_string();
        let q = format!("SELECT llm('Summarise: ' || text) FROM '{f}' WHERE x = 'missing.csv' AND y = '{f}'");
        assert_eq!(quoted_files(&q), vec![f]);
        std::fs::remove_dir_all(&dir).ok();
    }
}
