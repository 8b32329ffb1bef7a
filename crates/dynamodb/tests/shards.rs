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

/// Deletions and truncations whose records land in a child shard while
/// the appends they remove are in its parent (and a second split after
/// them): the poller reads the parent first, so the feed ends with every
/// kept event once, in order, one `$stream-deleted` entry per deletion,
/// nothing of the removed events, and no reference to them left in the
/// feed's pages or type index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletions_and_truncations_across_a_live_split() {
    removals_across_a_live_split(false).await;
}

/// The same with the fidelity layer's faults on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletions_and_truncations_across_a_live_split_with_faults() {
    removals_across_a_live_split(true).await;
}

async fn removals_across_a_live_split(faults: bool) {
    let h = support::harness_with("split-del", None, false, faults).await;
    let store = h.store.clone();
    let table = store.table().to_string();
    support::virtual_shards(&table, 3);
    let keys: Vec<StreamKey> = (0..12)
        .map(|s| {
            StreamKey::new(
                StreamType::parse(if s % 2 == 0 { "even" } else { "odd" }).unwrap(),
                StreamId::parse(format!("d-{s}")).unwrap(),
            )
        })
        .collect();
    let mut revisions = vec![0u64; keys.len()];
    let mut append_round = |round: std::ops::Range<usize>| {
        let store = store.clone();
        let keys = keys.clone();
        let mut counts = Vec::new();
        for a in round {
            for (s, k) in keys.iter().enumerate() {
                counts.push((s, k.clone(), 1 + (a + s) % 2));
            }
        }
        for (s, _, n) in &counts {
            revisions[*s] += *n as u64;
        }
        async move {
            for (_, k, n) in counts {
                let events = (0..n).map(event).collect();
                store
                    .append(AppendRequest::new(k, Expectation::Any, events).unwrap())
                    .await
                    .unwrap();
            }
        }
    };
    append_round(0..4).await;
    // Split the shard that holds d-0's records (a stream's records go to
    // a shard by a hash of its key); the streams of that shard are the
    // ones whose removals cross the split.
    let by_shard = support::records_by_shard(store.client(), &table).await;
    let shard_of = |k: &StreamKey| -> String {
        let pk = items::stream_pk(k);
        by_shard
            .iter()
            .find(|(_, _, records)| records.iter().any(|r| holds(r, &pk)))
            .map(|(id, _, _)| id.clone())
            .expect("the stream's records are in a shard")
    };
    let home = shard_of(&keys[0]);
    let (crossing, elsewhere): (Vec<usize>, Vec<usize>) =
        (0..keys.len()).partition(|&s| shard_of(&keys[s]) == home);
    assert!(
        crossing.len() >= 2 && !elsewhere.is_empty(),
        "{crossing:?} {elsewhere:?}"
    );
    let first = support::split_shard(&table, Some(&home));
    let _poller = spawn_poller(
        support::streams_client().await,
        h.relay.clone(),
        Duration::from_millis(50),
    );
    append_round(4..8).await;
    // The removals, after the split: their records go to the children.
    let deleted = [crossing[0], elsewhere[0]];
    let truncated = [(crossing[1], 4u64), (*elsewhere.last().unwrap(), 7)];
    for s in deleted {
        store.delete_stream(&keys[s], None).await.unwrap();
    }
    for (s, at) in truncated {
        store
            .truncate_stream(&keys[s], Revision::new(at), None)
            .await
            .unwrap();
    }
    let child = first["children"][0].as_str().unwrap().to_string();
    support::split_shard(&table, Some(&child));
    let untouched: Vec<usize> = (0..keys.len())
        .filter(|s| !deleted.contains(s) && !truncated.iter().any(|(t, _)| t == s))
        .collect();
    for s in untouched.iter().copied().chain([truncated[0].0]) {
        store
            .append(AppendRequest::new(keys[s].clone(), Expectation::Any, vec![event(99)]).unwrap())
            .await
            .unwrap();
        revisions[s] += 1;
    }

    // What the feed must end as: per stream, the kept revisions, and the
    // deletion entries at the revision after the last.
    let mut expected: BTreeMap<StreamKey, Vec<(u64, bool)>> = BTreeMap::new();
    for (s, k) in keys.iter().enumerate() {
        let from = truncated
            .iter()
            .find(|(t, _)| *t == s)
            .map_or(1, |(_, at)| *at);
        let list = if deleted.contains(&s) {
            vec![(revisions[s] + 1, true)]
        } else {
            (from..=revisions[s]).map(|r| (r, false)).collect()
        };
        expected.insert(k.clone(), list);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let (refs, got) = loop {
        let feed = whole_feed(&store).await;
        let mut got: BTreeMap<StreamKey, Vec<(u64, bool)>> = BTreeMap::new();
        for e in &feed {
            got.entry(e.stream_key()).or_default().push((
                e.revision.get(),
                e.event_type.as_str() == eventstore_core::STREAM_DELETED,
            ));
        }
        let (refs, _) = support::references(&store).await;
        let stale: usize = keys
            .iter()
            .enumerate()
            .map(|(s, k)| {
                let below = if deleted.contains(&s) {
                    revisions[s] + 1
                } else {
                    truncated
                        .iter()
                        .find(|(t, _)| *t == s)
                        .map_or(1, |(_, at)| *at)
                };
                support::references_below(&refs, k, below).len()
            })
            .sum();
        if (got == expected && stale == 0) || tokio::time::Instant::now() > deadline {
            break (refs, got);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(got, expected, "the feed after the removals");
    for (s, k) in keys.iter().enumerate() {
        if deleted.contains(&s) {
            assert_eq!(
                support::references_below(&refs, k, revisions[s] + 1),
                vec![],
                "{k}: no reference to a deleted stream's events"
            );
        }
        if let Some((_, at)) = truncated.iter().find(|(t, _)| *t == s) {
            assert_eq!(
                support::references_below(&refs, k, *at),
                vec![],
                "{k}: no reference below the truncation"
            );
        }
    }
    let feed = whole_feed(&store).await;
    let positions: Vec<u64> = feed.iter().map(|e| e.position.unwrap().get()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");

    // The shape: the crossing streams' records are in the split shard
    // (their early appends) and in a child (the removal among them).
    let by_shard = support::records_by_shard(store.client(), &table).await;
    let parent = first["closed"].as_str().unwrap();
    assert_eq!(parent, home);
    for s in [deleted[0], truncated[0].0] {
        let pk = items::stream_pk(&keys[s]);
        let shards: HashSet<&str> = by_shard
            .iter()
            .filter(|(_, _, records)| records.iter().any(|r| holds(r, &pk)))
            .map(|(id, _, _)| id.as_str())
            .collect();
        assert!(
            shards.contains(parent) && shards.len() > 1,
            "{}: records in the parent and a child: {shards:?}",
            keys[s]
        );
    }
}

/// Whether the record is of an item in the partition `pk`.
fn holds(r: &eventstore_dynamodb::ChangeRecord, pk: &str) -> bool {
    [&r.new_image, &r.old_image]
        .into_iter()
        .flatten()
        .any(|img| {
            img.get(items::PK)
                .and_then(|v| v.as_s().ok())
                .is_some_and(|p| p == pk)
        })
}
