//! [`NativeBackend`]: one `mamba_backends::ModelBackend` (a server, a pool, the built-in
//! model) behind the Python classes of `mamba_backends`.
//!
//! Every method converts its arguments while it holds the GIL (so bad input raises before any
//! request), then starts the work on the shared runtime, which resolves the asyncio future the
//! Python half passed in ([`crate::bridge`]). The returned [`Task`] is aborted when the
//! awaiting coroutine is cancelled (a cancelled task, a timeout, Ctrl-C), which drops the Rust
//! future, and with it the request and its connection.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use mamba_backends::embeddings::{EmbeddingInput, EmbeddingOptions};
use mamba_backends::preset::WireApi;
use mamba_backends::{
    BackendPool, ErrorKind, Extract, ExtractMode, ExtractOptions, ModelBackend, ModelProfile, OpenAICompatibleBackend,
    Preset, RetryPolicy,
};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::bridge::{spawn, LoopWaker, Task};
use crate::convert::{self, PyJson, PyResponse};
use crate::errors::build_py_err;
use crate::profiles::profile_from_fields;
use crate::runtime;
use crate::stream::NativeStream;

/// A backend of the Rust core.
#[pyclass(frozen, module = "mamba_backends._native")]
pub(crate) struct NativeBackend {
    /// The backend; `None` once closed (its connection pool is dropped with the last clone).
    inner: RwLock<Option<Arc<dyn ModelBackend>>>,
    name: String,
    profile: ModelProfile,
    model: String,
    /// Where it sends requests, credentials removed (for repr).
    target: String,
}

impl NativeBackend {
    pub(crate) fn wrap(inner: Arc<dyn ModelBackend>, target: String) -> NativeBackend {
        NativeBackend {
            model: inner.model().to_owned(),
            name: inner.name().to_owned(),
            profile: inner.profile().clone(),
            inner: RwLock::new(Some(inner)),
            target,
        }
    }

    /// The backend, or the error a closed one raises (as the reference's closed client).
    pub(crate) fn backend(&self) -> PyResult<Arc<dyn ModelBackend>> {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).clone().ok_or_else(|| {
            PyRuntimeError::new_err(format!(
                "this backend of {:?} was closed: create a new one to send more requests",
                self.model
            ))
        })
    }
}

fn seconds(value: Option<f64>, arg: &str) -> PyResult<Option<Duration>> {
    match value {
        None => Ok(None),
        Some(s) if s > 0.0 => Duration::try_from_secs_f64(s)
            .map(Some)
            .map_err(|_| PyValueError::new_err(format!("{arg} must be a positive number of seconds, got {s}"))),
        Some(s) => Err(PyValueError::new_err(format!("{arg} must be a positive number of seconds, got {s}"))),
    }
}

#[pymethods]
impl NativeBackend {
    /// A backend for an OpenAI-compatible server. `api_key` is the secret itself (the
    /// Python class unwraps `SecretStr`); it is kept in Rust only and never shown.
    #[staticmethod]
    #[pyo3(signature = (model, *, base_url=None, api_key=None, timeout=None, profile=None, preset=None,
        api=None, max_retries=None, total_timeout=None, connect_timeout=None, headers=None,
        include_usage=None, drop_unsupported=false))]
    #[allow(clippy::too_many_arguments)]
    fn openai(
        py: Python<'_>,
        model: String,
        base_url: Option<String>,
        api_key: Option<String>,
        timeout: Option<f64>,
        profile: Option<&Bound<'_, PyDict>>,
        preset: Option<String>,
        api: Option<String>,
        max_retries: Option<u32>,
        total_timeout: Option<f64>,
        connect_timeout: Option<f64>,
        headers: Option<&Bound<'_, PyDict>>,
        include_usage: Option<bool>,
        drop_unsupported: bool,
    ) -> PyResult<NativeBackend> {
        runtime::check()?;
        let model_name = model.clone();
        let mut builder = OpenAICompatibleBackend::builder(model);
        if let Some(name) = preset {
            let preset = Preset::from_name(&name).ok_or_else(|| {
                let names: Vec<&str> = Preset::ALL.iter().map(|p| p.name()).collect();
                PyValueError::new_err(format!("unknown preset {name:?}; known presets: {}", names.join(", ")))
            })?;
            builder = builder.preset(preset);
        }
        if let Some(url) = base_url {
            builder = builder.base_url(url);
        }
        if let Some(key) = api_key.filter(|k| !k.is_empty()) {
            builder = builder.api_key(key);
        }
        if let Some(t) = seconds(timeout, "timeout")? {
            builder = builder.timeout(t);
        }
        if let Some(t) = seconds(total_timeout, "total_timeout")? {
            builder = builder.total_timeout(t);
        }
        if let Some(t) = seconds(connect_timeout, "connect_timeout")? {
            builder = builder.connect_timeout(t);
        }
        if let Some(fields) = profile {
            builder = builder.profile(profile_from_fields(fields)?);
        }
        if let Some(api) = api {
            let wire = WireApi::parse(&api).ok_or_else(|| {
                PyValueError::new_err(format!("api must be \"chat\", \"responses\" or \"auto\", got {api:?}"))
            })?;
            builder = builder.wire_api(wire);
        }
        if let Some(n) = max_retries {
            builder = builder.retry_policy(RetryPolicy::default().max_retries(n));
        }
        if let Some(headers) = headers {
            for (name, value) in headers.iter() {
                let name: String = name.extract().map_err(|_| PyTypeError::new_err("headers must map str to str"))?;
                let value: String =
                    value.extract().map_err(|_| PyTypeError::new_err(format!("headers[{name:?}] must be a str")))?;
                builder = builder.header(name, value);
            }
        }
        if let Some(yes) = include_usage {
            builder = builder.include_usage(yes);
        }
        builder = builder.drop_unsupported(drop_unsupported);
        let backend = builder.build().map_err(|e| build_py_err(py, &e, &model_name))?;
        let target = mamba_backends::redact::redact_url(backend.base_url());
        Ok(NativeBackend::wrap(Arc::new(backend), target))
    }

    /// A pool over `backends`: requests go to the least busy healthy one; a failing one is
    /// skipped for `cool_down` seconds after `failure_threshold` failures in a row; the
    /// `fallbacks` answer when every endpoint failed with a retryable error.
    #[staticmethod]
    #[pyo3(signature = (backends, *, fallbacks=None, failure_threshold=None, cool_down=None))]
    fn pool(
        py: Python<'_>,
        backends: &Bound<'_, PyList>,
        fallbacks: Option<&Bound<'_, PyList>>,
        failure_threshold: Option<u32>,
        cool_down: Option<f64>,
    ) -> PyResult<NativeBackend> {
        runtime::check()?;
        let mut builder = BackendPool::builder();
        let mut targets = Vec::new();
        for (i, item) in backends.iter().enumerate() {
            let native = item.cast::<NativeBackend>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "backends[{i}] must be a backend of mamba_backends (not a Python subclass)"
                ))
            })?;
            targets.push(native.get().target.clone());
            builder = builder.endpoint(native.get().backend()?);
        }
        let retryable: Vec<ErrorKind> = ErrorKind::ALL.into_iter().filter(|k| k.is_retryable()).collect();
        for (i, item) in fallbacks.iter().flat_map(|f| f.iter()).enumerate() {
            let native = item
                .cast::<NativeBackend>()
                .map_err(|_| PyTypeError::new_err(format!("fallbacks[{i}] must be a backend of mamba_backends")))?;
            builder = builder.fallback(native.get().backend()?, &retryable);
        }
        if let Some(n) = failure_threshold {
            builder = builder.failure_threshold(n);
        }
        if let Some(t) = seconds(cool_down, "cool_down")? {
            builder = builder.cool_down(t);
        }
        let pool = builder.build().map_err(|e| build_py_err(py, &e, "pool"))?;
        Ok(NativeBackend::wrap(Arc::new(pool), format!("pool[{}]", targets.join(", "))))
    }

    /// The backend's name (`openai_compatible`, `pool`, `local`).
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// The model requests name.
    #[getter]
    fn model(&self) -> &str {
        &self.model
    }

    /// Where requests go, without credentials.
    #[getter]
    fn target(&self) -> &str {
        &self.target
    }

    /// The profile in use, as the fields of `ModelProfile`.
    fn profile_fields<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        crate::profiles::fields_dict(py, &self.profile)
    }

    /// Resolves `future` with the `ModelResponse`.
    #[pyo3(signature = (waker, future, messages, tools=None, temperature=None, max_tokens=None, kwargs=None))]
    #[allow(clippy::too_many_arguments)]
    fn complete<'py>(
        &self,
        waker: &LoopWaker,
        future: Py<PyAny>,
        messages: &Bound<'py, PyAny>,
        tools: Option<&Bound<'py, PyAny>>,
        temperature: Option<&Bound<'py, PyAny>>,
        max_tokens: Option<&Bound<'py, PyAny>>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Task> {
        let (messages, options) = convert::request(messages, tools, temperature, max_tokens, kwargs)?;
        let backend = self.backend()?;
        let model = self.model.clone();
        spawn(waker, future, self.model.clone(), async move {
            backend.complete(&messages, &options).await.map(|response| PyResponse { response, model })
        })
    }

    /// A `NativeStream` of the answer; nothing is sent until its first batch is awaited.
    #[pyo3(signature = (messages, tools=None, temperature=None, max_tokens=None, kwargs=None))]
    fn stream(
        &self,
        messages: &Bound<'_, PyAny>,
        tools: Option<&Bound<'_, PyAny>>,
        temperature: Option<&Bound<'_, PyAny>>,
        max_tokens: Option<&Bound<'_, PyAny>>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<NativeStream> {
        runtime::check()?;
        let (messages, options) = convert::request(messages, tools, temperature, max_tokens, kwargs)?;
        Ok(NativeStream::new(self.backend()?, messages, options, self.model.clone()))
    }

    /// Resolves `future` with a value valid against `schema` (a dict: a JSON Schema), as plain
    /// Python objects: the library's extraction loop (lenient parse, validation, the errors
    /// sent back, up to `attempts` requests). Arguments are checked here, before any request.
    #[pyo3(signature = (waker, future, schema, messages, attempts=None, mode=None, name=None, temperature=None,
        max_tokens=None, kwargs=None))]
    #[allow(clippy::too_many_arguments)]
    fn extract_value<'py>(
        &self,
        waker: &LoopWaker,
        future: Py<PyAny>,
        schema: &Bound<'py, PyAny>,
        messages: &Bound<'py, PyAny>,
        attempts: Option<u32>,
        mode: Option<String>,
        name: Option<String>,
        temperature: Option<&Bound<'py, PyAny>>,
        max_tokens: Option<&Bound<'py, PyAny>>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Task> {
        if !schema.is_instance_of::<PyDict>() {
            return Err(PyTypeError::new_err(format!(
                "schema must be a dict (a JSON Schema), got {}",
                schema.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "object".to_owned())
            )));
        }
        let schema = convert::json_value(schema, "schema")?;
        let (messages, request) = convert::request(messages, None, temperature, max_tokens, kwargs)?;
        let mut options = ExtractOptions::new().request(request);
        if let Some(n) = attempts {
            if n == 0 {
                return Err(PyValueError::new_err("attempts must be at least 1"));
            }
            options = options.attempts(n);
        }
        if let Some(mode) = mode {
            let parsed = ExtractMode::parse(&mode.replace('-', "_")).ok_or_else(|| {
                PyValueError::new_err(format!(
                    "mode must be \"auto\", \"json_schema\", \"json_object\", \"tool\" or \"prompt\", got {mode:?}"
                ))
            })?;
            options = options.mode(parsed);
        }
        if let Some(name) = name {
            options = options.name(name);
        }
        let backend = self.backend()?;
        spawn(waker, future, self.model.clone(), async move {
            backend.extract_value(&schema, &messages, &options).await.map(|out| PyJson(out.value))
        })
    }

    /// Resolves `future` with whether the server answers (its health probe).
    fn health_check(&self, waker: &LoopWaker, future: Py<PyAny>) -> PyResult<Task> {
        let backend = self.backend()?;
        spawn(waker, future, self.model.clone(), async move { Ok(backend.health_check().await) })
    }

    /// Resolves `future` with the model ids the server lists.
    fn list_models(&self, waker: &LoopWaker, future: Py<PyAny>) -> PyResult<Task> {
        let backend = self.backend()?;
        spawn(waker, future, self.model.clone(), async move {
            backend.list_models().await.map(|models| models.into_iter().map(|m| m.id).collect::<Vec<String>>())
        })
    }

    /// Resolves `future` with the vectors (lists of floats), one per text, in order.
    #[pyo3(signature = (waker, future, texts, dimensions=None, model=None))]
    fn embed(
        &self,
        waker: &LoopWaker,
        future: Py<PyAny>,
        texts: &Bound<'_, PyAny>,
        dimensions: Option<u32>,
        model: Option<String>,
    ) -> PyResult<Task> {
        let texts: Vec<String> = if let Ok(one) = texts.extract::<String>() {
            vec![one]
        } else {
            texts.extract().map_err(|_| PyTypeError::new_err("texts must be a str or a list of str"))?
        };
        let backend = self.backend()?;
        let mut options = EmbeddingOptions::new();
        options.dimensions = dimensions;
        if let Some(model) = model {
            options.extra.insert("model".to_owned(), serde_json::Value::String(model));
        }
        spawn(waker, future, self.model.clone(), async move {
            let Some(embedder) = backend.as_embedder() else {
                return Err(mamba_backends::Error::new(ErrorKind::Unsupported, "this backend has no embeddings"));
            };
            embedder.embed(&EmbeddingInput::texts(texts), &options).await.map(|e| e.vectors)
        })
    }

    /// Resolves `future` once the backend is closed: later requests raise `RuntimeError`, and
    /// its idle connections close (requests still running finish first). Closing twice is
    /// harmless.
    fn close(&self, waker: &LoopWaker, future: Py<PyAny>) -> PyResult<Task> {
        let taken = self.inner.write().unwrap_or_else(|e| e.into_inner()).take();
        spawn(waker, future, self.model.clone(), async move {
            if let Some(backend) = taken {
                backend.close().await;
            }
            Ok(())
        })
    }

    fn __repr__(&self) -> String {
        format!("NativeBackend(name={:?}, model={:?}, target={:?})", self.name, self.model, self.target)
    }
}
