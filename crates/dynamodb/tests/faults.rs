//! Regression tests for the defects of issue 10, each under the fidelity
//! layer of `scripts/moto/server.py` (DynamoDB's `ClientRequestToken`
//! semantics, injected faults), each named after what it guards.

mod support;

use std::time::Duration;

use eventstore_core::{
    AppendRequest, EventStore, EventType, Expectation, FeedFilter, JsonValue, NewEvent, Position,
    Revision, StoreError, StreamId, StreamKey, StreamRead, StreamType, Timestamp,
};
use eventstore_dynamodb::items;

fn key(t: &str, id: &str) -> StreamKey {
    StreamKey::new(StreamType::parse(t).unwrap(), StreamId::parse(id).unwrap())
}

/// An event whose blob is over the tip's 640 bytes: it takes the
/// transactional path.
fn large_event(kind: &str) -> NewEvent {
    NewEvent::new(
        EventType::parse(kind).unwrap(),
        JsonValue::from_text(format!("\"{}\"", "x".repeat(700))).unwrap(),
    )
}

fn rule(table: &str, op: &str, fault: &str, times: u32) -> String {
    format!(
        r#"{{"op":"{op}","fault":"{fault}","probability":1,"times":{times},"match":"\"{table}\""}}"#
    )
}

fn faults(table: &str, rules: &[String]) {
    support::fidelity(
        "PUT",
        table,
        &format!(r#"{{"rules":[{}]}}"#, rules.join(",")),
    );
}

/// An event of 200 KiB: two of them pass an append item's 350 KiB, so an
/// append of two is two items in one transaction.
fn huge_event(kind: &str) -> NewEvent {
    NewEvent::new(
        EventType::parse(kind).unwrap(),
        JsonValue::from_text(format!("\"{}\"", "x".repeat(200 * 1024))).unwrap(),
    )
}

/// The transactional appends: of a stream of tip format, large appends
/// (over the tip's 640 bytes); of a stream of append items, appends over
/// 350 KiB (several items).
async fn transactional(tag: &str, tip_format: bool) -> (support::Harness, fn(&str) -> NewEvent) {
    let mut h = support::harness(tag, None, false).await;
    if tip_format {
        h.store = h.store.with_tip_format();
        (h, large_event)
    } else {
        (h, huge_event)
    }
}

#[tokio::test]
async fn a_transaction_retried_after_a_conflict_is_not_an_idempotent_parameter_mismatch() {
    for tip_format in [true, false] {
        transaction_retried_after_a_conflict(tip_format).await;
    }
}

async fn transaction_retried_after_a_conflict(tip_format: bool) {
    let (h, big) = transactional("token", tip_format).await;
    let table = h.store.table().to_string();
    // The first attempt of each transactional append is cancelled for a
    // TransactionConflict; the retry must not reuse the token with other
    // parameters (its commit time), which DynamoDB refuses.
    faults(&table, &[rule(&table, "TransactWriteItems", "conflict", 2)]);
    let stream = key("order", "token-1");
    let out = h
        .store
        .append(
            AppendRequest::new(
                stream.clone(),
                Expectation::NoStream,
                vec![big("Placed"), big("More")],
            )
            .unwrap(),
        )
        .await
        .expect("a retried transaction succeeds");
    assert_eq!(out.last_revision, Revision::new(2));
    let out = h
        .store
        .append(
            AppendRequest::new(
                stream.clone(),
                Expectation::Any,
                vec![big("Paid"), big("More")],
            )
            .unwrap(),
        )
        .await
        .expect("a retried transaction succeeds");
    assert_eq!(out.last_revision, Revision::new(4));
    let report = support::fidelity("GET", &table, "");
    assert!(
        report.contains(r#""TransactWriteItems:conflict": 2"#),
        "{report}"
    );
    assert!(!report.contains("IdempotentParameterMismatch"), "{report}");
}

#[tokio::test]
async fn a_transaction_whose_answer_was_lost_is_deduplicated_by_its_token() {
    for tip_format in [true, false] {
        transaction_whose_answer_was_lost(tip_format).await;
    }
}

async fn transaction_whose_answer_was_lost(tip_format: bool) {
    let (h, big) = transactional("lost-tx", tip_format).await;
    let table = h.store.table().to_string();
    faults(
        &table,
        &[
            rule(&table, "TransactWriteItems", "lost", 1),
            rule(&table, "TransactWriteItems", "in-progress", 1),
        ],
    );
    let stream = key("order", "lost-1");
    let events = vec![big("A"), big("B")];
    let out = h
        .store
        .append(AppendRequest::new(stream.clone(), Expectation::NoStream, events.clone()).unwrap())
        .await
        .expect("applied once, answered once");
    assert_eq!(out.last_revision, Revision::new(2));
    let slice = h
        .store
        .read_stream(&stream, StreamRead::forward())
        .await
        .unwrap();
    assert_eq!(slice.events.len(), 2, "stored once");
    let report = support::fidelity("GET", &table, "");
    assert!(report.contains("TransactWriteItems:lost"), "{report}");
}

#[tokio::test]
async fn a_large_first_append_reports_its_creation_time() {
    let h = support::harness("created", None, false).await;
    let before = Timestamp::now().as_micros();
    for (i, expectation) in [Expectation::NoStream, Expectation::Exact(Revision::new(0))]
        .into_iter()
        .enumerate()
    {
        let stream = key("order", &format!("big-{i}"));
        let first = h
            .store
            .append(
                AppendRequest::new(stream.clone(), expectation, vec![large_event("A")]).unwrap(),
            )
            .await
            .unwrap();
        let created = first.stream.created_at.as_micros();
        assert!(
            created >= before - 5_000_000,
            "createdAt of a large first append is its commit time, not {}",
            first.stream.created_at
        );
        // Stored, and remembered by this process, the same way.
        let info = h.store.stream_info(&stream).await.unwrap().unwrap();
        assert_eq!(info.created_at.as_micros(), created);
        let second = h
            .store
            .append(
                AppendRequest::new(
                    stream.clone(),
                    Expectation::Exact(Revision::new(1)),
                    vec![large_event("B")],
                )
                .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(second.stream.created_at.as_micros(), created);
    }
    // The API's `POST /streams/{type}`: one initial event over ~600 bytes.
    let create =
        AppendRequest::create_stream(StreamType::parse("order").unwrap(), large_event("Created"))
            .unwrap();
    let out = h.store.append(create).await.unwrap();
    assert!(out.stream.created_at.as_micros() >= before - 5_000_000);
}

#[tokio::test]
async fn an_event_type_of_258_bytes_keeps_its_stream_readable_and_the_feed_moving() {
    let h = support::harness("type258", None, true).await;
    let long = EventType::parse("✓".repeat(86)).unwrap();
    let widest = EventType::parse("𝄞".repeat(200)).unwrap();
    let stream = key("order", "check");
    for t in [&long, &widest] {
        h.store
            .append(
                AppendRequest::new(
                    stream.clone(),
                    Expectation::Any,
                    vec![NewEvent::new(
                        t.clone(),
                        JsonValue::from_text("{}").unwrap(),
                    )],
                )
                .unwrap(),
            )
            .await
            .unwrap();
    }
    let other = key("order", "other");
    h.store
        .append(
            AppendRequest::new(
                other.clone(),
                Expectation::Any,
                vec![NewEvent::new(
                    EventType::parse("Plain").unwrap(),
                    JsonValue::from_text("1").unwrap(),
                )],
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let slice = h
        .store
        .read_stream(&stream, StreamRead::forward())
        .await
        .expect("the stream stays readable");
    let types: Vec<&EventType> = slice.events.iter().map(|e| &e.event_type).collect();
    assert_eq!(types, [&long, &widest]);
    // The relay goes on: all three events reach the feed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let page = h
            .store
            .read_feed(&FeedFilter::All, Position::ZERO, 10)
            .await
            .unwrap();
        if page.events.len() == 3 {
            assert_eq!(page.events[0].event_type, long);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the feed stopped");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_feed_read_after_the_last_position_does_not_overflow() {
    let h = support::harness("overflow", None, false).await;
    let page = h
        .store
        .read_feed(&FeedFilter::All, Position::new(u64::MAX), 10)
        .await
        .expect("no overflow");
    assert!(page.events.is_empty());
    assert!(!page.has_more);
    assert_eq!(page.last_position, Position::new(u64::MAX));
}

#[tokio::test]
async fn a_throttled_store_answers_overloaded_not_a_backend_failure() {
    let h = support::harness("throttled", None, false).await;
    let table = h.store.table().to_string();
    // A stream's state is read with one `Query`.
    faults(&table, &[rule(&table, "Query", "throttle", 1000)]);
    let err = h
        .store
        .stream_info(&key("order", "t"))
        .await
        .expect_err("throttled on every attempt");
    assert!(
        matches!(err, StoreError::Overloaded(_)),
        "throttling beyond the retries is 503 Overloaded (retry later), got {err:?}"
    );
}

#[tokio::test]
async fn an_unreadable_record_does_not_stop_the_feed_for_other_streams() {
    let h = support::harness("unreadable", None, true).await;
    // A tip whose event blob cannot be decoded (a format this version does
    // not know), as if written by a broken or future writer.
    let broken = items::Tip {
        revision: 1,
        base: 0,
        created: 1,
        updated: 1,
        blobs: vec![b"not a blob!!".to_vec()],
        fingerprints: Vec::new(),
        ..items::Tip::default()
    }
    .to_item(&key("order", "broken"), 0, 1);
    h.store
        .client()
        .put_item()
        .table_name(h.store.table())
        .set_item(Some(broken))
        .send()
        .await
        .unwrap();
    let other = key("order", "fine");
    h.store
        .append(
            AppendRequest::new(
                other.clone(),
                Expectation::Any,
                vec![NewEvent::new(
                    EventType::parse("Plain").unwrap(),
                    JsonValue::from_text("1").unwrap(),
                )],
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let page = h
            .store
            .read_feed(&FeedFilter::All, Position::ZERO, 10)
            .await
            .unwrap();
        if let Some(e) = page.events.first() {
            assert_eq!(e.stream_id, other.stream_id);
            assert_eq!(page.events.len(), 1, "the unreadable record is left out");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the feed stopped at the unreadable record"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Promise 6 for `any` and `exists`: a retry whose ids left the tip's
/// fingerprint window long ago (here after 60 other events, some moved to
/// chunks) is answered with the original revisions and stored once.
#[tokio::test]
async fn an_any_or_exists_retry_after_many_appends_is_not_stored_twice() {
    retry_after_many_appends(false).await;
}

/// The same with the standard faults on (answers lost after the write
/// among them, which make the SDK and the store retry by themselves).
#[tokio::test]
async fn an_any_or_exists_retry_after_many_appends_is_not_stored_twice_with_faults() {
    retry_after_many_appends(true).await;
}

async fn retry_after_many_appends(with_faults: bool) {
    let h = support::harness_with("promise6", None, false, with_faults).await;
    let small = |kind: &str| {
        NewEvent::new(
            EventType::parse(kind).unwrap(),
            JsonValue::from_text("{\"n\":1}").unwrap(),
        )
    };
    for (n, expectation) in [(0, Expectation::Any), (1, Expectation::Exists)] {
        let stream = key("order", &format!("p6-{n}"));
        h.store
            .append(
                AppendRequest::new(stream.clone(), Expectation::NoStream, vec![small("Open")])
                    .unwrap(),
            )
            .await
            .unwrap();
        let original = vec![small("A"), small("B"), small("C")];
        let first = h
            .store
            .append(AppendRequest::new(stream.clone(), expectation, original.clone()).unwrap())
            .await
            .unwrap();
        assert_eq!(
            (first.first_revision, first.last_revision),
            (Revision::new(2), Revision::new(4))
        );
        // 60 more events: single appends and batches, some large.
        for i in 0..30 {
            let events = if i % 5 == 0 {
                vec![large_event("Big")]
            } else {
                vec![small("X"), small("Y")][..1 + i % 2].to_vec()
            };
            h.store
                .append(AppendRequest::new(stream.clone(), expectation, events).unwrap())
                .await
                .unwrap();
        }
        let before = h
            .store
            .stream_info(&stream)
            .await
            .unwrap()
            .unwrap()
            .revision;
        let retry = h
            .store
            .append(AppendRequest::new(stream.clone(), expectation, original.clone()).unwrap())
            .await
            .expect("a retry is answered");
        assert!(
            retry.already_appended,
            "{expectation:?}: recognised as a retry"
        );
        assert_eq!(
            (retry.first_revision, retry.last_revision),
            (Revision::new(2), Revision::new(4)),
            "{expectation:?}: the original revisions"
        );
        let after = h
            .store
            .stream_info(&stream)
            .await
            .unwrap()
            .unwrap()
            .revision;
        assert_eq!(after, before, "{expectation:?}: nothing stored twice");
    }
}

/// `DescribeStream` lists at most 100 shards per call; a relay that reads
/// only the first page never reads the shards after it. Here the real
/// shard is listed after 150 closed ones (the fidelity layer's
/// `extra_shards`), its parent the last of them: the poller must page to
/// it, and read it only after its parent.
#[tokio::test]
async fn the_poller_reads_shards_beyond_the_first_describe_stream_page() {
    let client = support::client(None).await;
    let table = support::table_name("shards");
    eventstore_dynamodb::create_table(&client, &table)
        .await
        .unwrap();
    support::fidelity(
        "PUT",
        &table,
        &format!(r#"{{"extra_shards":150,"shards_match":"{table}"}}"#),
    );
    let h = support::harness_on(client, &table, true);
    let stream = key("order", "paged");
    h.store
        .append(
            AppendRequest::new(
                stream.clone(),
                Expectation::Any,
                vec![NewEvent::new(
                    EventType::parse("Placed").unwrap(),
                    JsonValue::from_text("1").unwrap(),
                )],
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let page = h
            .store
            .read_feed(&FeedFilter::All, Position::ZERO, 10)
            .await
            .unwrap();
        if !page.events.is_empty() {
            assert_eq!(page.events[0].stream_id, stream.stream_id);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the real shard, past the first page of shards, was never read"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A cancelled `TransactWriteItems` does not stop the poller: moto rolled
/// it back by swapping in a deep copy of the table, stream shard included,
/// so the poller's iterators read an orphaned shard and the feed stopped
/// filling, silently (the HTTP contract suite on one table stalled after
/// its race case). The fidelity layer keeps the shard across rollbacks.
#[tokio::test]
async fn the_feed_keeps_filling_after_a_cancelled_transaction() {
    use aws_sdk_dynamodb::types::{ConditionCheck, TransactWriteItem};
    let h = support::harness("cancelled", None, true).await;
    let stream = key("order", "cancelled");
    let append = |n: usize| {
        AppendRequest::new(
            stream.clone(),
            Expectation::Any,
            vec![NewEvent::new(
                EventType::parse("Placed").unwrap(),
                JsonValue::from_text(n.to_string()).unwrap(),
            )],
        )
        .unwrap()
    };
    let feed_holds = |n: usize| {
        let store = h.store.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            loop {
                let page = store
                    .read_feed(&FeedFilter::All, Position::ZERO, 10)
                    .await
                    .unwrap();
                if page.events.len() >= n {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the feed stopped at {} of {n} events",
                    page.events.len()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    h.store.append(append(1)).await.unwrap();
    feed_holds(1).await;
    // A transaction whose condition fails: cancelled, nothing written.
    let check = ConditionCheck::builder()
        .table_name(h.store.table())
        .set_key(Some(items::key("nothing", "here")))
        .condition_expression(format!("attribute_exists({})", items::PK))
        .build()
        .unwrap();
    let cancelled = h
        .store
        .client()
        .transact_write_items()
        .transact_items(TransactWriteItem::builder().condition_check(check).build())
        .send()
        .await;
    assert!(cancelled.is_err(), "{cancelled:?}");
    h.store.append(append(2)).await.unwrap();
    feed_holds(2).await;
}

/// Promise 6 across expectation kinds: an append first written with an
/// exact revision or `no-stream` (small, on the tip path, or large, as a
/// chunk) and retried with `any` or `exists` after its ids left the tip's
/// fingerprint window is answered with the original revisions and stored
/// once; so is a retry with the original expectation. The first version
/// stored the `any`/`exists` retry twice (only `any`/`exists` appends
/// wrote an append-id item).
#[tokio::test]
async fn a_pinned_append_retried_with_any_or_exists_after_many_appends_is_not_stored_twice() {
    retry_across_expectation_kinds(false).await;
}

/// The same with the standard faults on.
#[tokio::test]
async fn a_pinned_append_retried_with_any_or_exists_after_many_appends_is_not_stored_twice_with_faults()
 {
    retry_across_expectation_kinds(true).await;
}

async fn retry_across_expectation_kinds(with_faults: bool) {
    let h = support::harness_with("promise6x", None, false, with_faults).await;
    let small = |kind: &str| {
        NewEvent::new(
            EventType::parse(kind).unwrap(),
            JsonValue::from_text("{\"n\":1}").unwrap(),
        )
    };
    let cases: [(&str, bool, Expectation); 4] = [
        ("new-small", false, Expectation::Any),
        ("new-large", true, Expectation::Exists),
        ("exact-small", false, Expectation::Exists),
        ("exact-large", true, Expectation::Any),
    ];
    for (name, large, retry_with) in cases {
        let stream = key("order", &format!("p6x-{name}"));
        let original: Vec<NewEvent> = if large {
            (0..10).map(|_| small("Batch")).collect()
        } else {
            vec![small("Single")]
        };
        let expectation = if name.starts_with("new") {
            Expectation::NoStream
        } else {
            h.store
                .append(
                    AppendRequest::new(stream.clone(), Expectation::NoStream, vec![small("Open")])
                        .unwrap(),
                )
                .await
                .unwrap();
            Expectation::Exact(Revision::new(1))
        };
        let first = h
            .store
            .append(AppendRequest::new(stream.clone(), expectation, original.clone()).unwrap())
            .await
            .unwrap();
        let n = original.len() as u64;
        let base = if name.starts_with("new") { 0 } else { 1 };
        assert_eq!(
            (first.first_revision, first.last_revision),
            (Revision::new(base + 1), Revision::new(base + n)),
            "{name}"
        );
        // 40 more appends with exact revisions (single events, pairs, a
        // few large ones) and a few with `any`.
        let mut revision = first.last_revision.get();
        for i in 0..40 {
            let events = if i % 9 == 0 {
                vec![large_event("Big")]
            } else {
                vec![small("X"), small("Y")][..1 + i % 2].to_vec()
            };
            let expect = if i % 7 == 3 {
                Expectation::Any
            } else {
                Expectation::Exact(Revision::new(revision))
            };
            let out = h
                .store
                .append(AppendRequest::new(stream.clone(), expect, events).unwrap())
                .await
                .unwrap();
            revision = out.last_revision.get();
        }
        for retry_expectation in [retry_with, expectation] {
            let retry = h
                .store
                .append(
                    AppendRequest::new(stream.clone(), retry_expectation, original.clone())
                        .unwrap(),
                )
                .await
                .expect("a retry is answered");
            assert!(
                retry.already_appended,
                "{name}, retried with {retry_expectation:?}: recognised as a retry"
            );
            assert_eq!(
                (retry.first_revision, retry.last_revision),
                (first.first_revision, first.last_revision),
                "{name}, retried with {retry_expectation:?}: the original revisions"
            );
            let after = h
                .store
                .stream_info(&stream)
                .await
                .unwrap()
                .unwrap()
                .revision;
            assert_eq!(
                after.get(),
                revision,
                "{name}, retried with {retry_expectation:?}: nothing stored twice"
            );
        }
    }
}

/// An append whose answer was lost after it was written is answered as a
/// retry ("already appended"); a listing read right after still waits for
/// the relay to index it, as it does after any append this process wrote:
/// the writer sees its touch move the stream to the end of the listing.
/// (Before, only appends written by the call itself were waited for: under
/// the standard faults the conformance suite listed a touched stream in
/// its old place.) The lost write is the append item's `PutItem` (at
/// revision 2), or, in tip format, the tip's `UpdateItem`.
#[tokio::test]
async fn a_listing_after_an_append_whose_answer_was_lost_shows_it() {
    let pinned = Expectation::Exact(Revision::new(1));
    listing_after_a_lost_answer("lost-listing", pinned, "PutItem", false).await;
    listing_after_a_lost_answer("lost-listing-tip", pinned, "UpdateItem", true).await;
}

/// The same with `any`; in tip format, on the checked path (a
/// `TransactGetItems` of the tip and the append-id item, then a `PutItem`
/// of the tip conditioned on the tip as read): the resend's condition
/// fails, and the re-read finds the ids.
#[tokio::test]
async fn a_listing_after_a_checked_append_whose_answer_was_lost_shows_it() {
    listing_after_a_lost_answer("lost-listing-any", Expectation::Any, "PutItem", false).await;
    listing_after_a_lost_answer("lost-listing-any-tip", Expectation::Any, "PutItem", true).await;
}

async fn listing_after_a_lost_answer(
    name: &str,
    expectation: Expectation,
    op: &str,
    tip_format: bool,
) {
    let mut h = support::harness(name, None, false).await;
    if tip_format {
        h.store = h.store.with_tip_format();
    }
    let table = h.store.table().to_string();
    // The relay runs only when the test says so: a listing that does not
    // wait for it shows the stream in its old place.
    let relay_all = || async {
        for batch in support::stream_batches(h.store.client(), &table, 25).await {
            h.relay.process(&batch).await.unwrap();
        }
    };
    let t = StreamType::parse("touched").unwrap();
    let (a, b) = (key("touched", "a"), key("touched", "b"));
    for k in [&a, &b] {
        h.store
            .append(
                AppendRequest::new(k.clone(), Expectation::NoStream, vec![large_event("E")])
                    .unwrap(),
            )
            .await
            .unwrap();
    }
    relay_all().await;
    let listed = |store: eventstore_dynamodb::DynamoStore| {
        let t = t.clone();
        async move {
            let page = store.list_streams(&t, None, None, 10).await.unwrap();
            page.streams
                .into_iter()
                .map(|s| s.stream_id.as_str().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(listed(h.store.clone()).await, ["a", "b"]);
    // The touch's write (one `UpdateItem` of the tip when pinned, one
    // `PutItem` of it when checked) has its answer lost after it was
    // applied, and the SDK sends it again: the condition then fails on the
    // ids, or the tip, already there.
    faults(
        &table,
        &[format!(
            r#"{{"op":"{op}","fault":"lost","probability":1,"times":1,"match":"{}"}}"#,
            if tip_format {
                items::stream_pk(&a)
            } else {
                // The append item at revision 2, not the append-id item.
                items::pad(2)
            }
        )],
    );
    let out = h
        .store
        .append(
            AppendRequest::new(
                a.clone(),
                expectation,
                vec![NewEvent::new(
                    EventType::parse("E").unwrap(),
                    JsonValue::from_text("1").unwrap(),
                )],
            )
            .unwrap(),
        )
        .await
        .expect("written once, answered");
    assert_eq!(out.first_revision, Revision::new(2));
    assert_eq!(out.last_revision, Revision::new(2));
    let report = support::fidelity("GET", &table, "");
    assert!(report.contains(&format!("{op}:lost")), "{report}");
    assert!(out.already_appended, "answered as a retry of itself");
    let slice = h
        .store
        .read_stream(&a, StreamRead::forward())
        .await
        .unwrap();
    assert_eq!(slice.events.len(), 2, "stored once");
    // The listing waits for the relay to index the touch.
    let listing = tokio::spawn(listed(h.store.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !listing.is_finished(),
        "the listing waits for the relay to index the append"
    );
    relay_all().await;
    assert_eq!(listing.await.unwrap(), ["b", "a"], "a was touched last");
}
