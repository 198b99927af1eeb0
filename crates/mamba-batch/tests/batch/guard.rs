//! The output's guard: an output that is the input (by any name) or one of the files kept
//! beside the output is refused before anything is read or sent; one run holds the output's
//! lock from `open` to the end of its run, and a second run on it fails at once.

use std::sync::Arc;
use std::time::Duration;

use mamba_batch::{invalid_lines_path, lock_path, Batch, BatchError, Progress};
use mamba_mock::{MockServer, Reply, Script};

use crate::support::{backend, numbered, options, records, write_input};

#[tokio::test(flavor = "multi_thread")]
async fn the_input_is_never_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path(), &numbered(3));
    let original = std::fs::read(&input).unwrap();
    let hard = dir.path().join("hard.jsonl");
    std::fs::hard_link(&input, &hard).unwrap();
    #[allow(unused_mut)] // a symlink is made on unix only
    let mut outputs = vec![input.clone(), hard, dir.path().join(".").join("in.jsonl")];
    #[cfg(unix)]
    {
        let link = dir.path().join("link.jsonl");
        std::os::unix::fs::symlink(&input, &link).unwrap();
        outputs.push(link);
    }
    for output in outputs {
        match Batch::open(options(&input, &output)) {
            Err(BatchError::Refused(why)) => assert!(why.contains("input"), "{why}"),
            other => panic!("{}: {other:?}", output.display()),
        }
    }
    // An input that is a file the run writes beside its output.
    let out = dir.path().join("out.jsonl");
    std::fs::copy(&input, invalid_lines_path(&out)).unwrap();
    let refused = Batch::open(options(&invalid_lines_path(&out), &out));
    assert!(matches!(refused, Err(BatchError::Refused(_))), "{refused:?}");
    assert_eq!(std::fs::read(&input).unwrap(), original, "the input is untouched");
    assert!(!out.exists() && !lock_path(&input).exists(), "nothing was written");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_run_at_a_time_writes_an_output() {
    let server = MockServer::start_with(Script::new().always(Reply::text("ok").delay(Duration::from_millis(200))))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path(), &numbered(4));
    let out = dir.path().join("out.jsonl");

    let first = Batch::open(options(&input, &out).concurrency(4)).unwrap();
    match Batch::open(options(&input, &out)) {
        Err(BatchError::Locked { output, lock, pid }) => {
            assert_eq!((output, lock.clone()), (out.clone(), lock_path(&out)));
            assert!(lock.exists());
            assert_eq!(pid, Some(std::process::id()));
        }
        other => panic!("a second run on a locked output: {other:?}"),
    }
    // A dry run takes no lock; the same output by another name is the same lock.
    assert!(Batch::open(options(&input, &out).dry_run(true)).is_ok());
    #[cfg(unix)]
    {
        let alias = dir.path().join("alias.jsonl");
        std::os::unix::fs::symlink(&out, &alias).unwrap();
        assert!(matches!(Batch::open(options(&input, &alias)), Err(BatchError::Locked { .. })));
    }

    // The lock is held while the run goes on, and released when it ends.
    let running = tokio::spawn(first.run(backend(&server), Arc::new(Progress::new()), std::future::pending()));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(matches!(Batch::open(options(&input, &out)), Err(BatchError::Locked { .. })));
    let summary = running.await.unwrap().unwrap();
    assert_eq!(summary.succeeded, 4);
    assert_eq!(records(&out).len(), 4);
    assert_eq!(server.chat_requests().len(), 4, "the refused runs sent nothing");
    let again = Batch::open(options(&input, &out)).unwrap();
    assert_eq!(again.plan().to_send, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_input_without_requests_is_nothing_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path(), &["".to_owned(), "   ".to_owned()]);
    let out = dir.path().join("out.jsonl");
    match Batch::open(options(&input, &out)) {
        Err(BatchError::Refused(why)) => assert!(why.contains("nothing to do"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert!(!out.exists());
}
