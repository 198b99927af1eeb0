//! What is sent: random prompts of given lengths, ShareGPT conversations, OpenAI batch files,
//! or a file of prompts.
//!
//! Without the model's tokenizer, token counts are estimates: random prompts are made of
//! common English words that are one token each (with their leading space) in the GPT, Llama,
//! Mistral and Qwen tokenizers, so `n` words are close to `n` tokens; texts from files are
//! counted as one token per 4 characters. The counts reported in results come from the
//! server's usage whenever it sends one.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use mamba_backends::{Message, RequestOptions};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Deserialize;

/// One request of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The conversation sent.
    pub messages: Vec<Message>,
    /// Its length in tokens, estimated (the server's count replaces it when it reports usage).
    pub prompt_len: u64,
    /// The answer's length asked for (`max_tokens`), when set.
    pub output_len: Option<u32>,
}

impl Sample {
    /// The request's options: `max_tokens` when the sample sets an answer length.
    pub fn options(&self) -> RequestOptions {
        match self.output_len {
            Some(len) => RequestOptions::new().max_tokens(len),
            None => RequestOptions::new(),
        }
    }
}

/// Where the prompts come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatasetSpec {
    /// Random words of given lengths (`random`).
    Random,
    /// A ShareGPT JSON file: the first human turn is the prompt, the first answer's length the
    /// output length (`sharegpt:FILE`).
    ShareGpt(PathBuf),
    /// An OpenAI batch JSONL file: each line's `body.messages` and `max_tokens` (`batch:FILE`).
    Batch(PathBuf),
    /// A text file, one prompt per line (`prompts:FILE`).
    Prompts(PathBuf),
}

impl FromStr for DatasetSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<DatasetSpec, String> {
        if s == "random" {
            return Ok(DatasetSpec::Random);
        }
        let (kind, file) = s
            .split_once(':')
            .ok_or_else(|| format!("unknown dataset {s:?}: use random, sharegpt:FILE, batch:FILE or prompts:FILE"))?;
        if file.is_empty() {
            return Err(format!("dataset {kind}: needs a file, as {kind}:FILE"));
        }
        let file = PathBuf::from(file);
        match kind {
            "sharegpt" => Ok(DatasetSpec::ShareGpt(file)),
            "batch" => Ok(DatasetSpec::Batch(file)),
            "prompts" => Ok(DatasetSpec::Prompts(file)),
            _ => Err(format!("unknown dataset {kind:?}: use random, sharegpt:FILE, batch:FILE or prompts:FILE")),
        }
    }
}

/// Lengths and seed for building samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Lengths {
    /// Prompt length in tokens for `random` (default 1024, as vLLM).
    pub input_len: u32,
    /// Answer length in tokens: `random`'s, and an override for the files' (default: 128 for
    /// `random`, the file's own otherwise).
    pub output_len: Option<u32>,
    /// Lengths are drawn uniformly from `[len × (1 − r), len × (1 + r)]` (default 0).
    pub range_ratio: f64,
    /// Seed for the random prompts, lengths and ShareGPT's order.
    pub seed: u64,
}

impl Default for Lengths {
    fn default() -> Lengths {
        Lengths { input_len: 1024, output_len: None, range_ratio: 0.0, seed: 0 }
    }
}

/// A dataset that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetError(String);

impl fmt::Display for DatasetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DatasetError {}

/// One token with its leading space in common BPE vocabularies.
#[rustfmt::skip]
const WORDS: &[&str] = &[
    "the", "of", "and", "to", "in", "is", "was", "for", "on", "as", "with", "by", "at", "from", "his", "an", "are",
    "were", "which", "this", "be", "or", "has", "had", "not", "but", "first", "one", "their", "its", "new", "after",
    "who", "they", "two", "her", "she", "been", "other", "when", "there", "all", "during", "into", "school", "time",
    "may", "years", "more", "most", "only", "over", "city", "some", "world", "would", "where", "later", "up", "such",
    "used", "many", "can", "state", "about", "national", "out", "known", "university", "united", "then", "made",
    "also", "than", "part", "three", "year", "like", "people", "house", "water", "music", "game", "light", "river",
];

fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4).max(1)
}

fn uniform_len(rng: &mut StdRng, len: u32, ratio: f64) -> u32 {
    let ratio = ratio.clamp(0.0, 1.0);
    let lo = (f64::from(len) * (1.0 - ratio)).floor() as u32;
    let hi = (f64::from(len) * (1.0 + ratio)).ceil() as u32;
    if hi <= lo {
        lo
    } else {
        rng.random_range(lo..=hi)
    }
}

/// `n` random prompts: `input_len` words each (± `range_ratio`), asking for `output_len`
/// tokens (± `range_ratio`, default 128).
pub fn random(n: usize, lengths: &Lengths) -> Vec<Sample> {
    let mut rng = StdRng::seed_from_u64(lengths.seed);
    let output = lengths.output_len.unwrap_or(128);
    (0..n)
        .map(|_| {
            let input_len = uniform_len(&mut rng, lengths.input_len, lengths.range_ratio).max(1);
            let output_len = uniform_len(&mut rng, output, lengths.range_ratio).max(1);
            let mut prompt = String::with_capacity(input_len as usize * 6);
            for i in 0..input_len {
                if i > 0 {
                    prompt.push(' ');
                }
                prompt.push_str(WORDS[rng.random_range(0..WORDS.len())]);
            }
            Sample {
                messages: vec![Message::user(prompt)],
                prompt_len: u64::from(input_len),
                output_len: Some(output_len),
            }
        })
        .collect()
}

fn read(path: &Path) -> Result<String, DatasetError> {
    std::fs::read_to_string(path).map_err(|e| DatasetError(format!("cannot read {}: {e}", path.display())))
}

/// Repeats `samples` in order until there are `n`.
fn cycle(samples: Vec<Sample>, n: usize, path: &Path) -> Result<Vec<Sample>, DatasetError> {
    if samples.is_empty() {
        return Err(DatasetError(format!("{}: no usable prompt in the file", path.display())));
    }
    Ok(samples.iter().cycle().take(n).cloned().collect())
}

#[derive(Deserialize)]
struct ShareGptEntry {
    #[serde(default)]
    conversations: Vec<ShareGptTurn>,
}

#[derive(Deserialize)]
struct ShareGptTurn {
    #[serde(default)]
    value: String,
}

/// ShareGPT: entries with at least two turns, shuffled by the seed (as vLLM), the first turn
/// as the prompt and the second's estimated length as the output length; conversations with
/// a prompt or answer under 4 tokens, a prompt over 1024 or both over 2048 are left out, as
/// vLLM does.
pub fn sharegpt(path: &Path, n: usize, lengths: &Lengths) -> Result<Vec<Sample>, DatasetError> {
    let text = read(path)?;
    let entries: Vec<ShareGptEntry> = serde_json::from_str(&text)
        .map_err(|e| DatasetError(format!("{}: not a ShareGPT JSON array: {e}", path.display())))?;
    let mut pairs: Vec<(String, String)> = entries
        .into_iter()
        .filter(|e| e.conversations.len() >= 2)
        .map(|mut e| {
            let answer = std::mem::take(&mut e.conversations[1].value);
            (std::mem::take(&mut e.conversations[0].value), answer)
        })
        .collect();
    let mut rng = StdRng::seed_from_u64(lengths.seed);
    pairs.shuffle(&mut rng);
    let samples: Vec<Sample> = pairs
        .into_iter()
        .filter_map(|(prompt, answer)| {
            let prompt_len = estimate_tokens(&prompt);
            let answer_len = estimate_tokens(&answer);
            let output_len = lengths.output_len.map_or(answer_len, u64::from);
            let fits = prompt_len >= 4 && output_len >= 4 && prompt_len <= 1024 && prompt_len + output_len <= 2048;
            (fits || lengths.output_len.is_some() && prompt_len >= 4).then(|| Sample {
                messages: vec![Message::user(prompt)],
                prompt_len,
                output_len: Some(output_len as u32),
            })
        })
        .take(n)
        .collect();
    cycle(samples, n, path)
}

#[derive(Deserialize)]
struct BatchLine {
    body: BatchBody,
}

#[derive(Deserialize)]
struct BatchBody {
    messages: Vec<Message>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_completion_tokens: Option<u32>,
}

/// An OpenAI batch JSONL file: each line's `body.messages`, and its `max_completion_tokens`
/// or `max_tokens` unless `output_len` overrides them. Lines are used in order, repeated to
/// reach `n`.
pub fn batch(path: &Path, n: usize, lengths: &Lengths) -> Result<Vec<Sample>, DatasetError> {
    let text = read(path)?;
    let mut samples = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed: BatchLine = serde_json::from_str(line)
            .map_err(|e| DatasetError(format!("{}: line {}: not a batch request: {e}", path.display(), i + 1)))?;
        let body = parsed.body;
        let prompt_len = body.messages.iter().map(|m| estimate_tokens(&m.text())).sum();
        let output_len = lengths.output_len.or(body.max_completion_tokens).or(body.max_tokens);
        samples.push(Sample { messages: body.messages, prompt_len, output_len });
        if samples.len() == n {
            break;
        }
    }
    cycle(samples, n, path)
}

/// A text file of prompts, one per line (empty lines skipped), repeated to reach `n`; the
/// output length is `output_len` when given.
pub fn prompts(path: &Path, n: usize, lengths: &Lengths) -> Result<Vec<Sample>, DatasetError> {
    let text = read(path)?;
    let samples = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(n)
        .map(|l| Sample {
            messages: vec![Message::user(l.to_owned())],
            prompt_len: estimate_tokens(l),
            output_len: lengths.output_len,
        })
        .collect();
    cycle(samples, n, path)
}

impl DatasetSpec {
    /// `n` samples from this dataset.
    pub fn load(&self, n: usize, lengths: &Lengths) -> Result<Vec<Sample>, DatasetError> {
        match self {
            DatasetSpec::Random => Ok(random(n, lengths)),
            DatasetSpec::ShareGpt(path) => sharegpt(path, n, lengths),
            DatasetSpec::Batch(path) => batch(path, n, lengths),
            DatasetSpec::Prompts(path) => prompts(path, n, lengths),
        }
    }

    /// The name in results (`random`, `sharegpt`, `batch`, `prompts`).
    pub fn name(&self) -> &'static str {
        match self {
            DatasetSpec::Random => "random",
            DatasetSpec::ShareGpt(_) => "sharegpt",
            DatasetSpec::Batch(_) => "batch",
            DatasetSpec::Prompts(_) => "prompts",
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn tmp(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mamba-loadtest-ds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn text_of(s: &Sample) -> String {
        s.messages[0].text().into_owned()
    }

    #[test]
    fn specs_parse() {
        assert_eq!("random".parse::<DatasetSpec>().unwrap(), DatasetSpec::Random);
        assert_eq!("batch:a.jsonl".parse::<DatasetSpec>().unwrap(), DatasetSpec::Batch("a.jsonl".into()));
        assert!("sharegpt:".parse::<DatasetSpec>().is_err());
        assert!("csv:x".parse::<DatasetSpec>().is_err());
    }

    #[test]
    fn random_prompts_have_their_lengths_and_are_seeded() {
        let lengths = Lengths { input_len: 100, output_len: Some(20), range_ratio: 0.5, seed: 3 };
        let a = random(200, &lengths);
        assert_eq!(a, random(200, &lengths));
        for s in &a {
            let words = text_of(s).split(' ').count() as u64;
            assert_eq!(words, s.prompt_len);
            assert!((50..=150).contains(&s.prompt_len), "{}", s.prompt_len);
            assert!((10..=30).contains(&s.output_len.unwrap()));
        }
        let fixed = random(5, &Lengths { input_len: 7, output_len: None, range_ratio: 0.0, seed: 0 });
        assert!(fixed.iter().all(|s| s.prompt_len == 7 && s.output_len == Some(128)));
    }

    #[test]
    fn sharegpt_takes_first_turns_and_filters_like_vllm() {
        let long = "word ".repeat(50);
        let json = format!(
            r#"[{{"conversations":[{{"from":"human","value":"{long}"}},{{"from":"gpt","value":"{long}"}}]}},
               {{"conversations":[{{"from":"human","value":"hi"}},{{"from":"gpt","value":"{long}"}}]}},
               {{"conversations":[{{"from":"human","value":"only one"}}]}}]"#
        );
        let path = tmp("sg.json", &json);
        let s = sharegpt(&path, 3, &Lengths::default()).unwrap();
        assert_eq!(s.len(), 3);
        assert!(s.iter().all(|s| s.prompt_len == 63 && s.output_len == Some(63)));
        assert!(sharegpt(&tmp("bad.json", "{}"), 1, &Lengths::default()).is_err());
    }

    #[test]
    fn batch_and_prompt_files() {
        let path = tmp(
            "b.jsonl",
            r#"{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"m","messages":[{"role":"user","content":"hello there"}],"max_tokens":9}}

{"custom_id":"b","body":{"messages":[{"role":"system","content":"s"},{"role":"user","content":"x"}]}}"#,
        );
        let s = batch(&path, 3, &Lengths::default()).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].output_len, Some(9));
        assert_eq!(s[1].output_len, None);
        assert_eq!(s[1].messages.len(), 2);
        assert_eq!(s[2], s[0]);
        let e = batch(&tmp("bad.jsonl", "{\"body\":1}"), 1, &Lengths::default()).unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");

        let path = tmp("p.txt", "one\n\ntwo\n");
        let s = prompts(&path, 3, &Lengths { output_len: Some(5), ..Lengths::default() }).unwrap();
        assert_eq!(s.iter().map(text_of).collect::<Vec<_>>(), ["one", "two", "one"]);
        assert!(s.iter().all(|s| s.output_len == Some(5)));
        assert!(prompts(&tmp("e.txt", "\n"), 1, &Lengths::default()).is_err());
    }
}
