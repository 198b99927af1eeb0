//! Translation of a JSON Schema into the form one server takes (its preset's
//! [`StructuredOutput`]).

use serde_json::{json, Map, Value};

use crate::error::{Error, ErrorKind};
use crate::preset::StructuredOutput;

/// A schema as one server takes it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Translated {
    /// The form it was translated for.
    pub form: StructuredOutput,
    /// The schema to send; `None` when the server takes none (`json_object` only: the schema
    /// is in the prompt).
    pub schema: Option<Value>,
    /// Keywords the server would not enforce, moved into `description` (still enforced by
    /// validation), as `path: keyword`.
    pub moved: Vec<String>,
}

impl Translated {
    /// The chat-completions `response_format` for this server.
    pub fn response_format(&self, name: &str) -> Value {
        match (&self.schema, self.form) {
            (None, _) => json!({"type": "json_object"}),
            (Some(schema), StructuredOutput::JsonObjectWithSchema) => json!({"type": "json_object", "schema": schema}),
            (Some(schema), StructuredOutput::TgiJson) => json!({"type": "json", "value": schema}),
            (Some(schema), StructuredOutput::OpenAiStrict) => {
                json!({"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": true}})
            }
            (Some(schema), _) => json!({"type": "json_schema", "json_schema": {"name": name, "schema": schema}}),
        }
    }

    /// The Responses API's `text.format` for this server.
    pub fn text_format(&self, name: &str) -> Value {
        match (&self.schema, self.form) {
            (None, _) => json!({"type": "json_object"}),
            (Some(schema), StructuredOutput::OpenAiStrict) => {
                json!({"type": "json_schema", "name": name, "schema": schema, "strict": true})
            }
            (Some(schema), _) => json!({"type": "json_schema", "name": name, "schema": schema}),
        }
    }
}

/// Keywords OpenAI's strict mode rejects; moved into `description` (validation still
/// enforces them).
const STRICT_MOVED: &[&str] = &[
    "minLength",
    "maxLength",
    "uniqueItems",
    "minProperties",
    "maxProperties",
    "contains",
    "minContains",
    "maxContains",
    "propertyNames",
    "dependentRequired",
    "default",
    "examples",
    "not",
    "if",
    "then",
    "else",
];

/// Keywords strict mode cannot express and that cannot be moved without changing what is
/// asked for.
const STRICT_REFUSED: &[&str] = &["patternProperties", "dependentSchemas", "unevaluatedProperties", "unevaluatedItems"];

/// The string formats strict mode takes; others are moved.
const STRICT_FORMATS: &[&str] = &["date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"];

/// Keywords llama.cpp's schema-to-grammar converter ignores; moved into `description`.
const LLAMA_CPP_MOVED: &[&str] = &[
    "multipleOf",
    "uniqueItems",
    "patternProperties",
    "propertyNames",
    "minProperties",
    "maxProperties",
    "contains",
    "minContains",
    "maxContains",
    "dependentRequired",
    "dependentSchemas",
    "not",
    "if",
    "then",
    "else",
];

/// Numeric bounds the converter enforces on integers only; moved on `number`s.
const NUMBER_BOUNDS: &[&str] = &["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"];

/// Translates `schema` for a server of structured-output `form` (named `target` in errors). A
/// schema the server cannot take fails with [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported)
/// naming the keyword and the server; keywords it would only ignore are moved into
/// `description` and listed in [`Translated::moved`].
///
/// ```
/// use mamba_backends::preset::StructuredOutput;
/// use mamba_backends::structured::translate;
/// use serde_json::json;
///
/// let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
/// let t = translate(&schema, StructuredOutput::OpenAiStrict, "openai").unwrap();
/// assert_eq!(
///     t.schema.unwrap(),
///     json!({"type": "object", "properties": {"a": {"type": ["string", "null"]}},
///            "required": ["a"], "additionalProperties": false})
/// );
/// ```
pub fn translate(schema: &Value, form: StructuredOutput, target: &str) -> Result<Translated, Error> {
    if !schema.is_object() && !schema.is_boolean() {
        return Err(Error::config("the schema is not a JSON Schema: it must be an object"));
    }
    if let Some(reference) = external_ref(schema) {
        return Err(unsupported(
            target,
            "$ref",
            &format!("the reference {reference:?} is not local (only #/… references are)"),
        ));
    }
    let mut moved = Vec::new();
    let schema = match form {
        StructuredOutput::JsonObjectOnly => None,
        StructuredOutput::Native | StructuredOutput::JsonSchemaOnly => Some(schema.clone()),
        StructuredOutput::OpenAiStrict => {
            if schema.get("type").and_then(Value::as_str) != Some("object") {
                return Err(unsupported(
                    target,
                    "type",
                    "strict mode needs an object at the root; wrap the value in a struct with one field, or use ExtractMode::JsonObject",
                ));
            }
            let mut out = schema.clone();
            strict(&mut out, "", target, &mut moved)?;
            Some(out)
        }
        StructuredOutput::NoTypeArrays => {
            let mut out = schema.clone();
            walk(&mut out, "", &mut |node, _| {
                no_type_arrays(node);
                Ok(())
            })?;
            Some(out)
        }
        StructuredOutput::JsonObjectWithSchema => {
            let mut out = schema.clone();
            walk(&mut out, "", &mut |node, path| {
                let number = node.get("type").and_then(Value::as_str) == Some("number");
                let mut keys: Vec<&str> = LLAMA_CPP_MOVED.to_vec();
                if number {
                    keys.extend_from_slice(NUMBER_BOUNDS);
                }
                move_keywords(node, path, &keys, &mut moved);
                Ok(())
            })?;
            Some(out)
        }
        StructuredOutput::TgiJson => {
            if let Some(cycle) = recursion(schema)? {
                return Err(unsupported(
                    target,
                    "$ref",
                    &format!("the schema is recursive ({cycle} refers back to itself), which its grammar cannot express; use ExtractMode::Prompt or a non-recursive type"),
                ));
            }
            Some(schema.clone())
        }
    };
    Ok(Translated { form, schema, moved })
}

/// The error for a schema `target` cannot take.
fn unsupported(target: &str, keyword: &str, why: &str) -> Error {
    Error::new(ErrorKind::Unsupported, format!("the {target} server cannot take the schema's `{keyword}`: {why}"))
}

/// What [`walk`] calls on each subschema: the schema object and its JSON pointer.
type Visit<'f> = dyn FnMut(&mut Map<String, Value>, &str) -> Result<(), Error> + 'f;

/// Calls `f` on every subschema of `node` (itself first), with its JSON pointer.
fn walk(node: &mut Value, path: &str, f: &mut Visit<'_>) -> Result<(), Error> {
    let Value::Object(map) = node else { return Ok(()) };
    f(map, path)?;
    for key in ["properties", "$defs", "definitions", "patternProperties", "dependentSchemas"] {
        if let Some(Value::Object(children)) = map.get_mut(key) {
            for (name, child) in children.iter_mut() {
                walk(child, &format!("{path}/{key}/{name}"), f)?;
            }
        }
    }
    for key in [
        "items",
        "additionalProperties",
        "not",
        "if",
        "then",
        "else",
        "contains",
        "propertyNames",
        "additionalItems",
        "unevaluatedProperties",
        "unevaluatedItems",
    ] {
        match map.get_mut(key) {
            Some(child @ Value::Object(_)) => walk(child, &format!("{path}/{key}"), f)?,
            Some(Value::Array(children)) => {
                for (i, child) in children.iter_mut().enumerate() {
                    walk(child, &format!("{path}/{key}/{i}"), f)?;
                }
            }
            _ => {}
        }
    }
    for key in ["anyOf", "oneOf", "allOf", "prefixItems"] {
        if let Some(Value::Array(children)) = map.get_mut(key) {
            for (i, child) in children.iter_mut().enumerate() {
                walk(child, &format!("{path}/{key}/{i}"), f)?;
            }
        }
    }
    Ok(())
}

/// Moves `keys` of `node` into its `description` as `(keyword: value; …)`.
fn move_keywords(node: &mut Map<String, Value>, path: &str, keys: &[&str], moved: &mut Vec<String>) {
    let mut notes = Vec::new();
    for key in keys {
        if let Some(value) = node.remove(*key) {
            notes.push(format!("{key}: {value}"));
            moved.push(format!("{}: {key}", if path.is_empty() { "/" } else { path }));
        }
    }
    if notes.is_empty() {
        return;
    }
    let note = format!("({})", notes.join("; "));
    let description = match node.get("description").and_then(Value::as_str) {
        Some(d) if !d.is_empty() => format!("{d} {note}"),
        _ => note,
    };
    node.insert("description".to_owned(), Value::String(description));
}

/// `type: [a, b]` as `anyOf: [{type: a}, {type: b}]`.
fn no_type_arrays(node: &mut Map<String, Value>) {
    if let Some(Value::Array(types)) = node.get("type") {
        let types = types.clone();
        node.remove("type");
        if types.len() == 1 {
            if let Some(t) = types.into_iter().next() {
                node.insert("type".to_owned(), t);
            }
            return;
        }
        let any: Vec<Value> = types.into_iter().map(|t| json!({"type": t})).collect();
        match node.remove("anyOf") {
            // Both must hold: the types and the existing alternatives.
            Some(existing) => {
                let mut all = match node.remove("allOf") {
                    Some(Value::Array(all)) => all,
                    Some(other) => vec![other],
                    None => Vec::new(),
                };
                all.push(json!({"anyOf": any}));
                all.push(json!({"anyOf": existing}));
                node.insert("allOf".to_owned(), Value::Array(all));
            }
            None => {
                node.insert("anyOf".to_owned(), Value::Array(any));
            }
        }
    }
}

/// OpenAI's strict form, in place.
fn strict(node: &mut Value, path: &str, target: &str, moved: &mut Vec<String>) -> Result<(), Error> {
    walk(node, path, &mut |map, path| {
        for key in STRICT_REFUSED {
            if map.contains_key(*key) {
                return Err(unsupported(target, key, &format!("strict mode has no `{key}` (at {})", pointer(path))));
            }
        }
        // `allOf` of one schema (what older generators write around a `$ref`) is inlined:
        // `properties` and `required` are merged, any other key must not conflict.
        if let Some(Value::Array(all)) = map.get("allOf") {
            if all.len() == 1 && !map.contains_key("$ref") {
                if let Some(Value::Object(only)) = all.first().cloned() {
                    map.remove("allOf");
                    inline_all_of(map, only, path, target)?;
                }
            } else {
                return Err(unsupported(
                    target,
                    "allOf",
                    &format!("strict mode has no `allOf` (at {})", pointer(path)),
                ));
            }
        }
        // Strict mode has no `oneOf`; `anyOf` is what it takes (validation still enforces
        // `oneOf` against the original schema).
        if let Some(one_of) = map.remove("oneOf") {
            if map.contains_key("anyOf") {
                return Err(unsupported(
                    target,
                    "oneOf",
                    &format!("strict mode has no `oneOf`, and `anyOf` is already there (at {})", pointer(path)),
                ));
            }
            map.insert("anyOf".to_owned(), one_of);
        }
        let mut keys: Vec<&str> = STRICT_MOVED.to_vec();
        if let Some(format) = map.get("format").and_then(Value::as_str) {
            if !STRICT_FORMATS.contains(&format) {
                keys.push("format");
            }
        }
        move_keywords(map, path, &keys, moved);
        let is_object = match map.get("type") {
            Some(Value::String(t)) => t == "object",
            Some(Value::Array(ts)) => ts.iter().any(|t| t == "object"),
            _ => map.contains_key("properties"),
        };
        if !is_object {
            return Ok(());
        }
        match map.get("additionalProperties") {
            None | Some(Value::Bool(_)) => {}
            Some(_) => {
                return Err(unsupported(
                    target,
                    "additionalProperties",
                    &format!(
                        "strict mode has no map-like objects (at {}); use a struct, or ExtractMode::JsonObject",
                        pointer(path)
                    ),
                ))
            }
        }
        let names: Vec<String> = match map.get("properties") {
            Some(Value::Object(props)) => props.keys().cloned().collect(),
            _ => Vec::new(),
        };
        if names.is_empty() && map.get("additionalProperties") != Some(&Value::Bool(false)) {
            return Err(unsupported(
                target,
                "additionalProperties",
                &format!(
                    "strict mode has no free-form objects (at {}); give it properties, or use ExtractMode::JsonObject",
                    pointer(path)
                ),
            ));
        }
        let required: Vec<String> = match map.get("required") {
            Some(Value::Array(r)) => r.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            _ => Vec::new(),
        };
        if let Some(Value::Object(props)) = map.get_mut("properties") {
            for (name, prop) in props.iter_mut() {
                if !required.contains(name) {
                    make_nullable(prop);
                }
            }
        }
        map.insert("required".to_owned(), Value::Array(names.into_iter().map(Value::String).collect()));
        map.insert("additionalProperties".to_owned(), Value::Bool(false));
        Ok(())
    })
}

/// Merges the only schema of an `allOf` into `map`: `properties` and `required` as unions,
/// other keys where they agree; a conflict is [`ErrorKind::Unsupported`] naming `allOf`.
fn inline_all_of(
    map: &mut Map<String, Value>,
    only: Map<String, Value>,
    path: &str,
    target: &str,
) -> Result<(), Error> {
    let conflict = |key: &str| {
        unsupported(
            target,
            "allOf",
            &format!(
                "strict mode has no `allOf`, and its `{key}` conflicts with the schema around it (at {})",
                pointer(path)
            ),
        )
    };
    for (k, v) in only {
        match (k.as_str(), map.get_mut(&k), v) {
            (_, None, v) => {
                map.insert(k, v);
            }
            ("properties", Some(Value::Object(outer)), Value::Object(inner)) => {
                for (name, schema) in inner {
                    match outer.get(&name) {
                        Some(existing) if *existing != schema => return Err(conflict(&format!("properties/{name}"))),
                        Some(_) => {}
                        None => {
                            outer.insert(name, schema);
                        }
                    }
                }
            }
            ("required", Some(Value::Array(outer)), Value::Array(inner)) => {
                for name in inner {
                    if !outer.contains(&name) {
                        outer.push(name);
                    }
                }
            }
            // Words only: the outer one stands.
            ("description" | "title", Some(_), _) => {}
            (_, Some(existing), v) => {
                if *existing != v {
                    return Err(conflict(&k));
                }
            }
        }
    }
    Ok(())
}

/// `schema` accepting `null` too (how strict mode writes an optional property).
fn make_nullable(schema: &mut Value) {
    let Value::Object(map) = schema else {
        // `true`: anything, null included.
        return;
    };
    let has_values = map.contains_key("enum") || map.contains_key("const");
    match map.get_mut("type") {
        Some(Value::String(t)) if !has_values => {
            if t != "null" {
                let t = std::mem::take(t);
                map.insert("type".to_owned(), json!([t, "null"]));
            }
            return;
        }
        Some(Value::Array(ts)) if !has_values => {
            if !ts.iter().any(|t| t == "null") {
                ts.push(json!("null"));
            }
            return;
        }
        _ => {}
    }
    // An `anyOf` that already admits null (Pydantic's `Optional[T]`, with its `title` and
    // `default` beside it) needs no second wrapper.
    if let Some(Value::Array(any)) = map.get("anyOf") {
        if any.iter().any(admits_null) {
            return;
        }
    }
    let only_any_of =
        map.contains_key("anyOf") && (map.len() == 1 || (map.len() == 2 && map.contains_key("description")));
    if only_any_of {
        if let Some(Value::Array(any)) = map.get_mut("anyOf") {
            if !any.iter().any(|s| s.get("type") == Some(&json!("null"))) {
                any.push(json!({"type": "null"}));
            }
        }
        return;
    }
    let description = map.remove("description");
    let inner = Value::Object(std::mem::take(map));
    map.insert("anyOf".to_owned(), json!([inner, {"type": "null"}]));
    if let Some(d) = description {
        map.insert("description".to_owned(), d);
    }
}

/// Whether a branch of an `anyOf` takes `null` by its type.
fn admits_null(schema: &Value) -> bool {
    match schema.get("type") {
        Some(Value::String(t)) => t == "null",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "null"),
        _ => schema.get("const") == Some(&Value::Null),
    }
}

/// A JSON pointer for messages (`/` for the root).
fn pointer(path: &str) -> &str {
    if path.is_empty() {
        "/"
    } else {
        path
    }
}

/// The first `$ref` that does not point into this document.
fn external_ref(schema: &Value) -> Option<String> {
    match schema {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                if !r.starts_with('#') {
                    return Some(r.clone());
                }
            }
            map.values().find_map(external_ref)
        }
        Value::Array(items) => items.iter().find_map(external_ref),
        _ => None,
    }
}

/// How long a chain of `$ref`s [`recursion`] follows before refusing the schema.
const MAX_REF_DEPTH: usize = 256;

/// A definition that refers back to itself through `$ref`s (its pointer), if any; a chain of
/// `$ref`s deeper than [`MAX_REF_DEPTH`] is [`ErrorKind::Unsupported`].
fn recursion(schema: &Value) -> Result<Option<String>, Error> {
    // The local references each definition (and the root, "#") makes.
    fn refs(node: &Value, out: &mut Vec<String>) {
        match node {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => out.push(r.clone()),
                        // Definitions are nodes of their own, not part of the one holding them.
                        ("$defs" | "definitions", _) => {}
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    fn visit(
        schema: &Value,
        at: &str,
        stack: &mut Vec<String>,
        done: &mut std::collections::HashSet<String>,
    ) -> Result<Option<String>, Error> {
        if stack.iter().any(|s| s == at) {
            return Ok(Some(at.to_owned()));
        }
        if done.contains(at) {
            return Ok(None);
        }
        if stack.len() >= MAX_REF_DEPTH {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("the schema nests too deep: a chain of more than {MAX_REF_DEPTH} $refs; flatten the type"),
            ));
        }
        let node = if at == "#" {
            schema
        } else {
            match schema.pointer(at.trim_start_matches('#')) {
                Some(node) => node,
                None => return Ok(None),
            }
        };
        let mut out = Vec::new();
        refs(node, &mut out);
        stack.push(at.to_owned());
        for r in out {
            if let Some(cycle) = visit(schema, &r, stack, done)? {
                return Ok(Some(cycle));
            }
        }
        stack.pop();
        done.insert(at.to_owned());
        Ok(None)
    }
    visit(schema, "#", &mut Vec::new(), &mut std::collections::HashSet::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(schema: Value, form: StructuredOutput) -> Translated {
        translate(&schema, form, "test").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn native_forms_send_the_schema_as_given() {
        let schema = json!({"type": "object", "properties": {"a": {"type": ["string", "null"], "minLength": 2}}});
        for form in [StructuredOutput::Native, StructuredOutput::JsonSchemaOnly] {
            let out = t(schema.clone(), form);
            assert_eq!(out.schema.as_ref(), Some(&schema));
            assert!(out.moved.is_empty());
            assert_eq!(
                out.response_format("x"),
                json!({"type": "json_schema", "json_schema": {"name": "x", "schema": schema}})
            );
        }
        let tgi = t(schema.clone(), StructuredOutput::TgiJson);
        assert_eq!(tgi.response_format("x"), json!({"type": "json", "value": schema}));
    }

    #[test]
    fn json_object_only_sends_no_schema() {
        let out = t(json!({"type": "object"}), StructuredOutput::JsonObjectOnly);
        assert_eq!(out.schema, None);
        assert_eq!(out.response_format("x"), json!({"type": "json_object"}));
        assert_eq!(out.text_format("x"), json!({"type": "json_object"}));
    }

    #[test]
    fn strict_makes_every_property_required_and_closes_objects() {
        let schema = json!({
            "type": "object",
            "properties": {
                "name": {"type": "string", "minLength": 1, "description": "Who"},
                "age": {"type": "integer", "minimum": 0},
                "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": true},
                "kind": {"enum": ["a", "b"]},
                "home": {"$ref": "#/$defs/Place"}
            },
            "required": ["name"],
            "$defs": {"Place": {"type": "object", "properties": {"city": {"type": "string", "format": "hostname-ish"}}, "required": ["city"]}}
        });
        let out = t(schema, StructuredOutput::OpenAiStrict);
        let s = out.schema.clone().unwrap();
        assert_eq!(s["required"], json!(["name", "age", "tags", "kind", "home"]));
        assert_eq!(s["additionalProperties"], json!(false));
        assert_eq!(s["properties"]["name"], json!({"type": "string", "description": "Who (minLength: 1)"}));
        assert_eq!(s["properties"]["age"], json!({"type": ["integer", "null"], "minimum": 0}));
        assert_eq!(s["properties"]["tags"]["type"], json!(["array", "null"]));
        assert_eq!(s["properties"]["tags"]["description"], json!("(uniqueItems: true)"));
        assert_eq!(s["properties"]["kind"], json!({"anyOf": [{"enum": ["a", "b"]}, {"type": "null"}]}));
        assert_eq!(s["properties"]["home"], json!({"anyOf": [{"$ref": "#/$defs/Place"}, {"type": "null"}]}));
        assert_eq!(s["$defs"]["Place"]["additionalProperties"], json!(false));
        assert_eq!(s["$defs"]["Place"]["properties"]["city"]["description"], json!("(format: \"hostname-ish\")"));
        assert_eq!(
            out.moved,
            ["/properties/name: minLength", "/properties/tags: uniqueItems", "/$defs/Place/properties/city: format"]
        );
        assert_eq!(out.response_format("p")["json_schema"]["strict"], json!(true));
        assert_eq!(out.text_format("p")["strict"], json!(true));
    }

    #[test]
    fn strict_refuses_what_it_cannot_express() {
        let cases = [
            (json!({"type": "object", "additionalProperties": {"type": "integer"}}), "additionalProperties"),
            (json!({"type": "object"}), "additionalProperties"),
            (json!({"type": "array", "items": {"type": "string"}}), "type"),
            (
                json!({"type": "object", "properties": {"m": {"type": "object", "patternProperties": {"^x": {}}}}}),
                "patternProperties",
            ),
            (
                json!({"type": "object", "properties": {"a": {"allOf": [{"type": "string"}, {"minLength": 1}]}}}),
                "allOf",
            ),
        ];
        for (schema, keyword) in cases {
            let e = translate(&schema, StructuredOutput::OpenAiStrict, "openai").unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Unsupported, "{schema}");
            let text = e.to_string();
            assert!(text.contains(&format!("`{keyword}`")) && text.contains("openai"), "{text}");
        }
    }

    #[test]
    fn ollama_gets_no_type_arrays() {
        let schema = json!({"type": "object", "properties": {
            "a": {"type": ["string", "null"], "maxLength": 3},
            "b": {"type": ["integer"]},
            "c": {"type": "array", "items": {"type": ["number", "null"]}}
        }});
        let s = t(schema, StructuredOutput::NoTypeArrays).schema.unwrap();
        assert_eq!(s["properties"]["a"], json!({"maxLength": 3, "anyOf": [{"type": "string"}, {"type": "null"}]}));
        assert_eq!(s["properties"]["b"], json!({"type": "integer"}));
        assert_eq!(s["properties"]["c"]["items"], json!({"anyOf": [{"type": "number"}, {"type": "null"}]}));
        assert!(!s.to_string().contains("[\"number\""));
    }

    #[test]
    fn llama_cpp_gets_ignored_keywords_in_descriptions() {
        let schema = json!({"type": "object", "properties": {
            "price": {"type": "number", "minimum": 0, "multipleOf": 0.5},
            "count": {"type": "integer", "minimum": 1, "maximum": 9},
            "ids": {"type": "array", "uniqueItems": true, "items": {"type": "integer"}}
        }});
        let out = t(schema, StructuredOutput::JsonObjectWithSchema);
        let s = out.schema.clone().unwrap();
        assert_eq!(s["properties"]["price"], json!({"type": "number", "description": "(multipleOf: 0.5; minimum: 0)"}));
        assert_eq!(s["properties"]["count"], json!({"type": "integer", "minimum": 1, "maximum": 9}));
        assert_eq!(s["properties"]["ids"]["description"], json!("(uniqueItems: true)"));
        assert_eq!(out.response_format("x"), json!({"type": "json_object", "schema": s}));
        assert_eq!(out.moved.len(), 3);
    }

    #[test]
    fn recursion_is_refused_for_tgi_only() {
        let schema = json!({
            "$ref": "#/$defs/Node",
            "$defs": {"Node": {"type": "object", "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}}}
        });
        let e = translate(&schema, StructuredOutput::TgiJson, "tgi").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(
            e.to_string().contains("recursive")
                && e.to_string().contains("tgi")
                && e.to_string().contains("#/$defs/Node"),
            "{e}"
        );
        assert!(translate(&schema, StructuredOutput::Native, "vllm").is_ok());
        assert!(translate(&schema, StructuredOutput::JsonObjectWithSchema, "llama-cpp").is_ok());
        // Shared, non-recursive references are fine.
        let shared = json!({"type": "object", "properties": {"a": {"$ref": "#/$defs/P"}, "b": {"$ref": "#/$defs/P"}}, "$defs": {"P": {"type": "string"}}});
        assert!(translate(&shared, StructuredOutput::TgiJson, "tgi").is_ok());
    }

    #[test]
    fn non_schemas_and_remote_refs_fail() {
        let e = translate(&json!(42), StructuredOutput::Native, "generic").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        let e =
            translate(&json!({"$ref": "https://example.com/s.json"}), StructuredOutput::Native, "generic").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(e.to_string().contains("$ref"), "{e}");
    }

    #[test]
    fn strict_leaves_an_optional_any_of_that_admits_null() {
        // Pydantic's `Optional[int] = None`.
        let schema = json!({"type": "object", "properties": {
            "n": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": null, "title": "N"}
        }});
        let s = t(schema, StructuredOutput::OpenAiStrict).schema.unwrap();
        let n = &s["properties"]["n"];
        assert_eq!(n["anyOf"], json!([{"type": "integer"}, {"type": "null"}]), "{n}");
        assert!(!n["anyOf"][0].as_object().unwrap().contains_key("anyOf"), "{n}");
    }

    #[test]
    fn strict_writes_one_of_as_any_of() {
        let schema = json!({"type": "object", "properties": {
            "v": {"oneOf": [{"type": "integer"}, {"type": "string"}]}
        }, "required": ["v"]});
        let s = t(schema, StructuredOutput::OpenAiStrict).schema.unwrap();
        assert!(!s.to_string().contains("oneOf"), "{s}");
        assert_eq!(s["properties"]["v"]["anyOf"], json!([{"type": "integer"}, {"type": "string"}]));
    }

    #[test]
    fn strict_inlines_one_all_of_with_its_properties() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"],
            "allOf": [{"properties": {"b": {"type": "integer"}}, "required": ["b"]}]});
        let s = t(schema, StructuredOutput::OpenAiStrict).schema.unwrap();
        assert_eq!(s["properties"]["a"], json!({"type": "string"}));
        assert_eq!(s["properties"]["b"], json!({"type": "integer"}));
        assert_eq!(s["required"], json!(["a", "b"]));
        let clash = json!({"type": "object", "properties": {"a": {"type": "string"}},
            "allOf": [{"properties": {"a": {"type": "integer"}}}]});
        let e = translate(&clash, StructuredOutput::OpenAiStrict, "openai").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(e.to_string().contains("`allOf`"), "{e}");
    }

    #[test]
    fn ollama_keeps_an_existing_any_of() {
        let schema = json!({"type": ["object", "null"], "anyOf": [{"required": ["a"]}, {"required": ["b"]}]});
        let s = t(schema, StructuredOutput::NoTypeArrays).schema.unwrap();
        assert_eq!(
            s,
            json!({"allOf": [
                {"anyOf": [{"type": "object"}, {"type": "null"}]},
                {"anyOf": [{"required": ["a"]}, {"required": ["b"]}]}
            ]})
        );
    }

    #[test]
    fn a_long_ref_chain_is_refused_without_overflowing() {
        let n = 30_000;
        let mut defs = Map::new();
        for i in 0..n {
            let next =
                if i + 1 < n { json!({"$ref": format!("#/$defs/D{}", i + 1)}) } else { json!({"type": "string"}) };
            defs.insert(format!("D{i}"), next);
        }
        let schema = json!({"$ref": "#/$defs/D0", "$defs": defs});
        let e = translate(&schema, StructuredOutput::TgiJson, "tgi").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(e.to_string().contains("nests too deep"), "{e}");
    }
}
