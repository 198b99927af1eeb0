//! Validation of a value against the original JSON Schema (the `jsonschema` crate).

use serde_json::Value;

use crate::error::Error;

/// A compiled JSON Schema.
pub struct Validator {
    inner: jsonschema::Validator,
}

impl std::fmt::Debug for Validator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validator").finish_non_exhaustive()
    }
}

impl Validator {
    /// Compiles `schema`; a schema that is not valid JSON Schema is an
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) error.
    pub fn new(schema: &Value) -> Result<Validator, Error> {
        let inner = jsonschema::validator_for(schema)
            .map_err(|e| Error::config(format!("the schema is not valid JSON Schema: {e}")))?;
        Ok(Validator { inner })
    }

    /// `Ok` when `value` is valid, else one line per violation (instance path first).
    pub fn validate(&self, value: &Value) -> Result<(), Vec<String>> {
        let errors: Vec<String> = self.inner.iter_errors(value).map(|e| e.to_string()).collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}
