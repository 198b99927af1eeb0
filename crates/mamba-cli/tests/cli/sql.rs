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
