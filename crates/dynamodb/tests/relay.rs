//! The relay driven from moto's DynamoDB Streams API while writers are
//! active: batches handed over twice and a restarted relay neither lose
//! nor repeat an event, positions respect per-stream order, and every
//! append yields one notification; a batch whose announcement was never
//! acknowledged (the process died or publishing failed after the feed
//! write) is announced again on its next delivery, without touching the
//! feed. Each test runs twice: on plain moto and with the fidelity
//! layer's faults on (`support::standard_faults`).

mod support;

use std::collections::{BTreeMap, HashSet};

use eventstore_core::{
    AppendRequest, EventStore, EventType, Expectation, FeedFilter, JsonValue, NewEvent, Position,
    Revision, StreamId, StreamKey, StreamType,
};
use eventstore_dynamodb::{DynamoStore, Relay};
use futures::future::join_all;

fn event(kind: &str, i: usize) -> NewEvent {
    NewEvent::new(
        EventType::parse(kind).unwrap(),
        JsonValue::from_text(format!(r#"{{"i":{i}}}"#)).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_is_idempotent_and_ordered_under_replays_and_restarts() {
    relay_is_idempotent_and_ordered_under_replays_and_restarts_with(false).await;
}

/// The same with the fidelity layer's faults on (conflicts, throttling,
/// 500s, answers lost after the write, on the relay's own requests too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_is_idempotent_and_ordered_under_replays_and_restarts_with_faults() {
    relay_is_idempotent_and_ordered_under_replays_and_restarts_with(true).await;
}

async fn relay_is_idempotent_and_ordered_under_replays_and_restarts_with(faults: bool) {
    let h = support::harness_with("relay", None, false, faults).await;
    let store = h.store.clone();
    let table = store.table().to_string();
    let relay = h.relay.clone();
    const WRITERS: usize = 6;
    const APPENDS: usize = 12;
    let writers = async {
        join_all((0..WRITERS).map(|w| {
            let store = store.clone();
            async move {
                let key = StreamKey::new(
                    StreamType::parse(if w % 2 == 0 { "even" } else { "odd" }).unwrap(),
                    StreamId::parse(format!("w{w}")).unwrap(),
                );
                for a in 0..APPENDS {
                    let n = 1 + a % 3;
                    let events = (0..n).map(|i| event(&format!("k{i}"), i)).collect();
                    store
                        .append(AppendRequest::new(key.clone(), Expectation::Any, events).unwrap())
                        .await
                        .unwrap();
                }
            }
        }))
        .await;
    };
    // While the writers write: relay whatever the stream holds, every batch
    // twice, with a restarted relay (fresh memory) now and then.
    let relaying = async {
        let mut notifications = Vec::new();
        let mut relay = relay.clone();
        for round in 0..8 {
            for records in support::stream_batches(store.client(), &table, 7).await {
                let first = relay.process(&records).await.unwrap();
                relay.acknowledge(&first).await.unwrap();
                let again = relay.process(&records).await.unwrap();
                assert!(
                    again.entries.is_empty(),
                    "a batch handed over twice adds nothing"
                );
                assert!(
                    again.announcements.is_empty(),
                    "a batch handed over again after its acknowledgement announces nothing"
                );
                notifications.extend(first.announcements);
            }
            if round % 3 == 2 {
                relay = Relay::new(DynamoStore::new(store.client().clone(), table.clone()));
            }
            tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        }
        notifications
    };
    let (_, mut notifications) = futures::join!(writers, relaying);
    // Catch up after the writers finished, with yet another fresh relay.
    let fresh = Relay::new(DynamoStore::new(store.client().clone(), table.clone()));
    for records in support::stream_batches(store.client(), &table, 100).await {
        let out = fresh.process(&records).await.unwrap();
        fresh.acknowledge(&out).await.unwrap();
        notifications.extend(out.announcements);
    }
    assert_eq!(
        notifications.len(),
        WRITERS * APPENDS,
        "one notification per append"
    );

    let mut seen = Vec::new();
    let mut after = Position::ZERO;
    loop {
        let page = store.read_feed(&FeedFilter::All, after, 13).await.unwrap();
        after = page.last_position;
        seen.extend(page.events);
        if !page.has_more {
            break;
        }
    }
    let total: usize = (0..APPENDS).map(|a| 1 + a % 3).sum::<usize>() * WRITERS;
    let ids: HashSet<_> = seen.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), seen.len(), "no event twice in the feed");
    assert_eq!(seen.len(), total, "no event missing from the feed");
    let mut per_stream: BTreeMap<StreamKey, Revision> = BTreeMap::new();
    let mut last = Position::ZERO;
    for e in &seen {
        assert!(e.position.unwrap() > last);
        last = e.position.unwrap();
        let prev = per_stream
            .insert(e.stream_key(), e.revision)
            .unwrap_or(Revision::ZERO);
        assert_eq!(
            e.revision,
            prev.next(),
            "feed order is revision order per stream"
        );
    }
    // Announcements carry the appends' revisions, types and positions.
    for n in &notifications {
        assert_eq!(n.event_types.len() as u64, n.entry.count);
        let p = Position::new(n.entry.position);
        let e = seen.iter().find(|e| e.position == Some(p)).unwrap();
        assert_eq!(e.revision, Revision::new(n.entry.first_revision));
        assert_eq!(e.stream_id, n.entry.stream.stream_id);
    }
    // Listings and type counts were maintained by the relay.
    let types = store.stream_types().await.unwrap();
    assert_eq!(types.iter().map(|t| t.streams).sum::<u64>(), WRITERS as u64);
    let listed = store
        .list_streams(&StreamType::parse("even").unwrap(), None, None, 100)
        .await
        .unwrap();
    assert_eq!(listed.streams.len(), WRITERS / 2);
    assert!(
        listed
            .streams
            .iter()
            .all(|s| s.revision.get() as usize == total / WRITERS)
    );
}

/// Every event of the feed, in order.
async fn whole_feed(store: &DynamoStore) -> Vec<eventstore_core::RecordedEvent> {
    let mut seen = Vec::new();
    let mut after = Position::ZERO;
    loop {
        let page = store.read_feed(&FeedFilter::All, after, 50).await.unwrap();
        after = page.last_position;
        seen.extend(page.events);
        if !page.has_more {
            return seen;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_whose_announcement_died_after_the_feed_write_are_announced_on_redelivery() {
    appends_whose_announcement_died_after_the_feed_write_are_announced_on_redelivery_with(false)
        .await;
}

/// The same with the fidelity layer's faults on (conflicts, throttling,
/// 500s, answers lost after the write, on the relay's own requests too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_whose_announcement_died_after_the_feed_write_are_announced_on_redelivery_with_faults()
 {
    appends_whose_announcement_died_after_the_feed_write_are_announced_on_redelivery_with(true)
        .await;
}

async fn appends_whose_announcement_died_after_the_feed_write_are_announced_on_redelivery_with(
    faults: bool,
) {
    let h = support::harness_with("announce", None, false, faults).await;
    let store = h.store.clone();
    let table = store.table().to_string();
    let fresh_relay = || Relay::new(DynamoStore::new(store.client().clone(), table.clone()));
    let key = |i: usize| {
        StreamKey::new(
            StreamType::parse("order").unwrap(),
            StreamId::parse(format!("o-{i}")).unwrap(),
        )
    };
    // Five streams; two appends each, the second of three events.
    for i in 0..5 {
        for n in [1, 3] {
            let events = (0..n).map(|k| event(&format!("k{k}"), k)).collect();
            store
                .append(AppendRequest::new(key(i), Expectation::Any, events).unwrap())
                .await
                .unwrap();
        }
    }
    let batches = support::stream_batches(store.client(), &table, 4).await;
    assert!(batches.len() > 1);

    // First delivery: the feed is written, then the process dies (or every
    // publish fails) before the notifications are acknowledged.
    let crashed = fresh_relay();
    let mut first = Vec::new();
    for records in &batches {
        let out = crashed.process(records).await.unwrap();
        assert!(!out.entries.is_empty() || out.announcements.is_empty());
        first.extend(out.announcements);
    }
    assert_eq!(first.len(), 10, "one notification per append");
    let feed = whole_feed(&store).await;
    assert_eq!(feed.len(), 20);

    // The same process handed the batches again (the publish failed, Lambda
    // retries): the same notifications, nothing added to the feed.
    let mut again = Vec::new();
    for records in &batches {
        let out = crashed.process(records).await.unwrap();
        assert!(out.entries.is_empty(), "nothing is put into the feed twice");
        again.extend(out.announcements);
    }
    assert_eq!(again, first, "unacknowledged appends are announced again");

    // A new process (the crashed one is gone) gets the batches again, the
    // first one split in two as a bisecting retry would: it rebuilds the
    // same notifications (types, revisions, positions) from the records and
    // the feed pages, and acknowledges them once published.
    let retry = fresh_relay();
    let mut redelivery: Vec<Vec<_>> = vec![batches[0][..2].to_vec(), batches[0][2..].to_vec()];
    redelivery.extend(batches[1..].iter().cloned());
    let mut announced = Vec::new();
    for records in &redelivery {
        let out = retry.process(records).await.unwrap();
        assert!(out.entries.is_empty(), "nothing is put into the feed twice");
        retry.acknowledge(&out).await.unwrap();
        announced.extend(out.announcements);
    }
    assert_eq!(
        announced, first,
        "every append announced, with its position"
    );
    assert_eq!(whole_feed(&store).await, feed, "the feed is unchanged");

    // Acknowledged: a clean redelivery, in this process or another, adds
    // nothing and announces nothing.
    for relay in [retry.clone(), fresh_relay()] {
        for records in &batches {
            let out = relay.process(records).await.unwrap();
            assert!(out.entries.is_empty() && out.announcements.is_empty());
        }
    }

    // A batch that mixes acknowledged records with new ones announces only
    // the new appends.
    store
        .append(AppendRequest::new(key(0), Expectation::Any, vec![event("late", 0)]).unwrap())
        .await
        .unwrap();
    let all: Vec<_> = support::stream_batches(store.client(), &table, 1000)
        .await
        .concat();
    let out = fresh_relay().process(&all).await.unwrap();
    assert_eq!(out.entries.len(), 1);
    assert_eq!(out.announcements.len(), 1);
    let n = &out.announcements[0].entry;
    assert_eq!(
        (n.stream.stream_id.as_str(), n.first_revision, n.position),
        ("o-0", 5, 21)
    );
    let feed = whole_feed(&store).await;
    assert_eq!(feed.len(), 21);
    let ids: HashSet<_> = feed.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), feed.len(), "no event twice in the feed");
}

/// Lambda does not pin a shard to one execution environment: a batch
/// relayed and acknowledged by one instance can be delivered again to
/// another whose memory is older. That instance must read its checkpoint
/// and announcement mark from the table, not trust its memory, or the
/// feed repeats the batch (promise 7).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_redelivered_to_an_instance_with_stale_memory_adds_nothing() {
    a_batch_redelivered_to_an_instance_with_stale_memory_adds_nothing_with(false).await;
}

/// The same with the fidelity layer's faults on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_redelivered_to_an_instance_with_stale_memory_adds_nothing_with_faults() {
    a_batch_redelivered_to_an_instance_with_stale_memory_adds_nothing_with(true).await;
}

async fn a_batch_redelivered_to_an_instance_with_stale_memory_adds_nothing_with(faults: bool) {
    let h = support::harness_with("stale", None, false, faults).await;
    let store = h.store.clone();
    let table = store.table().to_string();
    let instance = || Relay::new(DynamoStore::new(store.client().clone(), table.clone()));
    for i in 0..3 {
        for a in 0..2 {
            let key = StreamKey::new(
                StreamType::parse("order").unwrap(),
                StreamId::parse(format!("s-{i}")).unwrap(),
            );
            store
                .append(AppendRequest::new(key, Expectation::Any, vec![event("k", a)]).unwrap())
                .await
                .unwrap();
        }
    }
    let batches = support::stream_batches(store.client(), &table, 2).await;
    assert!(batches.len() >= 3, "{} batches", batches.len());
    // Instance A relays the first two batches and remembers them.
    let a = instance();
    for records in &batches[..2] {
        let out = a.process(records).await.unwrap();
        a.acknowledge(&out).await.unwrap();
    }
    // Instance B relays (and acknowledges) the rest; the third batch is
    // then delivered again, to A, whose memory ends at the second.
    let b = instance();
    for records in &batches[2..] {
        let out = b.process(records).await.unwrap();
        b.acknowledge(&out).await.unwrap();
    }
    let again = a.process(&batches[2]).await.unwrap();
    assert!(again.entries.is_empty(), "a redelivered batch adds nothing");
    assert!(
        again.announcements.is_empty(),
        "an acknowledged batch is not announced again"
    );
    let feed = whole_feed(&store).await;
    assert_eq!(feed.len(), 6, "every event once");
    let mut seen = HashSet::new();
    for e in &feed {
        assert!(
            seen.insert((e.stream_id.clone(), e.revision)),
            "repeated in the feed: {} {}",
            e.stream_id,
            e.revision
        );
    }
}
