//! The Responses API (`POST /responses`): request writing, whole answers and streams, each
//! pure; the backend picks this API or chat per [`WireApi`](crate::preset::WireApi).

pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod stream;
#[cfg(test)]
mod stream_tests;
