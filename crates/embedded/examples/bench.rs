//! Prints the figures of the embedded store on this machine:
//!
//! ```text
//! cargo run --release -p eventstore-embedded --example bench [-- <parent dir>]
//! ```
//!
//! - the cost of one `fdatasync` of a small append on the data disk;
//! - one client appending single events: latency percentiles;
//! - 64 concurrent clients appending single events to 10,000 streams: events/s;
//! - reading a 100,000-event stream and the global feed: events/s;
//! - reopening (replaying the log) and the memory the index takes.

use std::fs::OpenOptions;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventstore_core::{
    AppendRequest, EventStore, EventType, Expectation, FeedFilter, JsonValue, NewEvent, Position,
    Revision, StreamId, StreamKey, StreamRead, StreamType,
};
use eventstore_embedded::EmbeddedStore;

fn key(id: &str) -> StreamKey {
    StreamKey::new(
        StreamType::parse("bench").unwrap(),
        StreamId::parse(id).unwrap(),
    )
}

fn event(i: u64) -> NewEvent {
    NewEvent::new(
        EventType::parse("bench-event").unwrap(),
        JsonValue::from_text(format!(
            r#"{{"i":{i},"text":"a payload of about a hundred bytes, like a small domain event"}}"#
        ))
        .unwrap(),
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn fdatasync_cost(dir: &std::path::Path) {
    let path = dir.join("fsync-probe");
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    let mut times = Vec::new();
    for _ in 0..300 {
        let t = Instant::now();
        f.write_all(&[7u8; 200]).unwrap();
        f.sync_data().unwrap();
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "fdatasync of a 200-byte append:        p50 {:>9.3?}  p90 {:>9.3?}  p99 {:>9.3?}",
        percentile(&times, 0.5),
        percentile(&times, 0.9),
        percentile(&times, 0.99)
    );
    std::fs::remove_file(path).unwrap();
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let parent = std::env::args()
        .nth(1)
        .map_or_else(std::env::temp_dir, Into::into);
    let dir = tempfile::tempdir_in(parent).unwrap();
    println!(
        "data dir {} ({} cores)",
        dir.path().display(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    fdatasync_cost(dir.path());
    let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());

    // One client, single-event appends.
    let mut times = Vec::new();
    for i in 0..1000 {
        let r = AppendRequest::new(key("single"), Expectation::Any, vec![event(i)]).unwrap();
        let t = Instant::now();
        store.append(r).await.unwrap();
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "1 client, single-event appends:        p50 {:>9.3?}  p90 {:>9.3?}  p99 {:>9.3?}",
        percentile(&times, 0.5),
        percentile(&times, 0.9),
        percentile(&times, 0.99)
    );

    // 64 clients, single-event appends to 10,000 streams.
    const CLIENTS: u64 = 64;
    const PER_CLIENT: u64 = 1000;
    let started = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(PER_CLIENT as usize);
                for i in 0..PER_CLIENT {
                    let stream = key(&format!("s{}", (c * 7919 + i * 104_729) % 10_000));
                    let r = AppendRequest::new(stream, Expectation::Any, vec![event(i)]).unwrap();
                    let t = Instant::now();
                    store.append(r).await.unwrap();
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    lat.sort();
    println!(
        "64 clients, single-event appends to 10,000 streams: {:.0} events/s ({} events in {:.2?}; latency p50 {:.3?} p99 {:.3?})",
        (CLIENTS * PER_CLIENT) as f64 / elapsed.as_secs_f64(),
        CLIENTS * PER_CLIENT,
        elapsed,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );

    // A 100,000-event stream, written in batches of 100.
    let big = key("big");
    let started = Instant::now();
    for b in 0..1000u64 {
        let events = (0..100).map(|i| event(b * 100 + i)).collect();
        let r = AppendRequest::new(big.clone(), Expectation::Any, events).unwrap();
        store.append(r).await.unwrap();
    }
    println!(
        "1 client, 100-event batches:           {:.0} events/s",
        100_000.0 / started.elapsed().as_secs_f64()
    );
    let read_stream = |store: Arc<EmbeddedStore>| async move {
        let started = Instant::now();
        let mut after = Revision::ZERO;
        let mut n = 0;
        loop {
            let page = store
                .read_stream(&big, StreamRead::forward_after(after, 1000))
                .await
                .unwrap();
            n += page.events.len();
            after = page.last_evaluated_revision;
            if !page.has_more {
                break;
            }
        }
        assert_eq!(n, 100_000);
        n as f64 / started.elapsed().as_secs_f64()
    };
    println!(
        "read a 100,000-event stream (pages of 1000): {:.0} events/s",
        read_stream(store.clone()).await
    );
    let read_feed = |store: Arc<EmbeddedStore>| async move {
        let started = Instant::now();
        let mut after = Position::ZERO;
        let mut n = 0;
        loop {
            let page = store
                .read_feed(&FeedFilter::All, after, 1000)
                .await
                .unwrap();
            n += page.events.len();
            after = page.last_position;
            if !page.has_more {
                break;
            }
        }
        (n, n as f64 / started.elapsed().as_secs_f64())
    };
    let (n, rate) = read_feed(store.clone()).await;
    println!("read the global feed ({n} events, pages of 1000): {rate:.0} events/s");

    // Reopen: replay of the whole log.
    store.close().await;
    drop(store);
    let size = std::fs::metadata(dir.path().join("events.log"))
        .unwrap()
        .len();
    let rss_before = rss_mib();
    let started = Instant::now();
    let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    println!(
        "reopen ({n} events, {:.1} MiB log): {:.2?}; resident memory grew by {:.1} MiB",
        size as f64 / f64::from(1u32 << 20),
        started.elapsed(),
        rss_mib() - rss_before
    );
    let (_, rate) = read_feed(store.clone()).await;
    println!("read the global feed after reopen:     {rate:.0} events/s");
    store.close().await;
}
