//! `sql`: a DataFusion query with `llm()`, `llm_json()` and `embed()` over the configured
//! server. Tables are files named in the query (`FROM 'reviews.parquet'`) or `--table
//! NAME=PATH`; the result streams to the terminal as a table, or to `-o FILE` (Parquet, CSV or
//! JSON lines), so memory stays flat whatever the input's size.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::ops::ControlFlow;
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
use mamba_datafusion::datafusion::prelude::{DataFrame, SessionContext};
use mamba_datafusion::datafusion::sql::parser::Statement as DfStatement;
use mamba_datafusion::datafusion::sql::sqlparser::ast::{visit_relations_mut, Ident, ObjectName, ObjectNamePart};
use mamba_datafusion::{LlmFunctions, LlmFunctionsBuilder, OnError, ResponseCache, Stats};

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

/// The file a table's format comes from: `path` itself, or for a folder the first file in it
/// of a known format (in name order).
fn format_source(path: &str) -> Option<String> {
    if !Path::new(path).is_dir() {
        return Some(path.to_owned());
    }
    let mut names: Vec<String> = std::fs::read_dir(path)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|name| Format::of(name).is_some())
        .collect();
    names.sort();
    names.into_iter().next()
}

async fn register_table(ctx: &SessionContext, name: &str, path: &str) -> Result<(), CliError> {
    if !Path::new(path).exists() {
        return Err(CliError::Usage(format!("{path}: no such file")));
    }
    let unknown = || {
        CliError::Usage(format!(
            "{path}: unknown table format (give a .parquet, .csv, .jsonl, .ndjson or .json file, or a folder of them)"
        ))
    };
    let source = format_source(path).ok_or_else(unknown)?;
    let format = Format::of(&source).ok_or_else(unknown)?;
    // A folder's table is its files of that extension.
    let ext = Format::extension(&source);
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
    let mut text = e.to_string();
    // A Ballista scheduler's refusal comes as a gRPC status: its message is what matters.
    const STATUS: &str = "message: \"";
    if let (Some(_), Some(at)) = (text.find("Status { code: "), text.find(STATUS)) {
        let rest = &text[at + STATUS.len()..];
        let end = rest.find("\", metadata:").or_else(|| rest.rfind('"')).unwrap_or(rest.len());
        text = rest[..end].replace("\\n", " ").replace("\\\"", "\"");
        if let Some(reason) = text.strip_prefix("Could not parse plan: DataFusion error: ") {
            text = format!("the scheduler could not plan the query: {reason}");
        }
    }
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
    if line.contains("async functions should not be called directly") {
        return "llm(), llm_json() and embed() cannot be GROUP BY keys here (DataFusion 55); compute them in a subquery: \
                SELECT topic, count(*) FROM (SELECT llm(...) AS topic FROM t) GROUP BY topic"
            .to_owned();
    }
    for prefix in ["Error during planning: ", "Execution error: ", "Internal error: ", "External error: "] {
        while let Some(rest) = line.strip_prefix(prefix) {
            line = rest.to_owned();
        }
    }
    line
}

/// The query planned, with the tables of `renames` (`(from, to)`) read under their new names.
async fn plan(ctx: &SessionContext, query: &str, renames: &[(String, String)]) -> Result<DataFrame, DataFusionError> {
    if renames.is_empty() {
        return ctx.sql(query).await;
    }
    let state = ctx.state();
    let dialect = state.config().options().sql_parser.dialect;
    let mut statement = state.sql_to_statement(query, &dialect)?;
    if let DfStatement::Statement(inner) = &mut statement {
        let _ = visit_relations_mut(inner.as_mut(), |name: &mut ObjectName| {
            if let [ObjectNamePart::Identifier(ident)] = name.0.as_slice() {
                if let Some((_, to)) = renames.iter().find(|(from, _)| *from == ident.value) {
                    *name = ObjectName::from(vec![Ident::new(to.as_str())]);
                }
            }
            ControlFlow::<()>::Continue(())
        });
    }
    let plan = state.statement_to_plan(statement).await?;
    ctx.execute_logical_plan(plan).await
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

pub(crate) fn summary(s: &Stats) -> String {
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

/// With `--ballista`, the flags that belong to the executors (they answer the rows), and
/// why each is refused here.
fn check_cluster_flags(args: &Sql) -> Result<(), CliError> {
    let refused = [
        (args.cache.is_some(), "--cache"),
        (args.max_cost.is_some(), "--max-cost"),
        (args.concurrency.is_some(), "--concurrency"),
    ];
    if let Some((_, flag)) = refused.iter().find(|(given, _)| *given) {
        return Err(CliError::Usage(format!(
            "{flag} applies where rows are answered: with --ballista, give it to each `mamba-llm ballista executor`"
        )));
    }
    if args.on_error != "fail" {
        return Err(CliError::Usage(
            "--on-error null changes the functions' type on this machine only: with --ballista, say it per call, \
             llm(p, '{\"on_error\": \"null\"}')"
                .into(),
        ));
    }
    Ok(())
}

/// A session on the Ballista cluster of `url`, with the functions known for planning.
#[cfg(feature = "ballista")]
async fn cluster_session(url: &str) -> Result<SessionContext, CliError> {
    mamba_ballista::connect(url).await.map_err(|e| CliError::Usage(one_line(&e)))
}

#[cfg(not(feature = "ballista"))]
async fn cluster_session(_: &str) -> Result<SessionContext, CliError> {
    Err(crate::cluster::unsupported())
}

/// `--cache FILE`, opened (created when missing).
pub(crate) fn open_cache(path: Option<&Path>) -> Result<Option<Arc<ResponseCache>>, CliError> {
    path.map(|p| ResponseCache::open(p).map(Arc::new).map_err(|e| CliError::Io(e.to_string()))).transpose()
}

/// The functions' limits and cache from the flags (`sql`'s, or an executor's).
pub(crate) fn build_functions(
    builder: LlmFunctionsBuilder,
    concurrency: usize,
    cache: Option<Arc<ResponseCache>>,
    max_cost: Option<f64>,
) -> LlmFunctionsBuilder {
    let mut builder = builder.concurrency(concurrency);
    if let Some(cache) = cache {
        builder = builder.cache(cache);
    }
    if let Some(cap) = max_cost {
        builder = builder.max_cost(cap);
    }
    builder
}

/// `mamba-llm sql`.
pub(crate) async fn run(args: Sql) -> Result<(), CliError> {
    check_max_cost(args.max_cost)?;
    let on_error =
        OnError::parse(&args.on_error).ok_or_else(|| CliError::Usage("--on-error must be fail or null".into()))?;
    if args.ballista.is_some() {
        check_cluster_flags(&args)?;
    }
    // Checked before connecting; the file is created once the query is planned.
    args.output.as_deref().map(Format::of_output).transpose()?;
    let cache = open_cache(args.cache.as_deref())?;

    // Tables first: a missing file or a bad query fails before connecting.
    let ctx = match &args.ballista {
        Some(url) => cluster_session(url).await?,
        None => SessionContext::new(),
    }
    .enable_url_table();
    if let Some(n) = args.partitions {
        ctx.state_ref().write().config_mut().options_mut().execution.target_partitions = n;
    }
    for spec in &args.tables {
        let (name, path) = spec
            .split_once('=')
            .filter(|(n, p)| !n.is_empty() && !p.is_empty())
            .ok_or_else(|| CliError::Usage(format!("--table {spec}: give NAME=PATH")))?;
        register_table(&ctx, name, path).await?;
    }
    // Quoted file names are tables under their own name; DataFusion reads .parquet, .csv and
    // .json by itself, not .jsonl or .ndjson. On a cluster they get names without dots, and
    // the query's references follow: Ballista sends column qualifiers as dotted text, so
    // `reviews.parquet` would arrive as table `parquet` of schema `reviews`.
    let mut renames = Vec::new();
    for (i, path) in quoted_files(&args.query).into_iter().enumerate() {
        let name = if args.ballista.is_some() { format!("file_{}", i + 1) } else { path.clone() };
        register_table(&ctx, &name, &path).await?;
        if name != path {
            renames.push((path, name));
        }
    }

    // On a cluster the executors answer rows over their own servers: this process only
    // plans, with the functions the session already has.
    let functions = match &args.ballista {
        Some(_) => None,
        None => {
            let conn = connect(&args.server).await?;
            conn.note_if_found();
            let concurrency = args.concurrency.unwrap_or(mamba_datafusion::DEFAULT_CONCURRENCY);
            let functions =
                build_functions(LlmFunctions::builder(Arc::new(conn.backend)), concurrency, cache, args.max_cost)
                    .on_error(on_error)
                    .build();
            functions.register(&ctx);
            Some(functions)
        }
    };
    let stats = || functions.as_ref().map(LlmFunctions::stats).unwrap_or_default();

    let df = plan(&ctx, &args.query, &renames).await.map_err(|e| CliError::Usage(one_line(&e)))?;
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
                let s = stats();
                bar.set_position(rows.max(s.done).min(total.unwrap_or(u64::MAX)));
                if functions.is_some() {
                    bar.set_message(summary(&s));
                }
            }
            sink.write(&batch)?;
        }
        Ok::<(), CliError>(())
    }
    .await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let stats = stats();
    // The executors count a cluster's requests and cost, each in its own log.
    let done = if functions.is_some() {
        summary(&stats)
    } else {
        "requests, tokens and cost are in the executors' logs".to_owned()
    };
    match result {
        Ok(()) => {
            sink.finish()?;
            let to = args.output.as_ref().map(|p| format!(" to {}", p.display())).unwrap_or_default();
            note(&format!("mamba-llm: {rows} rows{to}; {done}"));
            Ok(())
        }
        Err(e) => {
            if rows > 0 || stats.requests > 0 {
                note(&format!("mamba-llm: stopped after {rows} rows; {done}"));
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
    fn a_group_by_of_a_call_says_how_to_write_it() {
        let e = DataFusionError::Internal("async functions should not be called directly".into());
        assert!(one_line(&e).contains("in a subquery"), "{}", one_line(&e));
    }

    #[test]
    fn a_schedulers_grpc_refusal_becomes_its_message() {
        let e = DataFusionError::External(
            "Status { code: InvalidArgument, message: \"Could not parse plan: DataFusion error: Schema error: No field named x.\\nValid fields are \\\"t\\\".y.\", metadata: MetadataMap { headers: {} }, source: None }"
                .into(),
        );
        assert_eq!(
            one_line(&e),
            "the scheduler could not plan the query: Schema error: No field named x. Valid fields are \"t\".y."
        );
    }

    #[tokio::test]
    async fn file_tables_are_read_under_their_new_names() {
        let ctx = SessionContext::new();
        ctx.sql("CREATE TABLE file_1 (v INT) AS VALUES (1), (2)").await.unwrap().collect().await.unwrap();
        let renames = [("r.parquet".to_owned(), "file_1".to_owned())];
        let df = plan(&ctx, "SELECT sum(v) AS s, 'r.parquet' AS name FROM 'r.parquet'", &renames).await.unwrap();
        let out = pretty_format_batches(&df.collect().await.unwrap()).unwrap().to_string();
        assert!(out.contains("| 3 | r.parquet |"), "{out}");
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
