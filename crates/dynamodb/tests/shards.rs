//! The in-process relay poller over a stream of several shards that split
//! while writers write (the fidelity layer's virtual shards,
//! `support::virtual_shards`, and its live split, `support::split_shard`):
//! the feed ends complete, without repeats, in revision order per stream,
//! with a stream's records read from a parent shard before its children.
//! Runs on plain moto and with the fidelity layer's faults on.

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use eventstore_core::{
    AppendRequest, EventStore, EventType, Expectation, FeedFilter, JsonValue, NewEvent, Position,
    Revision, StreamId, StreamKey, StreamType,
};
use eventstore_dynamodb::{DynamoStore, items, spawn_poller};
use futures::future::join_all;

fn event(i: usize) -> NewEvent {
    NewEvent::new(
        EventType::parse("Happened").unwrap(),
        JsonValue::from_text(format!(r#"{{"i":{i}}}"#)).unwrap(),
    )
}

/// Every event of the feed, in order.
async fn whole_feed(store: &DynamoStore) -> Vec<eventstore_core::RecordedEvent> {
    let mut seen = Vec::new();
    let mut after = Position::ZERO;
    loop {
        let page = store.read_feed(&FeedFilter::All, after, 100).await.unwrap();
        after = page.last_position;
        seen.extend(page.events);
        if !page.has_more {
            return seen;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poller_keeps_the_feed_complete_and_ordered_across_a_live_split() {
    across_a_live_split(false).await;
}

/// The same with the fidelity layer's faults on (the poller restarts from
/// every shard's trim horizon after a failed request).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poller_keeps_the_feed_complete_and_ordered_across_a_live_split_with_faults() {
    across_a_live_split(true).await;
}

async fn across_a_live_split(faults: bool) {
    let h = support::harness_with("split", None, false, faults).await;
    let store = h.store.clone();
    let table = store.table().to_string();
    support::virtual_shards(&table, 3);

    const STREAMS: usize = 12;
    const APPENDS: usize = 12;
    let done = Arc::new(AtomicUsize::new(0));
    let writers = join_all((0..3).map(|w| {
        let store = store.clone();
        let done = done.clone();
        async move {
            for a in 0..APPENDS {
                for s in (w..STREAMS).step_by(3) {
                    let key = StreamKey::new(
                        StreamType::parse(if s % 2 == 0 { "even" } else { "odd" }).unwrap(),
                        StreamId::parse(format!("s-{s}")).unwrap(),
                    );
                    let n = 1 + (a + s) % 3;
                    let events = (0..n).map(event).collect();
                    store
                        .append(AppendRequest::new(key, Expectation::Any, events).unwrap())
                        .await
                        .unwrap();
                    done.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    }));
    // Two live splits while the writers write: at a third and at two
    // thirds of the appends (the second splits one of the first's
    // children, so the lineage is three deep). The poller starts after the
    // first, behind: it finds a closed parent and its children both
    // holding records, and must read the parent first; it is running
    // during the second.
    let relay = h.relay.clone();
    let splitting = async {
        let total = STREAMS * APPENDS;
        let wait_for = |n: usize| {
            let done = done.clone();
            async move {
                while done.load(Ordering::SeqCst) < n {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        wait_for(total / 3).await;
        let first = support::split_shard(&table, None);
        let poller = spawn_poller(
            support::streams_client().await,
            relay,
            Duration::from_millis(50),
        );
        wait_for(2 * total / 3).await;
        let child = first["children"][0].as_str().unwrap().to_string();
        let second = support::split_shard(&table, Some(&child));
        (first, second, poller)
    };
    let (_, (first, second, _poller)) = futures::join!(writers, splitting);

    let total_events: usize = (0..STREAMS)
        .map(|s| (0..APPENDS).map(|a| 1 + (a + s) % 3).sum::<usize>())
        .sum();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let feed = loop {
        let feed = whole_feed(&store).await;
        if feed.len() >= total_events || tokio::time::Instant::now() > deadline {
            break feed;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let ids: HashSet<_> = feed.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), feed.len(), "no event twice in the feed");
    assert_eq!(feed.len(), total_events, "no event missing from the feed");
    let mut per_stream: BTreeMap<StreamKey, Revision> = BTreeMap::new();
    let mut last = Position::ZERO;
    for e in &feed {
        assert!(e.position.unwrap() > last, "positions increase");
        last = e.position.unwrap();
        let prev = per_stream
            .insert(e.stream_key(), e.revision)
            .unwrap_or(Revision::ZERO);
        assert_eq!(
            e.revision,
            prev.next(),
            "feed order is revision order per stream, across the splits"
        );
    }

    // The shape the relay had to cope with: a parent closed mid-run with
    // records on both sides, and streams whose records moved from the
    // parent to a child.
    let layout = support::shard_layout(&table);
    eprintln!("shards: {layout:#?}");
    let closed: Vec<&serde_json::Value> = layout.iter().filter(|s| !s["end"].is_null()).collect();
    assert_eq!(closed.len(), 2, "two shards were split");
    for split in [&first, &second] {
        let parent = split["closed"].as_str().unwrap();
        let records = |id: &str| {
            layout
                .iter()
                .find(|s| s["id"] == id)
                .map(|s| s["records"].as_u64().unwrap())
                .unwrap()
        };
        assert!(records(parent) > 0, "the split shard had records");
        let children: u64 = split["children"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| records(c.as_str().unwrap()))
            .sum();
        assert!(children > 0, "its children got records after the split");
    }
    let by_shard = support::records_by_shard(store.client(), &table).await;
    let parents: HashMap<&str, Option<&str>> = by_shard
        .iter()
        .map(|(id, parent, _)| (id.as_str(), parent.as_deref()))
        .collect();
    let mut shards_of: HashMap<String, HashSet<&str>> = HashMap::new();
    for (id, _, records) in &by_shard {
        for r in records {
            if let Some(img) = &r.new_image
                && let Some(pk) = img.get(items::PK).and_then(|v| v.as_s().ok())
            {
                shards_of.entry(pk.clone()).or_default().insert(id.as_str());
            }
        }
    }
    let moved = shards_of
        .values()
        .filter(|shards| {
            shards.iter().any(|s| {
                parents
                    .get(s)
                    .copied()
                    .flatten()
                    .is_some_and(|p| shards.contains(p))
            })
        })
        .count();
    assert!(
        moved > 0,
        "some stream's records are in a parent shard and in its child"
    );
}
