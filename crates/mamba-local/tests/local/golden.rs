//! Agreement with llama.cpp: token ids and greedy answers (fixtures made by the scripts in
//! scripts/local/ with llama-cpp-python over the same GGUF).

use mamba_backends::{message::Role, FinishReason, Message, ModelBackend, RequestOptions};

use crate::support::{assert_token_ids_equal_llama_cpp, backend, fixture, ids};

#[test]
fn token_ids_equal_llama_cpp_on_every_golden_text() {
    let Some(backend) = backend() else { return };
    let data = fixture("tokenizer-smollm2.json");
    assert_token_ids_equal_llama_cpp(backend, data["cases"].as_array().unwrap());
}

fn messages_of(case: &serde_json::Value) -> Vec<Message> {
    case["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let role = match m["role"].as_str().unwrap() {
                "system" => Role::System,
                "assistant" => Role::Assistant,
                _ => Role::User,
            };
            Message::new(role, m["content"].as_str().unwrap())
        })
        .collect()
}

/// How far below our best logit llama.cpp's greedy token may be at one step. Two programs over
/// the same GGUF round differently (candle reads the Q4_1 matrices requantized to Q8_0 and picks
/// kernels by CPU: AVX2 dot products here, AVX-512 VNNI tiles on Xeons; llama.cpp has its own),
/// so at a near-tie the two argmaxes may differ; everywhere else they agree. Measured on an AMD
/// EPYC (AVX2): 114 of the 117 steps of the three answers agree exactly, and the largest gap is
/// 0.246; the margin is four times that, far below the gap to a wrong token (several logits).
pub(crate) const MARGIN: f32 = 1.0;

/// The index and value of the largest logit.
fn argmax(row: &[f32]) -> (usize, f32) {
    row.iter().copied().enumerate().fold((0, f32::NEG_INFINITY), |best, (i, v)| if v > best.1 { (i, v) } else { best })
}

/// llama.cpp's greedy answers, teacher-forced: its tokens are fed to our model, and at every step
/// its choice must be our argmax or within [`MARGIN`] of it (and so must its end of generation,
/// for answers that stopped). Unlike comparing two free-running greedy answers, one near-tie
/// cannot make the rest of the answer differ, so this holds on any x86-64 CPU.
#[tokio::test]
async fn greedy_answers_equal_llama_cpp() {
    let Some(backend) = backend() else { return };
    assert_greedy_answers_equal_llama_cpp(backend, "f32 cache").await;
}

/// The same with the key/value cache in f16 (llama.cpp's default cache type).
#[tokio::test]
async fn greedy_answers_equal_llama_cpp_with_an_f16_cache() {
    let Some(path) = crate::support::model_path() else { return };
    let options = mamba_local::LocalOptions::new().threads(2).kv_cache_f16(true);
    let backend = mamba_local::LocalBackend::load_async(path, options).await.unwrap();
    assert_greedy_answers_equal_llama_cpp(&backend, "f16 cache").await;
    // The prompt cache saves and restores f16 sequences too.
    let mut messages =
        vec![Message::system("You are a helpful AI assistant."), Message::user("What is the capital of France?")];
    let greedy = RequestOptions::new().temperature(0.0).max_tokens(16);
    let first = backend.complete(&messages, &greedy).await.unwrap();
    assert!(first.content.contains("Paris"), "{first:?}");
    messages.push(first.to_message());
    messages.push(Message::user("And of Italy?"));
    let second = backend.complete(&messages, &greedy).await.unwrap();
    assert!(second.usage.unwrap().cached_input_tokens.unwrap() > 20, "{second:?}");
}

async fn assert_greedy_answers_equal_llama_cpp(backend: &mamba_local::LocalBackend, what: &str) {
    let data = fixture("greedy-smollm2.json");
    let end_of_turn = backend.tokenize("<|im_end|>", true);
    assert_eq!(end_of_turn.len(), 1, "SmolLM2's end-of-turn is one token");
    let (mut steps, mut exact, mut worst) = (0, 0, 0.0f32);
    let mut failures = Vec::new();
    for case in data["cases"].as_array().unwrap() {
        let messages = messages_of(case);
        let want_prompt = ids(&case["prompt_ids"]);
        assert_eq!(backend.prompt_tokens(&messages).unwrap(), want_prompt, "the rendered and tokenized prompt");
        let reference = ids(&case["answer_ids"]);
        assert_eq!(backend.detokenize(&reference), case["answer"].as_str().unwrap(), "the fixture's text");
        let rows = backend.teacher_forced_logits(&want_prompt, &reference).await.unwrap();
        assert_eq!(rows.len(), reference.len() + 1);
        // llama.cpp's choice at each step; after the answer, its end of turn when it stopped.
        let mut chosen = reference.clone();
        if FinishReason::parse(case["finish_reason"].as_str().unwrap()) == Some(FinishReason::Stop) {
            chosen.push(end_of_turn[0]);
        }
        for (step, (&want, row)) in chosen.iter().zip(&rows).enumerate() {
            let (best, best_logit) = argmax(row);
            let gap = best_logit - row[want as usize];
            steps += 1;
            exact += usize::from(best == want as usize);
            worst = worst.max(gap);
            if gap > MARGIN {
                failures.push(format!(
                    "after {:?}: llama.cpp chose {:?}, {gap:.3} below our {:?}",
                    backend.detokenize(&reference[..step]),
                    backend.detokenize(&[want]),
                    backend.detokenize(&[best as u32])
                ));
            }
        }
    }
    eprintln!(
        "{what}: {exact} of {steps} llama.cpp tokens are our argmax; the largest gap is {worst:.3} (margin {MARGIN})"
    );
    assert!(failures.is_empty(), "{} steps past the margin:\n{}", failures.len(), failures.join("\n"));
}

/// Our own greedy answer is the argmax chain of our own logits: generating and teacher forcing
/// run the same computation, so [`greedy_answers_equal_llama_cpp`] checks what `complete` does.
#[tokio::test]
async fn greedy_generation_follows_the_teacher_forced_argmax() {
    let Some(backend) = backend() else { return };
    let messages = [Message::user("Write a short story about a cat who learns to fly.")];
    let prompt = backend.prompt_tokens(&messages).unwrap();
    let answer = backend.complete(&messages, &RequestOptions::new().temperature(0.0).max_tokens(24)).await.unwrap();
    // The tokens behind the answer: the argmax chain, read back from teacher forcing.
    let end_of_turn = backend.tokenize("<|im_end|>", true);
    let mut chain = Vec::new();
    while chain.len() < 24 {
        let rows = backend.teacher_forced_logits(&prompt, &chain).await.unwrap();
        let next = argmax(rows.last().unwrap()).0 as u32;
        if end_of_turn.contains(&next) {
            break;
        }
        chain.push(next);
    }
    assert_eq!(answer.usage.unwrap().output_tokens, chain.len() as u64);
    assert_eq!(answer.content, backend.detokenize(&chain));
}

#[tokio::test]
async fn the_capital_of_france_is_paris() {
    let Some(backend) = backend() else { return };
    // With no system message the GGUF's template puts its own ("You are a helpful AI assistant
    // named SmolLM…"), after which this 135M model rambles in French, in llama.cpp too.
    let messages =
        [Message::system("You are a helpful AI assistant."), Message::user("What is the capital of France?")];
    let answer = backend.complete(&messages, &RequestOptions::new().temperature(0.0).max_tokens(48)).await.unwrap();
    assert!(answer.content.contains("Paris"), "{:?}", answer.content);
    assert_eq!(answer.finish_reason, Some(FinishReason::Stop));
}

/// [`greedy_answers_equal_llama_cpp`] on candle's other x86 kernels. Where the CPU has AVX-512
/// VNNI (or AVX-VNNI), candle multiplies Q8_0 matrices in VNNI tiles, and the run above used
/// those; `MISTRALRS_FORCE_AVX2=1`, read once per process, makes candle use its AVX2 dot
/// products instead, as on CPUs without VNNI. So the test runs again in a child process with
/// it. On a CPU without VNNI the run above already took the AVX2 path.
#[test]
fn greedy_answers_equal_llama_cpp_on_the_avx2_path_too() {
    if std::env::var_os("MISTRALRS_FORCE_AVX2").is_some() || crate::support::model_path().is_none() {
        return;
    }
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags: Vec<&str> =
        cpuinfo.lines().find(|l| l.starts_with("flags")).map(|l| l.split_whitespace().collect()).unwrap_or_default();
    if !flags.iter().any(|f| matches!(*f, "avx512_vnni" | "avx_vnni")) {
        eprintln!("no VNNI on this CPU: greedy_answers_equal_llama_cpp ran on candle's AVX2 path");
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["golden::greedy_answers_equal_llama_cpp", "--exact", "--nocapture", "--test-threads", "1"])
        .env("MISTRALRS_FORCE_AVX2", "1")
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("on the AVX2 path: {stderr}");
    assert!(out.status.success() && stdout.contains("1 passed"), "on candle's AVX2 path:\n{stdout}\n{stderr}");
}
