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
use support::{every_item, references, references_below};

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
    for item in every_item(store).await {
        for (name, value) in &item {
            out.push(name.clone());
            flatten(value, &mut out);
        }
    }
    out
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

    // The relay has handled the truncations too, and removed the feed's
    // references (it runs in the background: wait for it).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (refs, _) = references(store).await;
        let left: Vec<_> = [(&gone, 34), (&cut, 8), (&cut_tip, 4)]
            .into_iter()
            .flat_map(|(k, below)| references_below(&refs, k, below))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "references to removed events are left: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

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

/// A stream of 30 large appends: 30 chunks, 30 append-id items and the tip
/// (tip format), or 30 append items and 30 append-id items. Its item count.
async fn large_stream(store: &DynamoStore, k: &StreamKey, tip_format: bool) -> i32 {
    for _ in 0..30 {
        append(store, k, vec![event("", 700)]).await;
    }
    let expected = if tip_format { 61 } else { 60 };
    assert_eq!(items_of(store, k).await, expected);
    expected
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
    let fragile_append_items = DynamoStore::new(once, h.store.table());
    let fragile_tips = fragile_append_items.clone().with_tip_format();
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

    let tips = h.store.clone().with_tip_format();
    for (name, by_relay, tip_format) in [
        ("by-relay", true, false),
        ("by-request", false, false),
        ("tips-by-relay", true, true),
        ("tips-by-request", false, true),
    ] {
        let k = key("bulky", name);
        let (store, fragile) = if tip_format {
            (&tips, &fragile_tips)
        } else {
            (&h.store, &fragile_append_items)
        };
        let all = large_stream(store, &k, tip_format).await;
        // What a deletion leaves: the tip as a tombstone, or the tombstone
        // and the meta item.
        let kept = if tip_format { 1 } else { 2 };
        interrupt();
        let failed = fragile.delete_stream(&k, None).await;
        assert!(failed.is_err(), "the deletion was interrupted: {failed:?}");
        let left = items_of(&h.store, &k).await;
        assert!(
            left > kept && left < all,
            "half done: {left} items of {all} left"
        );
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
            kept,
            "only the tombstone (and the meta item) is left"
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

/// Every event of a feed (all, or one type's) with its position.
async fn whole_feed(
    store: &DynamoStore,
    filter: &FeedFilter,
) -> Vec<(StreamKey, u64, String, u64)> {
    let mut out = Vec::new();
    let mut after = Position::ZERO;
    loop {
        let page = store.read_feed(filter, after, 7).await.unwrap();
        out.extend(page.events.into_iter().map(|e| {
            (
                e.stream_key(),
                e.revision.get(),
                e.event_type.as_str().to_string(),
                e.position.unwrap().get(),
            )
        }));
        after = page.last_position;
        if !page.has_more {
            return out;
        }
    }
}

/// The feed's references to deleted and truncated events go: pages keep
/// gaps of their counts (positions never move), the type index loses
/// them, an append across a truncation's bound keeps its kept events.
/// Cleanups of two streams sharing pages, run at once (as relays of two
/// shards would), do not undo each other; a cleanup interrupted between a
/// page and its index item is finished when the relay handles the record
/// again. Readers of both feeds see the same events at the same positions
/// as before, and the `$stream-deleted` entries.
#[tokio::test(flavor = "multi_thread")]
async fn the_feed_keeps_no_reference_to_removed_events() {
    use aws_sdk_dynamodb::config::retry::RetryConfig;
    let h = support::harness("refs", None, false).await;
    let store = &h.store;
    let table = store.table().to_string();
    let relay_all = |relay: eventstore_dynamodb::Relay| {
        let client = store.client().clone();
        let table = table.clone();
        async move {
            for batch in support::stream_batches(&client, &table, 25).await {
                relay.process(&batch).await?;
            }
            Ok::<_, eventstore_dynamodb::DynamoError>(())
        }
    };
    let [a, b, c, d] = ["a", "b", "c", "d"].map(|id| key("refs", id));
    let other = key("other", "o");
    for _ in 0..12 {
        for k in [&a, &b, &c, &d, &other] {
            append(store, k, vec![event("", 0)]).await;
        }
    }
    append(store, &b, (0..10).map(|_| event("", 20)).collect()).await;
    relay_all(h.relay.clone()).await.unwrap();
    let (before, no_gaps) = references(store).await;
    assert_eq!(no_gaps, 0);
    assert_eq!(
        references_below(&before, &a, 13).len(),
        24,
        "a is in the feed"
    );
    let feed_before = whole_feed(store, &FeedFilter::All).await;
    assert_eq!(feed_before.len(), 70);

    store.delete_stream(&a, None).await.unwrap();
    store.delete_stream(&c, None).await.unwrap();
    store
        .truncate_stream(&b, Revision::new(17), None)
        .await
        .unwrap();

    // Two cleanups over the same pages at once.
    let (ra, rc) = tokio::join!(
        store.purge_feed_references(&a, 13, 1, 0),
        store.purge_feed_references(&c, 13, 1, 0),
    );
    let (ra, rc) = (ra.unwrap(), rc.unwrap());
    assert!(
        ra.pages_changed > 0 && rc.pages_changed > 0,
        "{ra:?} {rc:?}"
    );
    let (mid, _) = references(store).await;
    assert_eq!(references_below(&mid, &a, 13), vec![]);
    assert_eq!(references_below(&mid, &c, 13), vec![]);
    assert_eq!(
        references_below(&mid, &b, 17).len(),
        26,
        "b is untouched so far"
    );

    // The relay handles the deletions and the truncation, and is
    // interrupted after it rewrote a page, before the page's index item:
    // every write of the type's index answers 500 until the cleanup's own
    // retries give up.
    let sdk = support::sdk_config().await;
    let once = aws_sdk_dynamodb::Client::from_conf(
        eventstore_aws::config::dynamodb_config(&sdk)
            .retry_config(RetryConfig::standard().with_max_attempts(1))
            .build(),
    );
    let fragile = eventstore_dynamodb::Relay::new(DynamoStore::new(once, &table));
    support::fidelity(
        "PUT",
        &table,
        r#"{"rules":[{"op":["UpdateItem","DeleteItem"],"fault":"internal","probability":1,"times":1000,"match":"X#refs"}]}"#,
    );
    let interrupted = relay_all(fragile).await;
    assert!(interrupted.is_err(), "the cleanup was interrupted");
    let (half, _) = references(store).await;
    let left = references_below(&half, &b, 17);
    let in_pages: Vec<u64> = half
        .iter()
        .filter(|r| r.stream == b && !r.in_index)
        .map(|r| r.position)
        .collect();
    assert!(
        left.iter()
            .any(|r| r.in_index && !in_pages.contains(&r.position)),
        "a page was cut, its index item not: {left:?}"
    );
    support::fidelity("DELETE", &table, "");
    relay_all(h.relay.clone()).await.unwrap();

    let (after, gaps) = references(store).await;
    for (k, below) in [(&a, 13), (&c, 13), (&b, 17)] {
        assert_eq!(references_below(&after, k, below), vec![], "{k}");
    }
    // What is left of a and c: their deletion entries, page and index.
    for k in [&a, &c] {
        let left: Vec<_> = after.iter().filter(|r| &r.stream == k).collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(left.iter().all(|r| r.first == 13 && r.count == 1));
    }
    // b's batch (13–22) is cut to 17–22 at its old positions.
    let batch = feed_before
        .iter()
        .find(|(k, rev, _, _)| k == &b && *rev == 17)
        .unwrap()
        .3;
    let b_refs: Vec<_> = after.iter().filter(|r| r.stream == b).collect();
    assert_eq!(b_refs.len(), 2, "{b_refs:?}");
    assert!(
        b_refs
            .iter()
            .all(|r| r.first == 17 && r.count == 6 && r.position == batch)
    );
    assert_eq!(gaps, 12 + 12 + 12 + 4, "a, c, b's singles and 13–16");
    for k in [&d, &other] {
        assert_eq!(
            before.iter().filter(|r| &r.stream == k).collect::<Vec<_>>(),
            after.iter().filter(|r| &r.stream == k).collect::<Vec<_>>(),
            "{k} is untouched"
        );
    }

    // Readers: the same events at the same positions, and the deletions.
    let feed_after = whole_feed(store, &FeedFilter::All).await;
    let kept: Vec<_> = feed_before
        .iter()
        .filter(|(k, rev, _, _)| k == &d || k == &other || (k == &b && *rev >= 17))
        .cloned()
        .collect();
    let (deletions, rest): (Vec<_>, Vec<_>) = feed_after
        .into_iter()
        .partition(|(_, _, t, _)| t == STREAM_DELETED);
    assert_eq!(rest, kept);
    assert_eq!(
        deletions.iter().map(|e| (&e.0, e.1)).collect::<Vec<_>>(),
        vec![(&a, 13), (&c, 13)]
    );
    let typed = whole_feed(
        store,
        &FeedFilter::StreamType(StreamType::parse("refs").unwrap()),
    )
    .await;
    let typed_kept: Vec<_> = typed
        .iter()
        .filter(|(_, _, t, _)| t != STREAM_DELETED)
        .cloned()
        .collect();
    assert_eq!(
        typed_kept,
        kept.iter()
            .filter(|(k, _, _, _)| k != &other)
            .cloned()
            .collect::<Vec<_>>()
    );
}

/// A replay of a batch the relay gave up on (`relay replay-failures`), run
/// after the stream was deleted and the feed's references to it removed,
/// puts none of them back, though the records' images still hold the
/// events; the deletion's entry is not written twice.
#[tokio::test(flavor = "multi_thread")]
async fn a_replay_after_a_deletion_puts_no_reference_back() {
    let h = support::harness("replay-refs", None, false).await;
    let store = &h.store;
    let table = store.table().to_string();
    let gone = key("late", "l-1");
    let kept = key("late", "k-1");
    for _ in 0..3 {
        append(store, &gone, vec![event("", 0)]).await;
        append(store, &kept, vec![event("", 0)]).await;
    }
    let failed = support::stream_batches(store.client(), &table, 100).await;
    for batch in &failed {
        h.relay.process(batch).await.unwrap();
    }
    store.delete_stream(&gone, None).await.unwrap();
    for batch in support::stream_batches(store.client(), &table, 100).await {
        h.relay.process(&batch).await.unwrap();
    }
    let (refs, _) = references(store).await;
    assert_eq!(references_below(&refs, &gone, 4), vec![]);
    for batch in &failed {
        h.relay.replay(batch).await.unwrap();
    }
    let (after, _) = references(store).await;
    assert_eq!(
        references_below(&after, &gone, 4),
        vec![],
        "a replay put them back"
    );
    assert_eq!(after, refs, "the replay changed the feed");
}

/// Lambda redelivers a batch, to an instance with nothing in memory, after
/// the relay handled it and the records after it (a deletion and a
/// truncation, whose cleanups removed the feed's references): the
/// redelivery and every batch after it, handled again by the new instance
/// and by the first one, change nothing — no reference comes back, no
/// entry repeats, no position moves.
#[tokio::test(flavor = "multi_thread")]
async fn a_redelivered_batch_after_the_cleanups_changes_nothing() {
    let h = support::harness("redeliver", None, false).await;
    let store = &h.store;
    let table = store.table().to_string();
    let gone = key("again", "g-1");
    let cut = key("again", "c-1");
    let kept = key("again", "k-1");
    for _ in 0..4 {
        for k in [&gone, &cut, &kept] {
            append(store, k, vec![event("", 0)]).await;
        }
    }
    store.delete_stream(&gone, None).await.unwrap();
    store
        .truncate_stream(&cut, Revision::new(3), None)
        .await
        .unwrap();
    append(store, &kept, vec![event("", 0)]).await;
    let batches = support::stream_batches(store.client(), &table, 5).await;
    assert!(batches.len() > 2, "several batches: {}", batches.len());
    for batch in &batches {
        h.relay.process(batch).await.unwrap();
    }
    let (refs, gaps) = references(store).await;
    assert_eq!(references_below(&refs, &gone, 5), vec![]);
    assert_eq!(references_below(&refs, &cut, 3), vec![]);
    let feed = whole_feed(store, &FeedFilter::All).await;
    let fresh = eventstore_dynamodb::Relay::new(store.clone());
    for relay in [&fresh, &h.relay] {
        for from in [0, batches.len() / 2] {
            for batch in &batches[from..] {
                relay.process(batch).await.unwrap();
            }
            assert_eq!(references(store).await, (refs.clone(), gaps));
            assert_eq!(whole_feed(store, &FeedFilter::All).await, feed);
        }
    }
}

/// One deletion's cleanup run twice at the same moment (two relay
/// instances handed the same record, or the relay and the request that
/// finishes a deletion), then a third time by the relay: each page loses
/// the stream's references once, its gap count counts each removed
/// position once, and every other stream's references and positions stay
/// as they were.
#[tokio::test(flavor = "multi_thread")]
async fn one_deletions_cleanup_run_twice_at_once_removes_each_reference_once() {
    let h = support::harness("twice", None, false).await;
    let store = &h.store;
    let table = store.table().to_string();
    let gone = key("twice", "g-1");
    let kept = key("twice", "k-1");
    let other = key("elsewhere", "o-1");
    for _ in 0..12 {
        for k in [&gone, &kept, &other] {
            append(store, k, vec![event("", 0)]).await;
        }
    }
    // A batch of the deleted stream too: one entry of 10 positions.
    append(store, &gone, (0..10).map(|_| event("", 20)).collect()).await;
    for batch in support::stream_batches(store.client(), &table, 7).await {
        h.relay.process(&batch).await.unwrap();
    }
    let (before, no_gaps) = references(store).await;
    assert_eq!(no_gaps, 0);
    assert_eq!(
        references_below(&before, &gone, 23).len(),
        26,
        "page and index"
    );
    let feed_before = whole_feed(store, &FeedFilter::All).await;
    assert_eq!(feed_before.len(), 46);

    store.delete_stream(&gone, None).await.unwrap();
    let (one, two) = tokio::join!(
        store.purge_feed_references(&gone, 23, 1, 0),
        store.purge_feed_references(&gone, 23, 1, 0),
    );
    let (one, two) = (one.unwrap(), two.unwrap());
    assert!(one.pages_changed + two.pages_changed > 0, "{one:?} {two:?}");
    let check = |refs: &[support::Reference], gaps: u64| {
        assert_eq!(references_below(refs, &gone, 23), vec![]);
        assert_eq!(gaps, 12 + 10, "each removed position is one gap");
        for k in [&kept, &other] {
            assert_eq!(
                before.iter().filter(|r| &r.stream == k).collect::<Vec<_>>(),
                refs.iter().filter(|r| &r.stream == k).collect::<Vec<_>>(),
                "{k} is untouched"
            );
        }
    };
    let (mid, gaps) = references(store).await;
    check(&mid, gaps);

    // The relay handles the deletion's record: its own cleanup finds
    // nothing left to remove, and writes the deletion's entry.
    for batch in support::stream_batches(store.client(), &table, 7).await {
        h.relay.process(&batch).await.unwrap();
    }
    let (after, gaps) = references(store).await;
    let (deletion, rest): (Vec<_>, Vec<_>) = after.iter().cloned().partition(|r| r.stream == gone);
    check(&rest, gaps);
    assert_eq!(
        deletion.len(),
        2,
        "the deletion's entry, page and index: {deletion:?}"
    );
    let kept_feed: Vec<_> = feed_before
        .iter()
        .filter(|(k, _, _, _)| k != &gone)
        .cloned()
        .collect();
    let (deletions, feed_after): (Vec<_>, Vec<_>) = whole_feed(store, &FeedFilter::All)
        .await
        .into_iter()
        .partition(|(_, _, t, _)| t == STREAM_DELETED);
    assert_eq!(
        feed_after, kept_feed,
        "the same events at the same positions"
    );
    assert_eq!(deletions.len(), 1);
}
