//! Shards: `K/N` runs take the lines whose custom_id hashes to K, so N runs (one output
//! each) cover every line exactly once, and each resumes on its own.

use mamba_batch::{Batch, Shard};
use mamba_mock::MockServer;

use crate::support::{ids, numbered, options, records, run, sorted, write_input};

#[tokio::test(flavor = "multi_thread")]
async fn shards_cover_every_line_once() {
    let server = MockServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path(), &numbered(40));
    let mut all = Vec::new();
    let mut in_shards = 0;
    for k in 0..3 {
        let shard = Shard::new(k, 3).unwrap();
        let out = dir.path().join(format!("out-{k}.jsonl"));
        let summary = run(&server, options(&input, &out).shard(Some(shard)).concurrency(4)).await.unwrap();
        let got = ids(&records(&out));
        assert!(!got.is_empty(), "shard {shard} is empty");
        assert!(got.iter().all(|id| shard.takes(id)), "shard {shard} wrote another shard's line: {got:?}");
        assert_eq!((summary.total, summary.succeeded), (got.len() as u64, got.len() as u64));
        in_shards += summary.total;
        all.extend(got);
    }
    assert_eq!(in_shards, 40);
    assert_eq!(sorted(all), sorted((0..40).map(|i| format!("r{i}")).collect()), "each line in one shard");
    assert_eq!(server.chat_requests().len(), 40);

    // A shard run again has nothing left to send.
    let out = dir.path().join("out-1.jsonl");
    let batch = Batch::open(options(&input, &out).shard(Shard::new(1, 3))).unwrap();
    assert_eq!((batch.plan().lines, batch.plan().to_send), (40, 0));
    assert_eq!(batch.plan().already_done, batch.plan().in_shard);
}
