//! The relay function driven the way Lambda's DynamoDB event source
//! mapping drives it, against moto behind the fidelity layer: the table's
//! stream served as several shards that split live
//! (`stream_shards`, `/split`), one batch per shard at a time, a child shard
//! only after its parent, each invocation on one of several instances,
//! `ReportBatchItemFailures` honoured (a batch failing at a record is
//! delivered again from that record), and, after the retries, the
//! batch's description sent to the on-failure queue, whose batches are
//! then replayed from the stream ([`RelayFunction::replay`]).
//!
//! The relay's own DynamoDB requests are made without SDK retries, so the
//! injected faults reach it: batches fail part way and are redelivered.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use eventstore_aws::{Announcer, SnsPublisher};
use eventstore_core::{
    AppendRequest, EventStore, EventType, Expectation, FeedFilter, JsonValue, NewEvent, Position,
    Revision, StreamId, StreamKey, StreamType,
};
use eventstore_dynamodb::{DynamoStore, FailedBatch, Relay, create_table, read_failed_batch};
use eventstore_lambda::relay::RelayFunction;
use eventstore_testkit::sns::{Messaging, Queue};
use eventstore_testkit::{lambda_event, moto};
use serde_json::json;

/// A DynamoDB client with `attempts` SDK attempts per request and no retry
/// quota (the injected fault rates would empty any).
fn dynamo(sdk: &aws_config::SdkConfig, attempts: u32) -> aws_sdk_dynamodb::Client {
    use aws_sdk_dynamodb::config::retry::{RetryConfig, RetryPartition, TokenBucket};
    let conf = eventstore_aws::config::dynamodb_config(sdk)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(attempts)
                .with_initial_backoff(Duration::from_millis(5)),
        )
        .retry_partition(
            RetryPartition::custom(format!("event-source-{attempts}"))
                .token_bucket(TokenBucket::unlimited())
                .build(),
        );
    aws_sdk_dynamodb::Client::from_conf(conf.build())
}

fn table_name(tag: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("es-{tag}-{n}")
}

/// Where a shard's next batch starts.
#[derive(Debug, Clone)]
enum Start {
    TrimHorizon,
    At(String),
    After(String),
}

#[derive(Debug)]
struct ShardState {
    parent: Option<String>,
    start: Start,
    /// Read to its end (closed) and every record handled.
    done: bool,
    /// Failed deliveries of the current batch.
    attempts: u32,
}

#[derive(Debug, Default)]
struct Stats {
    invocations: AtomicU64,
    /// Invocations answered with a batch item failure after relaying some
    /// of the batch's records.
    partial: AtomicU64,
    /// Invocations answered with a batch item failure.
    failed: AtomicU64,
    dead_lettered: AtomicU64,
}

/// Lambda's DynamoDB event source mapping, as far as the relay sees it.
struct EventSource {
    streams: aws_sdk_dynamodbstreams::Client,
    arn: String,
    batch_size: i32,
    retry_attempts: u32,
    sqs: aws_sdk_sqs::Client,
    failure_queue: String,
    instances: Vec<RelayFunction>,
    shards: BTreeMap<String, ShardState>,
    stats: Stats,
    turn: AtomicU64,
}

impl EventSource {
    async fn discover(&mut self) {
        let mut start = None;
        loop {
            let desc = self
                .streams
                .describe_stream()
                .stream_arn(&self.arn)
                .set_exclusive_start_shard_id(start.take())
                .send()
                .await
                .unwrap();
            let d = desc.stream_description().unwrap();
            for s in d.shards() {
                self.shards
                    .entry(s.shard_id().unwrap().to_string())
                    .or_insert_with(|| ShardState {
                        parent: s.parent_shard_id().map(str::to_string),
                        start: Start::TrimHorizon,
                        done: false,
                        attempts: 0,
                    });
            }
            start = d.last_evaluated_shard_id().map(str::to_string);
            if start.is_none() {
                break;
            }
        }
    }

    /// One round: a batch from every shard that may be read now (its
    /// parent done), all at once. Whether any shard had records.
    async fn round(&mut self) -> bool {
        self.discover().await;
        let ready: Vec<String> = self
            .shards
            .iter()
            .filter(|(_, s)| {
                !s.done
                    && s.parent
                        .as_ref()
                        .is_none_or(|p| self.shards.get(p).is_none_or(|ps| ps.done))
            })
            .map(|(id, _)| id.clone())
            .collect();
        let steps = ready.iter().map(|id| self.step(id));
        let outcomes = futures_join_all(steps).await;
        let mut any = false;
        for (id, (start, done, attempts, had)) in ready.into_iter().zip(outcomes) {
            let s = self.shards.get_mut(&id).unwrap();
            s.start = start;
            s.done = done;
            s.attempts = attempts;
            any |= had;
        }
        any
    }

    /// One delivery of a shard's next batch: (where the next starts,
    /// whether the shard is done, failed deliveries of the batch, whether
    /// it had records).
    async fn step(&self, shard: &str) -> (Start, bool, u32, bool) {
        let state = &self.shards[shard];
        let mut req = self
            .streams
            .get_shard_iterator()
            .stream_arn(&self.arn)
            .shard_id(shard);
        req = match &state.start {
            Start::TrimHorizon => req.shard_iterator_type(ShardIteratorType::TrimHorizon),
            Start::At(seq) => req
                .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
                .sequence_number(seq),
            Start::After(seq) => req
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .sequence_number(seq),
        };
        let it = req
            .send()
            .await
            .unwrap()
            .shard_iterator()
            .unwrap()
            .to_string();
        let page = self
            .streams
            .get_records()
            .shard_iterator(it)
            .limit(self.batch_size)
            .send()
            .await
            .unwrap();
        let closed_and_read = page.next_shard_iterator().is_none();
        if page.records().is_empty() {
            return (state.start.clone(), closed_and_read, state.attempts, false);
        }
        let seqs: Vec<String> = page
            .records()
            .iter()
            .map(|r| r.dynamodb().unwrap().sequence_number().unwrap().to_string())
            .collect();
        let event = lambda_event::windowed(&self.arn, shard, page.records());
        // Any instance may get any batch: Lambda does not pin a shard to
        // an execution environment.
        let turn = self.turn.fetch_add(1, Ordering::SeqCst) as usize;
        let instance = &self.instances[(turn * 7 + shard.len()) % self.instances.len()];
        self.stats.invocations.fetch_add(1, Ordering::SeqCst);
        let failed_at = match instance
            .handle(serde_json::from_value(event).unwrap())
            .await
        {
            Ok(response) => response
                .batch_item_failures
                .first()
                .and_then(|f| f.item_identifier.clone()),
            // A function error: the whole batch again.
            Err(_) => Some(seqs[0].clone()),
        };
        let last = seqs.last().unwrap().clone();
        let Some(failed_at) = failed_at else {
            return (Start::After(last), closed_and_read, 0, true);
        };
        self.stats.failed.fetch_add(1, Ordering::SeqCst);
        if failed_at != seqs[0] {
            self.stats.partial.fetch_add(1, Ordering::SeqCst);
        }
        let attempts = if failed_at == seqs[0] {
            state.attempts + 1
        } else {
            1
        };
        if attempts <= self.retry_attempts {
            return (Start::At(failed_at), false, attempts, true);
        }
        // Retries exhausted: the batch (from the failed record) goes to
        // the on-failure destination, and the shard moves on.
        let from = seqs.iter().position(|s| *s == failed_at).unwrap();
        let body = json!({
            "requestContext": {
                "requestId": format!("req-{turn}"),
                "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:relay",
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": attempts
            },
            "responseContext": {
                "statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"
            },
            "version": "1.0",
            "timestamp": "2026-11-29T23:00:00.000Z",
            "DDBStreamBatchInfo": {
                "shardId": shard,
                "startSequenceNumber": failed_at,
                "endSequenceNumber": last,
                "approximateArrivalOfFirstRecord": "2026-11-29T22:59:58Z",
                "approximateArrivalOfLastRecord": "2026-11-29T22:59:59Z",
                "batchSize": seqs.len() - from,
                "streamArn": self.arn
            }
        });
        self.sqs
            .send_message()
            .queue_url(&self.failure_queue)
            .message_body(body.to_string())
            .send()
            .await
            .unwrap();
        self.stats.dead_lettered.fetch_add(1, Ordering::SeqCst);
        (Start::After(last), closed_and_read, 0, true)
    }
}

/// Runs futures concurrently, their outputs in order (what
/// `futures::future::join_all` does, without the dependency).
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut running: Vec<std::pin::Pin<Box<F>>> = futures.map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = running.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (fut, out) in running.iter_mut().zip(outputs.iter_mut()) {
            if out.is_none() {
                match fut.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *out = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(|o| o.expect("ready")).collect()
}

struct World {
    sdk: aws_config::SdkConfig,
    table: String,
    store: DynamoStore,
    topic: String,
    announced: Queue,
    failures: Queue,
    messaging: Messaging,
    sqs: aws_sdk_sqs::Client,
}

async fn world(tag: &str) -> World {
    let sdk = moto::sdk_config().await;
    let table = table_name(tag);
    let store_client = dynamo(&sdk, 8);
    create_table(&store_client, &table).await.unwrap();
    let messaging = Messaging::new(&sdk);
    let topic = messaging.topic(&table).await;
    let announced = messaging
        .subscribed_queue(
            &topic,
            &format!("{table}-announced"),
            eventstore_testkit::sns::Delivery::RAW,
        )
        .await;
    let failures = messaging.queue(&format!("{table}-failures")).await;
    World {
        store: DynamoStore::new(store_client, table.clone()),
        sdk,
        table,
        topic,
        announced,
        failures,
        sqs: messaging.sqs.clone(),
        messaging,
    }
}

impl World {
    fn instances(&self, n: usize) -> Vec<RelayFunction> {
        (0..n)
            .map(|_| {
                RelayFunction::new(Announcer::new(
                    // One attempt per request: the injected faults reach
                    // the relay.
                    Relay::new(DynamoStore::new(dynamo(&self.sdk, 1), self.table.clone())),
                    Arc::new(SnsPublisher::new(
                        aws_sdk_sns::Client::new(&self.sdk),
                        self.topic.clone(),
                    )),
                ))
            })
            .collect()
    }

    async fn event_source(&self, retry_attempts: u32) -> EventSource {
        let arn = self
            .store
            .client()
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .unwrap()
            .table()
            .and_then(|t| t.latest_stream_arn())
            .unwrap()
            .to_string();
        EventSource {
            streams: aws_sdk_dynamodbstreams::Client::new(&self.sdk),
            arn,
            batch_size: 7,
            retry_attempts,
            sqs: self.sqs.clone(),
            failure_queue: self.failures.url.clone(),
            instances: self.instances(3),
            shards: BTreeMap::new(),
            stats: Stats::default(),
            turn: AtomicU64::new(0),
        }
    }

    /// Appends to `streams` streams, `appends` appends each (1 to 3
    /// events); the events written, and each append's stream and first
    /// revision into `log`.
    async fn write(
        &self,
        streams: usize,
        appends: std::ops::Range<usize>,
        log: &mut HashSet<(String, u64)>,
    ) -> usize {
        let mut events = 0;
        for a in appends {
            for s in 0..streams {
                let key = StreamKey::new(
                    StreamType::parse(if s % 2 == 0 { "even" } else { "odd" }).unwrap(),
                    StreamId::parse(format!("s-{s}")).unwrap(),
                );
                let n = 1 + (a + s) % 3;
                let batch = (0..n)
                    .map(|i| {
                        NewEvent::new(
                            EventType::parse(format!("E{i}")).unwrap(),
                            JsonValue::from_text(format!(r#"{{"a":{a},"i":{i}}}"#)).unwrap(),
                        )
                    })
                    .collect();
                let out = self
                    .store
                    .append(AppendRequest::new(key, Expectation::Any, batch).unwrap())
                    .await
                    .unwrap();
                log.insert((format!("s-{s}"), out.first_revision.get()));
                events += n;
            }
        }
        events
    }

    async fn feed(&self) -> Vec<eventstore_core::RecordedEvent> {
        let mut seen = Vec::new();
        let mut after = Position::ZERO;
        loop {
            let page = self
                .store
                .read_feed(&FeedFilter::All, after, 100)
                .await
                .unwrap();
            after = page.last_position;
            seen.extend(page.events);
            if !page.has_more {
                return seen;
            }
        }
    }

    /// Every notification the topic delivered so far: (stream, first
    /// revision) of each.
    async fn announcements(&self) -> Vec<(String, u64)> {
        self.messaging
            .drain(&self.announced.url, 0)
            .await
            .into_iter()
            .map(|m| {
                (
                    m.body["StreamId"].as_str().unwrap().to_string(),
                    m.body["FirstRevision"].as_str().unwrap().parse().unwrap(),
                )
            })
            .collect()
    }

    fn faults(&self, name: &str, rules: &[(&str, &str, f64, Option<u32>)]) {
        let rules: Vec<String> = rules
            .iter()
            .map(|(op, fault, p, times)| {
                let times = times.map(|t| format!(r#","times":{t}"#)).unwrap_or_default();
                format!(
                    r#"{{"op":"{op}","fault":"{fault}","probability":{p}{times},"match":"\"{}\""}}"#,
                    self.table
                )
            })
            .collect();
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        eprintln!("fault rule set {name}: seed {seed}");
        moto::fidelity(
            "PUT",
            &format!("{}-{name}", self.table),
            &format!(r#"{{"seed":{seed},"rules":[{}]}}"#, rules.join(",")),
        );
    }

    fn no_faults(&self, name: &str) {
        moto::fidelity("DELETE", &format!("{}-{name}", self.table), "");
    }
}

/// Every append once, in revision order per stream (`ordered`), or at
/// least complete and without repeats.
fn check_feed(feed: &[eventstore_core::RecordedEvent], events: usize, ordered: bool) {
    let ids: HashSet<_> = feed.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), feed.len(), "no event twice in the feed");
    assert_eq!(feed.len(), events, "no event missing from the feed");
    let mut last = Position::ZERO;
    let mut per_stream: BTreeMap<StreamKey, Revision> = BTreeMap::new();
    for e in feed {
        assert!(e.position.unwrap() > last, "positions increase");
        last = e.position.unwrap();
        let prev = per_stream
            .insert(e.stream_key(), e.revision)
            .unwrap_or(Revision::ZERO);
        if ordered {
            assert_eq!(e.revision, prev.next(), "revision order per stream");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_function_keeps_the_feed_whole_across_splits_partial_failures_and_redelivery() {
    let w = world("esm").await;
    moto::fidelity(
        "PUT",
        &format!("{}-shards", w.table),
        &format!(r#"{{"stream_shards":3,"shards_match":"{}"}}"#, w.table),
    );
    // Faults on every request of the table, the relay's included (one
    // attempt each, so they reach it and fail deliveries part way).
    let faults = || {
        w.faults(
            "faults",
            &[
                // Every request of the table, whatever the relay's write
                // pattern.
                ("*", "internal", 0.05, None),
                ("PutItem", "internal", 0.1, None),
                ("PutItem", "lost", 0.05, None),
                ("TransactWriteItems", "conflict", 0.05, None),
                ("TransactWriteItems", "lost", 0.05, None),
                ("UpdateItem", "lost", 0.05, None),
                ("UpdateItem", "conflict", 0.03, None),
                ("BatchWriteItem", "internal", 0.05, None),
                ("GetItem", "throttle", 0.05, None),
                ("Query", "internal", 0.05, None),
            ],
        )
    };
    let mut esm = w.event_source(1_000).await;
    let mut appends = HashSet::new();
    let mut events = w.write(9, 0..4, &mut appends).await;
    faults();
    for _ in 0..3 {
        esm.round().await;
    }
    moto::fidelity("POST", &format!("{}-shards/split", w.table), "{}");
    events += w.write(9, 4..8, &mut appends).await;
    esm.round().await;
    let split = moto::fidelity("POST", &format!("{}-shards/split", w.table), "{}");
    eprintln!("split: {split}");
    events += w.write(9, 8..12, &mut appends).await;
    faults();
    let mut idle = 0;
    while idle < 3 {
        idle = if esm.round().await { 0 } else { idle + 1 };
    }
    let stats = &esm.stats;
    eprintln!("{stats:?}");
    assert_eq!(stats.dead_lettered.load(Ordering::SeqCst), 0);
    assert!(
        stats.failed.load(Ordering::SeqCst) > 0,
        "some deliveries failed and were redelivered"
    );
    assert!(
        stats.partial.load(Ordering::SeqCst) > 0,
        "some failed part way (a batch item failure after relayed records)"
    );
    w.no_faults("faults");
    check_feed(&w.feed().await, events, true);
    let announced: HashSet<(String, u64)> = w.announcements().await.into_iter().collect();
    assert_eq!(announced, appends, "every append announced (at least once)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_lettered_batches_are_replayed_from_the_stream_once() {
    let w = world("dlq").await;
    moto::fidelity(
        "PUT",
        &format!("{}-shards", w.table),
        &format!(r#"{{"stream_shards":2,"shards_match":"{}"}}"#, w.table),
    );
    let mut esm = w.event_source(1).await;
    let mut appends = HashSet::new();
    let mut events = w.write(6, 0..3, &mut appends).await;
    // The table refuses every request of the relay for a while (whatever
    // its write pattern; failing from its first read, so each delivery
    // fails at once): the first batches fail every retry and are
    // dead-lettered; the shards move on.
    w.faults("down", &[("*", "internal", 1.0, None)]);
    for _ in 0..4 {
        esm.round().await;
    }
    w.no_faults("down");
    events += w.write(6, 3..6, &mut appends).await;
    let mut idle = 0;
    while idle < 3 {
        idle = if esm.round().await { 0 } else { idle + 1 };
    }
    let dead = esm.stats.dead_lettered.load(Ordering::SeqCst);
    eprintln!("{:?}", esm.stats);
    assert!(dead > 0, "some batches were dead-lettered");
    let before = w.feed().await;
    assert!(
        before.len() < events,
        "the feed misses the dead-lettered appends"
    );

    // Replay: read each message, read its records back, relay, publish,
    // delete. Then once more, the same messages sent again: nothing added.
    let replayer = &w.instances(1)[0];
    let streams = aws_sdk_dynamodbstreams::Client::new(&w.sdk);
    let mut bodies = Vec::new();
    loop {
        let got = w
            .sqs
            .receive_message()
            .queue_url(&w.failures.url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        if got.messages().is_empty() {
            break;
        }
        for m in got.messages() {
            let body = m.body().unwrap().to_string();
            let batch = FailedBatch::from_message(&body).unwrap();
            let records = read_failed_batch(&streams, &batch).await.unwrap();
            assert_eq!(
                records.first().unwrap().sequence_number,
                batch.start_sequence_number
            );
            let report = replayer.replay(&records).await;
            assert_eq!(report.failed_at, None, "{report:?}");
            w.sqs
                .delete_message()
                .queue_url(&w.failures.url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
            bodies.push(body);
        }
    }
    assert_eq!(bodies.len() as u64, dead);
    let after = w.feed().await;
    check_feed(&after, events, false);
    assert_eq!(
        &after[..before.len()],
        &before[..],
        "the feed's start is unchanged"
    );
    for body in &bodies {
        let batch = FailedBatch::from_message(body).unwrap();
        let records = read_failed_batch(&streams, &batch).await.unwrap();
        let report = replayer.replay(&records).await;
        assert_eq!(report.failed_at, None);
    }
    assert_eq!(w.feed().await, after, "a replay run again adds nothing");
    let announced: HashSet<(String, u64)> = w.announcements().await.into_iter().collect();
    assert_eq!(announced, appends, "every append announced (at least once)");
}
