//! Python objects in, Python objects out: the request's arguments as the library's types,
//! and answers as the registered dataclasses.
//!
//! In: a message list must be a list (or tuple) of dicts, checked before any request, with
//! the offending index in the error; each dict becomes a [`Message`] through serde
//! (pythonize), so unknown keys, content parts and tool messages are kept as written. Keyword
//! arguments the reference merges into the body go to [`RequestOptions::extra`] as JSON.
//!
//! Out: [`PyResponse`] and [`ChunkBatch`] convert when the Python future completes, while the
//! GIL is held once for the whole answer or batch.

use mamba_backends::stream::ToolCallDelta;
use mamba_backends::{Message, ModelResponse, RequestOptions, StreamChunk, ToolCall, ToolDefinition, Usage};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::types::types;

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "object".to_owned())
}

/// The items of a list or tuple argument, or a `TypeError` naming the argument.
fn sequence<'py>(obj: &Bound<'py, PyAny>, arg: &str, item: &str) -> PyResult<Vec<Bound<'py, PyAny>>> {
    if let Ok(list) = obj.cast::<PyList>() {
        return Ok(list.iter().collect());
    }
    if let Ok(tuple) = obj.cast::<PyTuple>() {
        return Ok(tuple.iter().collect());
    }
    Err(PyTypeError::new_err(format!("{arg} must be a list of {item}, got {}", type_name(obj))))
}

/// Deepest nesting of lists and dicts accepted in one argument (serde_json's own limit).
const MAX_DEPTH: usize = 128;

/// Refuses an object nested deeper than [`MAX_DEPTH`] (a cycle is infinitely deep): the
/// conversion to JSON recurses, and would otherwise overflow the stack and abort the process.
pub(crate) fn check_depth(obj: &Bound<'_, PyAny>, depth: usize, arg: &str) -> PyResult<()> {
    if depth > MAX_DEPTH {
        return Err(PyValueError::new_err(format!(
            "{arg} is nested deeper than {MAX_DEPTH} levels (or contains itself)"
        )));
    }
    if let Ok(dict) = obj.cast::<PyDict>() {
        for (_, value) in dict.iter() {
            check_depth(&value, depth + 1, arg)?;
        }
    } else if let Ok(list) = obj.cast::<PyList>() {
        for item in list.iter() {
            check_depth(&item, depth + 1, arg)?;
        }
    } else if let Ok(tuple) = obj.cast::<PyTuple>() {
        for item in tuple.iter() {
            check_depth(&item, depth + 1, arg)?;
        }
    }
    Ok(())
}

/// The dicts of the list argument `arg`, each read as a `T` (`what` names it in errors).
fn dicts<T: DeserializeOwned>(obj: &Bound<'_, PyAny>, arg: &str, what: &str) -> PyResult<Vec<T>> {
    let items = sequence(obj, arg, "dicts")?;
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        if !item.is_instance_of::<PyDict>() {
            return Err(PyTypeError::new_err(format!("{arg}[{i}] must be a dict, got {}", type_name(item))));
        }
        check_depth(item, 1, &format!("{arg}[{i}]"))?;
        let value: T = pythonize::depythonize(item)
            .map_err(|e| PyValueError::new_err(format!("{arg}[{i}] is not {what}: {e}")))?;
        out.push(value);
    }
    Ok(out)
}

/// `messages`: a list of message dicts in the OpenAI shape.
fn messages(obj: &Bound<'_, PyAny>) -> PyResult<Vec<Message>> {
    dicts(obj, "messages", "a chat message")
}

/// `tools`: a list of OpenAI tool dicts (`{"type": "function", "function": {...}}`).
pub(crate) fn tools(obj: &Bound<'_, PyAny>) -> PyResult<Vec<ToolDefinition>> {
    dicts(obj, "tools", "a tool definition")
}

/// A JSON value from any Python object json.dumps would take.
pub(crate) fn json_value(obj: &Bound<'_, PyAny>, arg: &str) -> PyResult<Value> {
    check_depth(obj, 0, arg)?;
    pythonize::depythonize(obj).map_err(|e| PyTypeError::new_err(format!("{arg} cannot be sent as JSON: {e}")))
}

/// The messages and options of one complete()/stream() call.
pub(crate) fn request(
    messages_arg: &Bound<'_, PyAny>,
    tools_arg: Option<&Bound<'_, PyAny>>,
    temperature: Option<&Bound<'_, PyAny>>,
    max_tokens: Option<&Bound<'_, PyAny>>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<(Vec<Message>, RequestOptions)> {
    Ok((messages(messages_arg)?, options(tools_arg, temperature, max_tokens, kwargs)?))
}

/// The request's options from complete()/stream()'s arguments.
fn options(
    tools_arg: Option<&Bound<'_, PyAny>>,
    temperature: Option<&Bound<'_, PyAny>>,
    max_tokens: Option<&Bound<'_, PyAny>>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<RequestOptions> {
    let mut options = RequestOptions::new();
    if let Some(t) = temperature.filter(|t| !t.is_none()) {
        if t.is_instance_of::<pyo3::types::PyBool>() {
            return Err(PyTypeError::new_err("temperature must be a number, got bool"));
        }
        let value: f64 = t
            .extract()
            .map_err(|_| PyTypeError::new_err(format!("temperature must be a number, got {}", type_name(t))))?;
        if !value.is_finite() || value < 0.0 {
            return Err(PyValueError::new_err(format!("temperature must be a finite number >= 0, got {value}")));
        }
        options.temperature = Some(value);
    }
    if let Some(m) = max_tokens.filter(|m| !m.is_none()) {
        if m.is_instance_of::<pyo3::types::PyBool>() {
            return Err(PyTypeError::new_err("max_tokens must be an int, got bool"));
        }
        let value: i64 = m
            .extract()
            .map_err(|_| PyTypeError::new_err(format!("max_tokens must be an int, got {}", type_name(m))))?;
        let value = u32::try_from(value)
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| PyValueError::new_err(format!("max_tokens must be a positive int, got {value}")))?;
        options.max_tokens = Some(value);
    }
    if let Some(t) = tools_arg.filter(|t| !t.is_none()) {
        options.tools = tools(t)?;
    }
    if let Some(kwargs) = kwargs {
        let mut extra = Map::new();
        for (key, value) in kwargs.iter() {
            let key: String = key.extract()?;
            let value = json_value(&value, &key)?;
            extra.insert(key, value);
        }
        options.extra = extra;
    }
    Ok(options)
}

fn tool_calls_list<'py>(py: Python<'py>, calls: &[ToolCall]) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for call in calls {
        let function = PyDict::new(py);
        function.set_item(pyo3::intern!(py, "name"), &call.name)?;
        function.set_item(pyo3::intern!(py, "arguments"), &call.arguments)?;
        let dict = PyDict::new(py);
        dict.set_item(pyo3::intern!(py, "id"), &call.id)?;
        dict.set_item(pyo3::intern!(py, "type"), pyo3::intern!(py, "function"))?;
        dict.set_item(pyo3::intern!(py, "function"), function)?;
        list.append(dict)?;
    }
    Ok(list)
}

fn deltas_list<'py>(py: Python<'py>, deltas: &[ToolCallDelta]) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for delta in deltas {
        let function = PyDict::new(py);
        if let Some(name) = &delta.name {
            function.set_item(pyo3::intern!(py, "name"), name)?;
        }
        function.set_item(pyo3::intern!(py, "arguments"), &delta.arguments)?;
        let dict = PyDict::new(py);
        dict.set_item(pyo3::intern!(py, "index"), delta.index)?;
        if let Some(id) = &delta.id {
            dict.set_item(pyo3::intern!(py, "id"), id)?;
            dict.set_item(pyo3::intern!(py, "type"), pyo3::intern!(py, "function"))?;
        }
        dict.set_item(pyo3::intern!(py, "function"), function)?;
        list.append(dict)?;
    }
    Ok(list)
}

/// The reference's usage dict.
fn usage_dict<'py>(py: Python<'py>, usage: &Usage) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item(pyo3::intern!(py, "input_tokens"), usage.input_tokens)?;
    dict.set_item(pyo3::intern!(py, "output_tokens"), usage.output_tokens)?;
    dict.set_item(pyo3::intern!(py, "total_tokens"), usage.total_tokens)?;
    Ok(dict)
}

/// A whole answer, converted to `ModelResponse` when the future completes.
pub(crate) struct PyResponse {
    pub(crate) response: ModelResponse,
    /// The backend's model, when the server named none.
    pub(crate) model: String,
}

impl<'py> IntoPyObject<'py> for PyResponse {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let r = self.response;
        let tool_calls = if r.tool_calls.is_empty() { None } else { Some(tool_calls_list(py, &r.tool_calls)?) };
        let usage = r.usage.as_ref().map(|u| usage_dict(py, u)).transpose()?;
        let model = r.model.unwrap_or(self.model);
        let finish = r.finish_reason.as_ref().map(|f| PyString::new(py, f.as_str()));
        let args = (r.content, tool_calls, usage, model, finish, r.reasoning);
        types(py)?.model_response.bind(py).call1(args)
    }
}

/// A JSON value, converted to plain Python objects (dict, list, str, int, float, bool, None)
/// when the future completes.
pub(crate) struct PyJson(pub(crate) Value);

impl<'py> IntoPyObject<'py> for PyJson {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        pythonize::pythonize(py, &self.0).map_err(PyErr::from)
    }
}

/// One stream chunk and, on the finish and final ones, the assembled tool calls.
pub(crate) struct Chunk {
    pub(crate) chunk: StreamChunk,
    pub(crate) assembled: Option<Vec<ToolCall>>,
}

/// The chunks that arrived together, converted to a list of `StreamChunk` in one go.
pub(crate) struct ChunkBatch(pub(crate) Vec<Chunk>);

impl<'py> IntoPyObject<'py> for ChunkBatch {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let class = types(py)?.stream_chunk.bind(py);
        let list = PyList::empty(py);
        for Chunk { chunk: c, assembled } in self.0 {
            let deltas = if c.tool_calls.is_empty() { None } else { Some(deltas_list(py, &c.tool_calls)?) };
            let usage = c.usage.as_ref().map(|u| usage_dict(py, u)).transpose()?;
            let is_final = c.is_final || c.finish_reason.is_some();
            let finish = c.finish_reason.as_ref().map(|f| PyString::new(py, f.as_str()));
            let assembled = match assembled {
                Some(calls) if !calls.is_empty() => Some(tool_calls_list(py, &calls)?),
                _ => None,
            };
            let args = (c.content, deltas, is_final, usage, c.reasoning, finish, assembled);
            list.append(class.call1(args)?)?;
        }
        Ok(list.into_any())
    }
}
