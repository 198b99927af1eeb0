//! `mamba-llm serve`: any backend as an OpenAI-compatible server (the engine is the
//! `mamba-serve` crate; this is its flags).
//!
//! Upstream syntax, for `--upstream` and `--fallback`:
//!
//! ```text
//! URL[,model=NAME][,key-env=VAR][,preset=NAME]        http://10.0.0.5:8000/v1,model=qwen2.5-7b
//! PRESET[:MODEL][,key-env=VAR]                        openai:gpt-4o-mini,key-env=OPENAI_API_KEY
//! ```
//!
//! `--fallback` takes `on=KIND+KIND` too (error kinds as `mamba-llm --json` names them, e.g.
//! `on=context_overflow+rate_limited`; default: unavailable, connect, timeout, server,
//! rate_limited, context_overflow).

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Args;
use futures_util::FutureExt;
use mamba_backends::{BackendPool, ErrorKind, ModelBackend, OpenAICompatibleBackend, Preset, RetryPolicy};
use mamba_serve::{Limits, ServeConfig, Server};

use crate::error::CliError;
use crate::print::note;
use crate::settings::{env, seconds, LocalModel};

/// Serve a model over the OpenAI API: the built-in model (the default), or upstream servers
/// as one pool with failover and circuit breakers.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port (0: any free port; the address is printed on stderr).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Serve the built-in model, in process (the default without --upstream).
    #[arg(long, conflicts_with = "upstream")]
    local: bool,
    /// A GGUF file for the built-in engine (implies --local).
    #[arg(long, value_name = "PATH", conflicts_with = "upstream")]
    model_file: Option<std::path::PathBuf>,
    /// With --local: which built-in model. With --upstream: the model of upstreams that name
    /// none.
    #[arg(short, long)]
    model: Option<String>,
    /// An upstream server (repeatable; several form one pool): `URL[,model=M][,key-env=VAR]`
    /// or `PRESET[:MODEL][,key-env=VAR]`.
    #[arg(long, value_name = "SPEC")]
    upstream: Vec<String>,
    /// A backend to try when every upstream failed (repeatable, tried in order): an upstream
    /// SPEC plus `,on=KIND+KIND`.
    #[arg(long, value_name = "SPEC", requires = "upstream")]
    fallback: Vec<String>,
    /// The model id clients ask for (default: the first upstream's model, or the built-in
    /// model's name).
    #[arg(long, value_name = "NAME")]
    model_name: Option<String>,
    /// Another model id clients may ask for (repeatable), e.g. gpt-4o-mini for tools that
    /// insist on one.
    #[arg(long, value_name = "NAME")]
    alias: Vec<String>,
    /// Require this environment variable's value as the bearer key on /v1/* (and on /metrics
    /// and the chat page, unless --public-metrics / --public-page).
    #[arg(long, value_name = "VAR")]
    api_key_env: Option<String>,
    /// With --api-key-env: serve /metrics without the key.
    #[arg(long)]
    public_metrics: bool,
    /// With --api-key-env: serve the chat page (/) without the key (the page still asks for
    /// the key for its requests).
    #[arg(long)]
    public_page: bool,
    /// Let web pages from this origin call the API (repeatable; e.g. http://localhost:3000,
    /// or * for any): their CORS preflights are answered. Other origins get no CORS grant.
    #[arg(long, value_name = "ORIGIN")]
    cors_origin: Vec<String>,
    /// On a loopback --host, a Host name to accept besides localhost and loopback addresses
    /// (repeatable); others get 403, so DNS rebinding cannot reach the server. '*' accepts
    /// any Host: it turns the DNS-rebinding check off.
    #[arg(long, value_name = "NAME")]
    allowed_host: Vec<String>,
    /// Largest request body in bytes (413 beyond).
    #[arg(long, value_name = "BYTES", default_value_t = 8 * 1024 * 1024)]
    max_body_bytes: usize,
    /// Requests sent to the backend at once.
    #[arg(long, value_name = "N", default_value_t = 64)]
    max_concurrent: usize,
    /// Requests waiting for a slot (429 with Retry-After beyond).
    #[arg(long, value_name = "N", default_value_t = 256)]
    max_queue: usize,
    /// Seconds a request may wait for its answer, or a stream for its first token, counted
    /// from its head, so reading its body is included (504 after; 408 while the body arrives).
    #[arg(long, value_name = "SECS", default_value_t = 600.0)]
    request_timeout: f64,
    /// Seconds a client gets to send a request's head, and that its body may stall with no
    /// bytes (408 and the connection closed after; a slow body that keeps arriving is bounded
    /// by --request-timeout; idle keep-alive connections are closed after it too).
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    body_timeout: f64,
    /// Client connections open at once; past it, new connections wait until one closes.
    #[arg(long, value_name = "N", default_value_t = 4096)]
    max_connections: usize,
    /// Seconds in-flight requests get to finish after SIGINT or SIGTERM.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    grace: f64,
    /// Connect, response and idle timeout towards upstreams, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    upstream_timeout: f64,
    /// Retries per upstream before the pool moves to the next one.
    #[arg(long, value_name = "N", default_value_t = 0)]
    retries: u32,
    /// No access log (one line per request on stderr otherwise).
    #[arg(short, long)]
    quiet: bool,
}

/// One `--upstream` or `--fallback`, parsed.
#[derive(Debug, Default, PartialEq)]
struct Spec {
    url: Option<String>,
    preset: Option<Preset>,
    model: Option<String>,
    key_env: Option<String>,
    on: Vec<ErrorKind>,
}

const DEFAULT_FALLBACK_ON: [ErrorKind; 6] = [
    ErrorKind::Unavailable,
    ErrorKind::Connect,
    ErrorKind::Timeout,
    ErrorKind::Server,
    ErrorKind::RateLimited,
    ErrorKind::ContextOverflow,
];

fn preset(name: &str, flag: &str, spec: &str) -> Result<Preset, String> {
    crate::settings::preset(name).map_err(|e| format!("{flag} {spec:?}: {e}"))
}

fn parse_spec(text: &str, flag: &str) -> Result<Spec, String> {
    let mut parts = text.split(',');
    let head = parts.next().unwrap_or_default().trim();
    if head.is_empty() {
        return Err(format!(
            "{flag} {text:?}: give a URL or a preset, e.g. http://127.0.0.1:8000/v1 or openai:gpt-4o-mini"
        ));
    }
    let mut spec = Spec::default();
    if head.contains("://") {
        spec.url = Some(head.to_owned());
    } else {
        let (name, model) = match head.split_once(':') {
            Some((name, model)) => (name, Some(model)),
            None => (head, None),
        };
        spec.preset = Some(preset(name, flag, text)?);
        spec.model = model.filter(|m| !m.is_empty()).map(str::to_owned);
    }
    for part in parts {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| format!("{flag} {text:?}: {part:?} is not KEY=VALUE (model=, key-env=, preset=, on=)"))?;
        let value = value.trim();
        match key.trim() {
            "model" => spec.model = Some(value.to_owned()),
            "key-env" | "key_env" => spec.key_env = Some(value.to_owned()),
            "preset" => spec.preset = Some(preset(value, flag, text)?),
            "on" if flag == "--fallback" => {
                for name in value.split('+') {
                    let kind = ErrorKind::from_name(name.trim()).ok_or_else(|| {
                        let names: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
                        format!("{flag} {text:?}: unknown error kind {name:?}; known: {}", names.join(", "))
                    })?;
                    spec.on.push(kind);
                }
            }
            other => return Err(format!("{flag} {text:?}: unknown option {other:?} (model=, key-env=, preset=, on=)")),
        }
    }
    if flag == "--fallback" && spec.on.is_empty() {
        spec.on = DEFAULT_FALLBACK_ON.to_vec();
    }
    Ok(spec)
}

/// What every upstream and fallback shares, from the flags.
struct Upstreams {
    /// `-m`: the model of specs that name none.
    model: Option<String>,
    /// `--upstream-timeout`, checked when a backend is built.
    timeout: f64,
    /// `--retries`.
    retries: u32,
}

/// The backend for one upstream spec serving `model`.
fn build_upstream(
    spec: &Spec,
    args: &Upstreams,
    flag: &str,
    text: &str,
    model: &str,
) -> Result<OpenAICompatibleBackend, CliError> {
    let preset = spec.preset.unwrap_or_default();
    let url = spec.url.clone().unwrap_or_else(|| preset.base_url().to_owned());
    let key =
        match &spec.key_env {
            Some(var) => Some(env(var).ok_or_else(|| {
                CliError::Usage(format!("{flag} {text:?}: the environment variable {var} is not set"))
            })?),
            None => env("MAMBA_API_KEY").or_else(|| env("OPENAI_API_KEY")),
        };
    let timeout = seconds("--upstream-timeout", args.timeout)?;
    let mut builder = OpenAICompatibleBackend::builder(model)
        .preset(preset)
        .base_url(&url)
        .timeout(timeout)
        .retry_policy(RetryPolicy::default().max_retries(args.retries));
    if let Some(key) = &key {
        builder = builder.api_key(key);
    }
    builder.build().map_err(CliError::Backend)
}

/// The upstream's URL as printed: credentials in it (user:password, a key in the query) redacted.
fn spec_url(spec: &Spec) -> String {
    let url = spec.url.clone().unwrap_or_else(|| spec.preset.unwrap_or_default().base_url().to_owned());
    mamba_backends::redact::redact_url(&url)
}

/// The model a spec names (`model=`, `-m`, or its preset's default), if any.
fn named_model(spec: &Spec, args: &Upstreams) -> Option<String> {
    let preset = spec.preset.unwrap_or_default();
    spec.model.clone().or_else(|| args.model.clone()).or_else(|| {
        let default = preset.spec().default_model;
        (spec.url.is_none() && !default.is_empty()).then(|| default.to_owned())
    })
}

/// The model a spec serves: the one it names, else the first the server lists when asked;
/// None when it names none and the server did not answer.
async fn model_of(spec: &Spec, args: &Upstreams, flag: &str, text: &str) -> Result<Option<String>, CliError> {
    if let Some(model) = named_model(spec, args) {
        return Ok(Some(model));
    }
    let probe = build_upstream(spec, args, flag, text, "")?;
    Ok(crate::connect::first_model(&probe).await)
}

/// The error for a spec whose model is named nowhere and whose server listed none.
fn unnamed_model(flag: &str, text: &str, spec: &Spec) -> CliError {
    CliError::Usage(format!(
        "{flag} {text:?}: name the model (add ,model=NAME or pass -m NAME); {} did not list one",
        spec_url(spec)
    ))
}

/// What `serve` serves: one backend, or a pool of upstreams (whose endpoints `/health`
/// reports).
enum Served {
    One(Arc<dyn ModelBackend>),
    Pool(BackendPool),
}

/// What `serve` serves, from `--upstream` and `--fallback` (none: the built-in model), and
/// the line that names it.
async fn backend(
    upstream: &[String],
    fallbacks: &[String],
    model_name: Option<&str>,
    args: &Upstreams,
    local: &LocalModel,
) -> Result<(Served, String), CliError> {
    if upstream.is_empty() {
        let (backend, label) = crate::local::open(local, crate::local::Why::Asked).await?;
        return Ok((Served::One(Arc::from(backend)), label));
    }
    let specs = upstream
        .iter()
        .map(|text| parse_spec(text, "--upstream").map(|spec| (spec, text.as_str())))
        .collect::<Result<Vec<_>, _>>()
        .map_err(CliError::Usage)?;
    // Upstreams that name no model are asked which they serve, all at once; one that does
    // not answer (a replica down at start) serves the model of those that do, and takes
    // requests once it answers.
    let probes =
        futures_util::future::join_all(specs.iter().map(|(spec, text)| model_of(spec, args, "--upstream", text)))
            .await
            .into_iter()
            .collect::<Result<Vec<_>, CliError>>()?;
    let shared = probes.iter().find_map(Clone::clone).or_else(|| model_name.map(str::to_owned));
    let mut endpoints: Vec<Arc<dyn ModelBackend>> = Vec::new();
    let mut label = Vec::new();
    for ((spec, text), model) in specs.iter().zip(probes) {
        let url = spec_url(spec);
        let model = match model {
            Some(model) => model,
            None => {
                let Some(model) = shared.clone() else { return Err(unnamed_model("--upstream", text, spec)) };
                note(&format!(
                    "mamba-llm: {url} did not answer at start; serving it as {model}, it takes requests once it answers"
                ));
                model
            }
        };
        let upstream = build_upstream(spec, args, "--upstream", text, &model)?;
        label.push(format!("{} at {url}", upstream.model()));
        endpoints.push(Arc::new(upstream));
    }
    if endpoints.len() == 1 && fallbacks.is_empty() {
        let only = endpoints.remove(0);
        return Ok((Served::One(only), label.join(", ")));
    }
    let mut pool = BackendPool::builder();
    for endpoint in endpoints {
        pool = pool.endpoint(endpoint);
    }
    for text in fallbacks {
        let spec = parse_spec(text, "--fallback").map_err(CliError::Usage)?;
        let model =
            model_of(&spec, args, "--fallback", text).await?.ok_or_else(|| unnamed_model("--fallback", text, &spec))?;
        let fallback = build_upstream(&spec, args, "--fallback", text, &model)?;
        label.push(format!("fallback {}", fallback.model()));
        pool = pool.fallback(Arc::new(fallback), &spec.on);
    }
    Ok((Served::Pool(pool.build()?), label.join(", ")))
}

/// `serve`'s settings, from its flags.
pub(crate) struct Serve {
    addr: SocketAddr,
    limits: Limits,
    max_connections: usize,
    /// The bearer key clients must send.
    key: Option<String>,
    upstream: Vec<String>,
    fallback: Vec<String>,
    upstreams: Upstreams,
    /// The built-in model, served without upstreams.
    local: LocalModel,
    model_name: Option<String>,
    alias: Vec<String>,
    cors_origin: Vec<String>,
    allowed_host: Vec<String>,
    public_metrics: bool,
    public_page: bool,
    quiet: bool,
}

impl Serve {
    /// Checks `serve`'s flags and makes its settings.
    pub(crate) fn from_flags(args: ServeArgs) -> Result<Serve, CliError> {
        if args.max_connections == 0 {
            return Err(CliError::Usage("--max-connections must be at least 1".to_owned()));
        }
        if args.max_connections > mamba_serve::MAX_LIMIT || args.max_concurrent > mamba_serve::MAX_LIMIT {
            return Err(CliError::Usage(format!(
                "--max-connections and --max-concurrent can be at most {}; pass a smaller number",
                mamba_serve::MAX_LIMIT
            )));
        }
        let limits = Limits::new()
            .max_body_bytes(args.max_body_bytes)
            .max_concurrent(args.max_concurrent)
            .max_queue(args.max_queue)
            .request_timeout(seconds("--request-timeout", args.request_timeout)?)
            .body_timeout(seconds("--body-timeout", args.body_timeout)?)
            .max_connections(args.max_connections)
            .grace_period(seconds("--grace", args.grace)?);
        let key = match &args.api_key_env {
            Some(var) => Some(env(var).ok_or_else(|| {
                CliError::Usage(format!("--api-key-env {var}: the environment variable {var} is not set"))
            })?),
            None => None,
        };
        let addr: SocketAddr = format!("{}:{}", args.host, args.port)
            .parse()
            .or_else(|_| format!("[{}]:{}", args.host, args.port).parse())
            .map_err(|_| CliError::Usage(format!("--host {:?}: not an IP address", args.host)))?;
        // `--model-file` and `MAMBA_MODEL_FILE` are read only when the built-in model is served.
        let local = if args.upstream.is_empty() {
            LocalModel::new(args.model.clone(), args.model_file)
        } else {
            LocalModel::default()
        };
        Ok(Serve {
            addr,
            limits,
            max_connections: args.max_connections,
            key,
            upstream: args.upstream,
            fallback: args.fallback,
            upstreams: Upstreams { model: args.model, timeout: args.upstream_timeout, retries: args.retries },
            local,
            model_name: args.model_name,
            alias: args.alias,
            cors_origin: args.cors_origin,
            allowed_host: args.allowed_host,
            public_metrics: args.public_metrics,
            public_page: args.public_page,
            quiet: args.quiet,
        })
    }
}

/// `mamba-llm serve`.
pub(crate) async fn run(args: Serve) -> Result<(), CliError> {
    let (addr, key, mut limits) = (args.addr, args.key, args.limits);
    // Each client connection can need a second descriptor towards the upstream: raise the
    // open-files limit as far as allowed, and hold no more connections than it fits.
    if let Some(files) = crate::fdlimit::raise() {
        let fits = crate::fdlimit::connections_within(files);
        if args.max_connections > fits {
            note(&format!(
                "mamba-llm: --max-connections {} lowered to {fits}: this process may open {files} files (raise it with ulimit -n)",
                args.max_connections
            ));
            limits = limits.max_connections(fits);
        }
    }
    let (served, label) =
        backend(&args.upstream, &args.fallback, args.model_name.as_deref(), &args.upstreams, &args.local).await?;
    let mut config = match served {
        Served::One(backend) => ServeConfig::new(backend),
        Served::Pool(pool) => ServeConfig::from_pool(pool),
    }
    .limits(limits)
    .public_metrics(args.public_metrics)
    .public_page(args.public_page);
    for origin in &args.cors_origin {
        config = config.cors_origin(origin);
    }
    for host in &args.allowed_host {
        config = config.allowed_host(host);
    }
    if let Some(name) = &args.model_name {
        config = config.model_name(name);
    }
    for alias in &args.alias {
        config = config.alias(alias);
    }
    if let Some(key) = key {
        config = config.api_key(key);
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| CliError::Io(format!("cannot listen on {addr}: {e}; pick another --port")))?;
    let bound = listener.local_addr().map_err(|e| CliError::Io(e.to_string()))?;
    if !args.quiet {
        let _ = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_max_level(tracing::Level::INFO)
            .with_target(false)
            .try_init();
    }
    // The signal handlers are in place before the line that says where the server listens
    // (one poll installs them), so a SIGTERM sent as soon as that line is read stops the server
    // gracefully instead of killing the process.
    let mut shutdown = Box::pin(mamba_serve::shutdown_signal());
    let stopped_already = shutdown.as_mut().now_or_never().is_some();
    note(&format!(
        "mamba-llm: serving {} ({label}) on http://{bound}/v1 (chat page http://{bound}/); Ctrl-C stops",
        config.model_ids().join(", ")
    ));
    if !stopped_already {
        Server::new(config).serve(listener, shutdown).await.map_err(|e| CliError::Io(e.to_string()))?;
    }
    note("mamba-llm: stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn upstream_specs() {
        let s = parse_spec("http://10.0.0.5:8000/v1", "--upstream").unwrap();
        assert_eq!(s.url.as_deref(), Some("http://10.0.0.5:8000/v1"));
        assert_eq!(s.model, None);
        let s = parse_spec("http://h:1/v1,model=qwen,key-env=K,preset=vllm", "--upstream").unwrap();
        assert_eq!((s.model.as_deref(), s.key_env.as_deref(), s.preset), (Some("qwen"), Some("K"), Some(Preset::Vllm)));
        let s = parse_spec("openai:gpt-4o-mini", "--upstream").unwrap();
        assert_eq!((s.preset, s.model.as_deref()), (Some(Preset::OpenAI), Some("gpt-4o-mini")));
        let s = parse_spec("ollama", "--upstream").unwrap();
        assert_eq!((s.preset, s.model), (Some(Preset::Ollama), None));
        assert!(parse_spec("nosuch:x", "--upstream").unwrap_err().contains("unknown preset"));
        assert!(parse_spec("http://h/v1,colour=red", "--upstream").unwrap_err().contains("unknown option"));
        assert!(parse_spec("http://h/v1,on=timeout", "--upstream").is_err());
        let f = parse_spec("openai:gpt-4o,on=context_overflow+rate_limited", "--fallback").unwrap();
        assert_eq!(f.on, vec![ErrorKind::ContextOverflow, ErrorKind::RateLimited]);
        assert_eq!(parse_spec("openai:gpt-4o", "--fallback").unwrap().on, DEFAULT_FALLBACK_ON.to_vec());
        assert!(parse_spec("openai,on=sadness", "--fallback").unwrap_err().contains("unknown error kind"));
    }
}
