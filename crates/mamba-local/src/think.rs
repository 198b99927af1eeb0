//! Thinking models (Qwen3, DeepSeek-R1 distills, …) write their reasoning between `<think>` and
//! `</think>` before the answer. This splits the generated text, piece by piece as it streams,
//! into reasoning and content, so that clients get the reasoning in its own field as from
//! servers that parse it (llama.cpp's `reasoning_format`, vLLM's reasoning parsers).
//!
//! Whether a model thinks is read from its chat template (it mentions `<think>`), never from
//! its family's name; a template that opens the block in the prompt itself (the generation
//! prompt ends with `<think>`) starts the answer inside it.

const OPEN: &str = "<think>";
const CLOSE: &str = "</think>";

/// Where the splitter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before any text: a leading `<think>` (after blanks) opens the reasoning.
    Start,
    Reasoning,
    /// Just after `</think>`: the blank lines models put there belong to neither part.
    AfterBlock,
    Content,
}

/// Streaming splitter of reasoning and content.
#[derive(Debug, Clone)]
pub(crate) struct ThinkSplitter {
    state: State,
    /// Text held back because it may be the start of a tag.
    pending: String,
}

/// Reasoning and content from one piece of text.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Split {
    pub(crate) reasoning: String,
    pub(crate) content: String,
}

/// Whether a chat template writes thinking blocks.
pub(crate) fn template_thinks(template_source: &str) -> bool {
    template_source.contains(OPEN) && template_source.contains(CLOSE)
}

/// The length of the longest suffix of `text` that is a proper prefix of `tag`: text a
/// streaming splitter holds back, since it may become the tag.
pub(crate) fn partial_tag(text: &str, tag: &str) -> usize {
    (1..tag.len().min(text.len() + 1))
        .rev()
        .find(|&n| text.is_char_boundary(text.len() - n) && tag.starts_with(&text[text.len() - n..]))
        .unwrap_or(0)
}

impl ThinkSplitter {
    /// A splitter for an answer whose prompt ends as `prompt` does.
    pub(crate) fn new(prompt: &str) -> ThinkSplitter {
        let opened = prompt.trim_end().ends_with(OPEN);
        ThinkSplitter { state: if opened { State::Reasoning } else { State::Start }, pending: String::new() }
    }

    /// Splits the next piece of generated text.
    pub(crate) fn push(&mut self, text: &str) -> Split {
        let mut out = Split::default();
        self.pending.push_str(text);
        loop {
            match self.state {
                State::Start => {
                    let trimmed = self.pending.trim_start();
                    if trimmed.starts_with(OPEN) {
                        let start = self.pending.len() - trimmed.len() + OPEN.len();
                        self.pending.drain(..start);
                        self.state = State::Reasoning;
                    } else if trimmed.is_empty() || OPEN.starts_with(trimmed) {
                        return out; // not decided yet
                    } else {
                        self.state = State::Content;
                    }
                }
                State::Reasoning => {
                    if let Some(i) = self.pending.find(CLOSE) {
                        out.reasoning.push_str(&self.pending[..i]);
                        self.pending.drain(..i + CLOSE.len());
                        self.state = State::AfterBlock;
                        continue;
                    }
                    let keep = partial_tag(&self.pending, CLOSE);
                    let upto = self.pending.len() - keep;
                    out.reasoning.push_str(&self.pending[..upto]);
                    self.pending.drain(..upto);
                    return out;
                }
                State::AfterBlock => {
                    let blanks = self.pending.len() - self.pending.trim_start().len();
                    self.pending.drain(..blanks);
                    if self.pending.is_empty() {
                        return out;
                    }
                    self.state = State::Content;
                }
                State::Content => {
                    out.content.push_str(&self.pending);
                    self.pending.clear();
                    return out;
                }
            }
        }
    }

    /// The text still held back, at the end of the answer.
    pub(crate) fn finish(&mut self) -> Split {
        let text = std::mem::take(&mut self.pending);
        match self.state {
            State::Reasoning => Split { reasoning: text, content: String::new() },
            State::Start | State::AfterBlock | State::Content => Split { reasoning: String::new(), content: text },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(prompt: &str, pieces: &[&str]) -> (String, String) {
        let mut s = ThinkSplitter::new(prompt);
        let (mut reasoning, mut content) = (String::new(), String::new());
        for p in pieces {
            let out = s.push(p);
            reasoning.push_str(&out.reasoning);
            content.push_str(&out.content);
        }
        let out = s.finish();
        (reasoning + &out.reasoning, content + &out.content)
    }

    /// Every way of cutting the text into two pieces gives the same split.
    fn every_cut(prompt: &str, text: &str) -> (String, String) {
        crate::test_support::same_at_every_cut(text, |pieces| run(prompt, pieces))
    }

    #[test]
    fn reasoning_and_content_are_split_at_any_cut() {
        assert_eq!(
            every_cut("", "<think>\nParis is the capital.\n</think>\n\nParis."),
            ("\nParis is the capital.\n".to_owned(), "Paris.".to_owned())
        );
        assert_eq!(every_cut("", "  <think>a</think>b"), ("a".to_owned(), "b".to_owned()));
        // A block opened by the prompt.
        assert_eq!(
            every_cut("<|im_start|>assistant\n<think>\n", "hmm é</think>Yes"),
            ("hmm é".to_owned(), "Yes".to_owned())
        );
        // Thinking switched off: an empty block, then the answer.
        assert_eq!(every_cut("", "<think>\n\n</think>\n\nHi"), ("\n\n".to_owned(), "Hi".to_owned()));
    }

    #[test]
    fn text_without_a_block_is_content_and_a_cut_block_is_reasoning() {
        assert_eq!(every_cut("", "Hello <think> there"), (String::new(), "Hello <think> there".to_owned()));
        assert_eq!(every_cut("", "<thin"), (String::new(), "<thin".to_owned()));
        assert_eq!(every_cut("", "<think>never closed </thi"), ("never closed </thi".to_owned(), String::new()));
        assert!(template_thinks("{% if x %}<think>\n\n</think>{% endif %}"));
        assert!(!template_thinks("<|im_start|>"));
    }
}
