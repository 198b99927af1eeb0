//! Typed structured output: a Rust type (or a JSON Schema) in, a validated value out, on every
//! server.
//!
//! [`Extract`] is an extension trait every [`ModelBackend`](crate::ModelBackend) has (one
//! server, a [`BackendPool`](crate::BackendPool), the built-in model). One extraction is a loop
//! of pure steps, each in its own file and public so tools can measure it:
//!
//! * [`translate`]: the schema in the form the target server takes (its preset's
//!   [`StructuredOutput`](crate::preset::StructuredOutput)); a schema it cannot take fails
//!   before any request, naming the keyword and the server.
//! * [`parse_lenient`]: the answer parsed with local repairs (markdown fences, prose around,
//!   trailing commas, …), each counted, none costing a second request.
//! * [`Validator`]: the value checked against the *original* schema (keywords a server drops
//!   are still enforced), then deserialised.
//! * [`complete_partial`]: a JSON prefix closed up, for [`Extract::extract_stream`].
//!
//! A failed check is sent back to the model as feedback, up to [`ExtractOptions::attempts`]
//! requests; a refusal ([`ErrorKind::Refusal`](crate::ErrorKind::Refusal)) and an answer cut by
//! the token limit ([`ErrorKind::Truncated`](crate::ErrorKind::Truncated)) end the loop at
//! once; still invalid after the last attempt is
//! [`ErrorKind::InvalidOutput`](crate::ErrorKind::InvalidOutput). [`attempts_of`] gives the
//! attempts of each of these, and of an error of a request after the first answer.
//!
//! ```no_run
//! // The derive names `schemars::…`: the crate's re-export in scope is enough (no direct
//! // dependency, no version skew).
//! use mamba_backends::schemars::{self, JsonSchema};
//! use mamba_backends::{create_ollama_backend, Extract, ExtractOptions, Message};
//! use serde::Deserialize;
//!
//! #[derive(Debug, Deserialize, JsonSchema)]
//! struct City {
//!     name: String,
//!     population: u64,
//! }
//!
//! # async fn run() -> Result<(), mamba_backends::Error> {
//! let backend = create_ollama_backend("llama3.2");
//! let out = backend
//!     .extract::<City>(&[Message::user("The largest city of France?")], &ExtractOptions::new())
//!     .await?;
//! println!("{:?} after {} attempt(s)", out.value, out.attempts.len());
//! # Ok(()) }
//! ```

mod extract;
mod partial;
mod repair;
mod translate;
mod types;
mod validate;

pub use extract::Extract;
pub use partial::complete_partial;
pub use repair::{parse_lenient, ParseError, Repair, Repaired};
pub use translate::{translate, Translated};
pub use types::{attempts_of, Attempt, ExtractMode, ExtractOptions, ExtractStream, Extracted, Partial};
pub use validate::Validator;
