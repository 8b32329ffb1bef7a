//! `event-store bench --scenarios scale`: how the embedded store's costs grow
//! with the number of events it holds.
//!
//! 1. Loads N events into a new data directory with a direct loader (the
//!    store's API in this process, no HTTP: loading 10 million events
//!    through HTTP would take most of the run), across a mix of stream
//!    lengths: 10% of the appends go to 100 long streams, the rest to many
//!    short ones (about 10 events each); appends carry 1–10 events of about
//!    120 bytes, from many concurrent tasks so that streams interleave in
//!    the log as they do under real load.
//! 2. Starts `event-store serve` on it and measures the time from start to
//!    the first answer (open after a clean stop), how many events of the
//!    log that open replayed (none: the index was checkpointed at the
//!    stop) and the server's resident memory.
//! 3. Over HTTP, one client: pages of 100 events of random streams (p50,
//!    p99) and the global feed from random positions in pages of 1,000
//!    (events/s); the resident memory again.
//! 4. Appends over HTTP from 8 clients, kills the server with SIGKILL in the
//!    middle, starts it again and measures the time to the first answer
//!    (open after SIGKILL) and the events it replayed (the tail after the
//!    index's last checkpoint); checks that every acknowledged append is
//!    there.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use eventstore_core::{
    AppendRequest, EventStore, EventType, Expectation, JsonValue, NewEvent, StreamId, StreamKey,
    StreamType,
};
use eventstore_embedded::EmbeddedStore;

use crate::feed_reader::{FeedReader, mix};
use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// The stream type of the loaded streams.
const TYPE: &str = "scale";
/// Long streams (10% of the appends).
const LONG_STREAMS: u64 = 100;
/// Appends in flight while loading.
const LOADERS: u64 = 512;
/// The most feed events read over HTTP.
const FEED_EVENTS: u64 = 200_000;
/// HTTP clients of the append-rate comparison, and how long each side runs.
const RATE_CLIENTS: u64 = 64;
const RATE_TIME: Duration = Duration::from_secs(3);

/// The stream id and event count of append number `i`.
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

/// One figure of the report.
struct Figures(Vec<(&'static str, Value, String)>);

impl Figures {
    fn add(&mut self, key: &'static str, value: Value, text: String) {
        self.0.push((key, value, text));
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
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

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// A server started on the data directory.
struct Server {
    /// Taken by `kill` and `stop`; killed on drop otherwise (an error in
    /// the middle of the run leaves no server behind).
    child: Option<Child>,
    url: String,
    /// From start to its first answer.
    open: Duration,
}

impl Server {
    async fn start(dir: &Path, http: &reqwest::Client) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding this program")?;
        let started = Instant::now();
        let mut child = Command::new(exe)
            .args(["serve", "--port", "0", "--data-dir"])
            .arg(dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting event-store serve")?;
        let stdout = child.stdout.take().context("the server's stdout")?;
        // The server says where it starts, then where it listens once the
        // store is open.
        let line = tokio::task::spawn_blocking(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line)? == 0 || line.starts_with("listening on ") {
                    return Ok::<_, std::io::Error>(line);
                }
            }
        })
        .await??;
        let Some(url) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            bail!("the server did not start: {line:?}");
        };
        let url = url.to_owned();
        loop {
            if let Ok(r) = http.get(format!("{url}/readiness-check")).send().await
                && r.status().is_success()
            {
                break;
            }
            if started.elapsed() > Duration::from_secs(600) {
                let _ = child.kill();
                bail!("the server did not answer within 10 minutes");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(Self {
            open: started.elapsed(),
            child: Some(child),
            url,
        })
    }

    /// Events of the log that open replayed (those after the index's
    /// checkpoint), from the server's metrics.
    async fn replayed_events(&self, http: &reqwest::Client) -> anyhow::Result<f64> {
        let text = http
            .get(format!("{}/metrics", self.url))
            .send()
            .await?
            .text()
            .await?;
        text.lines()
            .find_map(|l| l.strip_prefix("eventstore_open_replayed_events "))
            .and_then(|v| v.trim().parse().ok())
            .context("eventstore_open_replayed_events in the server's metrics")
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// SIGKILL, and wait for the process to be gone.
    fn kill(mut self) -> anyhow::Result<()> {
        let mut child = self.child.take().context("the server is gone")?;
        child.kill().context("killing the server")?;
        child.wait().context("waiting for the server")?;
        Ok(())
    }

    /// SIGTERM (a clean stop), and wait for it.
    fn stop(mut self) -> anyhow::Result<()> {
        let mut child = self.child.take().context("the server is gone")?;
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .context("sending SIGTERM")?;
        if !status.success() {
            bail!("kill -TERM failed");
        }
        let exited = child.wait().context("waiting for the server")?;
        if !exited.success() {
            bail!("the server exited with {exited} after SIGTERM");
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Loads `events` events into a new store in `dir`; returns the appends
/// made, the ids of the streams written (sorted) and the time it took.
async fn load(dir: &Path, events: u64) -> anyhow::Result<(u64, Vec<String>, Duration)> {
    let store = {
        let dir = dir.to_path_buf();
        tokio::task::spawn_blocking(move || EmbeddedStore::open(dir)).await??
    };
    let store = Arc::new(store);
    let short_streams = (events * 9 / 100).max(1);
    // Append numbers are taken in order; the events they carry are counted
    // until `events` is reached, so the last append may be cut short.
    let next = Arc::new(AtomicU64::new(0));
    let loaded = Arc::new(AtomicU64::new(0));
    let stream_type = StreamType::parse(TYPE).expect("valid");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..LOADERS {
        let (store, next, loaded, stream_type) = (
            store.clone(),
            next.clone(),
            loaded.clone(),
            stream_type.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut written = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let (id, n) = plan(i, short_streams);
                let first = loaded.fetch_add(n as u64, Ordering::Relaxed);
                if first >= events {
                    return Ok::<_, anyhow::Error>(written);
                }
                let n = (n as u64).min(events - first);
                let key = StreamKey::new(stream_type.clone(), StreamId::parse(&id)?);
                let batch = (first..first + n).map(event).collect();
                store
                    .append(AppendRequest::new(key, Expectation::Any, batch)?)
                    .await?;
                written.push(id);
            }
        }));
    }
    let mut ids = std::collections::HashSet::new();
    let mut appends = 0;
    for t in tasks {
        let written = t.await??;
        appends += written.len() as u64;
        ids.extend(written);
    }
    let elapsed = started.elapsed();
    store.close().await;
    let mut ids: Vec<String> = ids.into_iter().collect();
    ids.sort();
    Ok((appends, ids, elapsed))
}

/// Durable single-event appends per second over HTTP from
/// [`RATE_CLIENTS`] clients for [`RATE_TIME`], each to its own stream.
async fn append_rate(http: &reqwest::Client, url: &str, tag: &str) -> anyhow::Result<f64> {
    let stop = Instant::now() + RATE_TIME;
    let mut clients = Vec::new();
    for c in 0..RATE_CLIENTS {
        let (http, url) = (
            http.clone(),
            format!("{url}/streams/{TYPE}/rate-{tag}-{c}/events"),
        );
        clients.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < stop {
                let body = json!({"expectedRevision": "any", "events": [
                    {"eventType": "scale-event", "payload": {"n": n, "client": c}}]});
                let r = http.post(&url).json(&body).send().await?;
                if !r.status().is_success() {
                    bail!("append answered {}", r.status());
                }
                n += 1;
            }
            Ok(n)
        }));
    }
    let started = Instant::now();
    let mut total = 0;
    for c in clients {
        total += c.await??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

async fn get(http: &reqwest::Client, url: &str) -> anyhow::Result<Value> {
    let r = http.get(url).send().await.context("read request")?;
    if !r.status().is_success() {
        bail!("GET {url} answered {}", r.status());
    }
    Ok(r.json().await?)
}

/// Runs the scenario and prints its figures (text or one JSON object).
pub async fn run(dir: &Path, events: u64, pages: u64, as_json: bool) -> anyhow::Result<()> {
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!(
            "the scale scenario loads a new store: {} must be empty or absent",
            dir.display()
        );
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let mut f = Figures(Vec::new());

    let (appends, ids, took) = load(dir, events).await?;
    let rate = events as f64 / took.as_secs_f64();
    f.add(
        "loadEventsPerSecond",
        json!(rate),
        format!(
            "loaded {events} events in {appends} appends in {:.1} s = {rate:.0} events/s (direct, {LOADERS} appends in flight)",
            took.as_secs_f64()
        ),
    );
    let size = dir_size(dir);
    let index_size = dir_size(&dir.join("index"));
    f.add(
        "fileMiB",
        json!(mib(size)),
        format!("data directory: {:.0} MiB", mib(size)),
    );
    f.add(
        "indexMiB",
        json!(mib(index_size)),
        format!(
            "  of which the index (runs, feed.idx, MANIFEST): {:.0} MiB",
            mib(index_size)
        ),
    );
    f.add(
        "streams",
        json!(ids.len()),
        format!("{} streams", ids.len()),
    );

    let server = Server::start(dir, &http).await?;
    f.add(
        "openAfterStopSeconds",
        json!(server.open.as_secs_f64()),
        format!(
            "open after a clean stop: {:.3} s to the first answer",
            server.open.as_secs_f64()
        ),
    );
    let replayed = server.replayed_events(&http).await?;
    f.add(
        "openAfterStopReplayedEvents",
        json!(replayed),
        format!("  events of the log replayed by that open: {replayed}"),
    );
    let rss_open = rss_mib(server.pid());
    f.add(
        "rssAfterOpenMiB",
        json!(rss_open),
        format!("server resident memory after open: {rss_open:.0} MiB"),
    );

    // Pages of 100 events of random streams, from a random revision.
    let mut h = histogram();
    for i in 0..pages.max(1) {
        let id = &ids[(mix(i ^ 0xABCD) % ids.len() as u64) as usize];
        let info = get(
            &http,
            &format!("{}/streams/{TYPE}/{id}/details", server.url),
        )
        .await?;
        let revision = info
            .pointer("/stream/revision")
            .or_else(|| info.get("revision"))
            .and_then(Value::as_u64)
            .context("the stream's revision in its details")?;
        let after = mix(i) % revision.max(1);
        let url = format!(
            "{}/streams/{TYPE}/{id}/events?after-revision={after}&limit=100",
            server.url
        );
        let t = Instant::now();
        let page = get(&http, &url).await?;
        h.record(t.elapsed().as_micros() as u64)?;
        let n = page
            .pointer("/eventPage/events")
            .and_then(Value::as_array)
            .map_or(0, Vec::len) as u64;
        if n != (revision - after).min(100) {
            bail!(
                "stream {id} from revision {after}: {n} events, expected {}",
                (revision - after).min(100)
            );
        }
    }
    let (p50, p99) = (
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
    );
    f.add(
        "pageP50Ms",
        json!(p50),
        format!(
            "page of 100 events of a random stream (HTTP, 1 client, {pages} pages): p50 {p50:.2} ms"
        ),
    );
    f.add("pageP99Ms", json!(p99), format!("  p99 {p99:.2} ms"));

    // The global feed from random positions, pages of 1,000: one reader
    // waiting for each page, then one asking for the next page (named by
    // the answer's `Link` header) before it parses the current one.
    let reader = FeedReader {
        http: http.clone(),
        url: server.url.clone(),
        api_key: None,
    };
    let total = FEED_EVENTS.min(events).min(pages.max(1) * 100);
    let sequential = reader.read(events, total, 0x5EED, false).await?;
    f.add(
        "feedEventsPerSecond",
        json!(sequential.rate()),
        format!(
            "global feed from random positions (HTTP, pages of 1,000, one reader): {:.0} events/s",
            sequential.rate()
        ),
    );
    let prefetching = reader.read(events, total, 0xFEED, true).await?;
    f.add(
        "feedPrefetchingEventsPerSecond",
        json!(prefetching.rate()),
        format!(
            "  one reader asking for the next page before it parses the current one: {:.0} events/s",
            prefetching.rate()
        ),
    );
    let rss_reads = rss_mib(server.pid());
    f.add(
        "rssAfterReadsMiB",
        json!(rss_reads),
        format!("server resident memory after the reads: {rss_reads:.0} MiB"),
    );
    server.stop()?;

    // Appends to this store against appends to an empty one, in the same
    // run (the machine's noise is shared).
    let server = Server::start(dir, &http).await?;
    let full_rate = append_rate(&http, &server.url, "full").await?;
    server.stop()?;
    let empty = dir.with_file_name(format!(
        ".{}-empty-{}",
        dir.file_name()
            .map_or("scale".into(), |n| n.to_string_lossy()),
        std::process::id()
    ));
    let server = Server::start(&empty, &http).await?;
    let empty_rate = append_rate(&http, &server.url, "empty").await;
    server.stop()?;
    std::fs::remove_dir_all(&empty)?;
    let empty_rate = empty_rate?;
    f.add(
        "appendsPerSecond",
        json!(full_rate),
        format!(
            "appends to this store (HTTP, {RATE_CLIENTS} clients, single events, durable): {full_rate:.0}/s"
        ),
    );
    f.add(
        "emptyStoreAppendsPerSecond",
        json!(empty_rate),
        format!(
            "  to an empty store, same run: {empty_rate:.0}/s (this store at {:.0} % of it)",
            100.0 * full_rate / empty_rate
        ),
    );

    // Open after SIGKILL: kill while appends are in flight.
    let server = Server::start(dir, &http).await?;
    let acknowledged = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for c in 0..8u64 {
        let (http, url, acknowledged) = (http.clone(), server.url.clone(), acknowledged.clone());
        writers.push(tokio::spawn(async move {
            for j in 0.. {
                let body = json!({"expectedRevision": "any", "events": [
                    {"eventType": "scale-event", "payload": {"kill": j, "client": c}}]});
                let sent = http
                    .post(format!("{url}/streams/{TYPE}/killed-{c}/events"))
                    .json(&body)
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() => {
                        acknowledged.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => return,
                }
            }
        }));
    }
    while acknowledged.load(Ordering::Relaxed) < 200 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill()?;
    for w in writers {
        let _ = w.await;
    }
    let acked = acknowledged.load(Ordering::Relaxed);
    let server = Server::start(dir, &http).await?;
    f.add(
        "openAfterKillSeconds",
        json!(server.open.as_secs_f64()),
        format!(
            "open after SIGKILL: {:.3} s to the first answer",
            server.open.as_secs_f64()
        ),
    );
    let replayed = server.replayed_events(&http).await?;
    f.add(
        "openAfterKillReplayedEvents",
        json!(replayed),
        format!(
            "  events of the log replayed by that open (the tail after the checkpoint): {replayed}"
        ),
    );
    let mut found = 0;
    for c in 0..8u64 {
        let r = http
            .get(format!("{}/streams/{TYPE}/killed-{c}/details", server.url))
            .send()
            .await?;
        if r.status().is_success() {
            let v: Value = r.json().await?;
            found += v
                .pointer("/stream/revision")
                .or_else(|| v.get("revision"))
                .and_then(Value::as_u64)
                .unwrap_or(0);
        }
    }
    if found < acked {
        bail!("after SIGKILL: {acked} appends acknowledged, only {found} found");
    }
    server.stop()?;

    if as_json {
        let obj: serde_json::Map<String, Value> =
            f.0.into_iter()
                .map(|(k, v, _)| (k.to_owned(), v))
                .chain([
                    ("scenario".to_owned(), json!("scale")),
                    ("events".to_owned(), json!(events)),
                ])
                .collect();
        println!("{}", Value::Object(obj));
    } else {
        for (_, _, text) in f.0 {
            println!("{text}");
        }
    }
    Ok(())
}
