//! Stream deletion and truncation on DynamoDB, beyond the conformance
//! suite: erasure checked as a user would (a unique marker in payloads and
//! metadata, then a scan of every item and attribute of the table, event
//! blobs decoded), and a deletion interrupted between its batches, then
//! finished by the relay or by the next request.

mod support;

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, Select};
use eventstore_core::{
    AppendRequest, EventStore, EventType, Expectation, FeedFilter, JsonObject, JsonValue, NewEvent,
    Position, Revision, STREAM_DELETED, StoreError, StreamId, StreamKey, StreamRead, StreamType,
};
use eventstore_dynamodb::{DynamoStore, codec, items};

fn key(t: &str, id: &str) -> StreamKey {
    StreamKey::new(StreamType::parse(t).unwrap(), StreamId::parse(id).unwrap())
}

/// An event whose payload and metadata hold `mark` (empty: neither does),
/// `pad` bytes of filler making it larger.
fn event(mark: &str, pad: usize) -> NewEvent {
    let mut e = NewEvent::new(
        EventType::parse("Noted").unwrap(),
        JsonValue::from_text(format!(
            r#"{{"note":"{mark}","pad":"{}"}}"#,
            "x".repeat(pad)
        ))
        .unwrap(),
    );
    if !mark.is_empty() {
        e.metadata = JsonObject::from_text(format!(r#"{{"by":"{mark}"}}"#)).unwrap();
    }
    e
}

async fn append(store: &DynamoStore, k: &StreamKey, events: Vec<NewEvent>) {
    store
        .append(AppendRequest::new(k.clone(), Expectation::Any, events).unwrap())
        .await
        .unwrap();
}

/// Every value of every item of the table as text: strings, numbers,
/// binaries as (lossy) UTF-8 and, where a binary is an event blob, its
/// events' types, payloads and metadata decoded.
async fn table_text(store: &DynamoStore) -> Vec<String> {
    fn flatten(v: &AttributeValue, out: &mut Vec<String>) {
        match v {
            AttributeValue::S(s) | AttributeValue::N(s) => out.push(s.clone()),
            AttributeValue::B(b) => {
                out.push(String::from_utf8_lossy(b.as_ref()).into_owned());
                if let Ok(events) = codec::decode(b.as_ref()) {
                    for e in events {
                        out.push(e.event_type.as_str().to_string());
                        out.push(e.payload.get().to_string());
                        out.push(e.metadata.get().to_string());
                    }
                }
            }
            AttributeValue::L(list) => list.iter().for_each(|v| flatten(v, out)),
            AttributeValue::M(map) => map.iter().for_each(|(k, v)| {
                out.push(k.clone());
                flatten(v, out);
            }),
            AttributeValue::Ss(l) | AttributeValue::Ns(l) => out.extend(l.iter().cloned()),
            AttributeValue::Bs(l) => l
                .iter()
                .for_each(|b| out.push(String::from_utf8_lossy(b.as_ref()).into_owned())),
            other => out.push(format!("{other:?}")),
        }
    }
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let page = store
            .client()
            .scan()
            .table_name(store.table())
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        for item in page.items() {
            for (name, value) in item {
                out.push(name.clone());
                flatten(value, &mut out);
            }
        }
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            return out;
        }
    }
}

fn found(text: &[String], mark: &str) -> usize {
    text.iter().filter(|t| t.contains(mark)).count()
}

/// Reads the global feed until `done` holds for what was read (the relay
/// runs in the background), at most a minute.
async fn feed_until(
    store: &DynamoStore,
    done: impl Fn(&[eventstore_core::RecordedEvent]) -> bool,
) -> Vec<eventstore_core::RecordedEvent> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut all = Vec::new();
        let mut after = Position::ZERO;
        loop {
            let page = store.read_feed(&FeedFilter::All, after, 100).await.unwrap();
            all.extend(page.events);
            after = page.last_position;
            if !page.has_more {
                break;
            }
        }
        if done(&all) {
            return all;
        }
        assert!(
            Instant::now() < deadline,
            "the feed never got there: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn markers_are_gone(faults: bool) {
    let h = support::harness_with("marker", None, true, faults).await;
    let store = &h.store;
    let run = uuid::Uuid::now_v7().simple().to_string();
    let deleted_mark = format!("gone-{run}");
    let truncated_mark = format!("cut-{run}");

    // A stream to delete: its marker in the tip, in a batch chunk, in a
    // large event's chunk, and in chunks the tip's events moved to.
    let gone = key("person", "p-gone");
    append(store, &gone, vec![event(&deleted_mark, 0)]).await;
    append(
        store,
        &gone,
        (0..10).map(|_| event(&deleted_mark, 20)).collect(),
    )
    .await;
    for _ in 0..20 {
        append(store, &gone, vec![event("", 0)]).await;
    }
    append(store, &gone, vec![event(&deleted_mark, 800)]).await;
    append(store, &gone, vec![event(&deleted_mark, 0)]).await;

    // A stream to truncate across a chunk: revisions 1-3 (marked) move to a
    // chunk, 4-15 are one chunk whose first four are marked, 16-18 stay in
    // the tip; the bound 8 removes 1-7.
    let cut = key("person", "p-cut");
    for _ in 0..3 {
        append(store, &cut, vec![event(&truncated_mark, 0)]).await;
    }
    let mut batch: Vec<NewEvent> = (0..4).map(|_| event(&truncated_mark, 20)).collect();
    batch.extend((0..8).map(|_| event("kept", 20)));
    append(store, &cut, batch).await;
    for _ in 0..3 {
        append(store, &cut, vec![event("kept", 0)]).await;
    }
    // A stream truncated inside the tip: revisions 1-3 marked, 4-6 not.
    let cut_tip = key("person", "p-cut-tip");
    for i in 0..6 {
        let mark = if i < 3 {
            truncated_mark.as_str()
        } else {
            "kept"
        };
        append(store, &cut_tip, vec![event(mark, 0)]).await;
    }

    let before = table_text(store).await;
    assert!(
        found(&before, &deleted_mark) > 0,
        "the scan sees the marker"
    );
    assert!(
        found(&before, &truncated_mark) > 0,
        "the scan sees the marker"
    );

    store.delete_stream(&gone, None).await.unwrap();
    let info = store
        .truncate_stream(&cut, Revision::new(8), None)
        .await
        .unwrap();
    assert_eq!(info.first_revision, Revision::new(8));
    store
        .truncate_stream(&cut_tip, Revision::new(4), None)
        .await
        .unwrap();

    // The relay has handled the deletion (and everything before it).
    feed_until(store, |feed| {
        feed.iter()
            .any(|e| e.stream_key() == gone && e.event_type.as_str() == STREAM_DELETED)
    })
    .await;
    let kept: Vec<u64> = store
        .read_stream(&cut, StreamRead::forward())
        .await
        .unwrap()
        .events
        .iter()
        .map(|e| e.revision.get())
        .collect();
    assert_eq!(kept, (8..=18).collect::<Vec<_>>());

    let after = table_text(store).await;
    assert_eq!(
        found(&after, &deleted_mark),
        0,
        "a deleted stream's marker is still in the table"
    );
    assert_eq!(
        found(&after, &truncated_mark),
        0,
        "a truncated range's marker is still in the table"
    );
    assert!(found(&after, "kept") > 0, "the kept events are still there");
}

#[tokio::test(flavor = "multi_thread")]
async fn erased_markers_are_nowhere_in_the_table() {
    markers_are_gone(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn erased_markers_are_nowhere_in_the_table_with_faults() {
    markers_are_gone(true).await;
}

/// Items in the stream's partition (its tip included).
async fn items_of(store: &DynamoStore, k: &StreamKey) -> i32 {
    store
        .client()
        .query()
        .table_name(store.table())
        .key_condition_expression(items::cond::PARTITION)
        .expression_attribute_values(":p", AttributeValue::S(items::stream_pk(k)))
        .select(Select::Count)
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .count()
}

/// A stream of 30 large appends: 30 chunks, 30 append-id items, the tip.
async fn large_stream(store: &DynamoStore, k: &StreamKey) {
    for _ in 0..30 {
        append(store, k, vec![event("", 700)]).await;
    }
    assert_eq!(items_of(store, k).await, 61);
}

/// A deletion whose second `BatchWriteItem` fails for good (the first is
/// applied and its answer lost, and the client does not retry): the
/// request fails after its commit point, with items left. The stream is
/// deleted all the same (410 everywhere), and the cleanup is finished by
/// the relay when it handles the deletion, or by the next request.
#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_deletion_is_finished_by_the_relay_or_the_next_request() {
    use aws_sdk_dynamodb::config::retry::RetryConfig;
    let h = support::harness("interrupted", None, false).await;
    let sdk = support::sdk_config().await;
    let once = aws_sdk_dynamodb::Client::from_conf(
        eventstore_aws::config::dynamodb_config(&sdk)
            .retry_config(RetryConfig::standard().with_max_attempts(1))
            .build(),
    );
    let fragile = DynamoStore::new(once, h.store.table());
    let table = h.store.table().to_string();
    let interrupt = || {
        support::fidelity(
            "PUT",
            &table,
            &format!(
                r#"{{"rules":[{{"op":"BatchWriteItem","fault":"lost","probability":1,"times":1,"match":"\"{table}\""}}]}}"#
            ),
        );
    };

    for (name, by_relay) in [("by-relay", true), ("by-request", false)] {
        let k = key("bulky", name);
        large_stream(&h.store, &k).await;
        interrupt();
        let failed = fragile.delete_stream(&k, None).await;
        assert!(failed.is_err(), "the deletion was interrupted: {failed:?}");
        let left = items_of(&h.store, &k).await;
        assert!(left > 1 && left < 61, "half done: {left} items of 61 left");
        match h.store.read_stream(&k, StreamRead::forward()).await {
            Err(StoreError::StreamDeleted(_)) => {}
            other => panic!("a half-done deletion is a deletion: {other:?}"),
        }
        if by_relay {
            for batch in support::stream_batches(h.store.client(), &table, 100).await {
                h.relay.process(&batch).await.unwrap();
            }
        } else {
            let again = h.store.delete_stream(&k, None).await.unwrap();
            assert!(again.already_deleted);
            assert_eq!(again.last_revision, Revision::new(30));
        }
        assert_eq!(
            items_of(&h.store, &k).await,
            1,
            "only the tombstone is left"
        );
        match h
            .store
            .append(AppendRequest::new(k.clone(), Expectation::Any, vec![event("", 0)]).unwrap())
            .await
        {
            Err(StoreError::StreamDeleted(_)) => {}
            other => panic!("an append to a deleted stream: {other:?}"),
        }
    }
}
