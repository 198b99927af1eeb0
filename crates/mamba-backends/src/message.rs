//! What a conversation is made of: the [`Message`] (also at the crate root) and its parts:
//! the [`Role`], [`Content`] as text or [`ContentPart`]s (text and images, with their
//! [`ImageDetail`]), and the [`ReasoningItem`]s a Responses API answer hands back for the next
//! turn.
//!
//! Everyday messages need none of the parts by name: [`Message::system`], [`Message::user`],
//! [`Message::assistant`] and [`Message::tool`] build them from text.

pub use crate::types::{Content, ContentPart, ImageDetail, Message, ReasoningItem, Role};
