//! Reopening, torn tails, the directory lock and shutdown.

mod common;

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use common::{TempStore, append, events, key, list_all, read_all, read_feed_all};
use eventstore_core::{
    EventStore, Expectation, FeedFilter, RecordedEvent, Revision, StoreError, StreamInfo,
    StreamKey, StreamType, StreamTypeCount,
};
use eventstore_embedded::{EmbeddedError, EmbeddedStore};

/// Everything a client can observe, for before/after comparisons.
#[derive(Debug, PartialEq)]
struct Snapshot {
    streams: BTreeMap<StreamKey, (Option<StreamInfo>, Vec<RecordedEvent>)>,
    feed: Vec<RecordedEvent>,
    type_feeds: BTreeMap<String, Vec<RecordedEvent>>,
    listings: BTreeMap<String, Vec<StreamInfo>>,
    types: Vec<StreamTypeCount>,
}

async fn snapshot(store: &EmbeddedStore, keys: &[StreamKey]) -> Snapshot {
    let mut streams = BTreeMap::new();
    for k in keys {
        let info = store.stream_info(k).await.unwrap();
        let events = if info.is_some() {
            read_all(store, k).await
        } else {
            Vec::new()
        };
        streams.insert(k.clone(), (info, events));
    }
    let types = store.stream_types().await.unwrap();
    let mut type_feeds = BTreeMap::new();
    let mut listings = BTreeMap::new();
    for t in &types {
        let filter = FeedFilter::StreamType(t.stream_type.clone());
        type_feeds.insert(
            t.stream_type.to_string(),
            read_feed_all(store, &filter).await,
        );
        listings.insert(
            t.stream_type.to_string(),
            list_all(store, &t.stream_type).await,
        );
    }
    Snapshot {
        streams,
        feed: read_feed_all(store, &FeedFilter::All).await,
        type_feeds,
        listings,
        types,
    }
}

fn all_keys() -> Vec<StreamKey> {
    let mut keys = Vec::new();
    for i in 0..6 {
        keys.push(key("order", &format!("o-{i}")));
        keys.push(key("user", &format!("u-{i}")));
    }
    keys
}

/// Appends a mix of batches to several streams of two types, some of them
/// concurrently so that they share group commits.
async fn fill(store: &EmbeddedStore) {
    let keys = all_keys();
    for round in 0..4 {
        let appends = keys.iter().enumerate().map(|(i, k)| {
            let n = 1 + (i + round) % 4;
            async move { append(store, k, Expectation::Any, events(n)).await.unwrap() }
        });
        futures::future::join_all(appends).await;
    }
    // Touch a few streams so the listing order differs from creation order.
    for k in keys.iter().step_by(3) {
        append(store, k, Expectation::Exists, events(1))
            .await
            .unwrap();
    }
}

fn log_of(dir: &Path) -> std::path::PathBuf {
    dir.join("events.log")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_keeps_everything() {
    let store = TempStore::new();
    fill(&store).await;
    let keys = all_keys();
    let before = snapshot(&store, &keys).await;
    assert_eq!(before.feed.len(), 4 * 30 + 4, "sanity: events written");
    let retry_events = events(2);
    let k = key("order", "retried");
    let first = append(&store, &k, Expectation::NoStream, retry_events.clone())
        .await
        .unwrap();
    let mut keys = keys;
    keys.push(k.clone());
    let before = snapshot(&store, &keys).await;

    let store = store.reopen().await;
    let after = snapshot(&store, &keys).await;
    assert_eq!(
        before, after,
        "reopen must keep revisions, positions, ids, times, listings, counts"
    );

    // The idempotency index was rebuilt: the retry is recognised.
    let retry = append(&store, &k, Expectation::NoStream, retry_events)
        .await
        .unwrap();
    assert!(retry.already_appended);
    assert_eq!(retry.first_position, first.first_position);
    // Positions and commit times continue where they stopped.
    let last = before.feed.last().unwrap();
    let next = append(&store, &keys[0], Expectation::Any, events(1))
        .await
        .unwrap();
    assert_eq!(
        next.first_position,
        Some(last.position.unwrap().checked_add(1).unwrap())
    );
    assert!(next.stream.updated_at > last.created_at);
    let listing = list_all(&store, &keys[0].stream_type).await;
    assert_eq!(
        listing.last().unwrap().stream_id,
        keys[0].stream_id,
        "touched stream lists last"
    );
}

/// Appends `bytes` to the log of a closed store.
fn append_bytes(dir: &Path, bytes: &[u8]) {
    let mut f = OpenOptions::new().append(true).open(log_of(dir)).unwrap();
    f.write_all(bytes).unwrap();
    f.sync_all().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_or_garbage_tail_is_discarded_at_reopen() {
    let mut store = TempStore::new();
    fill(&store).await;
    store.store.close().await;
    let clean_len = std::fs::metadata(log_of(store.path())).unwrap().len();
    let full = std::fs::read(log_of(store.path())).unwrap();
    // The start of a real frame (header and part of its body), as a write
    // cut short by a crash leaves it.
    let first_frame = &full[16..16 + 40];
    let mut plausible_header = b"EVFR".to_vec();
    // (The frame layout of format version 1, still read.)
    plausible_header.extend_from_slice(&100u32.to_le_bytes());
    plausible_header.extend_from_slice(&[1, 2, 3, 4, 1, 0, 0, 0]);
    plausible_header.extend_from_slice(&[7u8; 100]);
    let tails: Vec<(&str, Vec<u8>)> = vec![
        ("zeroes (sectors never written)", vec![0u8; 4096]),
        ("a frame cut short", first_frame.to_vec()),
        ("a few bytes", vec![b'E', b'V']),
        ("a header cut short", full[16..16 + 20].to_vec()),
    ];
    let keys = all_keys();
    for (what, tail) in tails {
        store = store.reopen().await;
        let before = snapshot(&store, &keys).await;
        store.store.close().await;
        let len = std::fs::metadata(log_of(store.path())).unwrap().len();
        append_bytes(store.path(), &tail);

        store = store.reopen().await;
        let after = snapshot(&store, &keys).await;
        assert_eq!(before, after, "{what}: everything acknowledged is intact");
        assert_eq!(
            std::fs::metadata(log_of(store.path())).unwrap().len(),
            len,
            "{what}: the tail is cut off"
        );
        // The store goes on writing after the cut, and that survives too.
        let out = append(&store, &keys[1], Expectation::Any, events(2))
            .await
            .unwrap();
        assert_eq!(
            out.first_position.unwrap().get(),
            before.feed.len() as u64 + 1,
            "{what}: positions continue after the cut"
        );
    }
    store = store.reopen().await;
    let final_feed = read_feed_all(&store, &FeedFilter::All).await;
    assert_eq!(final_feed.len(), snapshot(&store, &keys).await.feed.len());
    assert!(std::fs::metadata(log_of(store.path())).unwrap().len() > clean_len);
    let kept: Vec<_> = std::fs::read_dir(store.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("discarded"))
        .collect();
    assert_eq!(
        kept.len(),
        3,
        "non-zero discarded tails are kept beside the log"
    );
    // Bytes that no crash leaves are damage: refused, the files untouched.
    let refused: Vec<(&str, Vec<u8>)> = vec![
        (
            "random bytes",
            (0..777u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 1)
                .collect(),
        ),
        ("a complete frame with a wrong checksum", plausible_header),
    ];
    store.store.close().await;
    drop(store.store);
    for (what, tail) in refused {
        let before = std::fs::read(log_of(store.dir.path())).unwrap();
        append_bytes(store.dir.path(), &tail);
        let damaged = std::fs::read(log_of(store.dir.path())).unwrap();
        match EmbeddedStore::open(store.dir.path()) {
            Err(EmbeddedError::Corrupt { offset, reason, .. }) => {
                assert_eq!(offset, before.len() as u64, "{what}: the damage is named");
                assert!(reason.contains("after position"), "{what}: {reason}");
            }
            other => panic!("{what}: must be refused, got {other:?}"),
        }
        assert_eq!(
            std::fs::read(log_of(store.dir.path())).unwrap(),
            damaged,
            "{what}: a refused log is left as it was"
        );
        std::fs::write(log_of(store.dir.path()), &before).unwrap();
    }
}

/// Simulates a power loss that kept any prefix of the last appends'
/// bytes: whatever the cut, the store reopens with whole appends only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cut_of_the_last_appends_leaves_whole_appends() {
    let store = TempStore::new();
    let k = key("cut", "c-1");
    append(&store, &k, Expectation::NoStream, events(3))
        .await
        .unwrap();
    let log = log_of(store.path());
    let mut ends = vec![std::fs::metadata(&log).unwrap().len()];
    for n in [1, 2, 3] {
        append(&store, &k, Expectation::Any, events(n))
            .await
            .unwrap();
        ends.push(std::fs::metadata(&log).unwrap().len());
    }
    store.store.close().await;
    let full = std::fs::read(&log).unwrap();
    let durable = ends[0] as usize;
    for cut in durable..=full.len() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(log_of(dir.path()), &full[..cut]).unwrap();
        let reopened = EmbeddedStore::open(dir.path()).unwrap();
        let read = read_all(&reopened, &k).await;
        let whole = ends.iter().filter(|&&e| e as usize <= cut).count();
        let expected: usize = [3, 1, 2, 3][..whole].iter().sum();
        assert_eq!(read.len(), expected, "cut at {cut}: whole appends only");
        for (i, e) in read.iter().enumerate() {
            assert_eq!(e.revision, Revision::new(i as u64 + 1));
        }
        reopened.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_beyond_what_a_crash_can_leave_is_refused() {
    let store = TempStore::new();
    append(&store, &key("a", "b"), Expectation::Any, events(1))
        .await
        .unwrap();
    store.store.close().await;
    drop(store.store);
    // Not a log at all.
    let other = tempfile::tempdir().unwrap();
    std::fs::write(log_of(other.path()), b"this is some other file, not a log").unwrap();
    assert!(matches!(
        EmbeddedStore::open(other.path()),
        Err(EmbeddedError::NotALog { .. })
    ));
    // A log with a checksummed frame that breaks an invariant: the same
    // frame twice (its position does not follow).
    let full = std::fs::read(log_of(store.dir.path())).unwrap();
    let mut doubled = full.clone();
    doubled.extend_from_slice(&full[16..]);
    std::fs::write(log_of(store.dir.path()), &doubled).unwrap();
    match EmbeddedStore::open(store.dir.path()) {
        Err(EmbeddedError::Corrupt { offset, .. }) => assert_eq!(offset, full.len() as u64),
        other => panic!("a repeated frame is damage, got {other:?}"),
    }
    // The refused log is left as it was, for inspection.
    assert_eq!(std::fs::read(log_of(store.dir.path())).unwrap(), doubled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_opener_is_refused_until_close() {
    let store = TempStore::new();
    match EmbeddedStore::open(store.path()) {
        Err(e @ EmbeddedError::Locked(_)) => {
            assert!(e.to_string().contains("in use by another process"))
        }
        other => panic!("a second open must be refused, got {other:?}"),
    }
    append(&store, &key("a", "b"), Expectation::Any, events(1))
        .await
        .unwrap();
    let store = store.reopen().await;
    assert_eq!(read_all(&store, &key("a", "b")).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_finishes_queued_appends_then_refuses_new_ones() {
    let store = std::sync::Arc::new(TempStore::new());
    let k = key("closing", "c");
    let appends: Vec<_> = (0..50)
        .map(|_| {
            let store = store.clone();
            let k = k.clone();
            tokio::spawn(async move { append(&store, &k, Expectation::Any, events(1)).await })
        })
        .collect();
    tokio::task::yield_now().await;
    store.store.close().await;
    let mut acknowledged = 0;
    for a in appends {
        match a.await.unwrap() {
            Ok(_) => acknowledged += 1,
            Err(StoreError::Unavailable(_)) => {}
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    assert!(matches!(
        append(&store, &k, Expectation::Any, events(1)).await,
        Err(StoreError::Unavailable(_))
    ));
    // Reads still work, and every acknowledged append is there.
    let read = if acknowledged > 0 {
        read_all(&store, &k).await.len()
    } else {
        0
    };
    assert_eq!(read, acknowledged);
    let store = std::sync::Arc::into_inner(store).unwrap();
    let store = store.reopen().await;
    let read = if acknowledged > 0 {
        read_all(&store, &k).await.len()
    } else {
        0
    };
    assert_eq!(
        read, acknowledged,
        "acknowledged appends survive close and reopen"
    );
    let _ = StreamType::parse("x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_feed_wakes_on_commit() {
    let store = std::sync::Arc::new(TempStore::new());
    let waiter = {
        let store = store.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            store
                .wait_for_feed(eventstore_core::Position::ZERO)
                .await
                .unwrap();
            started.elapsed()
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    append(&store, &key("w", "w"), Expectation::Any, events(1))
        .await
        .unwrap();
    let waited = tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
        .await
        .expect("the waiter wakes")
        .unwrap();
    assert!(
        waited >= std::time::Duration::from_millis(90),
        "it waited for the commit"
    );
    // Already past: returns at once.
    tokio::time::timeout(
        std::time::Duration::from_millis(100),
        store.wait_for_feed(eventstore_core::Position::ZERO),
    )
    .await
    .expect("no wait when events are past the position")
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_feed_wait_wakes_only_for_its_own_type() {
    let store = TempStore::new();
    let quiet = eventstore_core::StreamType::parse("quiet").unwrap();
    let waiter = {
        let q = quiet.clone();
        let s = &store.store;
        async move {
            s.wait_for_type_feed(&q, eventstore_core::Position::ZERO)
                .await
        }
    };
    tokio::pin!(waiter);
    // Appends of other types do not wake it.
    for i in 0..5 {
        append(
            &store,
            &key("busy", &format!("b-{i}")),
            Expectation::Any,
            events(1),
        )
        .await
        .unwrap();
    }
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(200), &mut waiter)
            .await
            .is_err(),
        "a quiet type's long poll must not wake for other types"
    );
    append(&store, &key("quiet", "q-1"), Expectation::Any, events(1))
        .await
        .unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), &mut waiter)
        .await
        .expect("wakes for its own type")
        .unwrap();
    // Already past: resolves at once.
    let last = store
        .store
        .read_feed(&FeedFilter::All, eventstore_core::Position::ZERO, 100)
        .await
        .unwrap()
        .last_position;
    assert!(
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            store
                .store
                .wait_for_type_feed(&quiet, eventstore_core::Position::new(last.get() - 1))
        )
        .await
        .is_ok()
    );
}
