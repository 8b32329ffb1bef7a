//! The on-disk index and its checkpoints over the simulated file layer:
//! open replays only the log after the checkpoint; a checkpoint that does
//! not match the log is rebuilt, not trusted; and a process death or a
//! power cut at any call of a checkpoint or a merge (writes, syncs,
//! renames, directory syncs, creations, deletions) leaves a store that
//! finds every acknowledged event through the index.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::{WRITING_OPS, die_and_cut, event, key, read_all, read_feed_all};
use eventstore_core::{
    AppendRequest, EventId, EventStore, Expectation, FeedFilter, NewEvent, Revision, StreamKey,
};
use eventstore_embedded::vfs::{FileSystem, Op, SimFs};
use eventstore_embedded::{EmbeddedError, EmbeddedOptions, EmbeddedStore};

fn dir() -> PathBuf {
    PathBuf::from("/sim/index")
}

fn open_every(fs: &SimFs, events: u64) -> Result<EmbeddedStore, EmbeddedError> {
    EmbeddedStore::open_with(
        dir(),
        EmbeddedOptions {
            fs: Arc::new(fs.clone()),
            checkpoint_events: events,
            ..EmbeddedOptions::default()
        },
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// What was acknowledged: (stream, event id, revision, position).
type Acked = Vec<(StreamKey, EventId, u64, u64)>;

/// Appends `n` single events round-robin over 3 streams of 2 types,
/// stopping at the first failure; returns what was acknowledged.
async fn load(store: &EmbeddedStore, n: usize, from: usize) -> Acked {
    let keys = [key("a", "a-1"), key("b", "b-1"), key("a", "a-2")];
    let mut acked = Vec::new();
    for i in from..from + n {
        let k = &keys[i % keys.len()];
        let e = event(i);
        let id = e.event_id;
        match store
            .append(AppendRequest::new(k.clone(), Expectation::Any, vec![e]).unwrap())
            .await
        {
            Ok(out) => acked.push((
                k.clone(),
                id,
                out.first_revision.get(),
                out.first_position.unwrap().get(),
            )),
            Err(_) => break,
        }
    }
    acked
}

/// Every acknowledged event is found through the index: in its stream at
/// its revision and position, in the global and per-type feeds, and by its
/// id (a retry answered "already appended" at its position).
async fn verify(store: &EmbeddedStore, acked: &Acked, what: &str) {
    let feed = read_feed_all(store, &FeedFilter::All).await;
    for (k, id, rev, pos) in acked {
        let read = read_all(store, k).await;
        let e = read
            .get(*rev as usize - 1)
            .unwrap_or_else(|| panic!("{what}: {k} revision {rev} missing"));
        assert_eq!(e.event_id, *id, "{what}: {k} revision {rev}");
        assert_eq!(e.position.unwrap().get(), *pos, "{what}");
        assert_eq!(
            feed[*pos as usize - 1].event_id,
            *id,
            "{what}: feed at {pos}"
        );
        let typed = read_feed_all(store, &FeedFilter::StreamType(k.stream_type.clone())).await;
        assert!(typed.iter().any(|e| e.event_id == *id), "{what}: type feed");
        let mut retry = event(0);
        retry.event_id = *id;
        let out = store
            .append(
                AppendRequest::new(
                    k.clone(),
                    Expectation::Exact(Revision::new(rev - 1)),
                    vec![retry],
                )
                .unwrap(),
            )
            .await
            .unwrap_or_else(|e| panic!("{what}: retry of {k} revision {rev}: {e}"));
        assert!(
            out.already_appended,
            "{what}: {k} revision {rev} found by id"
        );
        assert_eq!(out.first_position.unwrap().get(), *pos, "{what}");
    }
    for (i, e) in feed.iter().enumerate() {
        assert_eq!(
            e.position.unwrap().get(),
            i as u64 + 1,
            "{what}: gapless feed"
        );
    }
}

#[test]
fn open_replays_only_the_log_after_the_checkpoint() {
    let rt = runtime();
    rt.block_on(async {
        let fs = SimFs::new(1);
        let store = open_every(&fs, 10).unwrap();
        let acked = load(&store, 95, 0).await;
        // Wait for a checkpoint to be written (however loaded the machine),
        // then die without closing.
        let manifest = dir().join("index/MANIFEST");
        for _ in 0..1000 {
            if fs.contents(&manifest).is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        fs.kill();
        drop(store);
        fs.heal();
        let store = open_every(&fs, 10).unwrap();
        let stats = store.open_stats().clone();
        assert_eq!(stats.rebuilt, None, "{stats:?}");
        assert!(stats.checkpoint_position >= 10, "{stats:?}");
        // Exactly the events after the checkpoint, not the whole log.
        assert_eq!(
            stats.replayed_events,
            95 - stats.checkpoint_position,
            "{stats:?}"
        );
        verify(&store, &acked, "after a kill").await;
        store.close().await;
        drop(store);
        // A clean stop checkpoints everything: nothing to replay.
        let store = open_every(&fs, 10).unwrap();
        assert_eq!(store.open_stats().replayed_frames, 0);
        assert_eq!(store.open_stats().checkpoint_position, 95);
        verify(&store, &acked, "after a clean stop").await;
        store.close().await;
    });
}

/// Files of the index directory.
fn index_files(fs: &SimFs) -> Vec<PathBuf> {
    fs.list()
        .into_iter()
        .filter(|p| p.starts_with(dir().join("index")))
        .collect()
}

#[test]
fn a_checkpoint_that_does_not_match_the_log_is_rebuilt_not_trusted() {
    let rt = runtime();
    rt.block_on(async {
        // A store, closed (its index checkpointed).
        let fs = SimFs::new(2);
        let store = open_every(&fs, 4).unwrap();
        let acked = load(&store, 30, 0).await;
        store.close().await;
        drop(store);
        let log = dir().join("events.log");
        let manifest = dir().join("index/MANIFEST");
        let saved: Vec<(PathBuf, Vec<u8>)> = index_files(&fs)
            .into_iter()
            .map(|p| {
                let c = fs.contents(&p).unwrap();
                (p, c)
            })
            .collect();
        let restore = |fs: &SimFs| {
            for p in index_files(fs) {
                fs.remove_file(&p).unwrap();
            }
            for (p, c) in &saved {
                fs.set_contents(p, c.clone());
            }
        };
        // 1. A damaged MANIFEST.
        let mut m = fs.contents(&manifest).unwrap();
        m[20] ^= 0x10;
        fs.set_contents(&manifest, m);
        let store = open_every(&fs, 4).unwrap();
        let why = store.open_stats().rebuilt.clone().expect("rebuilt");
        assert!(why.contains("MANIFEST"), "{why}");
        verify(&store, &acked, "damaged MANIFEST").await;
        store.close().await;
        drop(store);
        // 2. The log is another one (shorter, other frames): the index of
        //    the first one must not be used.
        restore(&fs);
        let other = SimFs::new(3);
        let s2 = open_every(&other, 1000).unwrap();
        let acked2 = load(&s2, 7, 500).await;
        s2.close().await;
        fs.set_contents(&log, other.contents(&log).unwrap());
        let store = open_every(&fs, 4).unwrap();
        assert!(store.open_stats().rebuilt.is_some());
        verify(&store, &acked2, "another log").await;
        assert_eq!(read_feed_all(&store, &FeedFilter::All).await.len(), 7);
        store.close().await;
        drop(store);
        // 3. feed.idx shorter than the checkpoint says.
        let fs = SimFs::new(4);
        let store = open_every(&fs, 4).unwrap();
        let acked = load(&store, 30, 0).await;
        store.close().await;
        drop(store);
        let feed = dir().join("index/feed.idx");
        let mut f = fs.contents(&feed).unwrap();
        f.truncate(f.len() - 16);
        fs.set_contents(&feed, f);
        let store = open_every(&fs, 4).unwrap();
        let why = store.open_stats().rebuilt.clone().expect("rebuilt");
        assert!(why.contains("feed.idx"), "{why}");
        verify(&store, &acked, "short feed.idx").await;
        store.close().await;
        drop(store);
        // 4. A run the MANIFEST names is missing.
        let run = index_files(&fs)
            .into_iter()
            .find(|p| p.to_string_lossy().contains("run-"))
            .unwrap();
        fs.remove_file(&run).unwrap();
        let store = open_every(&fs, 4).unwrap();
        assert!(store.open_stats().rebuilt.is_some());
        verify(&store, &acked, "a missing run").await;
        store.close().await;
    });
}

/// The scenario of the tests below run once without faults (40 appends,
/// a checkpoint every 2 events): its file layer counts the calls of each
/// kind.
fn clean_run(rt: &tokio::runtime::Runtime, seed: u64) -> SimFs {
    let clean = SimFs::new(seed);
    rt.block_on(async {
        let store = open_every(&clean, 2).unwrap();
        let acked = load(&store, 40, 0).await;
        assert_eq!(acked.len(), 40);
        store.close().await;
    });
    clean
}

/// A process death at every call of every kind while the store appends
/// with a checkpoint after every 2 events (checkpoints, merges of 8 runs,
/// deletions of merged runs), with and without a power cut of each kind
/// after it: the reopened store finds every acknowledged event through the
/// index, and nothing else.
#[test]
fn a_death_at_any_call_of_a_checkpoint_or_merge_loses_nothing() {
    let rt = runtime();
    let clean = clean_run(&rt, 5);
    let mut runs = 0;
    for op in WRITING_OPS {
        let total = clean.count(op);
        for n in 0..total {
            runs += 1;
            let fs = SimFs::new(n * 31 + op as u64);
            fs.kill_at(op, n);
            let what = format!("death at {op:?} call {n}");
            let acked = rt.block_on(async {
                let Ok(store) = open_every(&fs, 2) else {
                    return Vec::new();
                };
                let acked = load(&store, 40, 0).await;
                store.close().await;
                acked
            });
            reopened_as_acknowledged(&rt, &fs, &acked, n, &what);
        }
    }
    assert!(runs > 50, "enough calls to die at: {runs}");
}

/// The process dies; then the power is cut in one of three ways (by `n`)
/// or not. The reopened store finds every acknowledged event through the
/// index, holds at most the append that died besides, and goes on.
fn reopened_as_acknowledged(
    rt: &tokio::runtime::Runtime,
    fs: &SimFs,
    acked: &Acked,
    n: u64,
    what: &str,
) {
    die_and_cut(fs, n);
    rt.block_on(async {
        let store = open_every(fs, 2).unwrap_or_else(|e| panic!("{what}: reopen: {e}"));
        verify(&store, acked, what).await;
        let feed = read_feed_all(&store, &FeedFilter::All).await;
        assert!(
            feed.len() <= acked.len() + 1,
            "{what}: at most the append that died is there besides"
        );
        // The store goes on: an append after the last position.
        let more = load(&store, 3, 1000).await;
        assert_eq!(more.len(), 3, "{what}");
        assert_eq!(more[0].3, feed.len() as u64 + 1, "{what}");
        store.close().await;
    });
}

/// Every call of every kind (a spread of the reads) fails once (`EIO` or
/// `ENOSPC`) while the store appends with a checkpoint after every 2
/// events, and the process goes on. A failed checkpoint or merge is tried
/// again (after 5 ms here) and written: the failure is no longer reported,
/// the index agrees with the log (`check`), and a reopen after the clean
/// stop replays nothing and finds every acknowledged event through the
/// index. (A failed write or sync of the log stops the store's appends
/// instead; the reopen then finds what was acknowledged.) And the same
/// failure followed by a death at the next call of its kind (the retry's,
/// mostly), with a power cut: the reopened store is as acknowledged.
#[test]
fn a_failed_call_of_a_checkpoint_or_merge_is_tried_again_and_loses_nothing() {
    let rt = runtime();
    let clean = clean_run(&rt, 6);
    let open = |fs: &SimFs| {
        EmbeddedStore::open_with(
            dir(),
            EmbeddedOptions {
                fs: Arc::new(fs.clone()),
                checkpoint_events: 2,
                checkpoint_retry: std::time::Duration::from_millis(5),
                ..EmbeddedOptions::default()
            },
        )
    };
    let (mut runs, mut retried, mut died_retrying) = (0, 0, 0);
    for op in WRITING_OPS.into_iter().chain([Op::Read]) {
        // Reads are many (look-ups, runs opened and merged): a spread.
        let total = clean.count(op);
        let stride = if op == Op::Read {
            (total / 80).max(1)
        } else {
            1
        };
        for n in (0..total).step_by(stride as usize) {
            runs += 1;
            let errno = if n % 2 == 0 { 5 } else { 28 };
            let fs = SimFs::new(n * 37 + op as u64);
            fs.fail_nth(op, n, errno);
            let what = format!("{op:?} call {n} fails with errno {errno}");
            let Ok(store) = open(&fs) else {
                continue;
            };
            let acked = rt.block_on(async {
                let acked = load(&store, 40, 0).await;
                let went_on = acked.len() == 40;
                if went_on {
                    // The failed checkpoint (if this call was one) is
                    // written by a later try; no other starts until the
                    // stop (the appends are over).
                    let mut waited = 0;
                    while store.checkpoint_in_progress() && waited < 2000 {
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                        waited += 1;
                    }
                    assert!(!store.checkpoint_in_progress(), "{what}: written");
                    assert_eq!(store.checkpoint_failure(), None, "{what}: tried again");
                }
                // A failure of the stop's own checkpoint is not tried
                // again: the next open replays the log after the last one.
                let failed_in_stop = fs.count(op) <= n;
                store.close().await;
                (acked, went_on && !failed_in_stop)
            });
            let (acked, went_on) = acked;
            if went_on {
                let report = eventstore_embedded::check_with(&fs, dir())
                    .unwrap_or_else(|e| panic!("{what}: check: {e}"));
                assert!(report.is_intact(), "{what}: {report}");
                let index = report.index.as_ref().expect("an index");
                assert!(index.present && index.stale.is_none(), "{what}: {index:?}");
                assert_eq!(
                    index.checkpoint_position, 40,
                    "{what}: the stop's checkpoint"
                );
                retried += 1;
            }
            fs.heal();
            rt.block_on(async {
                let store = open(&fs).unwrap_or_else(|e| panic!("{what}: reopen: {e}"));
                if went_on {
                    assert_eq!(
                        store.open_stats().replayed_events,
                        0,
                        "{what}: {:?}",
                        store.open_stats()
                    );
                }
                verify(&store, &acked, &what).await;
                let more = load(&store, 3, 1000).await;
                assert_eq!(more.len(), 3, "{what}");
                store.close().await;
            });
            // The same failure, then a death at the next call of its kind.
            let fs = SimFs::new(n * 41 + op as u64);
            fs.fail_nth(op, n, errno);
            fs.kill_at(op, n + 1);
            let what = format!("{what}, then death at call {}", n + 1);
            let acked = rt.block_on(async {
                let Ok(store) = open(&fs) else {
                    return Vec::new();
                };
                let acked = load(&store, 40, 0).await;
                if store.checkpoint_failure().is_some() {
                    died_retrying += 1;
                }
                // Give the retry its time before the stop.
                let mut waited = 0;
                while store.checkpoint_in_progress() && !fs.is_dead() && waited < 40 {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    waited += 1;
                }
                store.close().await;
                acked
            });
            reopened_as_acknowledged(&rt, &fs, &acked, n, &what);
        }
    }
    eprintln!(
        "{runs} calls failed; {retried} stores went on; \
         {died_retrying} died while a checkpoint was failing"
    );
    assert!(
        runs > 50 && retried > 20 && died_retrying > 10,
        "calls failed: {runs}, stores that went on: {retried}, \
         died while a checkpoint was failing: {died_retrying}"
    );
}

/// A stream with many revisions read page by page both ways, while its
/// revisions are spread over merged runs, a run, the frozen and the active
/// delta.
#[test]
fn pages_cross_every_layer_of_the_index() {
    let rt = runtime();
    rt.block_on(async {
        let fs = SimFs::new(6);
        let store = open_every(&fs, 7).unwrap();
        let k = key("long", "l-1");
        let mut ids = Vec::new();
        for i in 0..150 {
            let evs: Vec<NewEvent> = (0..1 + i % 3).map(|j| event(i * 10 + j)).collect();
            ids.extend(evs.iter().map(|e| e.event_id));
            store
                .append(AppendRequest::new(k.clone(), Expectation::Any, evs).unwrap())
                .await
                .unwrap();
        }
        for limit in [1, 7, 100] {
            let mut got = Vec::new();
            let mut read = eventstore_core::StreamRead::forward();
            read.limit = limit;
            loop {
                let page = store.read_stream(&k, read).await.unwrap();
                got.extend(page.events.iter().map(|e| e.event_id));
                if !page.has_more {
                    break;
                }
                read.from = Some(page.last_evaluated_revision);
            }
            assert_eq!(got, ids, "forward by {limit}");
            let mut got = Vec::new();
            let mut read = eventstore_core::StreamRead::backward(None, limit);
            loop {
                let page = store.read_stream(&k, read).await.unwrap();
                got.extend(page.events.iter().map(|e| e.event_id));
                if !page.has_more {
                    break;
                }
                read.from = Some(page.last_evaluated_revision);
            }
            got.reverse();
            assert_eq!(got, ids, "backward by {limit}");
        }
        store.close().await;
    });
}
