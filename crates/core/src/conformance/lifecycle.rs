//! Stream lifecycle checks: deletion and truncation, alone and racing
//! appends and feed readers.

use std::collections::HashSet;

use futures::future::join_all;

use super::{Settings, append, drain_feed, events, key, read_all};
use crate::event::RecordedEvent;
use crate::expectation::Expectation;
use crate::ids::{Position, Revision};
use crate::store::{EventStore, FeedFilter, STREAM_DELETED, StoreError, StreamRead};

fn is_deleted(r: Result<impl std::fmt::Debug, StoreError>, what: &str) {
    match r {
        Err(StoreError::StreamDeleted(_)) => {}
        other => panic!("{what}: expected StreamDeleted, got {other:?}"),
    }
}

fn revisions(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.revision.get()).collect()
}

/// Deletion: 409 on a wrong expectation with nothing changed; then the
/// stream is gone from reads, details, listings and counts, its id refuses
/// appends forever (retries included), its events leave the feeds, and the
/// feeds carry exactly one `$stream-deleted` entry at revision last + 1.
/// Deleting again is "already deleted"; an unknown stream is not found.
pub async fn deletion_is_final(store: &dyn EventStore, settings: Settings) {
    let gone = key("account", "a-gone");
    let kept = key("account", "a-kept");
    let first = events(3, "gone");
    append(store, &gone, Expectation::NoStream, first.clone())
        .await
        .unwrap();
    append(store, &kept, Expectation::NoStream, events(2, "kept"))
        .await
        .unwrap();

    match store.delete_stream(&gone, Some(Revision::new(2))).await {
        Err(StoreError::WrongExpectedRevision(f)) => assert_eq!(f.actual, Revision::new(3)),
        other => panic!("a wrong expectation must be refused: {other:?}"),
    }
    assert_eq!(read_all(store, &gone).await.len(), 3, "nothing changed");

    let deleted = store
        .delete_stream(&gone, Some(Revision::new(3)))
        .await
        .unwrap();
    assert!(!deleted.already_deleted);
    assert_eq!(deleted.last_revision, Revision::new(3));
    let again = store.delete_stream(&gone, None).await.unwrap();
    assert!(again.already_deleted, "deleting twice is already deleted");
    let again = store
        .delete_stream(&gone, Some(Revision::new(1)))
        .await
        .unwrap();
    assert!(again.already_deleted, "whatever the expectation");

    is_deleted(
        store.read_stream(&gone, StreamRead::forward()).await,
        "read",
    );
    is_deleted(store.stream_info(&gone).await, "details");
    for expectation in [
        Expectation::Any,
        Expectation::NoStream,
        Expectation::Exists,
        Expectation::Exact(Revision::new(3)),
    ] {
        is_deleted(
            append(store, &gone, expectation, events(1, "late")).await,
            &format!("append with {expectation:?}"),
        );
    }
    is_deleted(
        append(store, &gone, Expectation::NoStream, first).await,
        "a retry of the first append",
    );
    match store.delete_stream(&key("account", "never"), None).await {
        Err(StoreError::StreamNotFound(_)) => {}
        other => panic!("deleting an unknown stream: {other:?}"),
    }

    let listing = store
        .list_streams(&gone.stream_type, None, None, 100)
        .await
        .unwrap();
    let ids: Vec<_> = listing
        .streams
        .iter()
        .map(|s| s.stream_id.clone())
        .collect();
    assert_eq!(ids, vec![kept.stream_id.clone()], "the listing");
    let counts = store.stream_types().await.unwrap();
    let count = counts
        .iter()
        .find(|c| c.stream_type == gone.stream_type)
        .map(|c| c.streams);
    assert_eq!(count, Some(1), "the counts: {counts:?}");

    for filter in [
        FeedFilter::All,
        FeedFilter::StreamType(gone.stream_type.clone()),
    ] {
        let feed = drain_feed(store, &filter, 3, settings.feed_timeout).await;
        let of_gone: Vec<_> = feed.iter().filter(|e| e.stream_key() == gone).collect();
        assert_eq!(
            of_gone.len(),
            1,
            "{filter:?}: only the deletion entry: {of_gone:?}"
        );
        let entry = of_gone[0];
        assert_eq!(entry.event_type.as_str(), STREAM_DELETED);
        assert_eq!(entry.revision, Revision::new(4));
        assert!(entry.position.is_some_and(|p| p > Position::ZERO));
        let of_kept = feed.iter().filter(|e| e.stream_key() == kept).count();
        assert_eq!(of_kept, 2, "{filter:?}: the other stream's events stay");
    }
}

/// Truncation: bad bounds are 400 and a wrong expectation 409, with nothing
/// changed; then reads start at the bound both ways, revisions are never
/// renumbered, a late retry of a truncated append is answered "already
/// appended", appends go on, the details and the listing show the first
/// kept revision, the feeds drop the removed events, and a lower bound
/// later changes nothing.
pub async fn truncation_keeps_revisions(store: &dyn EventStore, settings: Settings) {
    let k = key("ledger", "l-1");
    let first = events(10, "l");
    append(store, &k, Expectation::NoStream, first.clone())
        .await
        .unwrap();
    for before in [0, 11, 100] {
        match store.truncate_stream(&k, Revision::new(before), None).await {
            Err(StoreError::InvalidRequest(_)) => {}
            other => panic!("before {before} must be refused: {other:?}"),
        }
    }
    match store
        .truncate_stream(&k, Revision::new(4), Some(Revision::new(9)))
        .await
    {
        Err(StoreError::WrongExpectedRevision(f)) => assert_eq!(f.actual, Revision::new(10)),
        other => panic!("a wrong expectation must be refused: {other:?}"),
    }
    assert_eq!(read_all(store, &k).await.len(), 10, "nothing changed");
    match store
        .truncate_stream(&key("ledger", "never"), Revision::new(1), None)
        .await
    {
        Err(StoreError::StreamNotFound(_)) => {}
        other => panic!("truncating an unknown stream: {other:?}"),
    }

    let info = store
        .truncate_stream(&k, Revision::new(4), Some(Revision::new(10)))
        .await
        .unwrap();
    assert_eq!(info.first_revision, Revision::new(4));
    assert_eq!(info.revision, Revision::new(10));
    assert_eq!(
        revisions(&read_all(store, &k).await),
        (4..=10).collect::<Vec<_>>()
    );
    let from_start = store
        .read_stream(&k, StreamRead::forward_after(Revision::ZERO, 2))
        .await
        .unwrap();
    assert_eq!(revisions(&from_start.events), vec![4, 5]);
    assert!(from_start.has_more);
    let mut backward = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .read_stream(&k, StreamRead::backward(before, 3))
            .await
            .unwrap();
        backward.extend(page.events);
        before = Some(page.last_evaluated_revision);
        if !page.has_more {
            break;
        }
    }
    assert_eq!(revisions(&backward), (4..=10).rev().collect::<Vec<_>>());

    // A late retry of the truncated append is recognised, not stored again.
    let retry = append(store, &k, Expectation::NoStream, first)
        .await
        .expect("a retry of a truncated append");
    assert!(retry.already_appended, "{retry:?}");
    assert_eq!(retry.first_revision, Revision::new(1));
    assert_eq!(retry.last_revision, Revision::new(10));

    let appended = append(
        store,
        &k,
        Expectation::Exact(Revision::new(10)),
        events(1, "m"),
    )
    .await
    .unwrap();
    assert_eq!(appended.first_revision, Revision::new(11), "appends go on");
    let lower = store
        .truncate_stream(&k, Revision::new(2), None)
        .await
        .unwrap();
    assert_eq!(
        lower.first_revision,
        Revision::new(4),
        "a lower bound changes nothing"
    );
    assert_eq!(
        store.stream_info(&k).await.unwrap().unwrap().first_revision,
        Revision::new(4)
    );
    let listed = store
        .list_streams(&k.stream_type, None, None, 10)
        .await
        .unwrap();
    assert_eq!(listed.streams[0].first_revision, Revision::new(4));

    for filter in [
        FeedFilter::All,
        FeedFilter::StreamType(k.stream_type.clone()),
    ] {
        let feed = drain_feed(store, &filter, 8, settings.feed_timeout).await;
        assert_eq!(
            revisions(&feed),
            (4..=11).collect::<Vec<_>>(),
            "{filter:?}: the feed drops the removed events"
        );
    }

    store.delete_stream(&k, None).await.unwrap();
    is_deleted(
        store.truncate_stream(&k, Revision::new(5), None).await,
        "truncating a deleted stream",
    );
}

/// A deletion racing appends: every append acknowledged before the
/// deletion is at or below the revision the deletion reports, every other
/// one is refused as deleted, and nothing of the stream but the deletion
/// entry reaches the feed.
pub async fn deletion_races_appends(store: &dyn EventStore, settings: Settings) {
    let k = key("race", "deleted");
    append(store, &k, Expectation::NoStream, events(1, "seed"))
        .await
        .unwrap();
    let writers = (0..settings.racing_writers.min(16)).map(|w| {
        let k = k.clone();
        async move {
            let mut acknowledged = Vec::new();
            for i in 0..20 {
                match append(store, &k, Expectation::Any, events(1, &format!("{w}-{i}"))).await {
                    Ok(o) => acknowledged.push(o.last_revision),
                    Err(StoreError::StreamDeleted(_)) => break,
                    Err(StoreError::Overloaded(_)) => {}
                    Err(e) => panic!("append racing a deletion: {e}"),
                }
            }
            acknowledged
        }
    });
    let deleter = async {
        futures_timer::Delay::new(std::time::Duration::from_millis(20)).await;
        store.delete_stream(&k, None).await.unwrap()
    };
    let (acknowledged, deleted) = futures::join!(join_all(writers), deleter);
    let acknowledged: Vec<Revision> = acknowledged.into_iter().flatten().collect();
    assert!(!deleted.already_deleted);
    for r in &acknowledged {
        assert!(
            *r <= deleted.last_revision,
            "revision {r} acknowledged after the deletion at {}",
            deleted.last_revision
        );
    }
    let distinct: HashSet<_> = acknowledged.iter().collect();
    assert_eq!(distinct.len(), acknowledged.len(), "revisions given twice");
    if !settings.responses_may_be_lost {
        assert_eq!(
            acknowledged.len() as u64 + 1,
            deleted.last_revision.get(),
            "every revision up to the deletion was acknowledged once"
        );
    }
    let feed = drain_feed(store, &FeedFilter::All, 1, settings.feed_timeout).await;
    let of_k: Vec<_> = feed.iter().filter(|e| e.stream_key() == k).collect();
    assert_eq!(of_k.len(), 1, "{of_k:?}");
    assert_eq!(of_k[0].event_type.as_str(), STREAM_DELETED);
    assert_eq!(of_k[0].revision, deleted.last_revision.next());
}

/// A truncation racing appends: afterwards reads start at the bound and run
/// gapless to the end, and every acknowledged append at or above the bound
/// is there.
pub async fn truncation_races_appends(store: &dyn EventStore, settings: Settings) {
    let k = key("race", "truncated");
    append(store, &k, Expectation::NoStream, events(20, "seed"))
        .await
        .unwrap();
    let writers = (0..settings.racing_writers.min(16)).map(|w| {
        let k = k.clone();
        async move {
            let mut acknowledged = Vec::new();
            for i in 0..10 {
                match append(store, &k, Expectation::Any, events(1, &format!("{w}-{i}"))).await {
                    Ok(o) => acknowledged.push(o.last_revision),
                    Err(StoreError::Overloaded(_)) => {}
                    Err(e) => panic!("append racing a truncation: {e}"),
                }
            }
            acknowledged
        }
    });
    let truncator = async {
        futures_timer::Delay::new(std::time::Duration::from_millis(10)).await;
        store
            .truncate_stream(&k, Revision::new(15), None)
            .await
            .unwrap()
    };
    let (acknowledged, info) = futures::join!(join_all(writers), truncator);
    assert_eq!(info.first_revision, Revision::new(15));
    let all = read_all(store, &k).await;
    let last = all.last().unwrap().revision.get();
    assert_eq!(revisions(&all), (15..=last).collect::<Vec<_>>());
    for r in acknowledged.into_iter().flatten() {
        assert!(r.get() <= last, "acknowledged revision {r} is missing");
    }
}

/// A feed reader that resumes across a deletion neither misses nor repeats
/// an entry of another stream.
pub async fn deletion_during_a_feed_read(store: &dyn EventStore, settings: Settings) {
    let kept = key("mixed", "kept");
    let gone = key("mixed", "gone");
    for round in 0..4 {
        append(
            store,
            &kept,
            Expectation::Any,
            events(3, &format!("k{round}")),
        )
        .await
        .unwrap();
        append(
            store,
            &gone,
            Expectation::Any,
            events(3, &format!("g{round}")),
        )
        .await
        .unwrap();
    }
    // Read part of the feed, delete, then resume from where the reader was.
    let first = drain_feed(store, &FeedFilter::All, 7, settings.feed_timeout).await;
    let resume_after = first[6].position.expect("feed entries have positions");
    let mut seen: Vec<RecordedEvent> = first.into_iter().take(7).collect();
    store.delete_stream(&gone, None).await.unwrap();
    append(store, &kept, Expectation::Any, events(2, "after"))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + settings.feed_timeout;
    let mut after = resume_after;
    loop {
        let page = store
            .read_feed(&FeedFilter::All, after, 5)
            .await
            .expect("read_feed");
        seen.extend(page.events.iter().cloned());
        after = page.last_position;
        let kept_seen = seen.iter().filter(|e| e.stream_key() == kept).count();
        let deletion_seen = seen
            .iter()
            .any(|e| e.stream_key() == gone && e.event_type.as_str() == STREAM_DELETED);
        if (kept_seen >= 14 && deletion_seen) || std::time::Instant::now() > deadline {
            break;
        }
        if page.events.is_empty() {
            futures_timer::Delay::new(std::time::Duration::from_millis(50)).await;
        }
    }
    let kept_revisions: Vec<u64> = seen
        .iter()
        .filter(|e| e.stream_key() == kept)
        .map(|e| e.revision.get())
        .collect();
    assert_eq!(
        kept_revisions,
        (1..=14).collect::<Vec<_>>(),
        "the other stream's entries, each once, in order"
    );
    let positions: Vec<_> = seen.iter().map(|e| e.position).collect();
    let mut sorted = positions.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(positions, sorted, "positions strictly increase");
}
