//! The legacy text-completions API (`/v1/completions`, vLLM's default benchmark endpoint) as a
//! [`ModelBackend`], so the runner drives it exactly as it drives chat.

use async_trait::async_trait;
use mamba_backends::{
    backend::ChunkStream, Error, Message, ModelBackend, ModelProfile, ModelResponse, OpenAICompatibleBackend,
    RequestOptions,
};

/// A backend that sends the text of a conversation's messages as one `prompt` to
/// `/v1/completions` (joined by newlines; a benchmark's samples are one user message, sent
/// as is). Everything else — pool, retries, timeouts, usage — is the wrapped backend's.
#[derive(Clone, Debug)]
pub struct TextCompletions(pub OpenAICompatibleBackend);

fn prompt(messages: &[Message]) -> String {
    match messages {
        [one] => one.text().into_owned(),
        _ => messages.iter().map(|m| m.text()).collect::<Vec<_>>().join("\n"),
    }
}

#[async_trait]
impl ModelBackend for TextCompletions {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn model(&self) -> &str {
        self.0.model()
    }

    fn profile(&self) -> &ModelProfile {
        self.0.profile()
    }

    async fn complete(&self, messages: &[Message], options: &RequestOptions) -> Result<ModelResponse, Error> {
        self.0.complete_text(&prompt(messages), options).await
    }

    async fn stream(&self, messages: &[Message], options: &RequestOptions) -> Result<ChunkStream, Error> {
        self.0.stream_text(&prompt(messages), options).await
    }

    async fn health_check(&self) -> bool {
        self.0.health_check().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_from_messages() {
        assert_eq!(prompt(&[Message::user("a b")]), "a b");
        assert_eq!(prompt(&[Message::system("s"), Message::user("u")]), "s\nu");
    }
}
