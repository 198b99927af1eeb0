//! Pre-tokenization: cutting text into the words that BPE then encodes one by one.
//!
//! llama.cpp picks the split rules from the GGUF key `tokenizer.ggml.pre`. Each rule set is data
//! here ([`rules_for`]): a list of stages, each stage cutting every piece of the previous one
//! (what a regex matches becomes a piece, and so does the text between two matches).
//!
//! The stages are hand-written matchers, not a regex engine: llama.cpp itself runs hand-written
//! matchers for the GPT-2 and Llama 3 regexes, and its other regexes through `std::regex` over
//! text whose non-ASCII characters are collapsed to one byte per Unicode category; a matcher
//! per rule reproduces both exactly (alternatives tried in order, look-aheads that see nothing
//! past the piece), with no regex compiled at load or per call.
//! - GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
//! - Llama 3 (digits up to 3) and Qwen2 (digits one by one):
//!   `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`.
//! - llama.cpp's `default`: `[\p{P}\$\+<=>\^~\|]+`, then GPT-2, then `\p{N}+`, then `[0-9][0-9][0-9]`.
//! - Tekken and GPT-4o, as llama.cpp rewrites them for `std::regex` (`U` is a letter but `a-z`,
//!   `W` a letter but `A-Z`, `C` the optional contraction `'s|'t|'re|'ve|'m|'ll|'d` in either
//!   case, GPT-4o only): `[^\r\n\p{L}\p{N}]?U*W+C|[^\r\n\p{L}\p{N}]?U+W*C|\p{N}{1,k}|
//!   ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+` with `k` 1 (Tekken) or 3 (GPT-4o). A
//!   letter beyond ASCII is both `U` and `W`, which the backtracking below reproduces.

use unicode_general_category::{get_general_category, GeneralCategory as G};

/// One splitting stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// `\p{N}`: every number character is a piece of its own.
    EachNumber,
    /// `\p{N}+`: runs of number characters.
    NumberRuns,
    /// `[0-9][0-9][0-9]`: groups of three ASCII digits.
    DigitTriples,
    /// `[\p{P}\$\+<=>\^~\|]+`: runs of punctuation (and those ASCII symbols).
    PunctuationRuns,
    /// The GPT-2 word regex.
    Gpt2,
    /// The Llama 3 word regex: numbers in groups of up to 3 digits.
    Llama3,
    /// Qwen2's: the Llama 3 regex with every number character a piece of its own.
    Qwen2,
    /// Mistral's Tekken: words cut where a lowercase run follows an uppercase one, numbers
    /// one character at a time, no contractions.
    Tekken,
    /// GPT-4o's (o200k): Tekken's words with a contraction suffix, numbers up to 3 digits.
    Gpt4o,
}

/// Split rules of llama.cpp's pre-tokenizer types, and the `tokenizer.ggml.pre` names that select them.
const TABLE: &[(&[&str], &[Stage])] = &[
    (&["llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "dbrx", "smaug-bpe"], &[Stage::Llama3]),
    (&["qwen2", "deepseek-r1-qwen", "stablelm2", "megrez"], &[Stage::Qwen2]),
    (
        &["smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b"],
        &[Stage::EachNumber, Stage::Gpt2],
    ),
    (&["gpt2", "gpt-2", "phi-2", "mpt", "olmo", "jais"], &[Stage::Gpt2]),
    (&["tekken"], &[Stage::Tekken]),
    (&["gpt-4o", "llama4", "minimax-m2"], &[Stage::Gpt4o]),
    (&["default"], &[Stage::PunctuationRuns, Stage::Gpt2, Stage::NumberRuns, Stage::DigitTriples]),
];

/// The stages for a `tokenizer.ggml.pre` value, or `None` when it is not known here.
pub(crate) fn rules_for(pre: &str) -> Option<&'static [Stage]> {
    TABLE.iter().find(|(names, _)| names.contains(&pre)).map(|(_, stages)| *stages)
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

/// `[\p{P}\$\+<=>\^~\|]` as llama.cpp reads it: ASCII punctuation and symbols but the backtick,
/// and beyond ASCII the punctuation categories.
fn is_default_punctuation(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_punctuation() && c != '`';
    }
    matches!(
        get_general_category(c),
        G::ConnectorPunctuation
            | G::DashPunctuation
            | G::OpenPunctuation
            | G::ClosePunctuation
            | G::InitialPunctuation
            | G::FinalPunctuation
            | G::OtherPunctuation
    )
}

/// Splits `text` into words (slices of `text`, in order, covering all of it).
pub(crate) fn split<'t>(text: &'t str, stages: &[Stage]) -> Vec<&'t str> {
    let mut pieces = vec![text];
    for stage in stages {
        let mut next = Vec::with_capacity(pieces.len() * 2);
        for piece in pieces {
            match stage {
                Stage::EachNumber => split_numbers(piece, &mut next),
                Stage::NumberRuns => split_runs(piece, is_number, &mut next),
                Stage::PunctuationRuns => split_runs(piece, is_default_punctuation, &mut next),
                Stage::DigitTriples => split_digit_triples(piece, &mut next),
                Stage::Gpt2 => split_gpt2(piece, &mut next),
                Stage::Llama3 => split_llama3(piece, 3, &mut next),
                Stage::Qwen2 => split_llama3(piece, 1, &mut next),
                Stage::Tekken => split_cased(piece, 1, false, &mut next),
                Stage::Gpt4o => split_cased(piece, 3, true, &mut next),
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

/// Runs of characters of a class are pieces, and so is the text between them.
fn split_runs<'t>(text: &'t str, class: fn(char) -> bool, out: &mut Vec<&'t str>) {
    let mut start = 0;
    let mut inside = false;
    for (i, c) in text.char_indices() {
        let now = class(c);
        if now != inside && i > start {
            out.push(&text[start..i]);
            start = i;
        }
        inside = now;
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
}

/// `[0-9][0-9][0-9]`, searched left to right: each group of three ASCII digits is a piece.
fn split_digit_triples<'t>(text: &'t str, out: &mut Vec<&'t str>) {
    let bytes = text.as_bytes();
    let (mut start, mut i) = (0, 0);
    while i + 3 <= bytes.len() {
        if bytes[i..i + 3].iter().all(u8::is_ascii_digit) {
            if start < i {
                out.push(&text[start..i]);
            }
            out.push(&text[i..i + 3]);
            i += 3;
            start = i;
        } else {
            i += 1;
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
}

/// The Llama 3 regex (Qwen2's with `max_digits` 1), as llama.cpp's matcher runs it.
fn split_llama3<'t>(text: &'t str, max_digits: usize, out: &mut Vec<&'t str>) {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let n = chars.len();
    let at = |i: usize| chars.get(i).map(|&(_, c)| c);
    let byte_at = |i: usize| chars.get(i).map_or(text.len(), |&(b, _)| b);
    let letter = |i: usize| at(i).is_some_and(is_letter);
    let number = |i: usize| at(i).is_some_and(is_number);
    let other = |i: usize| at(i).is_some_and(|c| !(c.is_whitespace() || is_letter(c) || is_number(c)));
    let newline = |i: usize| matches!(at(i), Some('\r' | '\n'));

    let mut pos = 0;
    while pos < n {
        let c = chars[pos].1;
        let start = pos;
        // (?i:'s|'t|'re|'ve|'m|'ll|'d)
        if c == '\'' {
            let lower = |i: usize| at(i).map(|c| c.to_ascii_lowercase());
            let end = match (lower(pos + 1), lower(pos + 2)) {
                (Some('s' | 't' | 'm' | 'd'), _) => Some(pos + 2),
                (Some('r'), Some('e')) | (Some('v'), Some('e')) | (Some('l'), Some('l')) => Some(pos + 3),
                _ => None,
            };
            if let Some(end) = end {
                out.push(&text[byte_at(pos)..byte_at(end)]);
                pos = end;
                continue;
            }
        }
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if !(c == '\r' || c == '\n' || is_number(c)) && (is_letter(c) || letter(pos + 1)) {
            pos += 1;
            while letter(pos) {
                pos += 1;
            }
        } else if is_number(c) {
            // \p{N}{1,max_digits}
            while number(pos) && pos - start < max_digits {
                pos += 1;
            }
        } else if other(if c == ' ' { pos + 1 } else { pos }) {
            // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
            pos += usize::from(c == ' ');
            while other(pos) {
                pos += 1;
            }
            while newline(pos) {
                pos += 1;
            }
        } else {
            pos = whitespace_end(&chars, pos);
        }
        let stop = pos.max(start + 1);
        out.push(&text[byte_at(start)..byte_at(stop)]);
        pos = stop;
    }
}

/// The end of the whitespace alternatives of the Llama 3 family of regexes at `pos`:
/// `\s*[\r\n]+|\s+(?!\S)|\s+` (at least one character).
fn whitespace_end(chars: &[(usize, char)], pos: usize) -> usize {
    let at = |i: usize| chars.get(i).map(|&(_, c)| c);
    let mut spaces = 0;
    let mut last_newline_end = None;
    while at(pos + spaces).is_some_and(char::is_whitespace) {
        if matches!(at(pos + spaces), Some('\r' | '\n')) {
            last_newline_end = Some(pos + spaces + 1);
        }
        spaces += 1;
    }
    if let Some(end) = last_newline_end {
        // \s*[\r\n]+
        end
    } else if spaces > 1 && pos + spaces < chars.len() {
        // \s+(?!\S)
        pos + spaces - 1
    } else if spaces > 0 {
        // \s+
        pos + spaces
    } else {
        pos + 1
    }
}

/// Tekken's and GPT-4o's regexes (see the module docs), as llama.cpp's `std::regex` runs them.
fn split_cased<'t>(text: &'t str, max_digits: usize, contractions: bool, out: &mut Vec<&'t str>) {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let n = chars.len();
    let at = |i: usize| chars.get(i).map(|&(_, c)| c);
    let byte_at = |i: usize| chars.get(i).map_or(text.len(), |&(b, _)| b);
    let letter = |i: usize| at(i).is_some_and(is_letter);
    let upper = |i: usize| at(i).is_some_and(|c| is_letter(c) && !c.is_ascii_lowercase());
    let lower = |i: usize| at(i).is_some_and(|c| is_letter(c) && !c.is_ascii_uppercase());
    let number = |i: usize| at(i).is_some_and(is_number);
    let other = |i: usize| at(i).is_some_and(|c| !(c.is_whitespace() || is_letter(c) || is_number(c)));
    let newline = |i: usize| matches!(at(i), Some('\r' | '\n'));
    let run = |mut i: usize, class: &dyn Fn(usize) -> bool| {
        while class(i) {
            i += 1;
        }
        i
    };
    // The end of `U*W+` from `j`, or of `U+W*` when that fails: greedy `U*`, then giving back
    // one letter at a time until a `W` can follow.
    let word = |j: usize| -> usize {
        let ups = run(j, &upper);
        if lower(ups) {
            return run(ups, &lower);
        }
        // `U*` took the whole run: the last letter it can give back that is also a `W`.
        match (j..ups).rev().find(|&k| lower(k)) {
            Some(k) => k + 1,
            // All `A-Z`: `U+W*`.
            None => ups,
        }
    };
    let contraction = |i: usize| -> usize {
        if !contractions || at(i) != Some('\'') {
            return i;
        }
        let low = |k: usize| at(k).map(|c| c.to_ascii_lowercase());
        match (low(i + 1), low(i + 2)) {
            (Some('r'), Some('e')) | (Some('v'), Some('e')) | (Some('l'), Some('l')) => i + 3,
            (Some('s' | 't' | 'm' | 'd'), _) => i + 2,
            _ => i,
        }
    };

    let mut pos = 0;
    while pos < n {
        let c = chars[pos].1;
        let start = pos;
        let prefix = !(c == '\r' || c == '\n' || is_letter(c) || is_number(c));
        if letter(pos) || (prefix && letter(pos + 1)) {
            let j = if letter(pos) { pos } else { pos + 1 };
            pos = contraction(word(j));
        } else if is_number(c) {
            while number(pos) && pos - start < max_digits {
                pos += 1;
            }
        } else if other(if c == ' ' { pos + 1 } else { pos }) {
            // ' ?[^\s\p{L}\p{N}]+[\r\n/]*'
            pos = run(pos + usize::from(c == ' '), &other);
            while newline(pos) || at(pos) == Some('/') {
                pos += 1;
            }
        } else {
            pos = whitespace_end(&chars, pos);
        }
        let stop = pos.max(start + 1);
        out.push(&text[byte_at(start)..byte_at(stop)]);
        pos = stop;
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

    /// Tekken and GPT-4o cut words where case changes, as llama.cpp's rewritten regex does: a
    /// letter beyond ASCII counts as either case, so an all-capital word that starts with one
    /// gives it up ("ÉCOLE" is "É" + "COLE", where the Hugging Face regex keeps it whole).
    #[test]
    fn cased_words_split_as_llama_cpp_does() {
        let tekken = |t| split(t, rules_for("tekken").unwrap_or(&[]));
        assert_eq!(tekken("HelloWorld XMLHttp"), ["Hello", "World", " XMLHttp"]);
        assert_eq!(tekken("ÉCOLE École iPhone"), ["É", "COLE", " École", " i", "Phone"]);
        assert_eq!(tekken("a/b\n/c ?\n/y 24"), ["a", "/b", "\n", "/c", " ?\n/", "y", " ", "2", "4"]);
        let gpt4o = |t| split(t, rules_for("gpt-4o").unwrap_or(&[]));
        assert_eq!(gpt4o("IT'S it's 2024"), ["IT'S", " it's", " ", "202", "4"]);
        assert_eq!(tekken("IT'S"), ["IT", "'S"]);
    }

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
        assert!(rules_for("no-such-pre").is_none());
    }

    #[test]
    fn llama3_groups_digits_by_three_and_keeps_newlines_with_spaces() {
        let llama3 = |t| split(t, rules_for("llama-bpe").unwrap_or(&[]));
        assert_eq!(llama3("in 1234567!"), ["in", " ", "123", "456", "7", "!"]);
        assert_eq!(llama3("DON'T (go)\n\n  x"), ["DON", "'T", " (", "go", ")\n\n", " ", " x"]);
        assert_eq!(llama3("a  \n  b"), ["a", "  \n", " ", " b"]);
        let qwen2 = |t| split(t, rules_for("qwen2").unwrap_or(&[]));
        assert_eq!(qwen2("x 123"), ["x", " ", "1", "2", "3"]);
    }

    #[test]
    fn default_cuts_punctuation_runs_and_digit_triples() {
        let default = |t| split(t, rules_for("default").unwrap_or(&[]));
        assert_eq!(default("a, b!! 12345"), ["a", ",", " b", "!!", " ", "123", "45"]);
    }
}
