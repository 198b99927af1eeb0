//! The prompt cache on the real model: a conversation's later turns read only their new tokens,
//! conversations taking turns keep their own, and the answers are those of a cold read.

use mamba_backends::{Message, ModelBackend, ModelResponse, RequestOptions};
use mamba_local::{LocalBackend, LocalOptions};

use crate::support::model_path;

fn load(cache: bool) -> Option<LocalBackend> {
    let path = model_path()?;
    Some(LocalBackend::load(path, LocalOptions::new().threads(1).prompt_cache(cache)).expect("the model loads"))
}

const QUESTIONS: [&str; 5] = [
    "What is the capital of France?",
    "And of Germany?",
    "Which of the two is larger?",
    "Name a river in each.",
    "Thank you. Summarise our talk in one line.",
];

/// Plays the conversation, each answer appended as the assistant's turn; every turn's
/// messages and response.
async fn converse(backend: &LocalBackend, system: &str) -> Vec<(Vec<Message>, ModelResponse)> {
    let options = RequestOptions::new().max_tokens(16);
    let mut messages = vec![Message::system(system)];
    let mut turns = Vec::new();
    for q in QUESTIONS {
        messages.push(Message::user(q));
        let r = backend.complete(&messages, &options).await.unwrap();
        turns.push((messages.clone(), r.clone()));
        messages.push(Message::assistant(r.content));
    }
    turns
}

/// How far apart two logits may be for the same engine to pick either: the cache only changes
/// how the prompt is cut into batches (one token at a time for an earlier answer, then a batch),
/// which rounds differently; a different token is fine at such a near-tie only.
const NEAR_TIE: f32 = 0.25;

/// The two answers are the same, or part where the cold model had a near-tie between the two
/// tokens (checked by teacher forcing the cold model up to the first difference).
async fn same_or_near_tie(cold: &LocalBackend, messages: &[Message], warm: &str, want: &str) {
    if warm == want {
        return;
    }
    let (w, c) = (cold.tokenize(warm, false), cold.tokenize(want, false));
    let i = w.iter().zip(&c).take_while(|(a, b)| a == b).count();
    let (Some(&wt), Some(&ct)) = (w.get(i), c.get(i)) else {
        panic!("one answer is a prefix of the other: {warm:?} / {want:?}");
    };
    let prompt = cold.prompt_tokens(messages).unwrap();
    let rows = cold.teacher_forced_logits(&prompt, &c[..i]).await.unwrap();
    let row = &rows[i];
    let gap = (row[ct as usize] - row[wt as usize]).abs();
    assert!(gap <= NEAR_TIE, "{warm:?} / {want:?}: tokens {wt} and {ct} are {gap:.3} apart, not a near-tie");
    eprintln!("a near-tie ({gap:.3}) after {i} tokens: {warm:?} / {want:?}");
}

fn cached(r: &ModelResponse) -> u64 {
    r.usage.as_ref().and_then(|u| u.cached_input_tokens).unwrap_or(0)
}

#[tokio::test]
async fn later_turns_read_only_their_new_tokens_and_answer_as_a_cold_read() {
    let (Some(warm), Some(cold)) = (load(true), load(false)) else { return };
    let system = "You are a helpful AI assistant.";
    let with = converse(&warm, system).await;
    let without = converse(&cold, system).await;
    for (turn, ((_, a), (messages, b))) in with.iter().zip(&without).enumerate() {
        if turn == 0 {
            assert_eq!(a.content, b.content, "the first turn reads the same tokens");
        }
        // Later turns differ only where the answers so far differed or at a near-tie.
        if with[..turn].iter().zip(&without[..turn]).all(|((_, x), (_, y))| x.content == y.content) {
            same_or_near_tie(&cold, messages, &a.content, &b.content).await;
        }
        assert_eq!(cached(b), 0, "no cache, nothing cached");
        let prompt = a.usage.as_ref().unwrap().input_tokens;
        if turn == 0 {
            assert_eq!(cached(a), 0);
        } else {
            // Everything but the new question and the re-rendered tail of the last answer.
            let previous = with[turn - 1].1.usage.as_ref().unwrap().input_tokens;
            assert!(
                cached(a) >= previous,
                "turn {}: {} of {prompt} cached, previous prompt {previous}",
                turn + 1,
                cached(a)
            );
            assert!(cached(a) < prompt);
        }
    }
}

#[tokio::test]
async fn conversations_taking_turns_each_find_their_own_prefix() {
    let Some(backend) = load(true) else { return };
    let options = RequestOptions::new().max_tokens(8);
    let system = Message::system("You are a helpful AI assistant. Answer in one short sentence, and stay on topic.");
    let mut a = vec![system.clone(), Message::user("Tell me about cats and their habits at night, in detail.")];
    let mut b = vec![system, Message::user("Tell me about the history of the bicycle in Europe, in detail.")];
    let ra = backend.complete(&a, &options).await.unwrap();
    let rb = backend.complete(&b, &options).await.unwrap();
    // B shares the system prompt with A.
    assert!(cached(&rb) > 10, "{:?}", rb.usage);
    a.extend([Message::assistant(ra.content.clone()), Message::user("Why?")]);
    b.extend([Message::assistant(rb.content.clone()), Message::user("When?")]);
    let ra2 = backend.complete(&a, &options).await.unwrap();
    let rb2 = backend.complete(&b, &options).await.unwrap();
    // Each second turn restores its own conversation, not only the shared system prompt.
    let first_a = ra.usage.as_ref().unwrap().input_tokens;
    let first_b = rb.usage.as_ref().unwrap().input_tokens;
    assert!(cached(&ra2) >= first_a, "A: {} cached of a first prompt of {first_a}", cached(&ra2));
    assert!(cached(&rb2) >= first_b, "B: {} cached of a first prompt of {first_b}", cached(&rb2));
}
