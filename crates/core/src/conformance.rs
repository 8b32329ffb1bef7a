//! The backend-agnostic conformance suite (feature `testkit`).
//!
//! Each check takes a fresh, empty store and panics with a clear message when
//! the store breaks a guarantee of the design. A backend runs all of them
//! with [`conformance_tests!`](crate::conformance_tests):
//!
//! ```ignore
//! eventstore_core::conformance_tests!(|| async { MyStore::open_fresh().await });
//! ```
//!
//! The checks drive the store concurrently with `futures` combinators only,
//! so they depend on no async runtime; the backend brings its own.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use futures::future::join_all;

use crate::event::{NewEvent, RecordedEvent};
use crate::expectation::Expectation;
use crate::ids::{EventId, EventType, Position, Revision, StreamId, StreamKey, StreamType};
use crate::json::{JsonObject, JsonValue};
use crate::store::{AppendOutcome, AppendRequest, EventStore, FeedFilter, StoreError, StreamRead};

mod lifecycle;
pub use lifecycle::{
    deletion_during_a_feed_read, deletion_is_final, deletion_races_appends,
    truncation_keeps_revisions, truncation_races_appends,
};

/// Settings of a run; slower backends (an emulator over HTTP) may lower the
/// counts, but never below what the design requires.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Concurrent writers in the race check (at least 16).
    pub racing_writers: usize,
    /// Rounds in the race check (at least 200).
    pub race_rounds: u64,
    /// How long a feed reader may wait for events that a backend publishes
    /// asynchronously.
    pub feed_timeout: Duration,
    /// Whether a response may be lost after its write was applied (a
    /// backend under injected faults). A writer whose own write's answer
    /// was lost cannot tell it from a concurrent twin's, so it answers
    /// "already appended": of identical concurrent tries, at most one then
    /// reports the write instead of exactly one.
    pub responses_may_be_lost: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            racing_writers: 16,
            race_rounds: 200,
            feed_timeout: Duration::from_secs(60),
            responses_may_be_lost: false,
        }
    }
}

fn key(t: &str, id: &str) -> StreamKey {
    StreamKey::new(StreamType::parse(t).unwrap(), StreamId::parse(id).unwrap())
}

fn event(kind: &str, payload: &str) -> NewEvent {
    NewEvent::new(
        EventType::parse(kind).unwrap(),
        JsonValue::from_text(payload).unwrap(),
    )
}

fn events(n: usize, tag: &str) -> Vec<NewEvent> {
    (0..n)
        .map(|i| event("happened", &format!(r#"{{"tag":"{tag}","i":{i}}}"#)))
        .collect()
}

async fn append(
    store: &dyn EventStore,
    key: &StreamKey,
    expectation: Expectation,
    events: Vec<NewEvent>,
) -> Result<AppendOutcome, StoreError> {
    store
        .append(AppendRequest::new(key.clone(), expectation, events).unwrap())
        .await
}

async fn read_all(store: &dyn EventStore, key: &StreamKey) -> Vec<RecordedEvent> {
    let mut out = Vec::new();
    let mut after = Revision::ZERO;
    loop {
        let page = store
            .read_stream(key, StreamRead::forward_after(after, 1000))
            .await
            .expect("read_stream");
        out.extend(page.events);
        after = page.last_evaluated_revision;
        if !page.has_more {
            return out;
        }
    }
}

fn assert_gapless(events: &[RecordedEvent], what: &str) {
    for (i, e) in events.iter().enumerate() {
        assert_eq!(
            e.revision.get(),
            i as u64 + 1,
            "{what}: revisions must be 1, 2, 3, ... without gaps"
        );
    }
}

/// Reads a feed until `expected` events arrived or the timeout passes,
/// resuming each time after the last position a page reported.
async fn drain_feed(
    store: &dyn EventStore,
    filter: &FeedFilter,
    expected: usize,
    timeout: Duration,
) -> Vec<RecordedEvent> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    let mut after = Position::ZERO;
    while seen.len() < expected && Instant::now() < deadline {
        let page = store.read_feed(filter, after, 97).await.expect("read_feed");
        let empty = page.events.is_empty();
        seen.extend(page.events);
        after = page.last_position;
        if empty {
            let _ = futures::future::select(
                Box::pin(store.wait_for_feed(after)),
                Box::pin(futures_timer::Delay::new(Duration::from_millis(200))),
            )
            .await;
        }
    }
    seen
}

/// Guarantees 1, 2: events come back as appended, in order, revisions from 1.
pub async fn append_and_read_back(store: &dyn EventStore, settings: Settings) {
    let k = key("order", "o-1");
    let mut batch = events(3, "a");
    batch[1].payload = JsonValue::from_text(r#""a plain string""#).unwrap();
    batch[2].metadata = JsonObject::from_text(r#"{"by":"test","n":[1,2]}"#).unwrap();
    let out = append(store, &k, Expectation::NoStream, batch.clone())
        .await
        .expect("first append");
    assert_eq!(out.first_revision, Revision::new(1));
    assert_eq!(out.last_revision, Revision::new(3));
    assert!(settings.responses_may_be_lost || !out.already_appended);
    assert_eq!(out.stream.revision, Revision::new(3));
    assert_eq!(out.stream.key(), k);

    let read = read_all(store, &k).await;
    assert_eq!(read.len(), 3);
    assert_gapless(&read, "append_and_read_back");
    for (r, w) in read.iter().zip(&batch) {
        assert_eq!(r.event_id, w.event_id);
        assert_eq!(r.event_type, w.event_type);
        assert_eq!(
            r.payload.to_value(),
            w.payload.to_value(),
            "payload unchanged"
        );
        assert_eq!(
            r.metadata.as_value().to_value(),
            w.metadata.as_value().to_value()
        );
        assert_eq!(r.stream_key(), k);
    }

    let info = store.stream_info(&k).await.unwrap().expect("stream exists");
    assert_eq!(info.revision, Revision::new(3));
    assert!(info.created_at <= info.updated_at);
    assert!(
        store
            .stream_info(&key("order", "nope"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .stream_info(&key("other", "o-1"))
            .await
            .unwrap()
            .is_none(),
        "the same id under another type is another stream"
    );
    assert!(matches!(
        store
            .read_stream(&key("order", "nope"), StreamRead::forward())
            .await,
        Err(StoreError::StreamNotFound(_))
    ));
}

/// Guarantee 3: each kind of expectation is enforced, with the actual revision reported.
pub async fn expectations_are_enforced(store: &dyn EventStore) {
    let k = key("account", "a-1");
    match append(store, &k, Expectation::Exists, events(1, "x")).await {
        Err(StoreError::WrongExpectedRevision(f)) => assert_eq!(f.actual, Revision::ZERO),
        other => panic!("exists on a missing stream must fail, got {other:?}"),
    }
    match append(
        store,
        &k,
        Expectation::Exact(Revision::new(1)),
        events(1, "x"),
    )
    .await
    {
        Err(StoreError::WrongExpectedRevision(f)) => assert_eq!(f.actual, Revision::ZERO),
        other => panic!("exact 1 on a missing stream must fail, got {other:?}"),
    }
    append(
        store,
        &k,
        Expectation::Exact(Revision::ZERO),
        events(2, "a"),
    )
    .await
    .expect("exact 0 creates");
    match append(store, &k, Expectation::NoStream, events(1, "x")).await {
        Err(StoreError::WrongExpectedRevision(f)) => assert_eq!(f.actual, Revision::new(2)),
        other => panic!("no-stream on an existing stream must fail, got {other:?}"),
    }
    match append(
        store,
        &k,
        Expectation::Exact(Revision::new(1)),
        events(1, "x"),
    )
    .await
    {
        Err(StoreError::WrongExpectedRevision(f)) => assert_eq!(f.actual, Revision::new(2)),
        other => panic!("a stale exact revision must fail, got {other:?}"),
    }
    let out = append(
        store,
        &k,
        Expectation::Exact(Revision::new(2)),
        events(1, "b"),
    )
    .await
    .expect("exact 2");
    assert_eq!(out.first_revision, Revision::new(3));
    let out = append(store, &k, Expectation::Exists, events(1, "c"))
        .await
        .expect("exists");
    assert_eq!(out.first_revision, Revision::new(4));
    let out = append(store, &k, Expectation::Any, events(2, "d"))
        .await
        .expect("any");
    assert_eq!(
        (out.first_revision, out.last_revision),
        (Revision::new(5), Revision::new(6))
    );
    let out = append(
        store,
        &key("account", "a-2"),
        Expectation::Any,
        events(1, "e"),
    )
    .await
    .expect("any creates");
    assert_eq!(out.first_revision, Revision::new(1));
    let all = read_all(store, &k).await;
    assert_eq!(all.len(), 6, "failed appends must write nothing");
    assert_gapless(&all, "expectations_are_enforced");
}

/// Guarantee 4: a batch is stored whole or not at all.
pub async fn batches_are_atomic(store: &dyn EventStore) {
    let k = key("cart", "c-1");
    append(store, &k, Expectation::NoStream, events(100, "big"))
        .await
        .expect("a batch of 100");
    let existing = read_all(store, &k).await;
    assert_eq!(existing.len(), 100);
    assert_gapless(&existing, "batch of 100");

    // A batch whose expectation fails writes none of its events.
    assert!(
        append(
            store,
            &k,
            Expectation::Exact(Revision::new(99)),
            events(5, "x")
        )
        .await
        .is_err()
    );
    // A batch with one event id already in the stream writes none of its events.
    let mut dup = events(3, "dup");
    dup[2].event_id = existing[10].event_id;
    match append(store, &k, Expectation::Any, dup).await {
        Err(StoreError::DuplicateEvent { event_id }) => assert_eq!(event_id, existing[10].event_id),
        other => panic!("a re-used event id must be a duplicate, got {other:?}"),
    }
    let after = read_all(store, &k).await;
    assert_eq!(after.len(), 100, "rejected batches must leave no trace");
    assert_eq!(
        store.stream_info(&k).await.unwrap().unwrap().revision,
        Revision::new(100)
    );
}

/// Guarantee 3 under load: of many concurrent appends expecting the same
/// revision, exactly one wins, round after round; revisions stay gapless.
pub async fn concurrent_writers_race(store: &dyn EventStore, settings: Settings) {
    assert!(settings.racing_writers >= 2);
    let k = key("race", "hot");
    for round in 0..settings.race_rounds {
        let attempts = (0..settings.racing_writers).map(|w| {
            let k = k.clone();
            async move {
                let e = event("raced", &format!(r#"{{"round":{round},"writer":{w}}}"#));
                let id = e.event_id;
                (
                    id,
                    append(store, &k, Expectation::Exact(Revision::new(round)), vec![e]).await,
                )
            }
        });
        let results = join_all(attempts).await;
        let mut winners = Vec::new();
        for (id, r) in results {
            match r {
                Ok(out) => {
                    assert_eq!(out.first_revision, Revision::new(round + 1));
                    winners.push(id);
                }
                Err(StoreError::WrongExpectedRevision(f)) => {
                    assert_eq!(
                        f.actual,
                        Revision::new(round + 1),
                        "loser sees the winner's revision"
                    );
                }
                Err(other) => panic!("round {round}: unexpected error {other:?}"),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one writer must win"
        );
    }
    let all = read_all(store, &k).await;
    assert_eq!(all.len() as u64, settings.race_rounds);
    assert_gapless(&all, "race");
}

/// Guarantee 6: retried appends are recognised and never stored twice.
pub async fn retries_are_idempotent(store: &dyn EventStore, settings: Settings) {
    // Exact expectation, retried even after later appends.
    let k = key("payment", "p-1");
    let first = events(2, "first");
    let out = append(store, &k, Expectation::NoStream, first.clone())
        .await
        .unwrap();
    assert!(settings.responses_may_be_lost || !out.already_appended);
    let retry = append(store, &k, Expectation::NoStream, first.clone())
        .await
        .unwrap();
    assert!(retry.already_appended, "a no-stream retry is recognised");
    assert_eq!(
        (retry.first_revision, retry.last_revision),
        (Revision::new(1), Revision::new(2))
    );

    let second = events(1, "second");
    append(
        store,
        &k,
        Expectation::Exact(Revision::new(2)),
        second.clone(),
    )
    .await
    .unwrap();
    append(
        store,
        &k,
        Expectation::Exact(Revision::new(3)),
        events(1, "third"),
    )
    .await
    .unwrap();
    let retry = append(
        store,
        &k,
        Expectation::Exact(Revision::new(2)),
        second.clone(),
    )
    .await
    .expect("an exact retry after later appends is still recognised");
    assert!(retry.already_appended);
    assert_eq!(retry.first_revision, Revision::new(3));
    assert_eq!(retry.stream.revision, Revision::new(4));

    // Any: a retry of the stream's last append is recognised.
    let last = events(2, "any");
    let out = append(store, &k, Expectation::Any, last.clone())
        .await
        .unwrap();
    assert_eq!(out.first_revision, Revision::new(5));
    let retry = append(store, &k, Expectation::Any, last.clone())
        .await
        .unwrap();
    assert!(
        retry.already_appended,
        "an any retry of the last append is recognised"
    );
    assert_eq!(
        (retry.first_revision, retry.last_revision),
        (Revision::new(5), Revision::new(6))
    );
    let retry = append(store, &k, Expectation::Exists, last.clone())
        .await
        .unwrap();
    assert!(retry.already_appended);

    // The same ids in another arrangement are duplicates.
    let swapped = vec![last[1].clone(), last[0].clone()];
    assert!(matches!(
        append(store, &k, Expectation::Any, swapped).await,
        Err(StoreError::DuplicateEvent { .. })
    ));
    assert!(matches!(
        append(
            store,
            &k,
            Expectation::Exact(Revision::new(1)),
            second.clone()
        )
        .await,
        Err(StoreError::DuplicateEvent { .. })
    ));
    let mut partly = events(1, "new");
    partly.push(second[0].clone());
    assert!(matches!(
        append(store, &k, Expectation::Exact(Revision::new(6)), partly).await,
        Err(StoreError::DuplicateEvent { .. })
    ));

    let all = read_all(store, &k).await;
    assert_eq!(all.len(), 6, "nothing was stored twice");
    assert_gapless(&all, "retries");
    let ids: HashSet<EventId> = all.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), 6);

    // Whatever the expectation a retry carries: appends made with an exact
    // revision or `no-stream` (single events and batches), retried with
    // `any` and `exists` after 40 more appends.
    let k3 = key("payment", "p-3");
    let opening = events(1, "opening");
    append(store, &k3, Expectation::NoStream, opening.clone())
        .await
        .unwrap();
    let batch = events(10, "pinned-batch");
    append(
        store,
        &k3,
        Expectation::Exact(Revision::new(1)),
        batch.clone(),
    )
    .await
    .unwrap();
    let mut revision = 11;
    for i in 0..40 {
        let out = append(
            store,
            &k3,
            Expectation::Exact(Revision::new(revision)),
            events(1 + i % 2, &format!("later-{i}")),
        )
        .await
        .unwrap();
        revision = out.last_revision.get();
    }
    for (original, first, last) in [(&opening, 1, 1), (&batch, 2, 11)] {
        for retry_with in [Expectation::Any, Expectation::Exists] {
            let retry = append(store, &k3, retry_with, original.clone())
                .await
                .expect("a retry with another expectation kind is answered");
            assert!(
                retry.already_appended,
                "a pinned append retried with {retry_with:?} is recognised"
            );
            assert_eq!(
                (retry.first_revision, retry.last_revision),
                (Revision::new(first), Revision::new(last))
            );
        }
    }
    assert_eq!(
        read_all(store, &k3).await.len() as u64,
        revision,
        "nothing was stored twice"
    );

    // An append resent with an integer expectation that holds, after other
    // appends (the client re-read the revision): its ids are in the stream
    // in another arrangement, so it is a duplicate and nothing is written —
    // right after the original, and once many appends followed it.
    for (later, size) in [(1u64, 1usize), (1, 3), (40, 1), (40, 10)] {
        let k4 = key("payment", &format!("p-4-{later}-{size}"));
        let original = events(size, "resent");
        append(store, &k4, Expectation::NoStream, original.clone())
            .await
            .unwrap();
        let mut revision = size as u64;
        for i in 0..later {
            revision = append(
                store,
                &k4,
                Expectation::Exact(Revision::new(revision)),
                events(1, &format!("between-{i}")),
            )
            .await
            .unwrap()
            .last_revision
            .get();
        }
        let resent = append(
            store,
            &k4,
            Expectation::Exact(Revision::new(revision)),
            original.clone(),
        )
        .await;
        assert!(
            matches!(resent, Err(StoreError::DuplicateEvent { .. })),
            "an append of {size} event(s) resent at the current revision after {later} \
             later append(s) is a duplicate, got {resent:?}"
        );
        let all = read_all(store, &k4).await;
        assert_eq!(
            all.len() as u64,
            revision,
            "a resent append is never stored twice ({size} event(s), {later} later)"
        );
    }

    // An append refused for its expectation (ahead of the stream, or
    // behind it) is stored by a later resend with `any`, once, whatever
    // came between; a further resend is recognised. (Batches of ten
    // 100-byte events: over what a DynamoDB tip holds, so they claim
    // their append-id item before their transaction.)
    for (wrong, later) in [(7u64, 20u64), (0, 20)] {
        let k5 = key("payment", &format!("p-5-{wrong}"));
        append(store, &k5, Expectation::NoStream, events(1, "first"))
            .await
            .unwrap();
        let big: Vec<NewEvent> = (0..10)
            .map(|i| {
                event(
                    "happened",
                    &format!(r#"{{"i":{i},"pad":"{}"}}"#, "p".repeat(100)),
                )
            })
            .collect();
        let refused = append(
            store,
            &k5,
            Expectation::Exact(Revision::new(wrong)),
            big.clone(),
        )
        .await;
        assert!(
            matches!(refused, Err(StoreError::WrongExpectedRevision(_))),
            "expecting {wrong} on a stream at 1 is a conflict, got {refused:?}"
        );
        let mut revision = 1;
        for i in 0..later {
            revision = append(
                store,
                &k5,
                Expectation::Exact(Revision::new(revision)),
                events(1, &format!("between-{i}")),
            )
            .await
            .unwrap()
            .last_revision
            .get();
        }
        let stored = append(store, &k5, Expectation::Any, big.clone())
            .await
            .expect("a refused append resent with any is stored");
        assert!(
            settings.responses_may_be_lost || !stored.already_appended,
            "a refused append was not stored before"
        );
        assert_eq!(stored.first_revision, Revision::new(revision + 1));
        for _ in 0..2 {
            let again = append(store, &k5, Expectation::Any, big.clone())
                .await
                .unwrap();
            assert!(again.already_appended, "its resend is recognised");
            assert_eq!(again.first_revision, stored.first_revision);
        }
        assert_eq!(
            read_all(store, &k5).await.len() as u64,
            revision + 10,
            "stored once"
        );
    }

    // Concurrent retries of the same append: one write, the rest recognised.
    let k2 = key("payment", "p-2");
    let batch = events(3, "concurrent");
    let tries = (0..8).map(|_| append(store, &k2, Expectation::NoStream, batch.clone()));
    let results = join_all(tries).await;
    let written = results
        .iter()
        .filter(|r| matches!(r, Ok(o) if !o.already_appended))
        .count();
    for r in &results {
        assert!(r.is_ok(), "a concurrent retry must succeed, got {r:?}");
    }
    if settings.responses_may_be_lost {
        assert!(
            written <= 1,
            "at most one concurrent try writes, {written} did"
        );
    } else {
        assert_eq!(written, 1, "exactly one concurrent try writes");
    }
    assert_eq!(read_all(store, &k2).await.len(), 3);
}

/// Reads forward and backward with limits page as documented.
pub async fn reads_page_both_ways(store: &dyn EventStore) {
    let k = key("doc", "d-1");
    for chunk in 0..5 {
        append(
            store,
            &k,
            Expectation::Any,
            events(10, &format!("c{chunk}")),
        )
        .await
        .unwrap();
    }
    // Forward in pages of 7.
    let mut after = Revision::ZERO;
    let mut seen = Vec::new();
    loop {
        let page = store
            .read_stream(&k, StreamRead::forward_after(after, 7))
            .await
            .unwrap();
        assert!(page.events.len() <= 7);
        seen.extend(page.events.iter().map(|e| e.revision.get()));
        after = page.last_evaluated_revision;
        if !page.has_more {
            break;
        }
    }
    assert_eq!(seen, (1..=50).collect::<Vec<_>>());
    let empty = store
        .read_stream(&k, StreamRead::forward_after(Revision::new(50), 7))
        .await
        .unwrap();
    assert!(empty.events.is_empty() && !empty.has_more);
    assert_eq!(empty.last_evaluated_revision, Revision::new(50));
    let beyond = store
        .read_stream(&k, StreamRead::forward_after(Revision::new(80), 7))
        .await
        .unwrap();
    assert!(beyond.events.is_empty() && !beyond.has_more);
    assert_eq!(beyond.last_evaluated_revision, Revision::new(80));

    // Backward from the end.
    let page = store
        .read_stream(&k, StreamRead::backward(None, 5))
        .await
        .unwrap();
    let revs: Vec<u64> = page.events.iter().map(|e| e.revision.get()).collect();
    assert_eq!(revs, vec![50, 49, 48, 47, 46]);
    assert!(page.has_more);
    assert_eq!(page.last_evaluated_revision, Revision::new(46));
    // Backward before a revision, to the start.
    let page = store
        .read_stream(&k, StreamRead::backward(Some(Revision::new(4)), 10))
        .await
        .unwrap();
    let revs: Vec<u64> = page.events.iter().map(|e| e.revision.get()).collect();
    assert_eq!(revs, vec![3, 2, 1]);
    assert!(!page.has_more);
    let page = store
        .read_stream(&k, StreamRead::backward(Some(Revision::new(1)), 10))
        .await
        .unwrap();
    assert!(page.events.is_empty() && !page.has_more);
}

/// Listing a type's streams: ordered by update time, filtered, paged exactly once.
pub async fn streams_are_listed_by_update_time(store: &dyn EventStore) {
    let t = StreamType::parse("ticket").unwrap();
    let mut order = Vec::new();
    for i in 0..12 {
        let k = key("ticket", &format!("t-{i:02}"));
        append(store, &k, Expectation::NoStream, events(1, "open"))
            .await
            .unwrap();
        order.push(k.stream_id.clone());
    }
    append(
        store,
        &key("other-type", "x"),
        Expectation::NoStream,
        events(1, "o"),
    )
    .await
    .unwrap();
    // Touch t-03: it moves to the end of the listing.
    let touched = key("ticket", "t-03");
    let out = append(
        store,
        &touched,
        Expectation::Exact(Revision::new(1)),
        events(1, "update"),
    )
    .await
    .unwrap();
    order.retain(|id| id != &touched.stream_id);
    order.push(touched.stream_id.clone());

    let mut listed = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.list_streams(&t, None, cursor, 5).await.unwrap();
        assert!(page.streams.len() <= 5);
        listed.extend(page.streams.iter().cloned());
        cursor = page.next;
        if cursor.is_none() {
            break;
        }
    }
    let ids: Vec<StreamId> = listed.iter().map(|s| s.stream_id.clone()).collect();
    assert_eq!(
        ids, order,
        "ordered by updatedAt ascending, each stream once"
    );
    for w in listed.windows(2) {
        assert!(w[0].updated_at <= w[1].updated_at);
    }
    assert_eq!(listed.last().unwrap().revision, Revision::new(2));

    // updated-after: only streams updated strictly later.
    let pivot = listed[8].updated_at;
    let page = store
        .list_streams(&t, Some(pivot), None, 100)
        .await
        .unwrap();
    assert!(page.next.is_none());
    assert!(page.streams.iter().all(|s| s.updated_at > pivot));
    let expected: Vec<StreamId> = listed
        .iter()
        .filter(|s| s.updated_at > pivot)
        .map(|s| s.stream_id.clone())
        .collect();
    assert_eq!(
        page.streams
            .iter()
            .map(|s| s.stream_id.clone())
            .collect::<Vec<_>>(),
        expected
    );
    let page = store
        .list_streams(&t, Some(out.stream.updated_at), None, 100)
        .await
        .unwrap();
    assert!(page.streams.is_empty());
    let none = store
        .list_streams(&StreamType::parse("never-used").unwrap(), None, None, 10)
        .await
        .unwrap();
    assert!(none.streams.is_empty() && none.next.is_none());

    let types = store.stream_types().await.unwrap();
    let counts: BTreeMap<String, u64> = types
        .iter()
        .map(|t| (t.stream_type.to_string(), t.streams))
        .collect();
    assert_eq!(counts.get("ticket"), Some(&12));
    assert_eq!(counts.get("other-type"), Some(&1));
}

/// Guarantee 7: feeds carry every event once, in an order that respects
/// revisions, and the per-type feed only its type.
pub async fn feeds_are_ordered_and_complete(store: &dyn EventStore, settings: Settings) {
    let mut expected = 0;
    for i in 0..6 {
        let t = if i % 2 == 0 { "even" } else { "odd" };
        for _ in 0..3 {
            append(
                store,
                &key(t, &format!("s{i}")),
                Expectation::Any,
                events(2, "f"),
            )
            .await
            .unwrap();
            expected += 2;
        }
    }
    let all = drain_feed(store, &FeedFilter::All, expected, settings.feed_timeout).await;
    assert_eq!(all.len(), expected, "the global feed has every event");
    let mut last = Position::ZERO;
    let mut per_stream: BTreeMap<StreamKey, Revision> = BTreeMap::new();
    for e in &all {
        let p = e.position.expect("feed events have positions");
        assert!(p > last, "positions strictly increase");
        last = p;
        let prev = per_stream
            .insert(e.stream_key(), e.revision)
            .unwrap_or(Revision::ZERO);
        assert_eq!(
            e.revision,
            prev.next(),
            "feed order equals revision order within a stream"
        );
    }
    let odd = drain_feed(
        store,
        &FeedFilter::StreamType(StreamType::parse("odd").unwrap()),
        expected / 2,
        settings.feed_timeout,
    )
    .await;
    assert_eq!(odd.len(), expected / 2);
    assert!(odd.iter().all(|e| e.stream_type.as_str() == "odd"));
    let page = store.read_feed(&FeedFilter::All, last, 10).await.unwrap();
    assert!(page.events.is_empty() && !page.has_more);
    assert_eq!(
        page.last_position, last,
        "an empty page reports the position asked for"
    );
    // Positions read from the stream agree with the feed once assigned.
    let s0 = read_all(store, &key("even", "s0")).await;
    for e in s0 {
        let in_feed = all.iter().find(|f| f.event_id == e.event_id).unwrap();
        if let Some(p) = e.position {
            assert_eq!(Some(p), in_feed.position);
        }
    }
}

/// Guarantee 7 while writers are active: a reader that resumes after its
/// last position misses nothing and repeats nothing.
pub async fn feed_reader_resumes_while_writers_write(store: &dyn EventStore, settings: Settings) {
    const WRITERS: usize = 8;
    const APPENDS: usize = 25;
    let total = WRITERS * APPENDS * 2;
    let writers = join_all((0..WRITERS).map(|w| async move {
        let k = key("live", &format!("w{w}"));
        for _ in 0..APPENDS {
            append(store, &k, Expectation::Any, events(2, "live"))
                .await
                .unwrap();
        }
    }));
    let reader = async {
        let deadline = Instant::now() + settings.feed_timeout;
        let mut seen: Vec<RecordedEvent> = Vec::new();
        let mut after = Position::ZERO;
        while seen.len() < total && Instant::now() < deadline {
            // Small pages so that the reader resumes many times.
            let page = store.read_feed(&FeedFilter::All, after, 7).await.unwrap();
            if page.events.is_empty() {
                let _ = futures::future::select(
                    Box::pin(store.wait_for_feed(after)),
                    Box::pin(futures_timer::Delay::new(Duration::from_millis(200))),
                )
                .await;
            }
            after = page.last_position;
            seen.extend(page.events);
        }
        seen
    };
    let (_, seen) = futures::join!(writers, reader);
    let ids: HashSet<EventId> = seen.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), seen.len(), "no event is seen twice");
    assert_eq!(seen.len(), total, "no event is missed");
    let mut per_stream: BTreeMap<StreamKey, Revision> = BTreeMap::new();
    for e in &seen {
        let prev = per_stream
            .insert(e.stream_key(), e.revision)
            .unwrap_or(Revision::ZERO);
        assert_eq!(e.revision, prev.next());
    }
}

/// Generates one `#[tokio::test]` per conformance check. `$make` is an
/// expression that evaluates to a function or closure returning a future of
/// a fresh store; `$settings` (optional) is a [`Settings`]. When what
/// `$make` returns is not itself the store but holds it (with what must
/// live as long as it: a temporary directory, a relay poller), the third
/// form names the store in it: `conformance_tests!(make, settings, |h|
/// &h.store)`.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!($make, $crate::conformance::Settings::default());
    };
    ($make:expr, $settings:expr) => {
        $crate::conformance_tests!($make, $settings, |store| &store);
    };
    ($make:expr, $settings:expr, |$held:ident| $store:expr) => {
        mod conformance {
            #[allow(unused_imports)]
            use super::*;
            use $crate::conformance as c;

            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn append_and_read_back() {
                let $held = ($make)().await;
                c::append_and_read_back($store, $settings).await;
            }
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn expectations_are_enforced() {
                let $held = ($make)().await;
                c::expectations_are_enforced($store).await;
            }
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn batches_are_atomic() {
                let $held = ($make)().await;
                c::batches_are_atomic($store).await;
            }
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_writers_race() {
                let $held = ($make)().await;
                c::concurrent_writers_race($store, $settings).await;
            }
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn retries_are_idempotent() {
                let $held = ($make)().await;
                c::retries_are_idempotent($store, $settings).await;
            }
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn reads_page_both_ways() {
                let $held = ($make)().await;
                c::reads_page_both_ways($store).await;
            }
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn streams_are_listed_by_update_time() {
                let $held = ($make)().await;
                c::streams_are_listed_by_update_time($store).await;
            }
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn feeds_are_ordered_and_complete() {
                let $held = ($make)().await;
                c::feeds_are_ordered_and_complete($store, $settings).await;
            }
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn feed_reader_resumes_while_writers_write() {
                let $held = ($make)().await;
                c::feed_reader_resumes_while_writers_write($store, $settings).await;
            }
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn deletion_is_final() {
                let $held = ($make)().await;
                c::deletion_is_final($store, $settings).await;
            }
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn truncation_keeps_revisions() {
                let $held = ($make)().await;
                c::truncation_keeps_revisions($store, $settings).await;
            }
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn deletion_races_appends() {
                let $held = ($make)().await;
                c::deletion_races_appends($store, $settings).await;
            }
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn truncation_races_appends() {
                let $held = ($make)().await;
                c::truncation_races_appends($store, $settings).await;
            }
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn deletion_during_a_feed_read() {
                let $held = ($make)().await;
                c::deletion_during_a_feed_read($store, $settings).await;
            }
        }
    };
}
