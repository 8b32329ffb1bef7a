//! `event-store bench`: load against a running server over HTTP.
//!
//! Prints appended events/s with p50/p99 latency for single-event appends by
//! one client and by many clients, batch appends by many clients, and read
//! throughput for paging one long stream and the global feed. With
//! `--idle-long-polls N` it holds N long polls on a quiet stream type open
//! for the whole run, to show what idle waiters cost the writers. Figures,
//! not verdicts: the machine running the bench is part of the measurement.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// Options of `event-store bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Base URL of the server under test.
    #[arg(long, env = "EVENT_STORE_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// API key, when the server requires one.
    #[arg(long, env = "EVENT_STORE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Scenarios to run (comma-separated): single, concurrent, batch, read,
    /// feed (reads only); or scale (alone), which starts its own servers on
    /// `--data-dir`.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "single,concurrent,batch,read"
    )]
    pub scenarios: Vec<Scenario>,
    /// Appends made by the single-client scenario.
    #[arg(long, default_value_t = 2_000)]
    pub single_appends: u64,
    /// Concurrent clients in the concurrent and batch scenarios.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Distinct streams written by the concurrent scenario.
    #[arg(long, default_value_t = 10_000)]
    pub streams: u64,
    /// Appends made by the concurrent scenario (in total).
    #[arg(long, default_value_t = 50_000)]
    pub concurrent_appends: u64,
    /// Batch appends (10 events each) made by the batch scenario (in total).
    #[arg(long, default_value_t = 5_000)]
    pub batches: u64,
    /// Events in the stream read by the read scenario.
    #[arg(long, default_value_t = 100_000)]
    pub read_events: u64,
    /// Payload size in bytes of each event.
    #[arg(long, default_value_t = 100)]
    pub payload_bytes: usize,
    /// Long polls (`wait=30`) held open on a stream type nobody writes,
    /// for the whole run (each one re-asks when answered). The server's
    /// `--max-long-polls` and `--max-connections` must leave room for them.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub idle_long_polls: usize,
    /// Events read by each reader of the feed scenario.
    #[arg(long, default_value_t = 200_000, value_name = "N")]
    pub feed_events: u64,
    /// Events loaded by the scale scenario.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Pages of 100 events of random streams read by the scale scenario;
    /// it reads the global feed for 100 times as many events (at most
    /// 200,000).
    #[arg(long, default_value_t = 2_000, value_name = "N")]
    pub scale_pages: u64,
    /// The scale scenario's data directory: it must be empty or absent
    /// (the scenario loads a new store there and leaves it).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<std::path::PathBuf>,
    /// Print one JSON object per scenario instead of text.
    #[arg(long)]
    pub json: bool,
}

/// A bench scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// One client, single-event appends to one stream, sequentially.
    Single,
    /// Many clients, single-event appends spread over many streams.
    Concurrent,
    /// Many clients, batch appends of 10 events.
    Batch,
    /// Paging a long stream and the global feed.
    Read,
    /// The global feed of the server as it is, from random positions in
    /// pages of 1,000 (`--feed-events` events): one reader waiting for each
    /// page, then one asking for the next page (the answer's `Link`
    /// header) before it parses the current one. Writes nothing.
    Feed,
    /// How the embedded store's costs grow with its size: loads
    /// `--events` events into `--data-dir` and measures open times, memory
    /// and reads on servers it starts itself (see `scale.rs`).
    Scale,
}

struct Target {
    http: reqwest::Client,
    url: String,
    api_key: Option<String>,
    payload: Value,
    run: String,
}

impl Target {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let rb = self.http.request(method, format!("{}{}", self.url, path));
        match &self.api_key {
            Some(k) => rb.bearer_auth(k),
            None => rb,
        }
    }

    fn events(&self, n: usize) -> Value {
        Value::Array(
            (0..n)
                .map(|_| json!({"eventType": "bench-event", "payload": self.payload}))
                .collect(),
        )
    }

    async fn append(&self, stream_type: &str, stream_id: &str, n: usize) -> anyhow::Result<()> {
        let body = json!({"expectedRevision": "any", "events": self.events(n)});
        let resp = self
            .request(
                reqwest::Method::POST,
                &format!("/streams/{stream_type}/{stream_id}/events"),
            )
            .json(&body)
            .send()
            .await
            .context("append request")?;
        if !resp.status().is_success() {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            bail!("append answered {status}: {text}");
        }
        Ok(())
    }

    async fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        let resp = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .context("read request")?;
        if !resp.status().is_success() {
            bail!("GET {path} answered {}", resp.status());
        }
        Ok(resp.json().await?)
    }

    async fn get_page(&self, path: &str) -> anyhow::Result<Page> {
        let resp = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .context("read request")?;
        if !resp.status().is_success() {
            bail!("GET {path} answered {}", resp.status());
        }
        let bytes = resp.bytes().await?;
        let envelope: PageEnvelope = serde_json::from_slice(&bytes)?;
        Ok(envelope.event_page)
    }
}

/// The parts of an event page the bench looks at; events are skipped, not
/// built, so that the client spends as little CPU as possible.
#[derive(serde::Deserialize)]
struct PageEnvelope {
    #[serde(rename = "eventPage")]
    event_page: Page,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    events: Vec<serde::de::IgnoredAny>,
    has_more: bool,
    last_evaluated_revision: Option<u64>,
    last_position: Option<u64>,
}

struct Report {
    name: &'static str,
    events: u64,
    elapsed: Duration,
    latency: Option<Histogram<u64>>,
}

impl Report {
    fn print(&self, as_json: bool) {
        let rate = self.events as f64 / self.elapsed.as_secs_f64();
        let (p50, p99) = match &self.latency {
            Some(h) => (
                Some(h.value_at_quantile(0.5) as f64 / 1000.0),
                Some(h.value_at_quantile(0.99) as f64 / 1000.0),
            ),
            None => (None, None),
        };
        if as_json {
            println!(
                "{}",
                json!({"scenario": self.name, "events": self.events,
                       "seconds": self.elapsed.as_secs_f64(), "eventsPerSecond": rate,
                       "p50Ms": p50, "p99Ms": p99})
            );
        } else {
            let lat = match (p50, p99) {
                (Some(a), Some(b)) => format!("  p50 {a:.2} ms  p99 {b:.2} ms"),
                _ => String::new(),
            };
            println!(
                "{:<44} {:>9} events in {:>7.2} s = {:>10.0} events/s{lat}",
                self.name,
                self.events,
                self.elapsed.as_secs_f64(),
                rate
            );
        }
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

/// Runs the bench and prints one line (or JSON object) per scenario.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.scenarios.contains(&Scenario::Scale) {
        if args.scenarios.len() > 1 {
            bail!("the scale scenario runs alone: it starts its own servers");
        }
        let Some(dir) = &args.data_dir else {
            bail!("the scale scenario needs --data-dir (an empty or absent directory)");
        };
        return crate::scale::run(dir, args.events, args.scale_pages, args.json).await;
    }
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients.max(1) * 2)
        .timeout(Duration::from_secs(60))
        .build()?;
    let target = Arc::new(Target {
        http,
        url: args.url.trim_end_matches('/').to_owned(),
        api_key: args.api_key.clone(),
        payload: json!({"data": "x".repeat(args.payload_bytes.saturating_sub(11))}),
        run: uuid::Uuid::now_v7()
            .simple()
            .to_string()
            .chars()
            .take(12)
            .collect(),
    });
    target
        .get_json("/liveness-check")
        .await
        .with_context(|| format!("no event store answering at {}", target.url))?;
    if !args.json {
        println!(
            "event-store bench against {} ({} cores here, payload {} bytes)",
            target.url,
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            args.payload_bytes
        );
    }
    let idle = IdlePolls::start(&target, args.idle_long_polls).await?;
    for scenario in &args.scenarios {
        let reports = match scenario {
            Scenario::Single => vec![single(&target, args.single_appends).await?],
            Scenario::Concurrent => vec![
                many(
                    &target,
                    "concurrent single-event appends",
                    args.clients,
                    args.concurrent_appends,
                    args.streams,
                    1,
                )
                .await?,
            ],
            Scenario::Batch => vec![
                many(
                    &target,
                    "concurrent batch appends (10 events)",
                    args.clients,
                    args.batches,
                    args.streams,
                    10,
                )
                .await?,
            ],
            Scenario::Read => read(&target, args.read_events).await?,
            Scenario::Feed => feed(&target, args.feed_events).await?,
            Scenario::Scale => bail!("the scale scenario runs alone"),
        };
        for r in reports {
            r.print(args.json);
        }
    }
    if let Some(idle) = idle {
        idle.finish(args.json)?;
    }
    Ok(())
}

/// The feed scenario: the server's global feed as it is, read from random
/// positions below its head by one reader, then by one that prefetches.
async fn feed(t: &Target, total: u64) -> anyhow::Result<Vec<Report>> {
    let reader = crate::feed_reader::FeedReader {
        http: t.http.clone(),
        url: t.url.clone(),
        api_key: t.api_key.clone(),
    };
    let head = reader.head().await?;
    if head == 0 {
        bail!("the feed scenario reads a server's feed: this one has no events");
    }
    // New positions at every run and for each reader: pages a run read
    // before are in the page cache.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut reports = Vec::new();
    for (i, (name, prefetch)) in [
        ("global feed, one reader, pages of 1,000", false),
        ("global feed, one reader prefetching pages", true),
    ]
    .into_iter()
    .enumerate()
    {
        let r = reader
            .read(head, total, seed.wrapping_add(i as u64), prefetch)
            .await?;
        reports.push(Report {
            name,
            events: r.events,
            elapsed: r.elapsed,
            latency: None,
        });
    }
    Ok(reports)
}

/// Long polls held on a quiet type while the scenarios run.
struct IdlePolls {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    answers: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    count: usize,
}

impl IdlePolls {
    /// Starts `count` long polls (none when 0) and waits until the server
    /// holds them all, so that the scenarios run beside them.
    async fn start(target: &Arc<Target>, count: usize) -> anyhow::Result<Option<Self>> {
        if count == 0 {
            return Ok(None);
        }
        // Own connections, so that the polls never take the writers' ones.
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(count)
            .timeout(Duration::from_secs(60))
            .build()?;
        let path = format!("/streams/bench-quiet-{}/events?wait=30", target.run);
        let answers = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let started = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::with_capacity(count);
        for _ in 0..count {
            let http = http.clone();
            let url = format!("{}{path}", target.url);
            let key = target.api_key.clone();
            let (answers, refused, failed, started) = (
                answers.clone(),
                refused.clone(),
                failed.clone(),
                started.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut first = true;
                loop {
                    let mut rb = http.get(&url);
                    if let Some(k) = &key {
                        rb = rb.bearer_auth(k);
                    }
                    let sent = rb.send();
                    if first {
                        started.fetch_add(1, Ordering::Relaxed);
                        first = false;
                    }
                    match sent.await {
                        Ok(r) if r.status().as_u16() == 503 => {
                            refused.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                            answers.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
            }));
        }
        // Every poll sent, then a pause for the server to take them in.
        while started.load(Ordering::Relaxed) < count as u64 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let r = refused.load(Ordering::Relaxed);
        let f = failed.load(Ordering::Relaxed);
        if r > 0 || f > 0 {
            bail!(
                "the server did not hold {count} long polls ({r} refused with 503, {f} failed): \
                 raise its --max-long-polls and --max-connections"
            );
        }
        Ok(Some(Self {
            tasks,
            answers,
            refused,
            failed,
            count,
        }))
    }

    fn finish(self, as_json: bool) -> anyhow::Result<()> {
        for t in &self.tasks {
            t.abort();
        }
        let (answers, refused, failed) = (
            self.answers.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        );
        if as_json {
            println!(
                "{}",
                json!({"idleLongPolls": self.count, "answers": answers,
                       "refused": refused, "failed": failed})
            );
        } else {
            println!(
                "{} idle long polls held on a quiet type: {answers} answered (empty, after wait=30), {refused} refused, {failed} failed",
                self.count
            );
        }
        if refused > 0 || failed > 0 {
            bail!("some idle long polls were refused or failed during the run");
        }
        Ok(())
    }
}

async fn single(target: &Target, appends: u64) -> anyhow::Result<Report> {
    let stream_id = format!("single-{}", target.run);
    let mut h = histogram();
    let start = Instant::now();
    for _ in 0..appends {
        let t = Instant::now();
        target.append("bench", &stream_id, 1).await?;
        h.record(t.elapsed().as_micros() as u64)?;
    }
    Ok(Report {
        name: "1 client, single-event appends",
        events: appends,
        elapsed: start.elapsed(),
        latency: Some(h),
    })
}

async fn many(
    target: &Arc<Target>,
    name: &'static str,
    clients: usize,
    appends: u64,
    streams: u64,
    batch: usize,
) -> anyhow::Result<Report> {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let target = Arc::clone(target);
        let next = Arc::clone(&next);
        tasks.push(tokio::spawn(async move {
            let mut h = histogram();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= appends {
                    return Ok::<_, anyhow::Error>(h);
                }
                // Spread over the streams with a multiplicative hash so that
                // consecutive appends hit different streams.
                let stream = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % streams;
                let id = format!("s{stream}-{}", target.run);
                let t = Instant::now();
                target.append("bench-many", &id, batch).await?;
                h.record(t.elapsed().as_micros() as u64)?;
            }
        }));
    }
    let mut all = histogram();
    for t in tasks {
        all.add(t.await??)?;
    }
    Ok(Report {
        name,
        events: appends * batch as u64,
        elapsed: start.elapsed(),
        latency: Some(all),
    })
}

async fn read(target: &Target, events: u64) -> anyhow::Result<Vec<Report>> {
    // Fill one long stream with batches of 100.
    let stream_type = format!("bench-read-{}", target.run);
    let stream_id = "long";
    let mut written = 0;
    while written < events {
        let n = (events - written).min(100) as usize;
        target.append(&stream_type, stream_id, n).await?;
        written += n as u64;
    }

    let start = Instant::now();
    let mut after = 0u64;
    let mut read = 0u64;
    loop {
        let page = target
            .get_page(&format!(
                "/streams/{stream_type}/{stream_id}/events?after-revision={after}&limit=1000"
            ))
            .await?;
        read += page.events.len() as u64;
        after = page.last_evaluated_revision.unwrap_or(after);
        if !page.has_more {
            break;
        }
    }
    if read != events {
        bail!("read {read} events of the stream, expected {events}");
    }
    let stream_report = Report {
        name: "read one stream (pages of 1000)",
        events: read,
        elapsed: start.elapsed(),
        latency: None,
    };

    let start = Instant::now();
    let mut after = 0u64;
    let mut read = 0u64;
    loop {
        let page = target
            .get_page(&format!("/events?after-position={after}&limit=1000"))
            .await?;
        read += page.events.len() as u64;
        after = page.last_position.unwrap_or(after);
        if !page.has_more {
            break;
        }
    }
    let feed_report = Report {
        name: "read the global feed (pages of 1000)",
        events: read,
        elapsed: start.elapsed(),
        latency: None,
    };
    Ok(vec![stream_report, feed_report])
}
