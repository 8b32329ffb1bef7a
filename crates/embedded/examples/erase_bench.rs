//! Times the physical erasure of deleted streams on this machine:
//!
//! ```text
//! cargo run --release -p eventstore-embedded --example erase_bench [-- <MiB> [<parent dir>]]
//! ```
//!
//! Fills a store with about `<MiB>` (default 1024) of events (1 KiB
//! payloads, 100 per append, 1,000 streams), then deletes 10% of the
//! streams and times the erasure (`EmbeddedStore::compact`: every removed
//! record rewritten in place, journaled, synced), then deletes the other
//! 90% and times that too. Prints seconds per GiB of log and of erased
//! records, and the log's size before and after (erasure keeps the file's
//! size: stubs take the records' place).

use std::sync::Arc;
use std::time::Instant;

use eventstore_core::{
    AppendRequest, EventStore, EventType, Expectation, JsonValue, NewEvent, StreamId, StreamKey,
    StreamType,
};
use eventstore_embedded::EmbeddedStore;

const STREAMS: usize = 1000;
const BATCH: usize = 100;
const PAYLOAD: usize = 1024;

fn key(i: usize) -> StreamKey {
    StreamKey::new(
        StreamType::parse("bench").unwrap(),
        StreamId::parse(format!("s-{i}")).unwrap(),
    )
}

fn batch(round: usize) -> Vec<NewEvent> {
    let text = "x".repeat(PAYLOAD);
    (0..BATCH)
        .map(|i| {
            NewEvent::new(
                EventType::parse("filled").unwrap(),
                JsonValue::from_text(format!(r#"{{"round":{round},"i":{i},"text":"{text}"}}"#))
                    .unwrap(),
            )
        })
        .collect()
}

fn log_mib(dir: &std::path::Path) -> f64 {
    std::fs::metadata(dir.join("events.log")).map_or(0.0, |m| m.len() as f64) / 1_048_576.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mib: f64 = args.next().map_or(1024.0, |a| a.parse().expect("MiB"));
    let parent = args.next().map_or_else(std::env::temp_dir, Into::into);
    let dir = tempfile::tempdir_in(parent).expect("a temporary directory");
    let store = Arc::new(EmbeddedStore::open(dir.path()).expect("open"));

    // Fill: 8 writers, each appending batches round-robin over its streams.
    let per_append = (BATCH * (PAYLOAD + 120)) as f64 / 1_048_576.0;
    let appends = (mib / per_append).ceil() as usize;
    let started = Instant::now();
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut n = w;
                while n < appends {
                    let request =
                        AppendRequest::new(key(n % STREAMS), Expectation::Any, batch(n)).unwrap();
                    store.append(request).await.expect("append");
                    n += 8;
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let filled = log_mib(dir.path());
    println!(
        "filled {filled:.0} MiB ({} events in {} streams) in {:.1} s",
        appends * BATCH,
        appends.min(STREAMS),
        started.elapsed().as_secs_f64()
    );

    let streams = appends.min(STREAMS);
    for (share, range) in [
        ("10%", 0..streams / 10),
        ("the other 90%", streams / 10..streams),
    ] {
        let deleted = range.len();
        let started = Instant::now();
        let deletions: Vec<_> = range
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move { store.delete_stream(&key(i), None).await })
            })
            .collect();
        for d in deletions {
            d.await.unwrap().expect("delete");
        }
        let answered = started.elapsed();
        store.compact().await.expect("compact");
        let took = started.elapsed().as_secs_f64();
        let erased_mib = filled * deleted as f64 / streams as f64;
        println!(
            "deleted {share} of the streams ({deleted}, about {erased_mib:.0} MiB of records): deletions answered in {:.2} s, all erased {took:.2} s after the first = {:.2} s per GiB of log, {:.2} s per GiB erased",
            answered.as_secs_f64(),
            took / (filled / 1024.0),
            took / (erased_mib / 1024.0),
        );
    }
    println!(
        "log size after erasure: {:.0} MiB (unchanged: erased records keep their length)",
        log_mib(dir.path())
    );
    store.close().await;
}
