//! Streams of append items (docs/dynamodb.md, "Append to a stream of append
//! items"): the cases the design's argument rests on, each set up in the
//! table as it would be after the failure, then checked as a user sees it.

mod support;

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use eventstore_core::{
    AppendOutcome, AppendRequest, EventId, EventStore, EventType, Expectation, FeedFilter,
    JsonValue, NewEvent, Position, Revision, StoreError, StreamId, StreamKey, StreamRead,
    StreamType,
};
use eventstore_dynamodb::DynamoStore;
use eventstore_dynamodb::items::{self, AppendId};

fn key(id: &str) -> StreamKey {
    StreamKey::new(
        StreamType::parse("cart").unwrap(),
        StreamId::parse(id).unwrap(),
    )
}

fn event(n: usize) -> NewEvent {
    NewEvent::new(
        EventType::parse("ItemAdded").unwrap(),
        JsonValue::from_text(format!(r#"{{"n":{n}}}"#)).unwrap(),
    )
}

async fn append(
    store: &DynamoStore,
    k: &StreamKey,
    expectation: Expectation,
    events: Vec<NewEvent>,
) -> Result<AppendOutcome, StoreError> {
    store
        .append(AppendRequest::new(k.clone(), expectation, events).unwrap())
        .await
}

async fn ids_of(store: &DynamoStore, k: &StreamKey) -> Vec<(u64, EventId)> {
    store
        .read_stream(k, StreamRead::forward_after(Revision::new(0), 1000))
        .await
        .unwrap()
        .events
        .into_iter()
        .map(|e| (e.revision.get(), e.event_id))
        .collect()
}

/// The stream's items by kind: (append items, append-id items, other).
async fn partition(store: &DynamoStore, k: &StreamKey) -> (Vec<items::Item>, Vec<items::Item>) {
    let out = store
        .client()
        .query()
        .table_name(store.table())
        .key_condition_expression(items::cond::PARTITION)
        .expression_attribute_values(":p", AttributeValue::S(items::stream_pk(k)))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let sk = |i: &items::Item| items::get_str(i, items::SK).unwrap().to_string();
    let (claims, rest): (Vec<_>, Vec<_>) = out
        .items()
        .iter()
        .cloned()
        .partition(|i| sk(i).starts_with(items::CLAIM_PREFIX));
    (rest, claims)
}

/// A writer claimed revision 2 for its append and died before its put;
/// another append took revision 2. The resend (with `any`, the writer did
/// not know where it stood) finds the stale claim, sees other events at
/// revision 2, moves the claim and is stored once, at revision 3; later
/// resends, however many appends follow, are answered with revision 3.
#[tokio::test]
async fn a_claim_left_by_a_writer_that_died_is_moved_and_the_resend_is_stored_once() {
    let h = support::harness("stale-claim", None, false).await;
    let s = &h.store;
    let k = key("c-1");
    append(s, &k, Expectation::NoStream, vec![event(1)])
        .await
        .unwrap();
    let lost = vec![event(2)];
    let lost_ids: Vec<EventId> = lost.iter().map(|e| e.event_id).collect();
    s.client()
        .put_item()
        .table_name(s.table())
        .set_item(Some(
            AppendId { first: 2, count: 1 }.to_item_of(true, &k, &lost_ids),
        ))
        .send()
        .await
        .unwrap();
    let other = append(s, &k, Expectation::Exact(Revision::new(1)), vec![event(3)])
        .await
        .unwrap();
    assert_eq!(other.first_revision, Revision::new(2));

    let resend = append(s, &k, Expectation::Any, lost.clone()).await.unwrap();
    assert!(
        !resend.already_appended,
        "stored nowhere before: written now"
    );
    assert_eq!(resend.first_revision, Revision::new(3));
    let again = append(s, &k, Expectation::Any, lost.clone()).await.unwrap();
    assert!(again.already_appended);
    assert_eq!(again.first_revision, Revision::new(3));
    for i in 0..20 {
        append(s, &k, Expectation::Any, vec![event(10 + i)])
            .await
            .unwrap();
    }
    for expectation in [
        Expectation::Any,
        Expectation::Exists,
        Expectation::Exact(Revision::new(2)),
    ] {
        let late = append(s, &k, expectation, lost.clone()).await.unwrap();
        assert!(late.already_appended, "{expectation:?}");
        assert_eq!(late.first_revision, Revision::new(3), "{expectation:?}");
    }
    let stored = ids_of(s, &k).await;
    assert_eq!(stored.len(), 23);
    assert_eq!(
        stored.iter().filter(|(_, id)| *id == lost_ids[0]).count(),
        1,
        "stored once"
    );
}

/// Copies of one request sent at once (a client's retries racing its
/// original) put the same ids at the same revision: one put wins, the
/// others find their own ids in the item that took it. Every copy is
/// answered with the same revisions; the stream holds the events once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twins_of_one_request_are_stored_once_and_all_answered() {
    let h = support::harness("twins", None, false).await;
    let s = &h.store;
    for (i, expectation) in [Expectation::Any, Expectation::Exact(Revision::new(1))]
        .into_iter()
        .enumerate()
    {
        let k = key(&format!("t-{i}"));
        append(s, &k, Expectation::NoStream, vec![event(0)])
            .await
            .unwrap();
        let request = vec![event(1), event(2)];
        let copies = (0..8).map(|_| append(s, &k, expectation, request.clone()));
        let answers = futures::future::join_all(copies).await;
        for a in &answers {
            let a = a.as_ref().expect("every copy is answered");
            assert_eq!(
                (a.first_revision.get(), a.last_revision.get()),
                (2, 3),
                "{expectation:?}"
            );
        }
        assert_eq!(
            answers
                .iter()
                .filter(|a| !a.as_ref().unwrap().already_appended)
                .count(),
            1,
            "{expectation:?}: exactly one copy wrote"
        );
        assert_eq!(ids_of(s, &k).await.len(), 3, "{expectation:?}");
    }
}

/// Writers racing for one revision: the losers' claims are deleted when
/// they are refused, so the partition holds one append-id item per stored
/// append, not one per attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_appends_leave_no_append_id_item_behind() {
    let h = support::harness("refused", None, false).await;
    let s = &h.store;
    let k = key("race");
    for round in 0..5u64 {
        let racers = (0..8).map(|w| {
            append(
                s,
                &k,
                Expectation::Exact(Revision::new(round)),
                vec![event(w)],
            )
        });
        let results = futures::future::join_all(racers).await;
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
        for r in results.iter().filter_map(|r| r.as_ref().err()) {
            assert!(matches!(r, StoreError::WrongExpectedRevision(_)), "{r:?}");
        }
    }
    let (appends, claims) = partition(s, &k).await;
    assert_eq!(appends.len(), 5);
    assert_eq!(claims.len(), 5, "one append-id item per stored append");
}

/// A truncation across the stream's newest item (a batch of three, cut
/// before its last event) writes it again from the bound: the revision
/// stays, the next append follows it, a `no-stream` append is refused (the
/// stream exists), and no event below the bound is left in the partition.
#[tokio::test]
async fn truncating_across_the_newest_item_keeps_the_chain() {
    let h = support::harness("trunc-head", None, false).await;
    let s = &h.store;
    let k = key("head");
    let batch = vec![event(1), event(2), event(3)];
    let removed: Vec<EventId> = batch[..2].iter().map(|e| e.event_id).collect();
    append(s, &k, Expectation::NoStream, batch).await.unwrap();
    let info = s.truncate_stream(&k, Revision::new(3), None).await.unwrap();
    assert_eq!((info.revision.get(), info.first_revision.get()), (3, 3));
    assert_eq!(ids_of(s, &k).await.len(), 1);
    let (appends, _) = partition(s, &k).await;
    for item in &appends {
        for blob in items::get_blobs(item, items::attr::chunk::EVENTS).unwrap() {
            for e in eventstore_dynamodb::codec::decode(&blob).unwrap() {
                assert!(
                    !removed.contains(&e.event_id),
                    "a removed event is left: {item:?}"
                );
            }
        }
    }
    assert!(matches!(
        append(s, &k, Expectation::NoStream, vec![event(9)]).await,
        Err(StoreError::WrongExpectedRevision(_))
    ));
    let next = append(s, &k, Expectation::Exact(Revision::new(3)), vec![event(4)])
        .await
        .unwrap();
    assert_eq!(next.first_revision, Revision::new(4));
    let info = s.stream_info(&k).await.unwrap().unwrap();
    assert_eq!((info.revision.get(), info.first_revision.get()), (4, 3));
    let stored: Vec<u64> = ids_of(s, &k).await.iter().map(|(r, _)| *r).collect();
    assert_eq!(stored, [3, 4]);
}

/// A deleted stream's items are all deleted but its tombstone, which holds
/// the revision after the last: an append to the id (`no-stream`, which
/// would take revision 1, now free) is 410, and nothing is written.
#[tokio::test]
async fn a_deleted_id_stays_deleted_once_its_items_are_gone() {
    let h = support::harness("deleted-id", None, false).await;
    let s = &h.store;
    let k = key("gone");
    for i in 0..3 {
        append(s, &k, Expectation::Any, vec![event(i)])
            .await
            .unwrap();
    }
    s.delete_stream(&k, Some(Revision::new(3))).await.unwrap();
    let before = partition(s, &k).await;
    for expectation in [
        Expectation::NoStream,
        Expectation::Any,
        Expectation::Exact(Revision::new(3)),
    ] {
        assert!(
            matches!(
                append(s, &k, expectation, vec![event(9)]).await,
                Err(StoreError::StreamDeleted(_))
            ),
            "{expectation:?}"
        );
    }
    let after = partition(s, &k).await;
    assert_eq!(before.0.len(), after.0.len());
    assert!(after.1.is_empty(), "no append-id item is left");
    let tombstone: Vec<_> = after
        .0
        .iter()
        .filter(|i| {
            items::get_str(i, items::SK).unwrap() != items::TIP_SK
                && i.contains_key(items::attr::append::DELETED)
        })
        .collect();
    assert_eq!(tombstone.len(), 1);
    assert_eq!(
        items::get_str(tombstone[0], items::SK).unwrap(),
        items::pad(4)
    );
}

/// A table holding streams of both formats: a stream of tip format (made
/// by an earlier version, here by a store `with_tip_format`) keeps its
/// format when a store of this version appends to it, new streams are of
/// append items, and the feed carries both in append order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_of_both_formats_share_a_table_and_its_feed() {
    let h = support::harness("mixed", None, true).await;
    let tips = h.store.clone().with_tip_format();
    let (old, new) = (key("old"), key("new"));
    append(&tips, &old, Expectation::NoStream, vec![event(1)])
        .await
        .unwrap();
    append(&h.store, &new, Expectation::NoStream, vec![event(2)])
        .await
        .unwrap();
    append(
        &h.store,
        &old,
        Expectation::Exact(Revision::new(1)),
        vec![event(3)],
    )
    .await
    .unwrap();
    append(
        &tips,
        &new,
        Expectation::Exact(Revision::new(1)),
        vec![event(4)],
    )
    .await
    .unwrap();
    let (old_items, _) = partition(&h.store, &old).await;
    assert!(
        old_items
            .iter()
            .any(|i| items::get_str(i, items::SK).unwrap() == items::TIP_SK
                && i.contains_key(items::attr::tip::REVISION)),
        "the old stream keeps its tip"
    );
    let (new_items, _) = partition(&h.store, &new).await;
    assert_eq!(new_items.len(), 2, "two append items, no tip");
    assert_eq!(ids_of(&h.store, &old).await.len(), 2);
    assert_eq!(ids_of(&h.store, &new).await.len(), 2);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let page = h
            .store
            .read_feed(&FeedFilter::All, Position::ZERO, 10)
            .await
            .unwrap();
        if page.events.len() == 4 {
            let order: Vec<(String, u64)> = page
                .events
                .iter()
                .map(|e| (e.stream_id.as_str().to_string(), e.revision.get()))
                .collect();
            assert_eq!(
                order,
                [
                    ("old".to_string(), 1),
                    ("new".to_string(), 1),
                    ("old".to_string(), 2),
                    ("new".to_string(), 2)
                ]
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the feed stopped");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
