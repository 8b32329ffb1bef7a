//! The feed written by the relay, read back: per-type reads and long polls
//! are bounded queries on the per-type feed index (not scans of the global
//! feed), the index agrees with the global feed under redelivery,
//! restarts and faults, and relay instances racing over the same records
//! put each append into the feed exactly once, in order. Each test that
//! relays runs twice: on plain moto and with the fidelity layer's faults
//! on (`support::standard_faults`).

mod support;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use eventstore_core::{
    AppendRequest, EventStore, EventType, Expectation, FeedFilter, JsonValue, NewEvent, Position,
    RecordedEvent, Revision, StreamId, StreamKey, StreamType,
};
use eventstore_dynamodb::cost::Recorder;
use eventstore_dynamodb::{ChangeRecord, DynamoStore, Relay, items};
use futures::future::join_all;

fn event(kind: &str, i: usize) -> NewEvent {
    NewEvent::new(
        EventType::parse(kind).unwrap(),
        JsonValue::from_text(format!(r#"{{"i":{i}}}"#)).unwrap(),
    )
}

fn key(t: &str, id: &str) -> StreamKey {
    StreamKey::new(StreamType::parse(t).unwrap(), StreamId::parse(id).unwrap())
}

async fn read_all(store: &DynamoStore, filter: &FeedFilter) -> Vec<RecordedEvent> {
    let mut seen = Vec::new();
    let mut after = Position::ZERO;
    loop {
        let page = store.read_feed(filter, after, 37).await.unwrap();
        after = page.last_position;
        seen.extend(page.events);
        if !page.has_more {
            return seen;
        }
    }
}

/// Every append exactly once, revisions in order per stream, positions
/// increasing; and each type's feed is the global feed filtered by type.
async fn assert_feeds(store: &DynamoStore, types: &[&str], total: usize) {
    let all = read_all(store, &FeedFilter::All).await;
    let ids: HashSet<_> = all.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), all.len(), "no event twice in the feed");
    assert_eq!(all.len(), total, "no event missing from the feed");
    let mut last: BTreeMap<StreamKey, Revision> = BTreeMap::new();
    let mut position = 0;
    for e in &all {
        let p = e.position.unwrap().get();
        assert!(p > position, "positions increase");
        position = p;
        let prev = last
            .insert(e.stream_key(), e.revision)
            .unwrap_or(Revision::ZERO);
        assert_eq!(e.revision, prev.next(), "revision order within a stream");
    }
    for t in types {
        let stream_type = StreamType::parse(*t).unwrap();
        let typed = read_all(store, &FeedFilter::StreamType(stream_type.clone())).await;
        let expected: Vec<_> = all
            .iter()
            .filter(|e| e.stream_type == stream_type)
            .map(|e| (e.event_id, e.position))
            .collect();
        let got: Vec<_> = typed.iter().map(|e| (e.event_id, e.position)).collect();
        assert_eq!(got, expected, "the {t} feed is the global feed filtered");
    }
}

/// A quiet type among many events of other types: reading its feed, and
/// long-polling it while the others are written, takes a bounded number
/// of small queries that does not grow with the feed, and no event of
/// another type (nor any event body while it stays quiet) is read. The
/// first version filtered the global feed's pages: its reads grew with
/// the feed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_type_feed_is_read_with_a_bounded_number_of_requests() {
    let h = support::harness("typefeed", None, false).await;
    let table = h.store.table().to_string();
    let busy = |i: usize| key("busy", &format!("b-{}", i % 8));
    let write_busy = |from: usize, to: usize| {
        let store = h.store.clone();
        let relay = h.relay.clone();
        let table = table.clone();
        async move {
            for i in from..to {
                store
                    .append(
                        AppendRequest::new(busy(i), Expectation::Any, vec![event("Tick", i)])
                            .unwrap(),
                    )
                    .await
                    .unwrap();
            }
            // Two records per batch: one feed page per two appends.
            for records in support::stream_batches(store.client(), &table, 2).await {
                let out = relay.process(&records).await.unwrap();
                relay.acknowledge(&out).await.unwrap();
            }
        }
    };
    write_busy(0, 20).await;
    h.store
        .append(
            AppendRequest::new(
                key("quiet", "q-1"),
                Expectation::NoStream,
                vec![event("Rare", 0)],
            )
            .unwrap(),
        )
        .await
        .unwrap();
    write_busy(20, 40).await;

    let recorder = Recorder::new();
    let reader = DynamoStore::new(support::client(Some(&recorder)).await, table.clone());
    let quiet = StreamType::parse("quiet").unwrap();
    let filter = FeedFilter::StreamType(quiet.clone());
    let measure = || async {
        recorder.clear();
        let page = reader
            .read_feed(&filter, Position::ZERO, 100)
            .await
            .unwrap();
        assert_eq!(page.events.len(), 1);
        assert!(!page.has_more);
        let requests = recorder.requests();
        let rcu: u64 = requests.iter().map(|r| r.rcu).sum();
        (requests.len(), rcu, page.last_position)
    };
    let (small_requests, small_rcu, after) = measure().await;
    // Three times the feed.
    write_busy(40, 120).await;
    let (requests, rcu, _) = measure().await;
    println!(
        "quiet type read: {small_requests} requests, {small_rcu} RCU after ~20 pages; \
         {requests} requests, {rcu} RCU after ~60"
    );
    assert!(
        requests <= 4 && rcu <= 4,
        "two index queries and the event's stream: {requests} requests, {rcu} RCU"
    );
    assert_eq!(
        (requests, rcu),
        (small_requests, small_rcu),
        "the cost of a type's feed read does not grow with other types' events"
    );

    // A long poll on the quiet type while the busy one is written and
    // relayed: read, wait, read again, a few turns.
    recorder.clear();
    let polling = async {
        for _ in 0..4 {
            let page = reader.read_feed(&filter, after, 100).await.unwrap();
            assert!(page.events.is_empty());
            let _ = tokio::time::timeout(
                Duration::from_millis(600),
                reader.wait_for_type_feed(&quiet, after),
            )
            .await;
        }
    };
    futures::join!(write_busy(120, 134), polling);
    let requests = recorder.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.operation == "Query" && r.rcu <= 1),
        "only small index queries while the type is quiet: {requests:?}"
    );
    assert!(
        requests.len() <= 4 * (2 + 3),
        "a bounded number per turn: {}",
        requests.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_relay_instances_put_each_append_into_the_feed_once() {
    racing_relay_instances(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_relay_instances_put_each_append_into_the_feed_once_with_faults() {
    racing_relay_instances(true).await;
}

/// Lambda does not pin a shard to one execution environment: two relay
/// instances may process the same or overlapping batches of a shard at
/// the same time (a retry after a timeout while the first run goes on),
/// while other shards' pages land between theirs. Here the records of two
/// stream types are relayed as two shards, each by two instances (fresh
/// memory each) at once, one of them on batches shifted against the
/// other's, then redelivered to a restarted relay. The feed holds each
/// append exactly once, in order, and every type's index agrees with it.
/// Before the page and the checkpoint were one transaction, a loser that
/// found another shard's page at its position wrote its batch again.
async fn racing_relay_instances(faults: bool) {
    let h = support::harness_with("race", None, false, faults).await;
    let table = h.store.table().to_string();
    const STREAMS: usize = 6;
    const APPENDS: usize = 10;
    join_all((0..STREAMS).map(|w| {
        let store = h.store.clone();
        async move {
            let k = key(if w % 2 == 0 { "even" } else { "odd" }, &format!("s{w}"));
            for a in 0..APPENDS {
                let events = (0..1 + a % 2).map(|i| event("E", i)).collect();
                store
                    .append(AppendRequest::new(k.clone(), Expectation::Any, events).unwrap())
                    .await
                    .unwrap();
            }
        }
    }))
    .await;
    let total = STREAMS * (0..APPENDS).map(|a| 1 + a % 2).sum::<usize>();
    // The stream's records as two shards, one per type.
    let mut shards: BTreeMap<String, Vec<ChangeRecord>> = BTreeMap::new();
    for batch in support::stream_batches(h.store.client(), &table, 1000).await {
        for mut r in batch {
            let stream = r
                .new_image
                .as_ref()
                .and_then(|i| i.get(items::PK))
                .and_then(|v| v.as_s().ok())
                .and_then(|pk| items::parse_stream_pk(pk).ok().flatten());
            r.shard_id = if stream.is_some_and(|s| s.stream_type.as_str() == "even") {
                "shard-even".into()
            } else {
                "shard-odd".into()
            };
            shards.entry(r.shard_id.clone()).or_default().push(r);
        }
    }
    let instance = || Relay::new(DynamoStore::new(h.store.client().clone(), table.clone()));
    let run = |records: Vec<ChangeRecord>, size: usize, offset: usize| {
        let relay = instance();
        async move {
            let mut start = 0;
            let mut first = true;
            while start < records.len() {
                let end = if first && offset > 0 {
                    offset
                } else {
                    (start + size).min(records.len())
                };
                first = false;
                let out = relay.process(&records[start..end]).await.unwrap();
                relay.acknowledge(&out).await.unwrap();
                start = end;
            }
        }
    };
    let mut racers = Vec::new();
    for records in shards.values() {
        racers.push(run(records.clone(), 7, 0));
        racers.push(run(records.clone(), 7, 0));
        racers.push(run(records.clone(), 5, 3));
    }
    join_all(racers).await;
    // Redelivered whole to a restarted relay: nothing added.
    let restarted = instance();
    for records in shards.values() {
        let out = restarted.process(records).await.unwrap();
        assert!(out.entries.is_empty(), "a redelivered batch adds nothing");
    }
    assert_feeds(&h.store, &["even", "odd"], total).await;
}
