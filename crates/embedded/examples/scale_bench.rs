//! The embedded store at scale, without the CLI: loads a store the way
//! `event-store bench --scenarios scale` does (same appends, same streams),
//! then measures open after a clean stop from a cold page cache, the
//! global feed from random positions and pages of random streams, through
//! the store's API and over HTTP (the router served in this process).
//!
//! ```text
//! cargo run --release -p eventstore-embedded --example scale_bench -- load N DIR
//! cargo run --release -p eventstore-embedded --example scale_bench -- read DIR [--warm] [--append]
//! ```
//!
//! `load` needs DIR empty or absent. `read` drops the page cache before
//! open (`sync; echo 3 > /proc/sys/vm/drop_caches`, root only; `--warm`
//! skips it) and with `--append` also times the first append after open
//! (which changes the store: one more event). It prints figures and
//! asserts nothing about time.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use eventstore_core::{
    AppendRequest, EventStore, EventType, Expectation, FeedFilter, JsonValue, NewEvent, Position,
    Revision, StreamId, StreamKey, StreamRead, StreamType,
};
use eventstore_embedded::{EmbeddedOptions, EmbeddedStore};

/// As in `crates/cli/src/scale.rs`.
const TYPE: &str = "scale";
const LONG_STREAMS: u64 = 100;
const LOADERS: u64 = 512;
const FEED_EVENTS: u64 = 200_000;
const PAGES: u64 = 2000;

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn plan(i: u64, short_streams: u64) -> (String, usize) {
    let h = mix(i);
    let events = 1 + (h >> 40) % 10;
    let id = if h.is_multiple_of(10) {
        format!("long-{}", (h >> 8) % LONG_STREAMS)
    } else {
        format!("s-{}", (h >> 8) % short_streams)
    };
    (id, events as usize)
}

fn event(i: u64) -> NewEvent {
    NewEvent::new(
        EventType::parse("scale-event").expect("valid"),
        JsonValue::from_text(format!(
            r#"{{"n":{i},"text":"a payload of about a hundred and twenty bytes, like a small domain event."}}"#
        ))
        .expect("valid JSON"),
    )
}

fn key(id: &str) -> StreamKey {
    StreamKey::new(
        StreamType::parse(TYPE).expect("valid"),
        StreamId::parse(id).expect("valid"),
    )
}

/// Opens the store; `SCALE_BENCH_CACHE_MIB` sets the index's block cache
/// (default: the store's default).
fn open(dir: &Path) -> EmbeddedStore {
    let mut options = EmbeddedOptions::default();
    if let Some(mib) = std::env::var("SCALE_BENCH_CACHE_MIB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        options.index_cache_bytes = mib << 20;
    }
    EmbeddedStore::open_with(dir, options).expect("open")
}

fn status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn dir_size(p: &Path) -> u64 {
    std::fs::read_dir(p).map_or(0, |rd| {
        rd.flatten()
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => dir_size(&e.path()),
                Ok(m) => m.len(),
                Err(_) => 0,
            })
            .sum()
    })
}

fn mib(b: u64) -> f64 {
    b as f64 / f64::from(1 << 20)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3
}

fn load_avg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

async fn load(dir: PathBuf, events: u64) {
    if dir.exists() && std::fs::read_dir(&dir).expect("DIR").next().is_some() {
        eprintln!("{} must be empty or absent", dir.display());
        std::process::exit(2);
    }
    let store = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || EmbeddedStore::open(dir))
            .await
            .expect("join")
            .expect("open")
    };
    let store = Arc::new(store);
    let short_streams = (events * 9 / 100).max(1);
    let next = Arc::new(AtomicU64::new(0));
    let loaded = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..LOADERS)
        .map(|_| {
            let (store, next, loaded) = (store.clone(), next.clone(), loaded.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let (id, n) = plan(i, short_streams);
                    let first = loaded.fetch_add(n as u64, Ordering::Relaxed);
                    if first >= events {
                        return;
                    }
                    let n = (n as u64).min(events - first);
                    let batch = (first..first + n).map(event).collect();
                    store
                        .append(
                            AppendRequest::new(key(&id), Expectation::Any, batch).expect("valid"),
                        )
                        .await
                        .expect("append");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("loader");
    }
    let took = started.elapsed();
    store.close().await;
    println!(
        "loaded {events} events in {:.1} s = {:.0} events/s; data dir {:.0} MiB, index {:.0} MiB; load average {}",
        took.as_secs_f64(),
        events as f64 / took.as_secs_f64(),
        mib(dir_size(&dir)),
        mib(dir_size(&dir.join("index"))),
        load_avg()
    );
}

/// Reads the global feed from random positions as the CLI's scenario
/// does (pages of 1,000, ten pages from each position); `page` reads one
/// page after a position and returns (events, last position). Returns
/// events/s.
async fn feed<F, Fut>(events: u64, seed: u64, mut page: F) -> f64
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = (usize, u64)>,
{
    let mut read = 0u64;
    let mut k = 0;
    let t = Instant::now();
    while read < FEED_EVENTS.min(events) {
        let mut after = mix(k ^ seed) % events.saturating_sub(10_000).max(1);
        k += 1;
        for _ in 0..10 {
            let (n, last) = page(after).await;
            read += n as u64;
            after = last;
            if n < 1000 {
                break;
            }
        }
    }
    read as f64 / t.elapsed().as_secs_f64()
}

async fn read(dir: PathBuf, warm: bool, append: bool) {
    if !warm {
        let dropped = std::process::Command::new("sync")
            .status()
            .is_ok_and(|s| s.success())
            && std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok();
        println!(
            "page cache {}",
            if dropped {
                "dropped before open"
            } else {
                "NOT dropped (not root?)"
            }
        );
    }
    println!("load average before open: {}", load_avg());
    let t = Instant::now();
    let store = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || open(&dir))
            .await
            .expect("join")
    };
    let open = t.elapsed();
    let stats = store.open_stats();
    println!(
        "open after a clean stop: {:.3} s (replayed {} events, rebuilt: {:?}); RSS {:.0} MiB",
        open.as_secs_f64(),
        stats.replayed_events,
        stats.rebuilt,
        status_mib("VmRSS:")
    );
    let store = Arc::new(store);
    let events = last_position(&store).await;
    let short_streams = (events * 9 / 100).max(1);

    // Pages of 100 events of random streams.
    let mut times = Vec::new();
    let mut first_page = None;
    for i in 0..PAGES {
        let (id, _) = plan(mix(i ^ 0xABCD) % (events / 6).max(1), short_streams);
        let k = key(&id);
        let t = Instant::now();
        let info = store
            .stream_info(&k)
            .await
            .expect("info")
            .expect("a stream");
        let revision = info.revision.get();
        let after = mix(i) % revision.max(1);
        let page = store
            .read_stream(&k, StreamRead::forward_after(Revision::new(after), 100))
            .await
            .expect("page");
        let took = t.elapsed();
        first_page.get_or_insert(took);
        times.push(took);
        assert_eq!(page.events.len() as u64, (revision - after).min(100));
    }
    times.sort();
    println!(
        "details + page of 100 of a random stream (store API, {PAGES}): first {:.2} ms, p50 {:.3} ms, p99 {:.3} ms",
        first_page.unwrap_or_default().as_secs_f64() * 1e3,
        pct(&times, 0.5),
        pct(&times, 0.99)
    );

    let rate = feed(events, 0x5EED, |after| {
        let store = store.clone();
        async move {
            let p = store
                .read_feed(&FeedFilter::All, Position::new(after), 1000)
                .await
                .expect("feed");
            (p.events.len(), p.last_position.get())
        }
    })
    .await;
    println!("global feed from random positions (store API, pages of 1,000): {rate:.0} events/s");

    let app = eventstore_http::router(eventstore_http::AppState::new(store.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();
    let rate = feed(events, 0xF00D, |after| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let v: serde_json::Value = http
                .get(format!("{url}/events?after-position={after}&limit=1000"))
                .send()
                .await
                .expect("GET")
                .json()
                .await
                .expect("JSON");
            let n = v
                .pointer("/eventPage/events")
                .and_then(serde_json::Value::as_array)
                .map_or(0, Vec::len);
            let last = v
                .pointer("/eventPage/lastPosition")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(after);
            (n, last)
        }
    })
    .await;
    println!(
        "global feed from random positions (HTTP in this process, pages of 1,000): {rate:.0} events/s"
    );
    server.abort();
    println!(
        "RSS after the reads {:.0} MiB (peak {:.0} MiB); load average {}",
        status_mib("VmRSS:"),
        status_mib("VmHWM:"),
        load_avg()
    );
    if append {
        let t = Instant::now();
        store
            .append(
                AppendRequest::new(key("s-0"), Expectation::Any, vec![event(u64::MAX)])
                    .expect("valid"),
            )
            .await
            .expect("append");
        println!(
            "first append after the reads: {:.1} ms; RSS {:.0} MiB",
            t.elapsed().as_secs_f64() * 1e3,
            status_mib("VmRSS:")
        );
    }
    store.close().await;
}

/// The global feed through the store's API only, without dropping the
/// page cache (for a profiler): a million events from random positions.
async fn feed_only(dir: PathBuf) {
    let store = Arc::new(open(&dir));
    let events = last_position(&store).await;
    let t = Instant::now();
    let mut rate = 0.0;
    for round in 0..5 {
        rate = feed(events, 0x5EED + round, |after| {
            let store = store.clone();
            async move {
                let p = store
                    .read_feed(&FeedFilter::All, Position::new(after), 1000)
                    .await
                    .expect("feed");
                (p.events.len(), p.last_position.get())
            }
        })
        .await;
    }
    println!(
        "global feed from random positions (store API, pages of 1,000): {rate:.0} events/s (last of 5 rounds, {:.1} s in all)",
        t.elapsed().as_secs_f64()
    );
    store.close().await;
}

/// The store's last position, found from the feed.
async fn last_position(store: &EmbeddedStore) -> u64 {
    let (mut lo, mut hi) = (0u64, 1u64 << 40);
    while lo + 1 < hi {
        let mid = lo + (hi - lo) / 2;
        let p = store
            .read_feed(&FeedFilter::All, Position::new(mid), 1)
            .await
            .expect("feed");
        if p.events.is_empty() {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["load", n, dir] => load(dir.into(), n.parse().expect("N is a number")).await,
        ["feed", dir] => feed_only(dir.into()).await,
        ["read", dir, ref flags @ ..] => {
            read(
                dir.into(),
                flags.contains(&"--warm"),
                flags.contains(&"--append"),
            )
            .await;
        }
        _ => {
            eprintln!("usage: scale_bench load N DIR | read DIR [--warm] [--append]");
            std::process::exit(2);
        }
    }
}
