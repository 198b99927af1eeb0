//! `mamba-llm batch` used the way a hostile but fair user would (issue 24): the input given as
//! the output, two runs on one output, an output full of repeats and junk, an empty input,
//! durations no clock can hold.

use std::process::Stdio;
use std::time::Duration;

use mamba_mock::{Match, MockServer, Reply, Script};
use serde_json::Value;

use crate::common::batch::{batch, chat_line, records, write_input};
use crate::common::{closed_port, cmd, stderr, temp_dir};

/// A usage error: exit 2 and one line on stderr.
fn assert_usage_error(o: &std::process::Output, want: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("mamba-llm: usage error:") && err.contains(want), "want {want:?}: {err}");
}

/// `batch IN -o IN` (and through a symbolic or hard link, and `batch - -o IN < IN`) wrote the
/// answers over the requests and exited 0: refused, the input untouched, nothing sent.
#[tokio::test(flavor = "multi_thread")]
async fn the_input_as_output_is_refused() {
    let server = MockServer::start().await.unwrap();
    let dir = temp_dir("hostile-same");
    let lines: Vec<String> = (0..3).map(|i| chat_line(&format!("r{i}"), "hi", Some("m"))).collect();
    let input = write_input(&dir, &lines);
    let text = std::fs::read_to_string(&input).unwrap();
    let url = server.base_url();
    let mut outputs = vec![input.clone(), dir.join(".").join("in.jsonl")];
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&input, dir.join("sym.jsonl")).unwrap();
        std::fs::hard_link(&input, dir.join("hard.jsonl")).unwrap();
        outputs.push(dir.join("sym.jsonl"));
        outputs.push(dir.join("hard.jsonl"));
    }
    for output in &outputs {
        for extra in [&[][..], &["--dry-run"], &["--remote"]] {
            let mut args = vec![input.to_str().unwrap(), "-o", output.to_str().unwrap(), "--base-url", &url];
            args.extend_from_slice(extra);
            let o = batch(&args).await;
            assert_usage_error(&o, "the same file");
            assert!(stderr(&o).contains("choose another -o"), "{}", stderr(&o));
        }
    }
    #[cfg(unix)]
    {
        let mut c = cmd();
        c.arg("batch").args(["-", "-o", input.to_str().unwrap(), "--base-url", &url]);
        c.stdin(Stdio::from(std::fs::File::open(&input).unwrap()));
        let o = tokio::time::timeout(Duration::from_secs(60), c.output()).await.unwrap().unwrap();
        assert_usage_error(&o, "the input stdin is the output");
    }
    assert_eq!(std::fs::read_to_string(&input).unwrap(), text, "the requests are intact");
    assert!(server.requests().is_empty(), "nothing was sent");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Two runs on one output wrote every id twice (and a third run kept them): the second run,
/// local or remote, is refused at once naming the lock, and the output ends with each id once.
/// The first run holds the lock for as long as the checks take, however slow the machine: the
/// mock never answers one of its requests until the test stops it with Ctrl-C.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_run_on_the_same_output_is_refused() {
    let hang = Reply { delay_ms: Some(600_000), ..Reply::text("late") };
    let server = MockServer::start_with(Script::new().on(Match::contains("hang here"), hang).always(Reply::text("ok")))
        .await
        .unwrap();
    let dir = temp_dir("hostile-lock");
    // 20 requests one at a time; the 6th hangs: the first run holds the output until stopped.
    let (n, hung) = (20, 5);
    let lines: Vec<String> =
        (0..n).map(|i| chat_line(&format!("r{i}"), if i == hung { "hang here" } else { "hi" }, Some("m"))).collect();
    let input = write_input(&dir, &lines);
    let out = dir.join("out.jsonl");
    let url = server.base_url();
    let (input_s, out_s) = (input.to_str().unwrap(), out.to_str().unwrap());
    let args = [input_s, "-o", out_s, "--base-url", &url, "--concurrency", "1", "--quiet"];
    let mut c = cmd();
    c.arg("batch").args(args);
    c.stderr(Stdio::piped());
    let first = c.spawn().unwrap();
    let pid = first.id().unwrap().to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while server.chat_requests().len() <= hung {
        assert!(tokio::time::Instant::now() < deadline, "the first run did not reach the hanging request");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The same output through a symbolic link takes the same lock.
    let link = dir.join("link.jsonl");
    #[cfg(unix)]
    std::os::unix::fs::symlink(&out, &link).unwrap();
    #[cfg(not(unix))]
    let link = out.clone();
    for (output, extra) in [(out_s, &[][..]), (out_s, &["--remote"]), (link.to_str().unwrap(), &[])] {
        let mut args = vec![input_s, "-o", output, "--base-url", &url];
        args.extend_from_slice(extra);
        let o = batch(&args).await;
        assert_usage_error(&o, "another batch run");
        assert!(stderr(&o).contains("out.jsonl.lock"), "names the lock: {}", stderr(&o));
    }
    // A dry run only reads: it may look while the run goes on.
    let o = batch(&[input_s, "-o", out_s, "--dry-run"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // Ctrl-C (waits for the hung request), Ctrl-C again (aborts): sent until the run ends,
    // since a second one that comes before the first is handled may be lost.
    let wait = tokio::spawn(first.wait_with_output());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !wait.is_finished() {
        assert!(tokio::time::Instant::now() < deadline, "the first run ignores Ctrl-C");
        std::process::Command::new("kill").args(["-INT", &pid]).stderr(Stdio::null()).status().unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let first = wait.await.unwrap().unwrap();
    assert_eq!(first.status.code(), Some(130), "{}", stderr(&first));
    assert_eq!(records(&out).len(), hung, "the answers before the hung request");
    // Once it ended, the lock is free again: a run resumes and sends only what is missing.
    server.set_script(Script::new().always(Reply::text("ok")));
    let o = batch(&[input_s, "-o", out_s, "--base-url", &url, "--json"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut ids: Vec<String> = records(&out).iter().map(|r| r["custom_id"].as_str().unwrap().to_owned()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!((records(&out).len(), ids.len()), (n, n), "each id once");
    assert_eq!(server.chat_requests().len(), n + 1, "each request sent once, the hung one again");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An output that two unlocked runs left with repeated ids and junk lines: the resume says how
/// many repeats (naming some ids) and which lines are junk, keeps each id once, moves the junk
/// to OUT.invalid, and sends only what is missing.
#[tokio::test(flavor = "multi_thread")]
async fn resume_reports_repeats_and_moves_junk_aside() {
    let server = MockServer::start().await.unwrap();
    let dir = temp_dir("hostile-resume");
    let lines: Vec<String> = (0..4).map(|i| chat_line(&format!("r{i}"), "hi", Some("m"))).collect();
    let input = write_input(&dir, &lines);
    let out = dir.join("out.jsonl");
    let rec = |id: &str, n: u32| {
        format!(
            r#"{{"id":"batch_req_{n}","custom_id":"{id}","response":{{"status_code":200,"request_id":"","body":{{"n":{n}}}}},"error":null}}"#
        )
    };
    let existing = [
        rec("r0", 1),
        rec("r1", 2),
        rec("r0", 3),
        "garbage from an editor".to_owned(),
        rec("r1", 4),
        "{\"half\": ".to_owned(),
        rec("r0", 5),
    ];
    std::fs::write(&out, existing.join("\n") + "\n").unwrap();
    let url = server.base_url();
    let o = batch(&[input.to_str().unwrap(), "-o", out.to_str().unwrap(), "--base-url", &url, "--json"]).await;
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("3 lines repeated the custom_id") && err.contains(r#""r0", "r1""#), "{err}");
    assert!(err.contains("2 lines are not a batch output record (lines 4, 6)"), "{err}");
    assert!(err.contains("out.jsonl.invalid"), "{err}");
    let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((summary["skipped"].as_u64(), summary["succeeded"].as_u64()), (Some(2), Some(2)));
    let recs = records(&out);
    let mut ids: Vec<&str> = recs.iter().map(|r| r["custom_id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["r0", "r1", "r2", "r3"], "each id once");
    let first_r0 = recs.iter().find(|r| r["custom_id"] == "r0").unwrap();
    assert_eq!(first_r0["response"]["body"]["n"], 1, "the first line of an id is the one kept");
    assert_eq!(
        std::fs::read_to_string(dir.join("out.jsonl.invalid")).unwrap(),
        "garbage from an editor\n{\"half\": \n",
        "the junk is kept, not lost"
    );
    assert_eq!(server.chat_requests().len(), 2, "only the missing ids were sent");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An empty input (or blank lines only) printed "0 lines" and exited 0: it is a usage error
/// that says there is nothing to do, and nothing is written.
#[tokio::test(flavor = "multi_thread")]
async fn an_empty_input_is_nothing_to_do() {
    let dir = temp_dir("hostile-empty");
    let url = format!("http://127.0.0.1:{}/v1", closed_port());
    for (name, text) in [("empty.jsonl", ""), ("blank.jsonl", "\n   \n\n")] {
        let input = dir.join(name);
        std::fs::write(&input, text).unwrap();
        let out = dir.join("out.jsonl");
        for extra in [&[][..], &["--dry-run"], &["--remote"]] {
            let mut args = vec![input.to_str().unwrap(), "-o", out.to_str().unwrap(), "--base-url", &url];
            args.extend_from_slice(extra);
            let o = batch(&args).await;
            assert_usage_error(&o, "holds no request");
            assert!(stderr(&o).contains("nothing to do"), "{}", stderr(&o));
        }
        assert!(!out.exists(), "no output is created");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Seconds no `Duration` (or no deadline) can hold panicked: a usage error, before the output
/// is touched.
#[tokio::test(flavor = "multi_thread")]
async fn durations_past_any_clock_are_usage_errors() {
    let dir = temp_dir("hostile-durations");
    let input = write_input(&dir, &[chat_line("a", "hi", Some("m"))]);
    let out = dir.join("out.jsonl");
    let url = format!("http://127.0.0.1:{}/v1", closed_port());
    let (input_s, out_s) = (input.to_str().unwrap(), out.to_str().unwrap());
    for (args, flag) in [
        (&["--timeout", "1e20"][..], "--timeout"),
        (&["--timeout=-3"], "--timeout"),
        (&["--timeout", "inf"], "--timeout"),
        (&["--remote", "--poll-interval", "1e300"], "--poll-interval"),
        (&["--remote", "--poll-interval", "NaN"], "--poll-interval"),
    ] {
        let mut all = vec![input_s, "-o", out_s, "--base-url", &url];
        all.extend_from_slice(args);
        let o = batch(&all).await;
        assert_usage_error(&o, flag);
        assert!(!out.exists(), "{args:?}: the output is not created");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
