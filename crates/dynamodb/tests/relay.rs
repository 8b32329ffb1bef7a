//! The relay driven from moto's DynamoDB Streams API while writers are
//! active: batches handed over twice and a restarted relay neither lose
//! nor repeat an event, positions respect per-stream order, and every
//! append yields one notification.

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
    let h = support::harness("relay", None, false).await;
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
                let again = relay.process(&records).await.unwrap();
                assert!(
                    again.entries.is_empty(),
                    "a batch handed over twice adds nothing"
                );
                notifications.extend(first.notifications);
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
        notifications.extend(fresh.process(&records).await.unwrap().notifications);
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
    // Notifications carry the appends' revisions, types and positions.
    for n in &notifications {
        let count = n.stream_revision.get() - n.first_revision.get() + 1;
        assert_eq!(n.event_types.len() as u64, count);
        let p = n.position.unwrap();
        let e = seen.iter().find(|e| e.position == Some(p)).unwrap();
        assert_eq!(e.revision, n.first_revision);
        assert_eq!(e.stream_id, n.stream_id);
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
