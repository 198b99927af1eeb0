//! The DataFusion side: `llm`, `llm_json` and `embed` as async scalar functions. Arguments are
//! checked at planning time when they are literals; each batch's rows become distinct jobs
//! (NULL rows and repeats are not sent), and the answers go back in row order.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, Float32Builder, ListBuilder, StringArray, StringBuilder, StructArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields};
use datafusion::common::types::logical_string;
use datafusion::common::{exec_err, DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::async_udf::AsyncScalarUDFImpl;
use datafusion::logical_expr::{
    Coercion, ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature,
    TypeSignatureClass, Volatility,
};
use mamba_backends::structured::Validator;
use serde_json::Value;

use crate::cache;
use crate::options::{self, CallOptions, Kind, OnError};
use crate::run::{Answer, Engine, Job, Outcome};
use crate::stats::Counters;

/// One of the three functions, bound to a registration's engine.
#[derive(Debug)]
pub(crate) struct LlmUdf {
    kind: Kind,
    engine: Arc<Engine>,
    signature: Signature,
}

impl PartialEq for LlmUdf {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && Arc::ptr_eq(&self.engine, &other.engine)
    }
}

impl Eq for LlmUdf {}

impl Hash for LlmUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.kind.hash(state);
        (Arc::as_ptr(&self.engine) as *const () as usize).hash(state);
    }
}

impl LlmUdf {
    pub(crate) fn new(kind: Kind, engine: Arc<Engine>) -> LlmUdf {
        // llm(prompt[, options]); llm_json(prompt, schema[, options]); embed(text[, options]).
        // Each argument is any string type, taken as it is: a literal options string stays a
        // literal (not a cast to the column's string type), so it is checked, and picks the
        // return type, at planning time. Answers differ from call to call: volatile, never
        // folded or reused by the planner.
        let counts: &[usize] = match kind {
            Kind::Llm | Kind::Embed => &[1, 2],
            Kind::Json => &[2, 3],
        };
        let string = || Coercion::new_exact(TypeSignatureClass::Native(logical_string()));
        let signature = Signature::one_of(
            counts.iter().map(|&n| TypeSignature::Coercible((0..n).map(|_| string()).collect())).collect(),
            Volatility::Volatile,
        );
        LlmUdf { kind, engine, signature }
    }

    /// Which argument holds the options.
    fn options_index(&self) -> usize {
        match self.kind {
            Kind::Llm | Kind::Embed => 1,
            Kind::Json => 2,
        }
    }

    fn value_type(&self) -> DataType {
        match self.kind {
            Kind::Llm | Kind::Json => DataType::Utf8,
            Kind::Embed => DataType::List(Arc::new(Field::new_list_field(DataType::Float32, true))),
        }
    }

    /// The result's type: the value, or `{value, error}` with `on_error: "null"`.
    fn data_type(&self, on_error: OnError) -> DataType {
        match on_error {
            OnError::Fail => self.value_type(),
            OnError::Null => DataType::Struct(self.struct_fields()),
        }
    }

    /// `{value, error}` with `on_error: "null"`.
    fn struct_fields(&self) -> Fields {
        Fields::from(vec![Field::new("value", self.value_type(), true), Field::new("error", DataType::Utf8, true)])
    }

    fn plan_error(&self, message: String) -> DataFusionError {
        DataFusionError::Plan(message)
    }
}

/// The text of a string literal; `None` for NULL.
fn literal_text(value: &ScalarValue) -> Option<&str> {
    match value {
        ScalarValue::Utf8(s) | ScalarValue::LargeUtf8(s) | ScalarValue::Utf8View(s) => s.as_deref(),
        _ => None,
    }
}

/// A string argument, as an array or one value for every row.
enum Strings {
    Array(StringArray),
    Scalar(Option<String>),
}

impl Strings {
    fn of(value: &ColumnarValue) -> Result<Strings> {
        match value {
            ColumnarValue::Scalar(s) => Ok(Strings::Scalar(literal_text(s).map(str::to_owned))),
            ColumnarValue::Array(a) => {
                let a = if a.data_type() == &DataType::Utf8 { Arc::clone(a) } else { cast(a, &DataType::Utf8)? };
                match a.as_any().downcast_ref::<StringArray>() {
                    Some(s) => Ok(Strings::Array(s.clone())),
                    None => exec_err!("expected a string argument, got {}", a.data_type()),
                }
            }
        }
    }

    fn get(&self, row: usize) -> Option<&str> {
        match self {
            Strings::Scalar(s) => s.as_deref(),
            Strings::Array(a) => a.is_valid(row).then(|| a.value(row)),
        }
    }
}

fn parse_schema(function: &str, text: &str) -> std::result::Result<Value, String> {
    let schema: Value = serde_json::from_str(text)
        .map_err(|e| format!("{function}(): the schema is not JSON ({e}): {}", options::excerpt(text)))?;
    if !schema.is_object() {
        return Err(format!("{function}(): the schema must be a JSON Schema object, like '{{\"type\": \"object\"}}'"));
    }
    Validator::new(&schema).map_err(|e| format!("{function}(): the schema is not a valid JSON Schema: {e}"))?;
    Ok(schema)
}

impl ScalarUDFImpl for LlmUdf {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.data_type(self.engine.on_error))
    }

    /// Literal options and schemas are checked here, so a bad one fails the query before any
    /// request; the options' `on_error` picks the return type.
    fn return_field_from_args(&self, args: ReturnFieldArgs<'_>) -> Result<FieldRef> {
        let mut on_error = self.engine.on_error;
        if let Some(Some(text)) = args.scalar_arguments.get(self.options_index()).map(|v| v.and_then(literal_text)) {
            let parsed = options::parse(self.kind, text).map_err(|e| self.plan_error(e))?;
            on_error = parsed.on_error.unwrap_or(on_error);
        }
        if self.kind == Kind::Json {
            if let Some(Some(text)) = args.scalar_arguments.get(1).map(|v| v.and_then(literal_text)) {
                parse_schema(self.name(), text).map_err(|e| self.plan_error(e))?;
            }
        }
        Ok(Arc::new(Field::new(self.name(), self.data_type(on_error), true)))
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        exec_err!("{}() runs only asynchronously", self.name())
    }
}

#[async_trait]
impl AsyncScalarUDFImpl for LlmUdf {
    async fn invoke_async_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let f = self.name();
        let rows = args.number_rows;
        let null_mode = matches!(args.return_field.data_type(), DataType::Struct(_));
        let on_error = if null_mode { OnError::Null } else { OnError::Fail };
        let inputs = Strings::of(&args.args[0])?;
        let schemas = match self.kind {
            Kind::Json => Some(Strings::of(&args.args[1])?),
            _ => None,
        };
        let opts = args.args.get(self.options_index()).map(Strings::of).transpose()?;

        // Each distinct options string and schema is parsed once per batch.
        let default = Arc::new(options::parse(self.kind, "{}").map_err(DataFusionError::Execution)?);
        let mut parsed_opts: HashMap<&str, Arc<CallOptions>> = HashMap::new();
        let mut parsed_schemas: HashMap<&str, Arc<Value>> = HashMap::new();
        let mut by_key: HashMap<cache::Key, usize> = HashMap::new();
        let mut jobs: Vec<Job> = Vec::new();
        let mut row_job: Vec<Option<usize>> = Vec::with_capacity(rows);
        let mut nulls = 0u64;
        for row in 0..rows {
            let schema_text = schemas.as_ref().and_then(|s| s.get(row));
            let schema = match schema_text {
                Some(text) => Some(parsed(&mut parsed_schemas, text, |t| parse_schema(f, t))?),
                None => None,
            };
            let (Some(input), true) = (inputs.get(row), schemas.is_none() || schema.is_some()) else {
                nulls += 1;
                row_job.push(None);
                continue;
            };
            let call = match opts.as_ref().and_then(|o| o.get(row)) {
                None => Arc::clone(&default),
                Some(text) => parsed(&mut parsed_opts, text, |t| {
                    let o = options::parse(self.kind, t)?;
                    if o.on_error == Some(OnError::Null) && !null_mode {
                        return Err(format!(
                            "{f}(): on_error \"null\" changes the result's type, so it must be in a literal options string, not a column"
                        ));
                    }
                    Ok(o)
                })?,
            };
            let schema_text = schema_text.unwrap_or("");
            let key = cache::key(f, self.engine.model_of(&call), &call.canonical, schema_text, input);
            let job = *by_key.entry(key).or_insert_with(|| {
                jobs.push(Job { input: input.to_owned(), opts: call, schema, key });
                jobs.len() - 1
            });
            row_job.push(Some(job));
        }
        let counters = &self.engine.counters;
        Counters::add(&counters.null_rows, nulls);
        Counters::add(&counters.merged, rows as u64 - nulls - jobs.len() as u64);

        let outcomes = self.engine.run(self.kind, &jobs, on_error).await.map_err(DataFusionError::Execution)?;
        Counters::add(&counters.rows, rows as u64);
        let array = build(self.kind, &row_job, &outcomes, null_mode.then(|| self.struct_fields()))?;
        Ok(ColumnarValue::Array(array))
    }
}

/// `text` parsed by `parse`, once per batch: later rows with the same text share the value.
fn parsed<'a, T>(
    seen: &mut HashMap<&'a str, Arc<T>>,
    text: &'a str,
    parse: impl FnOnce(&str) -> std::result::Result<T, String>,
) -> Result<Arc<T>> {
    if let Some(v) = seen.get(text) {
        return Ok(Arc::clone(v));
    }
    let v = Arc::new(parse(text).map_err(DataFusionError::Execution)?);
    seen.insert(text, Arc::clone(&v));
    Ok(v)
}

/// The result column: each row's answer (NULL for NULL input), or `{value, error}` structs.
fn build(kind: Kind, rows: &[Option<usize>], outcomes: &[Outcome], fields: Option<Fields>) -> Result<ArrayRef> {
    let answer = |row: &Option<usize>| row.and_then(|j| outcomes[j].as_ref().ok());
    let values: ArrayRef = match kind {
        Kind::Llm | Kind::Json => {
            let mut b = StringBuilder::with_capacity(rows.len(), 64 * rows.len());
            for row in rows {
                match answer(row) {
                    Some(Answer::Text(t)) => b.append_value(t),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        Kind::Embed => {
            let mut b = ListBuilder::new(Float32Builder::new());
            for row in rows {
                match answer(row) {
                    Some(Answer::Vector(v)) => {
                        b.values().append_slice(v);
                        b.append(true);
                    }
                    _ => b.append(false),
                }
            }
            Arc::new(b.finish())
        }
    };
    let Some(fields) = fields else { return Ok(values) };
    let errors: StringArray = rows.iter().map(|row| row.and_then(|j| outcomes[j].as_ref().err())).collect();
    let s = StructArray::try_new(fields, vec![values, Arc::new(errors)], None)?;
    Ok(Arc::new(s))
}
