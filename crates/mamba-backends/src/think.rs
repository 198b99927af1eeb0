//! Separating a leading `<think>…</think>` block from the content (Qwen3, DeepSeek-R1 and
//! others on servers that leave the tags in the text: Groq `raw`, llama.cpp
//! `--reasoning-format none`, TGI, some Together and Fireworks models).
//!
//! One state machine serves both the non-streaming answer (fed once) and streams (fed piece by
//! piece), so the split is the same however the text was chunked.

const OPEN: &str = "<think>";
const CLOSE: &str = "</think>";

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Nothing but whitespace and a prefix of `<think>` seen so far.
    Start,
    /// Inside the think block; `held` may end with the start of `</think>`.
    Inside,
    /// Just after `</think>`: whitespace is dropped until the answer begins.
    AfterClose,
    /// Plain content.
    Passthrough,
}

/// Splits reasoning in `<think>` tags from the content.
#[derive(Debug, Clone)]
pub(crate) struct ThinkSplitter {
    state: State,
    held: String,
}

impl ThinkSplitter {
    /// A splitter; with `enabled == false` everything is content.
    pub(crate) fn new(enabled: bool) -> ThinkSplitter {
        ThinkSplitter { state: if enabled { State::Start } else { State::Passthrough }, held: String::new() }
    }

    /// Feeds a piece of content, appending to `content` and `reasoning`.
    pub(crate) fn feed(&mut self, text: &str, content: &mut String, reasoning: &mut String) {
        match self.state {
            State::Passthrough => content.push_str(text),
            State::Start => {
                self.held.push_str(text);
                let trimmed = self.held.trim_start();
                if let Some(rest) = trimmed.strip_prefix(OPEN) {
                    let rest = rest.to_owned();
                    self.held.clear();
                    self.state = State::Inside;
                    self.feed(&rest, content, reasoning);
                } else if !OPEN.starts_with(trimmed) {
                    content.push_str(&self.held);
                    self.held.clear();
                    self.state = State::Passthrough;
                }
            }
            State::Inside => {
                if self.held.is_empty() && !text.contains('<') {
                    reasoning.push_str(text);
                    return;
                }
                self.held.push_str(text);
                if let Some(at) = self.held.find(CLOSE) {
                    reasoning.push_str(&self.held[..at]);
                    let rest = self.held[at + CLOSE.len()..].to_owned();
                    self.held.clear();
                    self.state = State::AfterClose;
                    self.feed(&rest, content, reasoning);
                } else {
                    let keep = partial_suffix(&self.held, CLOSE);
                    let cut = self.held.len() - keep;
                    reasoning.push_str(&self.held[..cut]);
                    self.held.drain(..cut);
                }
            }
            State::AfterClose => {
                let trimmed = text.trim_start();
                if !trimmed.is_empty() {
                    content.push_str(trimmed);
                    self.state = State::Passthrough;
                }
            }
        }
    }

    /// Flushes what is held at the end of the answer.
    pub(crate) fn finish(&mut self, content: &mut String, reasoning: &mut String) {
        match self.state {
            State::Start => content.push_str(&self.held),
            State::Inside => reasoning.push_str(&self.held),
            State::AfterClose | State::Passthrough => {}
        }
        self.held.clear();
        self.state = State::Passthrough;
    }
}

/// Length of the longest suffix of `text` that is a proper prefix of `tag`.
fn partial_suffix(text: &str, tag: &str) -> usize {
    let max = (tag.len() - 1).min(text.len());
    (1..=max)
        .rev()
        .find(|&k| text.is_char_boundary(text.len() - k) && tag.starts_with(&text[text.len() - k..]))
        .unwrap_or(0)
}

/// Splits a whole text at once.
pub(crate) fn split_all(text: &str, enabled: bool) -> (String, String) {
    let (mut content, mut reasoning) = (String::with_capacity(text.len()), String::new());
    let mut splitter = ThinkSplitter::new(enabled);
    splitter.feed(text, &mut content, &mut reasoning);
    splitter.finish(&mut content, &mut reasoning);
    (content, reasoning)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_pieces(pieces: &[&str]) -> (String, String) {
        let (mut c, mut r) = (String::new(), String::new());
        let mut s = ThinkSplitter::new(true);
        for p in pieces {
            s.feed(p, &mut c, &mut r);
        }
        s.finish(&mut c, &mut r);
        (c, r)
    }

    #[test]
    fn whole_text() {
        assert_eq!(split_all("<think>plan</think>\n\nHello", true), ("Hello".into(), "plan".into()));
        assert_eq!(split_all("  <think>a</think>b", true), ("b".into(), "a".into()));
        assert_eq!(split_all("Hello <think>x</think>", true), ("Hello <think>x</think>".into(), String::new()));
        assert_eq!(split_all("<think>unclosed", true), (String::new(), "unclosed".into()));
        assert_eq!(split_all("<thi", true), ("<thi".into(), String::new()));
        assert_eq!(split_all("", true), (String::new(), String::new()));
        assert_eq!(split_all("<think>a</think>b", false), ("<think>a</think>b".into(), String::new()));
        assert_eq!(split_all("<think></think>", true), (String::new(), String::new()));
        assert_eq!(
            split_all("<think>a < b </thin </think> ok </think>", true),
            ("ok </think>".into(), "a < b </thin ".into())
        );
    }

    #[test]
    fn every_split_point_gives_the_same_answer() {
        let texts = [
            "<think>plan: 2 < 3, é🙂</think>\n\nHello wörld",
            "\n<think>x</think>y",
            "Hello <think>",
            "<think>never closed </thi",
            "é<think>",
            "   ",
        ];
        for text in texts {
            let whole = split_all(text, true);
            let chars: Vec<(usize, char)> = text.char_indices().collect();
            for &(i, _) in &chars {
                for &(j, _) in chars.iter().filter(|(j, _)| *j >= i) {
                    let got = split_pieces(&[&text[..i], &text[i..j], &text[j..]]);
                    assert_eq!(got, whole, "{text:?} split at {i},{j}");
                }
            }
            // One character at a time.
            let pieces: Vec<String> = text.chars().map(String::from).collect();
            let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
            assert_eq!(split_pieces(&refs), whole, "{text:?} char by char");
        }
    }
}
