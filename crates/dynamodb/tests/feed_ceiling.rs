//! The global feed's ceiling, from a model of the relay as deployed (no
//! AWS involved; about a second). Prints the table of `docs/dynamodb.md`,
//! "The feed's ceiling":
//! `cargo nextest run -p eventstore-dynamodb --test feed_ceiling --no-capture`.
//!
//! A discrete-event simulation of the table's stream shards and one relay
//! invocation per shard at a time (Lambda's event source mapping with
//! `ParallelizationFactor` 1, a batch size and a 1 s batching window), each
//! invocation making the relay's requests in order with DynamoDB's
//! latency: the mark and checkpoint reads, the listings, then the feed
//! page — a read of the feed's head and a transaction putting the page at
//! the next position with the shard's checkpoint and the page's per-type
//! index items, which fails when another shard's page landed in between
//! (then a read of the taker, a jittered backoff and another try, at most
//! 12) —, the SNS batches and the announcement mark. Appends arrive
//! at a steady rate, spread over streams and types uniformly, and over the
//! shards by their stream. Every write is charged to its partition key by
//! DynamoDB's rules (1 WCU per started KB; a failed conditional put 1).
//!
//! The ceiling is the highest arrival rate the relay keeps up with (it
//! relays 95 % of it or more, its backlog stays under three seconds of
//! appends) with no partition over 1,000 WCU/s.

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BTreeMap, BinaryHeap};

/// DynamoDB's write limit per partition.
const PARTITION_WCU: f64 = 1000.0;

#[derive(Debug, Clone, Copy)]
struct Config {
    shards: usize,
    batch_size: usize,
    window_s: f64,
    streams: usize,
    types: usize,
    /// Bytes of one append's entry in a feed page (`type|id|first|count`
    /// and the list's overhead).
    entry_bytes: f64,
    /// Round trip of one small DynamoDB request, seconds (median).
    rtt: f64,
    /// One SNS `PublishBatch`, seconds.
    sns: f64,
}

impl Config {
    fn deployed(shards: usize) -> Self {
        Self {
            shards,
            batch_size: 100,
            window_s: 1.0,
            streams: 100_000,
            types: 10,
            entry_bytes: 32.0,
            rtt: 0.006,
            sns: 0.015,
        }
    }
}

#[derive(Debug, Default, Clone)]
struct Outcome {
    offered: f64,
    relayed: f64,
    pages: f64,
    conflicts_per_page: f64,
    failed_invocations: f64,
    backlog_s: f64,
    /// WCU per second by partition key.
    wcu: BTreeMap<String, f64>,
}

impl Outcome {
    /// The hottest partition and its WCU/s.
    fn hottest(&self) -> (String, f64) {
        self.wcu
            .iter()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(k, v)| (k.clone(), *v))
            .unwrap_or_default()
    }
    /// Relays (nearly) what arrives, with a bounded backlog, and no
    /// partition over its limit.
    fn keeps_up(&self) -> bool {
        self.relayed >= 0.95 * self.offered
            && self.backlog_s < 3.0
            && self.hottest().1 <= PARTITION_WCU
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Step {
    /// Start an invocation (records are taken now).
    Invoke,
    /// The head read of the page put answered (`t` = read time).
    HeadRead,
    /// The page put reached DynamoDB.
    PutCommit { read_at: f64 },
    /// The invocation finished.
    Done,
}

#[derive(Debug, PartialEq)]
struct Event {
    at: f64,
    shard: usize,
    step: Step,
}

impl Eq for Event {}
impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Event {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        other
            .at
            .total_cmp(&self.at)
            .then(other.shard.cmp(&self.shard))
    }
}

struct Shard {
    /// Records waiting (fluid).
    pending: f64,
    /// Records of the running invocation.
    batch: f64,
    attempts: u32,
    busy: bool,
}

fn simulate(cfg: Config, offered: f64, seconds: f64, seed: u64) -> Outcome {
    let mut rng = fastrand::Rng::with_seed(seed);
    let rtt = |rng: &mut fastrand::Rng| cfg.rtt * (0.7 + 0.6 * rng.f64());
    let per_shard = offered / cfg.shards as f64;
    let mut shards: Vec<Shard> = (0..cfg.shards)
        .map(|_| Shard {
            pending: 0.0,
            batch: 0.0,
            attempts: 0,
            busy: false,
        })
        .collect();
    let mut queue = BinaryHeap::new();
    let mut last_commit = f64::NEG_INFINITY;
    let mut out = Outcome {
        offered,
        ..Outcome::default()
    };
    let charge = |out: &mut Outcome, key: &str, wcu: f64| {
        *out.wcu.entry(key.to_string()).or_default() += wcu;
    };
    let mut conflicts = 0.0;
    // Each shard's first invocation: after its batching window.
    for s in 0..cfg.shards {
        queue.push(Event {
            at: cfg.window_s * rng.f64(),
            shard: s,
            step: Step::Invoke,
        });
    }
    let mut now = 0.0;
    let mut last_arrival = 0.0;
    let warmup = 5.0;
    while let Some(ev) = queue.pop() {
        if ev.at > seconds {
            break;
        }
        // Fluid arrivals up to now, on every shard.
        let dt = ev.at - last_arrival;
        for sh in shards.iter_mut() {
            sh.pending += per_shard * dt;
        }
        last_arrival = ev.at;
        now = ev.at;
        let measuring = now >= warmup;
        let sh = &mut shards[ev.shard];
        match ev.step {
            Step::Invoke => {
                if sh.pending < 1.0 {
                    // Nothing yet: Lambda polls again (4 times a second).
                    queue.push(Event {
                        at: now + 0.25,
                        shard: ev.shard,
                        step: Step::Invoke,
                    });
                    continue;
                }
                sh.busy = true;
                sh.batch = sh.pending.min(cfg.batch_size as f64).floor();
                sh.pending -= sh.batch;
                sh.attempts = 0;
                // Mark and checkpoint reads, the pages after the
                // checkpoint, the listings' BatchWriteItem, then the head.
                let t = now + (0..4).map(|_| rtt(&mut rng)).sum::<f64>() + rtt(&mut rng);
                queue.push(Event {
                    at: t,
                    shard: ev.shard,
                    step: Step::HeadRead,
                });
            }
            Step::HeadRead => {
                let read_at = now;
                // The page's transaction takes longer than a plain put.
                queue.push(Event {
                    at: now + 1.5 * rtt(&mut rng),
                    shard: ev.shard,
                    step: Step::PutCommit { read_at },
                });
            }
            Step::PutCommit { read_at } => {
                let appends = sh.batch;
                if last_commit <= read_at {
                    last_commit = now;
                    let page_bytes = 90.0 + cfg.entry_bytes * appends;
                    if measuring {
                        out.pages += 1.0;
                        out.relayed += appends;
                        // One transaction: the page, the shard's
                        // checkpoint and the page's per-type index items
                        // (2 WCU per started KB each).
                        charge(
                            &mut out,
                            "F (feed pages)",
                            2.0 * (page_bytes / 1024.0).ceil(),
                        );
                        charge(&mut out, "C (checkpoints)", 2.0);
                        let t = cfg.types as f64;
                        let in_page = 1.0 - (1.0 - 1.0 / t).powf(appends);
                        let index_bytes = 60.0 + 40.0 * appends / t / in_page.max(1e-9);
                        charge(
                            &mut out,
                            "X#type (feed index of one type)",
                            in_page * 2.0 * (index_bytes / 1024.0).ceil(),
                        );
                        charge(&mut out, "A (announcement marks)", 1.0);
                        // Listings: put + delete per distinct stream, the
                        // batch's streams spread over the types.
                        let m = cfg.streams as f64;
                        let distinct = m * (1.0 - (1.0 - 1.0 / m).powf(appends));
                        charge(
                            &mut out,
                            "L#type (listing of one type)",
                            2.0 * distinct / cfg.types as f64,
                        );
                    }
                    // SNS batches (10 per call), mark put.
                    let publish = (appends / 10.0).ceil() * cfg.sns;
                    queue.push(Event {
                        at: now + publish + rtt(&mut rng),
                        shard: ev.shard,
                        step: Step::Done,
                    });
                } else {
                    // Another shard's page took the position: charged,
                    // the taker read, a backoff, the head again.
                    if measuring {
                        conflicts += 1.0;
                        charge(&mut out, "F (feed pages)", 1.0);
                    }
                    sh.attempts += 1;
                    if sh.attempts >= 12 {
                        // The relay gives up: the invocation fails and
                        // Lambda delivers the batch again.
                        if measuring {
                            out.failed_invocations += 1.0;
                        }
                        sh.pending += sh.batch;
                        sh.busy = false;
                        queue.push(Event {
                            at: now + rtt(&mut rng),
                            shard: ev.shard,
                            step: Step::Invoke,
                        });
                        continue;
                    }
                    let cap = (0.010 * f64::from(1u32 << sh.attempts.min(16))).min(2.0);
                    queue.push(Event {
                        at: now + rtt(&mut rng) + cap * rng.f64() + 0.0,
                        shard: ev.shard,
                        step: Step::HeadRead,
                    });
                }
            }
            Step::Done => {
                sh.busy = false;
                // The next batch: at once when a full one waits, else when
                // the batching window has gathered records.
                let next = if sh.pending >= cfg.batch_size as f64 {
                    now
                } else {
                    let fill = (cfg.batch_size as f64 - sh.pending) / per_shard.max(1e-9);
                    now + fill.min(cfg.window_s)
                };
                queue.push(Event {
                    at: next,
                    shard: ev.shard,
                    step: Step::Invoke,
                });
            }
        }
    }
    let span = (now - warmup).max(1e-9);
    out.relayed /= span;
    out.conflicts_per_page = if out.pages > 0.0 {
        conflicts / out.pages
    } else {
        0.0
    };
    out.pages /= span;
    out.failed_invocations /= span;
    for v in out.wcu.values_mut() {
        *v /= span;
    }
    let backlog: f64 = shards.iter().map(|s| s.pending + s.batch).sum();
    out.backlog_s = backlog / offered.max(1e-9);
    // A stream's tip: 1 WCU per small append.
    out.wcu.insert(
        "S#type#id tip (one stream)".into(),
        offered / cfg.streams as f64,
    );
    out
}

/// The highest offered rate the relay keeps up with, the outcome there,
/// and what stops it just above (the relay's backlog grows, or the named
/// partition goes over 1,000 WCU/s).
fn ceiling(cfg: Config) -> (Outcome, String) {
    let (mut lo, mut hi) = (100.0f64, 400_000.0f64);
    let mut best = simulate(cfg, lo, 40.0, 1);
    assert!(best.keeps_up(), "{cfg:?} does not keep up with {lo}/s");
    let mut above = simulate(cfg, hi, 40.0, 1);
    while hi / lo > 1.03 {
        let mid = (lo * hi).sqrt();
        let o = simulate(cfg, mid, 40.0, 1);
        if o.keeps_up() {
            lo = mid;
            best = o;
        } else {
            hi = mid;
            above = o;
        }
    }
    let limit = if above.relayed < 0.95 * above.offered || above.backlog_s >= 3.0 {
        format!(
            "relay throughput (backlog grows; {:.0} of {:.0} appends/s relayed)",
            above.relayed, above.offered
        )
    } else {
        let (k, v) = above.hottest();
        format!("{k} over the partition limit ({v:.0} WCU/s)")
    };
    (best, limit)
}

/// One invocation's duration with a full batch, by the model's request
/// sequence (no conflicts): five reads and the listings, the page's
/// transaction, the SNS batches, the mark.
fn invocation_seconds(cfg: &Config) -> f64 {
    7.5 * cfg.rtt + (cfg.batch_size as f64 / 10.0).ceil() * cfg.sns
}

#[test]
fn the_global_feed_ceiling_and_its_hot_keys() {
    println!(
        "| shards | batch size | stream types | ceiling (appends/s) | pages/s | appends/page | failed page puts per page | F WCU/s | what stops it above |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut rows = Vec::new();
    for (shards, batch, types) in [
        (1, 100, 10),
        (4, 100, 10),
        (16, 100, 10),
        (64, 100, 10),
        (16, 100, 1000),
        (64, 100, 1000),
        (64, 1000, 1000),
    ] {
        let cfg = Config {
            batch_size: batch,
            types,
            ..Config::deployed(shards)
        };
        let (o, limit) = ceiling(cfg);
        println!(
            "| {shards} | {batch} | {types} | {:.0} | {:.0} | {:.1} | {:.2} | {:.0} | {limit} |",
            o.relayed,
            o.pages,
            o.relayed / o.pages.max(1e-9),
            o.conflicts_per_page,
            o.wcu.get("F (feed pages)").copied().unwrap_or(0.0),
        );
        rows.push((cfg, o, limit));
    }
    let (cfg16, at16, _) = &rows[2];
    println!(
        "\nWCU/s by partition key at {:.0} appends/s ({} shards, batch {}, {} types of {} streams):",
        at16.relayed, cfg16.shards, cfg16.batch_size, cfg16.types, cfg16.streams
    );
    let mut keys: Vec<_> = at16.wcu.iter().collect();
    keys.sort_by(|a, b| b.1.total_cmp(a.1));
    for (k, v) in &keys {
        println!("- {k}: {v:.1}");
    }

    // What the model must show to be believed.
    for (cfg, o, _) in &rows {
        // The page cycle (head read, put) serialises every relay.
        assert!(
            o.pages < 1.0 / (2.5 * cfg.rtt * 0.7),
            "{cfg:?}: {:.0} pages/s beats the head's cycle",
            o.pages
        );
        assert!(o.keeps_up() && o.relayed > 0.0);
    }
    // One shard: one invocation at a time, full batches.
    let (cfg1, one, limit1) = &rows[0];
    let per_shard = cfg1.batch_size as f64 / invocation_seconds(cfg1);
    assert!(
        (one.relayed / per_shard - 1.0).abs() < 0.3,
        "one shard relays ~{per_shard:.0} appends/s, the model {:.0}",
        one.relayed
    );
    assert!(limit1.starts_with("relay throughput"), "{limit1}");
    // Ten types: each type's listing partition takes 2 WCU per append of
    // a new stream, so it is the first key over its limit (~500 appends/s
    // per type).
    let (_, ten, limit10) = &rows[3];
    assert!(limit10.starts_with("L#type"), "{limit10}");
    assert!(
        (ten.relayed / (500.0 * 10.0) - 1.0).abs() < 0.1,
        "{:.0}",
        ten.relayed
    );
    // Many types: the listings spread out, and the relay's page cycle and
    // the sequential SNS batches bound it; more shards add failed puts.
    let (_, wide16, _) = &rows[4];
    let (_, wide64, limit64) = &rows[5];
    assert!(limit64.starts_with("relay throughput"), "{limit64}");
    assert!(wide64.relayed > ten.relayed);
    assert!(wide64.conflicts_per_page > wide16.conflicts_per_page);
}
