//! Pre-tokenization: cutting text into the words that BPE then encodes one by one.
//!
//! llama.cpp picks the split rules from the GGUF key `tokenizer.ggml.pre`. Each rule set is data
//! here ([`rules_for`]): a list of stages, each stage cutting every piece of the previous one.
//! The GPT-2 stage follows llama.cpp's hand-written matcher of the regex
//! `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`, which matters at
//! the end of a piece (the look-ahead sees nothing past it).

use unicode_general_category::{get_general_category, GeneralCategory as G};

/// One splitting stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// `\p{N}`: every number character is a piece of its own.
    EachNumber,
    /// The GPT-2 word regex.
    Gpt2,
}

/// The stages for a `tokenizer.ggml.pre` value, or `None` when it is not known here.
pub(crate) fn rules_for(pre: &str) -> Option<&'static [Stage]> {
    const TABLE: &[(&str, &[Stage])] = &[
        ("smollm", &[Stage::EachNumber, Stage::Gpt2]),
        ("gpt2", &[Stage::Gpt2]),
        ("gpt-2", &[Stage::Gpt2]),
        ("default", &[Stage::Gpt2]),
    ];
    TABLE.iter().find(|(name, _)| *name == pre).map(|(_, stages)| *stages)
}

fn is_letter(c: char) -> bool {
    matches!(
        get_general_category(c),
        G::UppercaseLetter | G::LowercaseLetter | G::TitlecaseLetter | G::ModifierLetter | G::OtherLetter
    )
}

fn is_number(c: char) -> bool {
    matches!(get_general_category(c), G::DecimalNumber | G::LetterNumber | G::OtherNumber)
}

/// Splits `text` into words (slices of `text`, in order, covering all of it).
pub(crate) fn split<'t>(text: &'t str, stages: &[Stage]) -> Vec<&'t str> {
    let mut pieces = vec![text];
    for stage in stages {
        let mut next = Vec::with_capacity(pieces.len() * 2);
        for piece in pieces {
            match stage {
                Stage::EachNumber => split_numbers(piece, &mut next),
                Stage::Gpt2 => split_gpt2(piece, &mut next),
            }
        }
        pieces = next;
    }
    pieces.retain(|p| !p.is_empty());
    pieces
}

fn split_numbers<'t>(text: &'t str, out: &mut Vec<&'t str>) {
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if is_number(c) {
            if start < i {
                out.push(&text[start..i]);
            }
            out.push(&text[i..i + c.len_utf8()]);
            start = i + c.len_utf8();
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
}

fn split_gpt2<'t>(text: &'t str, out: &mut Vec<&'t str>) {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let n = chars.len();
    let at = |i: usize| chars.get(i).map(|&(_, c)| c);
    let byte_at = |i: usize| chars.get(i).map_or(text.len(), |&(b, _)| b);
    let letter = |i: usize| at(i).is_some_and(is_letter);
    let number = |i: usize| at(i).is_some_and(is_number);
    let space = |i: usize| at(i).is_some_and(char::is_whitespace);
    let other = |i: usize| at(i).is_some_and(|c| !(c.is_whitespace() || is_letter(c) || is_number(c)));

    let mut pos = 0;
    while pos < n {
        let c = chars[pos].1;
        let mut end = None;
        if c == '\'' {
            match (at(pos + 1), at(pos + 2)) {
                (Some('s' | 't' | 'm' | 'd'), _) => end = Some(pos + 2),
                (Some('r'), Some('e')) | (Some('v'), Some('e')) | (Some('l'), Some('l')) => end = Some(pos + 3),
                _ => {}
            }
        }
        if end.is_none() {
            let first = if c == ' ' { pos + 1 } else { pos };
            let run = |test: &dyn Fn(usize) -> bool| {
                let mut p = first;
                while test(p) {
                    p += 1;
                }
                p
            };
            end = if letter(first) {
                Some(run(&letter))
            } else if number(first) {
                Some(run(&number))
            } else if other(first) {
                Some(run(&other))
            } else {
                let mut spaces = 0;
                while space(pos + spaces) {
                    spaces += 1;
                }
                if spaces > 1 && pos + spaces < n {
                    Some(pos + spaces - 1)
                } else if spaces > 0 {
                    Some(pos + spaces)
                } else {
                    Some(pos + 1)
                }
            };
        }
        let stop = end.unwrap_or(pos + 1).max(pos + 1);
        out.push(&text[byte_at(pos)..byte_at(stop)]);
        pos = stop;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smollm(text: &str) -> Vec<&str> {
        split(text, rules_for("smollm").unwrap_or(&[]))
    }

    #[test]
    fn words_keep_their_leading_space() {
        assert_eq!(smollm("Hello world"), ["Hello", " world"]);
        assert_eq!(smollm("it's"), ["it", "'s"]);
        assert_eq!(smollm("we'll go"), ["we", "'ll", " go"]);
    }

    #[test]
    fn numbers_are_split_into_digits() {
        assert_eq!(smollm("in 2024!"), ["in", " ", "2", "0", "2", "4", "!"]);
    }

    #[test]
    fn runs_of_spaces_leave_one_for_the_next_word() {
        assert_eq!(smollm("a   b"), ["a", "  ", " b"]);
        assert_eq!(smollm("a  "), ["a", "  "]);
        assert_eq!(smollm("x\n\ny"), ["x", "\n", "\n", "y"]);
    }

    #[test]
    fn pieces_cover_the_text() {
        for text in ["", " ", "héllo wörld 👋🏽 日本語!!", "\t\ttabs  \n", "'", "a'", "a're"] {
            assert_eq!(smollm(text).concat(), text);
        }
    }

    #[test]
    fn unknown_pre_is_none() {
        assert!(rules_for("qwen2").is_none());
    }
}
