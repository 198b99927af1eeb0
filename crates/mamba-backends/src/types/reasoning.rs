//! [`ReasoningItem`]: a reasoning step of the Responses API, kept so the next turn can send it
//! back.

use serde::{Deserialize, Serialize};

/// One reasoning item of a Responses API answer: its id, its summary, and (when asked for
/// with [`RequestOptions::encrypted_reasoning`](crate::RequestOptions::encrypted_reasoning))
/// the encrypted reasoning a stateless request needs to carry it into the next turn.
///
/// [`ModelResponse::to_message`](crate::ModelResponse::to_message) keeps them on the
/// assistant message ([`Message::reasoning_items`](crate::Message::reasoning_items)); a backend
/// speaking the Responses API sends them back before that message's tool calls, so a tool
/// loop keeps the model's reasoning. The chat-completions wire ignores them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ReasoningItem {
    /// The item's id (`rs_…`).
    pub id: String,
    /// The summary texts, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub summary: Vec<String>,
    /// The reasoning itself, encrypted by the server (`encrypted_content`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted_content: Option<String>,
}

impl ReasoningItem {
    /// An item with this id and nothing else.
    pub fn new(id: impl Into<String>) -> ReasoningItem {
        ReasoningItem { id: id.into(), ..ReasoningItem::default() }
    }

    /// The same item with a summary text added.
    #[must_use]
    pub fn with_summary(mut self, text: impl Into<String>) -> ReasoningItem {
        self.summary.push(text.into());
        self
    }

    /// The same item with its encrypted content.
    #[must_use]
    pub fn with_encrypted_content(mut self, content: impl Into<String>) -> ReasoningItem {
        self.encrypted_content = Some(content.into());
        self
    }
}
