//! End-to-end tests of `mamba-llm sql` against the mock server (a build with `--features sql`;
//! without it, the command says how to get it).

#[cfg(feature = "sql")]
mod with_sql {
    use std::path::Path;

    use mamba_mock::{Match, MockServer, Reply, Script};
    use serde_json::Value;
    use tokio::process::Command;

    use crate::common::{run, stderr, stdout, temp_dir};

    fn cmd(server: &MockServer) -> Command {
        let mut c = crate::common::cmd();
        c.arg("sql").arg("--base-url").arg(server.base_url()).arg("-m").arg("m").arg("--retries").arg("0");
        c
    }

    fn jsonl(path: &Path) -> Vec<Value> {
        std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    fn reviews(dir: &Path) -> std::path::PathBuf {
        let path = dir.join("reviews.jsonl");
        let rows: Vec<String> = ["great phone", "broke in a week", "great phone", "meh"]
            .iter()
            .enumerate()
            .map(|(i, t)| format!("{{\"id\": {i}, \"text\": \"{t}\"}}"))
            .collect();
        std::fs::write(&path, rows.join("\n") + "\n").unwrap();
        path
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_jsonl_file_named_in_the_query_to_a_jsonl_file() {
        let server = MockServer::start().await.unwrap();
        let dir = temp_dir("sql");
        let input = reviews(&dir);
        let out = dir.join("out.jsonl");
        let q = format!("SELECT id, llm('Mood of: ' || text) AS mood FROM '{}' ORDER BY id", input.display());
        let o = run(cmd(&server).arg(&q).arg("-o").arg(&out)).await;
        assert!(o.status.success(), "{}", stderr(&o));
        let rows = jsonl(&out);
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[1]["mood"], "Mood of: broke in a week");
        assert_eq!(rows[3]["id"], 3);
        assert_eq!(server.chat_requests().len(), 3, "the repeated review is sent once");
        let err = stderr(&o);
        assert!(err.contains("4 rows to") && err.contains("3 requests"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_table_flag_csv_printed_as_a_table_and_parquet_out_read_back() {
        let server = MockServer::start().await.unwrap();
        let dir = temp_dir("sql");
        let csv = dir.join("t.csv");
        std::fs::write(&csv, "id,q\n1,alpha\n2,beta\n").unwrap();
        let table = format!("docs={}", csv.display());
        let o = run(cmd(&server).args(["SELECT q, llm(q) AS a FROM docs ORDER BY q", "--table", &table])).await;
        assert!(o.status.success(), "{}", stderr(&o));
        let text = stdout(&o);
        assert!(text.contains("| alpha | alpha |") && text.contains("| beta  | beta  |"), "{text}");

        let pq = dir.join("out.parquet");
        let o =
            run(cmd(&server).args(["SELECT id, llm(q) AS a FROM docs", "--table", &table]).arg("-o").arg(&pq)).await;
        assert!(o.status.success(), "{}", stderr(&o));
        let back = format!("SELECT count(*) AS n FROM '{}' WHERE a IN ('alpha', 'beta')", pq.display());
        let o = run(cmd(&server).arg(&back)).await;
        assert!(stdout(&o).contains("| 2 "), "{}", stdout(&o));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn mistakes_are_one_line_errors_before_any_request() {
        let server = MockServer::start().await.unwrap();
        let dir = temp_dir("sql");
        let input = reviews(&dir);
        let cases = [
            ("SELECT llm(text) FROM nowhere".to_owned(), "nowhere"),
            (
                format!("SELECT llm(text, '{{\"temp\": 1}}') FROM '{}'", input.display()),
                "llm(): unknown option \"temp\"",
            ),
            (format!("SELECT llm(text, 'x') FROM '{}'", input.display()), "llm(): the options are not JSON"),
        ];
        for (q, want) in cases {
            let o = run(cmd(&server).arg(&q)).await;
            assert_eq!(o.status.code(), Some(2), "{q}: {}", stderr(&o));
            let err = stderr(&o);
            assert!(err.contains(want), "{q}: {err}");
            assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        }
        let o = run(cmd(&server).args(["SELECT 1", "--table", "bad"])).await;
        assert!(stderr(&o).contains("--table bad: give NAME=PATH"), "{}", stderr(&o));
        let o = run(cmd(&server).args(["SELECT 1", "-o", "out.txt"])).await;
        assert!(stderr(&o).contains("-o out.txt: give a .parquet"), "{}", stderr(&o));
        assert_eq!(server.chat_requests().len(), 0);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_failed_row_fails_the_run_and_the_cache_makes_the_rerun_cheap() {
        let server =
            MockServer::start_with(Script::new().on(Match::contains("meh"), Reply::status(500))).await.unwrap();
        let dir = temp_dir("sql");
        let input = reviews(&dir);
        let cache = dir.join("cache.sqlite");
        let q = format!("SELECT id, llm(text) AS a FROM '{}'", input.display());
        let o = run(cmd(&server).arg(&q).arg("--cache").arg(&cache).arg("--concurrency").arg("1")).await;
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(stderr(&o).contains("the row with input \"meh\" failed"), "{}", stderr(&o));

        // --on-error null: the run completes, the failed row's error in its own field.
        let out = dir.join("null.jsonl");
        let o = run(cmd(&server).arg(&q).args(["--on-error", "null", "-o"]).arg(&out)).await;
        assert!(o.status.success(), "{}", stderr(&o));
        let rows = jsonl(&out);
        let failed: Vec<&Value> = rows.iter().filter(|r| r["a"]["error"].is_string()).collect();
        assert_eq!(failed.len(), 1, "{rows:?}");

        // The server recovers: the re-run sends only the row not answered before.
        server.set_script(Script::new());
        server.clear_requests();
        let o = run(cmd(&server).arg(&q).arg("--cache").arg(&cache)).await;
        assert!(o.status.success(), "{}", stderr(&o));
        let sent = server.chat_requests();
        assert_eq!(sent.len(), 1, "only the failed row: {}", stderr(&o));
        assert!(String::from_utf8_lossy(&sent[0].body).contains("meh"));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn max_cost_stops_sending() {
        let server = MockServer::start_with(Script::new().always(Reply::text("ok").usage(100_000, 0))).await.unwrap();
        let dir = temp_dir("sql");
        let input = reviews(&dir);
        let q = format!("SELECT llm(text) FROM '{}'", input.display());
        let mut c = crate::common::cmd();
        c.arg("sql").arg("--base-url").arg(server.base_url()).args(["-m", "gpt-4o-mini", "--retries", "0"]);
        let o = run(c.arg(&q).args(["--max-cost", "0.001", "--concurrency", "1"])).await;
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(stderr(&o).contains("stopped at the cost cap"), "{}", stderr(&o));
        assert_eq!(server.chat_requests().len(), 1);
    }
}

#[cfg(not(feature = "sql"))]
#[tokio::test]
async fn a_build_without_sql_says_how_to_get_it() {
    let o = crate::common::run(crate::common::cmd().args(["sql", "SELECT 1"])).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(crate::common::stderr(&o).contains("--features sql"), "{}", crate::common::stderr(&o));
}

/// `sql --ballista` against `ballista scheduler` and two `ballista executor`s, each a process
/// of this binary, each executor over its own mock server (its own settings: nothing about the
/// server is in the client's command line).
#[cfg(feature = "ballista")]
mod with_ballista {
    use std::path::Path;
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    use mamba_mock::MockServer;
    use tokio::process::{Child, Command};

    use crate::common::{cmd, run, stderr, temp_dir};

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    async fn listening(port: u16) {
        let start = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(start.elapsed() < Duration::from_secs(60), "nothing listens on {port}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts `mamba-llm ARGS`, its stderr into `log`.
    fn spawn(c: &mut Command, log: &Path) -> Child {
        let log = std::fs::File::create(log).unwrap();
        c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::from(log)).kill_on_drop(true);
        c.spawn().unwrap()
    }

    fn sigterm(child: &Child) {
        let pid = child.id().unwrap().to_string();
        std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_query_on_a_cluster_of_processes_equals_the_local_run() {
        let dir = temp_dir("ballista");
        // Four files: the cluster plans one task per file group, so both executors get some.
        let input = dir.join("reviews");
        std::fs::create_dir(&input).unwrap();
        for part in 0..4 {
            let rows: Vec<String> = (part * 15..part * 15 + 15)
                .map(|i| format!("{{\"id\": {i}, \"text\": \"review {}\"}}", i % 25))
                .collect();
            std::fs::write(input.join(format!("part-{part}.jsonl")), rows.join("\n") + "\n").unwrap();
        }
        let table = format!("reviews={}", input.display());
        let q = "SELECT id, llm('Mood of: ' || text) AS mood FROM reviews ORDER BY id";

        // The same query in one process.
        let alone = MockServer::start().await.unwrap();
        let local_out = dir.join("local.jsonl");
        let o = run(cmd()
            .arg("sql")
            .arg("--base-url")
            .arg(alone.base_url())
            .args(["-m", "m", "--table", &table, "-o"])
            .arg(&local_out)
            .arg(q))
        .await;
        assert!(o.status.success(), "{}", stderr(&o));

        let scheduler = free_port();
        let mut sched = cmd();
        sched.args(["ballista", "scheduler", "--bind"]).arg(format!("127.0.0.1:{scheduler}"));
        let _scheduler = spawn(&mut sched, &dir.join("scheduler.log"));
        listening(scheduler).await;
        let servers = [MockServer::start().await.unwrap(), MockServer::start().await.unwrap()];
        let mut executors = Vec::new();
        for (i, server) in servers.iter().enumerate() {
            let flight = free_port();
            let mut c = cmd();
            c.args(["ballista", "executor", "--scheduler"])
                .arg(format!("127.0.0.1:{scheduler}"))
                .args(["--flight-port", &flight.to_string(), "--grpc-port", &free_port().to_string()])
                .args(["--vcores", "1", "--external-host", "127.0.0.1"])
                // The executor's own server settings, from its environment.
                .env("MAMBA_BASE_URL", server.base_url())
                .env("MAMBA_MODEL", "m");
            executors.push(spawn(&mut c, &dir.join(format!("executor-{i}.log"))));
            listening(flight).await;
        }

        let out = dir.join("cluster.jsonl");
        let url = format!("df://127.0.0.1:{scheduler}");
        let mut c = cmd();
        c.args(["sql", "--ballista", &url, "-o"]).arg(&out).arg(q).args(["--table", "unused=/nonexistent.csv"]);
        // A missing table is a one-line usage error before the cluster does anything.
        let o = run(&mut c).await;
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains("/nonexistent.csv: no such file"), "{}", stderr(&o));

        let mut c = cmd();
        c.args(["sql", "--ballista", &url, "--partitions", "4", "--table", &table, "-o"]).arg(&out).arg(q);
        let o = run(&mut c).await;
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stderr(&o).contains("60 rows to") && stderr(&o).contains("executors' logs"), "{}", stderr(&o));
        assert_eq!(std::fs::read_to_string(&out).unwrap(), std::fs::read_to_string(&local_out).unwrap());
        let sent: Vec<usize> = servers.iter().map(|s| s.chat_requests().len()).collect();
        assert!(sent.iter().all(|&n| n > 0), "both executors answer rows: {sent:?}");

        // Flags that belong to the executors are refused here, saying where they go.
        for flag in [&["--cache", "x.db"][..], &["--max-cost", "1"], &["--concurrency", "4"], &["--on-error", "null"]] {
            let o = run(cmd().args(["sql", "--ballista", &url]).args(flag).arg("SELECT 1")).await;
            assert_eq!(o.status.code(), Some(2), "{flag:?}: {}", stderr(&o));
            assert!(stderr(&o).contains("--ballista"), "{flag:?}: {}", stderr(&o));
        }

        // SIGTERM: an executor leaves the cluster and says what it did.
        for (i, child) in executors.iter_mut().enumerate() {
            sigterm(child);
            let status = tokio::time::timeout(Duration::from_secs(60), child.wait()).await.unwrap().unwrap();
            let log = std::fs::read_to_string(dir.join(format!("executor-{i}.log"))).unwrap();
            assert!(status.success(), "{log}");
            assert!(log.contains("executor stopped after") && log.contains(&format!("{} requests", sent[i])), "{log}");
        }
    }
}

#[cfg(not(feature = "ballista"))]
#[tokio::test]
async fn a_build_without_ballista_says_how_to_get_it() {
    let o = crate::common::run(crate::common::cmd().args(["ballista", "scheduler"])).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(crate::common::stderr(&o).contains("--features ballista"), "{}", crate::common::stderr(&o));
}
