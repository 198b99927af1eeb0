//! Finding the server: flags, environment, preset, or a server running on this machine.

use std::time::Duration;

use mamba_backends::{
    backend::OpenAICompatibleBackendBuilder, ModelBackend, OpenAICompatibleBackend, Preset, RetryPolicy,
};

use secrecy::ExposeSecret;

use crate::error::CliError;
use crate::resolve::{resolve, ProcessEnv, SavedKeys};
use crate::settings::{env, optional_seconds, Api, Section, Server};

/// How the server was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// `--base-url`, the environment, `--preset` or an endpoint of the config file.
    Configured,
    /// A server found on a local port.
    Local(&'static str),
}

/// A backend ready to use.
pub(crate) struct Connection {
    pub(crate) backend: OpenAICompatibleBackend,
    pub(crate) source: Source,
    /// The config endpoint's name, when one was used.
    pub(crate) endpoint: Option<String>,
}

impl Connection {
    /// Says on stderr which server was found running on this machine (nothing for a
    /// configured one).
    pub(crate) fn note_if_found(&self) {
        if let Source::Local(name) = &self.source {
            crate::print::note(&format!(
                "mamba-llm: using {name} at {} (model {})",
                mamba_backends::redact::redact_url(self.backend.base_url()),
                self.backend.model()
            ));
        }
    }
}

/// What the search for a server found.
pub(crate) enum Found {
    /// A configured or running server.
    Server(Box<Connection>),
    /// Nothing configured and nothing running; says which local ports were tried.
    Nothing { searched: String },
}

/// The local servers looked for when nothing is configured, from the preset table (servers
/// people run on their own machine, on their default ports). `MAMBA_LOCAL_PORTS=a,b,c,d`
/// replaces the ports in that order, for tests.
fn local_servers() -> Vec<(Preset, u16, &'static str)> {
    let presets = Preset::local_servers().filter_map(|p| p.default_port().map(|port| (p, port, p.spec().display_name)));
    let Some(ports) = env("MAMBA_LOCAL_PORTS") else { return presets.collect() };
    presets
        .zip(ports.split(','))
        .filter_map(|((preset, _, name), port)| port.trim().parse().ok().map(|port| (preset, port, name)))
        .collect()
}

async fn is_live(port: u16) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let connected = tokio::time::timeout(Duration::from_millis(250), tokio::net::TcpStream::connect(addr)).await;
    if !matches!(connected, Ok(Ok(_))) {
        return false;
    }
    let Ok(backend) = OpenAICompatibleBackend::builder("probe")
        .base_url(format!("http://127.0.0.1:{port}/v1"))
        .timeout(Duration::from_millis(600))
        .retry_policy(RetryPolicy::none())
        .build()
    else {
        return false;
    };
    backend.health_check().await
}

/// The first model `server` lists, if it answers within 5 s (a server's list is its models
/// in its own order; the first is the one it serves by default).
pub(crate) async fn first_model(server: &OpenAICompatibleBackend) -> Option<String> {
    match tokio::time::timeout(Duration::from_secs(5), server.list_models()).await {
        Ok(Ok(models)) => models.into_iter().next().map(|m| m.id),
        _ => None,
    }
}

/// Builds the backend for `conn`: a configured server, else one running on this machine.
pub(crate) async fn connect(conn: &Server) -> Result<Connection, CliError> {
    connect_tuned(conn, |builder| builder).await
}

/// [`connect`], with `tune` applied to the builder before the flags (`--timeout`,
/// `--retries`), so a command can change defaults the flags still override.
pub(crate) async fn connect_tuned(
    conn: &Server,
    tune: fn(OpenAICompatibleBackendBuilder) -> OpenAICompatibleBackendBuilder,
) -> Result<Connection, CliError> {
    match find_server(conn, tune).await? {
        Found::Server(connection) => Ok(*connection),
        Found::Nothing { searched } => Err(CliError::Connect(format!(
            "no server configured (--base-url, MAMBA_BASE_URL, --preset, -e, a default_endpoint in the config file) and none found on localhost ({searched})"
        ))),
    }
}

/// Looks for the server: `--base-url` or the environment, `--preset`, else the known local
/// ports.
pub(crate) async fn find_server(
    conn: &Server,
    tune: fn(OpenAICompatibleBackendBuilder) -> OpenAICompatibleBackendBuilder,
) -> Result<Found, CliError> {
    let config = crate::config::load()?;
    let settings = resolve(conn, config, &ProcessEnv, &SavedKeys)?;
    let preset = settings.preset.as_deref().map(crate::settings::preset).transpose().map_err(CliError::Usage)?;
    let configured_url = settings.base_url.clone();
    let model_flag = settings.model.clone();
    let key = settings.key;
    // Checked before the search, so a bad flag is a usage error whatever answers.
    let timeout = optional_seconds("--timeout", settings.timeout)?;
    let total_timeout = optional_seconds("--total-timeout", settings.total_timeout)?;

    let (base_url, preset, source) = match (configured_url, preset) {
        (Some(url), preset) => (url, preset.unwrap_or_default(), Source::Configured),
        (None, Some(preset)) => (preset.base_url().to_owned(), preset, Source::Configured),
        (None, None) => {
            let candidates = local_servers();
            let live = futures_util::future::join_all(candidates.iter().map(|(_, port, _)| is_live(*port))).await;
            match candidates.iter().zip(live).find(|(_, live)| *live) {
                Some(((preset, port, name), _)) => {
                    let url = format!("http://127.0.0.1:{port}/v1");
                    // The port says which server usually listens there; its answers say which
                    // one does (8080 is llama.cpp's and LocalAI's, 8000 vLLM's and others').
                    let detected = match OpenAICompatibleBackend::builder("probe")
                        .base_url(&url)
                        .timeout(Duration::from_secs(2))
                        .build()
                    {
                        Ok(probe) => probe.health().await.server_kind,
                        Err(_) => None,
                    };
                    match detected {
                        Some(kind) => (url, kind, Source::Local(kind.spec().display_name)),
                        None => (url, *preset, Source::Local(name)),
                    }
                }
                None => {
                    let names: Vec<String> =
                        candidates.iter().map(|(_, port, name)| format!("{name} :{port}")).collect();
                    return Ok(Found::Nothing { searched: names.join(", ") });
                }
            }
        }
    };

    let build = |model: &str| -> Result<OpenAICompatibleBackend, CliError> {
        let mut builder = tune(OpenAICompatibleBackend::builder(model).preset(preset).base_url(&base_url));
        if let Some(key) = &key {
            builder = builder.api_key(key.expose_secret());
        }
        for (name, value) in &settings.headers {
            builder = builder.header(name, value);
        }
        if let Some(timeout) = timeout {
            builder = builder.timeout(timeout);
        }
        if let Some(total) = total_timeout {
            builder = builder.total_timeout(total);
        }
        if let Some(retries) = settings.retries {
            builder = builder.retry_policy(RetryPolicy::default().max_retries(retries));
        }
        if conn.api == Some(Api::Completions) && conn.section != Some(Section::Bench) {
            return Err(CliError::Usage(
                "--api completions (legacy text completions) is for `mamba-llm bench`; use chat, responses or auto"
                    .into(),
            ));
        }
        if let Some(Api::Wire(api)) = conn.api {
            builder = builder.wire_api(api);
        }
        builder.build().map_err(CliError::Backend)
    };

    let model = match model_flag {
        Some(model) => model,
        None => {
            // Ask the server which models it has; hosted services get a sensible default.
            let probe = build("")?;
            first_model(&probe).await.unwrap_or_else(|| preset.spec().default_model.to_owned())
        }
    };
    Ok(Found::Server(Box::new(Connection { backend: build(&model)?, source, endpoint: settings.endpoint })))
}
