//! Fault injection over the simulated file layer (`vfs::SimFs`): power cuts
//! that drop or tear unsynced writes, process deaths in the middle of any
//! call, `EIO` and `ENOSPC` at every write and sync call site, and a
//! model-based test that mixes all of them with appends, retries and reads.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use common::{append, event, key, read_all, read_feed_all};
use eventstore_core::{
    AppendRequest, EventId, EventStore, Expectation, FeedFilter, NewEvent, Revision, StoreError,
    StreamKey,
};
use eventstore_embedded::vfs::{Op, PowerCut, SimFs};
use eventstore_embedded::{EmbeddedError, EmbeddedOptions, EmbeddedStore};
use proptest::prelude::*;

const EIO: i32 = 5;
const ENOSPC: i32 = 28;

fn dir() -> PathBuf {
    PathBuf::from("/sim/data")
}

fn open(fs: &SimFs) -> Result<EmbeddedStore, EmbeddedError> {
    open_every(fs, EmbeddedOptions::DEFAULT_CHECKPOINT_EVENTS)
}

/// A store whose index is checkpointed every `events` events (the index's
/// checkpoints and merges then run during a test's appends).
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

/// What the store acknowledged: per stream, the events in order with their
/// positions.
#[derive(Debug, Default, Clone)]
struct Model {
    streams: BTreeMap<StreamKey, Vec<(EventId, u64)>>,
    /// Appends whose outcome is unknown (the process died or the disk
    /// failed during them): present whole or absent after a restart.
    unknown: Vec<(StreamKey, Vec<EventId>)>,
}

impl Model {
    fn acked(&mut self, key: &StreamKey, ids: &[EventId], first_position: u64, first_rev: u64) {
        let s = self.streams.entry(key.clone()).or_default();
        for (i, id) in ids.iter().enumerate() {
            let rev = first_rev + i as u64;
            if s.len() as u64 >= rev {
                // A retry answered "already appended": same ids there.
                assert_eq!(
                    s[rev as usize - 1].0,
                    *id,
                    "a retry answered with other events"
                );
            } else {
                assert_eq!(s.len() as u64 + 1, rev, "revisions gapless");
                s.push((*id, first_position + i as u64));
            }
        }
        self.unknown.retain(|(k, u)| !(k == key && u == ids));
    }

    /// Checks a reopened store against the model: every acknowledged event
    /// exactly once, in order, at its position; unknown appends whole or
    /// absent (and adopted when present); nothing else; a gapless feed;
    /// the per-type feed and the listing agree with the streams; and every
    /// acknowledged event is found by its id (a retry of it would be
    /// answered "already appended").
    async fn verify(&mut self, store: &EmbeddedStore, what: &str) {
        self.verify_streams(store, what).await;
        let feed = read_feed_all(store, &FeedFilter::All).await;
        let mut types: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for e in &feed {
            types
                .entry(e.stream_type.as_str().to_string())
                .or_default()
                .push(e.position.unwrap().get());
        }
        for (t, positions) in &types {
            let t = eventstore_core::StreamType::parse(t.as_str()).unwrap();
            let typed = read_feed_all(store, &FeedFilter::StreamType(t.clone())).await;
            let got: Vec<u64> = typed.iter().map(|e| e.position.unwrap().get()).collect();
            assert_eq!(&got, positions, "{what}: the feed of type {t}");
            let listed = common::list_all(store, &t).await;
            let streams: std::collections::BTreeSet<_> = feed
                .iter()
                .filter(|e| e.stream_type == t)
                .map(|e| e.stream_id.clone())
                .collect();
            assert_eq!(
                listed.len(),
                streams.len(),
                "{what}: the listing of type {t}"
            );
            let counted = store
                .stream_types()
                .await
                .unwrap()
                .into_iter()
                .find(|c| c.stream_type == t)
                .map_or(0, |c| c.streams);
            assert_eq!(
                counted,
                streams.len() as u64,
                "{what}: the count of type {t}"
            );
        }
        for (k, events) in &self.streams {
            for (rev, (id, pos)) in events.iter().enumerate() {
                // A retry of exactly this event, expecting its revision
                // before: answered "already appended" at its position,
                // without writing anything.
                let expectation = if rev == 0 {
                    Expectation::NoStream
                } else {
                    Expectation::Exact(Revision::new(rev as u64))
                };
                let mut e = event(0);
                e.event_id = *id;
                let out = store
                    .append(request(k, expectation, vec![e]))
                    .await
                    .unwrap_or_else(|e| panic!("{what}: a retry of {k} revision {}: {e}", rev + 1));
                assert!(
                    out.already_appended,
                    "{what}: {k} revision {} found by its id",
                    rev + 1
                );
                assert_eq!(out.first_position.unwrap().get(), *pos, "{what}");
            }
        }
    }

    async fn verify_streams(&mut self, store: &EmbeddedStore, what: &str) {
        let feed = read_feed_all(store, &FeedFilter::All).await;
        for (i, e) in feed.iter().enumerate() {
            assert_eq!(
                e.position.unwrap().get(),
                i as u64 + 1,
                "{what}: the feed has no gap"
            );
        }
        let mut keys: Vec<StreamKey> = self.streams.keys().cloned().collect();
        for (k, _) in &self.unknown {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
        let mut seen = 0;
        for k in keys {
            let read = if store.stream_info(&k).await.unwrap().is_some() {
                read_all(store, &k).await
            } else {
                Vec::new()
            };
            let acked = self.streams.get(&k).cloned().unwrap_or_default();
            assert!(
                read.len() >= acked.len(),
                "{what}: stream {k} lost acknowledged events ({} of {})",
                read.len(),
                acked.len()
            );
            for (i, (id, pos)) in acked.iter().enumerate() {
                assert_eq!(read[i].event_id, *id, "{what}: {k} revision {}", i + 1);
                assert_eq!(
                    read[i].position.unwrap().get(),
                    *pos,
                    "{what}: {k} revision {} moved",
                    i + 1
                );
                assert_eq!(read[i].revision, Revision::new(i as u64 + 1));
            }
            // What follows must be unknown appends, whole.
            let mut rest: Vec<EventId> = read[acked.len()..].iter().map(|e| e.event_id).collect();
            while !rest.is_empty() {
                let Some(i) = self
                    .unknown
                    .iter()
                    .position(|(uk, ids)| *uk == k && rest.starts_with(ids))
                else {
                    panic!("{what}: {k} holds events nobody appended: {rest:?}");
                };
                let (_, ids) = self.unknown.remove(i);
                // Now durable (open synced it): adopt it.
                let base = read.len() - rest.len();
                let s = self.streams.entry(k.clone()).or_default();
                for (j, id) in ids.iter().enumerate() {
                    s.push((*id, read[base + j].position.unwrap().get()));
                }
                rest.drain(..ids.len());
            }
            seen += read.len();
        }
        assert_eq!(
            seen,
            feed.len(),
            "{what}: the feed holds only these streams"
        );
        // An unknown append not found is gone for good.
        self.unknown.clear();
    }
}

fn request(k: &StreamKey, expectation: Expectation, events: Vec<NewEvent>) -> AppendRequest {
    AppendRequest::new(k.clone(), expectation, events).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[derive(Debug, Clone)]
enum Step {
    /// Append `n` events to stream `s` (expectation: any).
    Append { s: usize, n: usize },
    /// Append to stream `s` expecting its current revision.
    AppendExact { s: usize, n: usize },
    /// Retry the `i`-th earlier append (modulo their number).
    Retry { i: usize },
    /// Several appends at once (one group commit, several frames).
    Concurrent { n: usize },
    /// The process dies at the next call of this kind (during an append).
    DieDuring { sync: bool, s: usize },
    /// The process dies, then restarts (page cache kept).
    Restart,
    /// The power is cut, then the store restarts.
    PowerCut { mode: u8 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..4usize, 1..4usize).prop_map(|(s, n)| Step::Append { s, n }),
        2 => (0..4usize, 1..3usize).prop_map(|(s, n)| Step::AppendExact { s, n }),
        2 => any::<usize>().prop_map(|i| Step::Retry { i }),
        2 => (2..6usize).prop_map(|n| Step::Concurrent { n }),
        2 => (any::<bool>(), 0..4usize).prop_map(|(sync, s)| Step::DieDuring { sync, s }),
        1 => Just(Step::Restart),
        2 => (0..3u8).prop_map(|mode| Step::PowerCut { mode }),
    ]
}

fn mode(m: u8) -> PowerCut {
    match m {
        0 => PowerCut::DropUnsynced,
        1 => PowerCut::TornPrefix,
        _ => PowerCut::TornSectors,
    }
}

fn keys() -> Vec<StreamKey> {
    (0..4).map(|i| key("model", &format!("s-{i}"))).collect()
}

async fn run_model(seed: u64, steps: Vec<Step>) {
    let fs = SimFs::new(seed);
    let keys = keys();
    let mut model = Model::default();
    // Checkpoints every 1 to 4 events: checkpoints and merges of the
    // index run during every case.
    let every = 1 + seed % 4;
    let open = |fs: &SimFs| open_every(fs, every);
    let mut store = open(&fs).unwrap();
    let mut history: Vec<(StreamKey, Vec<NewEvent>)> = Vec::new();
    let mut counter = 0usize;
    let mut fresh = |n: usize| -> Vec<NewEvent> {
        (0..n)
            .map(|_| {
                counter += 1;
                event(counter)
            })
            .collect()
    };
    for (at, step) in steps.into_iter().enumerate() {
        let what = format!("seed {seed} step {at} {step:?}");
        match step {
            Step::Append { s, n } | Step::AppendExact { s, n } => {
                let k = &keys[s];
                let evs = fresh(n);
                let expectation = match step {
                    Step::AppendExact { .. } => {
                        let rev = model.streams.get(k).map_or(0, |v| v.len() as u64);
                        if rev == 0 {
                            Expectation::NoStream
                        } else {
                            Expectation::Exact(Revision::new(rev))
                        }
                    }
                    _ => Expectation::Any,
                };
                let ids: Vec<EventId> = evs.iter().map(|e| e.event_id).collect();
                history.push((k.clone(), evs.clone()));
                let out = store.append(request(k, expectation, evs)).await.unwrap();
                assert!(!out.already_appended, "{what}");
                model.acked(
                    k,
                    &ids,
                    out.first_position.unwrap().get(),
                    out.first_revision.get(),
                );
            }
            Step::Retry { i } => {
                if history.is_empty() {
                    continue;
                }
                let (k, evs) = history[i % history.len()].clone();
                let ids: Vec<EventId> = evs.iter().map(|e| e.event_id).collect();
                let known = model
                    .streams
                    .get(&k)
                    .is_some_and(|v| v.iter().any(|(id, _)| *id == ids[0]));
                match store.append(request(&k, Expectation::Any, evs)).await {
                    Ok(out) => {
                        if known {
                            assert!(out.already_appended, "{what}: a retry is not stored twice");
                        }
                        model.acked(
                            &k,
                            &ids,
                            out.first_position.unwrap().get(),
                            out.first_revision.get(),
                        );
                    }
                    Err(e) => panic!("{what}: retry failed: {e}"),
                }
            }
            Step::Concurrent { n } => {
                let shared = Arc::new(store);
                let mut tasks = Vec::new();
                for j in 0..n {
                    let k = keys[j % keys.len()].clone();
                    let evs = fresh(1 + j % 2);
                    history.push((k.clone(), evs.clone()));
                    let st = shared.clone();
                    tasks.push(tokio::spawn(async move {
                        let ids: Vec<EventId> = evs.iter().map(|e| e.event_id).collect();
                        let out = st.append(request(&k, Expectation::Any, evs)).await;
                        (k, ids, out)
                    }));
                }
                let mut outs = Vec::new();
                for t in tasks {
                    outs.push(t.await.unwrap());
                }
                // Acknowledge in position order (the model checks gapless
                // revisions).
                outs.sort_by_key(|(_, _, o)| o.as_ref().unwrap().first_position);
                for (k, ids, out) in outs {
                    let out = out.unwrap();
                    model.acked(
                        &k,
                        &ids,
                        out.first_position.unwrap().get(),
                        out.first_revision.get(),
                    );
                }
                store = Arc::try_unwrap(shared).unwrap();
            }
            Step::DieDuring { sync, s } => {
                let op = if sync { Op::Sync } else { Op::Write };
                // The next call of that kind dies, whichever thread makes
                // it (a checkpoint may be writing too).
                fs.kill_at_next(op);
                let k = &keys[s];
                let evs = fresh(2);
                let ids: Vec<EventId> = evs.iter().map(|e| e.event_id).collect();
                history.push((k.clone(), evs.clone()));
                model.unknown.push((k.clone(), ids));
                assert!(
                    store
                        .append(request(k, Expectation::Any, evs))
                        .await
                        .is_err(),
                    "{what}: an append whose commit died is not acknowledged"
                );
                fs.kill();
                drop(store);
                // The process is dead; half the time the power goes too.
                if seed.is_multiple_of(2) {
                    fs.power_cut(mode((seed / 2 % 3) as u8));
                } else {
                    fs.heal();
                }
                store = open(&fs).unwrap_or_else(|e| panic!("{what}: reopen: {e}"));
                model.verify(&store, &what).await;
                // What open served must be durable: the process dies and
                // the power is cut at once; look again.
                fs.kill();
                drop(store);
                fs.power_cut(PowerCut::DropUnsynced);
                store = open(&fs).unwrap_or_else(|e| panic!("{what}: reopen: {e}"));
                model
                    .verify(&store, &format!("{what}, power cut after restart"))
                    .await;
            }
            Step::Restart => {
                drop(store);
                fs.kill();
                fs.heal();
                store = open(&fs).unwrap_or_else(|e| panic!("{what}: reopen: {e}"));
                model.verify(&store, &what).await;
            }
            Step::PowerCut { mode: m } => {
                drop(store);
                fs.power_cut(mode(m));
                store = open(&fs).unwrap_or_else(|e| panic!("{what}: reopen: {e}"));
                model.verify(&store, &what).await;
            }
        }
    }
    store.close().await;
    drop(store);
    fs.power_cut(PowerCut::TornSectors);
    let store = open(&fs).unwrap();
    model
        .verify(&store, &format!("seed {seed}: at the end"))
        .await;
    // Positions go on after the last one, never reused.
    let last = read_feed_all(&store, &FeedFilter::All).await.len() as u64;
    let out = append(&store, &keys[0], Expectation::Any, vec![event(0)])
        .await
        .unwrap();
    assert_eq!(out.first_position.unwrap().get(), last + 1);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("FAULT_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48),
        failure_persistence: None,
        .. ProptestConfig::default()
    })]

    /// Random appends, retries, concurrent group commits, process deaths
    /// during writes and syncs, restarts and power cuts of every kind,
    /// checked against the model after every restart.
    #[test]
    fn model_over_simulated_faults(seed in any::<u64>(), steps in prop::collection::vec(step(), 1..30)) {
        runtime().block_on(run_model(seed, steps));
    }
}

/// The scenario the error injection runs: create a store, append, close,
/// reopen, append more in one group commit and alone, close. Returns the
/// appends acknowledged and whether a failure was seen.
async fn scenario(fs: &SimFs, model: &mut Model) -> Result<(), String> {
    let k = key("inject", "s-1");
    let k2 = key("inject", "s-2");
    let store = open(fs).map_err(|e| format!("open: {e}"))?;
    let mut failed = false;
    for (i, (kk, n)) in [(&k, 2), (&k2, 1), (&k, 3)].into_iter().enumerate() {
        let evs: Vec<NewEvent> = (0..n).map(|j| event(100 * i + j)).collect();
        let ids: Vec<EventId> = evs.iter().map(|e| e.event_id).collect();
        match store.append(request(kk, Expectation::Any, evs)).await {
            Ok(out) => {
                assert!(!failed, "after a failed append, nothing is acknowledged");
                model.acked(
                    kk,
                    &ids,
                    out.first_position.unwrap().get(),
                    out.first_revision.get(),
                );
            }
            Err(e) => {
                if !failed {
                    // The client of the failed append gets an error that
                    // HTTP answers with a 5xx, and the store says why.
                    assert!(
                        matches!(e, StoreError::Backend(_) | StoreError::Unavailable(_)),
                        "{e:?}"
                    );
                    assert!(store.readiness().is_err(), "unhealthy after a failed write");
                } else {
                    assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
                }
                failed = true;
                model.unknown.push((kk.clone(), ids));
            }
        }
    }
    store.close().await;
    drop(store);
    if failed {
        return Err("an append failed".into());
    }
    // A torn tail for the reopen to cut (and keep a copy of): the start of
    // a frame, as a write cut short leaves it.
    let log = dir().join("events.log");
    let mut bytes = fs.contents(&log).expect("the log");
    let torn = bytes[16..16 + 40].to_vec();
    bytes.extend_from_slice(&torn);
    fs.set_contents(&log, bytes);
    let store = open(fs).map_err(|e| format!("reopen: {e}"))?;
    let st = Arc::new(store);
    let mut tasks = Vec::new();
    for j in 0..3 {
        let kk = if j % 2 == 0 { k.clone() } else { k2.clone() };
        let evs = vec![event(1000 + j)];
        let st = st.clone();
        tasks.push(tokio::spawn(async move {
            let ids: Vec<EventId> = evs.iter().map(|e| e.event_id).collect();
            (
                kk.clone(),
                ids,
                st.append(request(&kk, Expectation::Any, evs)).await,
            )
        }));
    }
    let mut outs = Vec::new();
    for t in tasks {
        outs.push(t.await.unwrap());
    }
    outs.sort_by_key(|(_, _, o)| o.as_ref().ok().and_then(|o| o.first_position));
    let mut failed = false;
    for (kk, ids, out) in outs {
        match out {
            Ok(out) => model.acked(
                &kk,
                &ids,
                out.first_position.unwrap().get(),
                out.first_revision.get(),
            ),
            Err(_) => {
                failed = true;
                model.unknown.push((kk, ids));
            }
        }
    }
    if failed {
        assert!(st.readiness().is_err());
        let again = st
            .append(request(&k, Expectation::Any, vec![event(5000)]))
            .await;
        assert!(
            matches!(again, Err(StoreError::Unavailable(_))),
            "fail-stop: {again:?}"
        );
    }
    st.close().await;
    if failed {
        return Err("an append failed".into());
    }
    Ok(())
}

/// Every write, sync, truncation, directory sync and file creation that the
/// scenario makes — at open, at commit, when cutting a failed commit off —
/// fails once, with `EIO` and with `ENOSPC`. Whatever failed, a restart
/// (with or without a power cut) shows the store exactly as acknowledged.
#[test]
fn every_write_and_sync_call_site_fails_with_eio_and_enospc() {
    let rt = runtime();
    // Count the calls of a clean run.
    let clean = SimFs::new(1);
    let mut m = Model::default();
    rt.block_on(scenario(&clean, &mut m)).unwrap();
    let ops = [Op::Write, Op::Sync, Op::SetLen, Op::SyncDir, Op::Create];
    let mut runs = 0;
    for op in ops {
        for n in 0..clean.count(op) {
            for errno in [EIO, ENOSPC] {
                for cut in [false, true] {
                    runs += 1;
                    let fs = SimFs::new(n * 7 + errno as u64);
                    fs.fail_nth(op, n, errno);
                    let mut model = Model::default();
                    let outcome = rt.block_on(scenario(&fs, &mut model));
                    let what = format!(
                        "{op:?} call {n} fails with errno {errno}, power cut {cut}: {outcome:?}"
                    );
                    fs.heal();
                    if cut {
                        fs.power_cut(PowerCut::DropUnsynced);
                    }
                    // A failed open may leave no log at all: that is a
                    // store with nothing acknowledged.
                    let store = open(&fs).unwrap_or_else(|e| panic!("{what}: reopen: {e}"));
                    // The failed append never shows.
                    let unknown = std::mem::take(&mut model.unknown);
                    rt.block_on(model.verify(&store, &what));
                    for (k, ids) in unknown {
                        if let Ok(read) = rt.block_on(async {
                            store
                                .read_stream(&k, eventstore_core::StreamRead::forward())
                                .await
                        }) {
                            assert!(
                                !read.events.iter().any(|e| ids.contains(&e.event_id)),
                                "{what}: the failed append shows after the restart"
                            );
                        }
                    }
                    rt.block_on(store.close());
                }
            }
        }
    }
    assert!(
        runs >= 40,
        "the scenario makes enough calls to inject into: {runs}"
    );
}

/// A process that dies right after its commit's write, before the sync,
/// restarts with the page cache intact: open must make what it serves
/// durable before it answers a retry with "already appended".
#[test]
fn open_makes_what_it_replays_durable_before_serving() {
    let rt = runtime();
    rt.block_on(async {
        let fs = SimFs::new(3);
        let k = key("durable", "d-1");
        let store = open(&fs).unwrap();
        append(&store, &k, Expectation::NoStream, vec![event(1)])
            .await
            .unwrap();
        fs.kill_at(Op::Sync, fs.count(Op::Sync));
        let evs = vec![event(2), event(3)];
        assert!(
            store
                .append(request(&k, Expectation::Any, evs.clone()))
                .await
                .is_err()
        );
        drop(store);
        fs.heal();
        // The process restarts; the page cache still holds the frame.
        let store = open(&fs).unwrap();
        let retry = store
            .append(request(&k, Expectation::Any, evs.clone()))
            .await
            .unwrap();
        assert!(retry.already_appended);
        // The process dies before anything else is synced.
        fs.kill();
        drop(store);
        // "Already appended" was a promise: it survives a power cut.
        fs.power_cut(PowerCut::DropUnsynced);
        let store = open(&fs).unwrap();
        let read = read_all(&store, &k).await;
        assert_eq!(read.len(), 3, "the retried append is durable");
    });
}

/// A failed `fdatasync` leaves the failed commit visible in the page cache
/// (Linux marks the pages clean). The store cuts it off, so neither it nor
/// a restart ever shows the failed append.
#[test]
fn a_failed_sync_never_comes_back_after_a_restart() {
    let rt = runtime();
    rt.block_on(async {
        for seed in 0..20 {
            let fs = SimFs::new(seed);
            let k = key("fsyncgate", "f-1");
            let store = open(&fs).unwrap();
            append(&store, &k, Expectation::NoStream, vec![event(1)])
                .await
                .unwrap();
            fs.fail_nth(Op::Sync, fs.count(Op::Sync), EIO);
            let failed = store
                .append(request(&k, Expectation::Any, vec![event(2)]))
                .await;
            assert!(matches!(failed, Err(StoreError::Backend(_))), "{failed:?}");
            let reason = store.readiness().unwrap_err();
            assert!(reason.contains("could not be written"), "{reason}");
            let next = store
                .append(request(&k, Expectation::Any, vec![event(3)]))
                .await;
            assert!(matches!(next, Err(StoreError::Unavailable(_))), "{next:?}");
            assert_eq!(read_all(&store, &k).await.len(), 1);
            store.close().await;
            drop(store);
            fs.heal();
            let store = open(&fs).unwrap();
            assert_eq!(
                read_all(&store, &k).await.len(),
                1,
                "seed {seed}: the failed append does not come back"
            );
            assert!(store.readiness().is_ok());
            store.close().await;
        }
    });
}

/// One group commit writes whole frames until they pass 16 MiB, so the
/// most a crash can tear is what open accepts as a torn tail — also when
/// the frames are mostly names and headers (long event types, tiny
/// payloads), which the payload bytes alone would not bound.
#[test]
fn a_group_commit_writes_at_most_16_mib_plus_one_frame() {
    let rt = runtime();
    rt.block_on(async {
        let fs = SimFs::new(4);
        let store = Arc::new(open(&fs).unwrap());
        let event_type = "t".repeat(200);
        // A slow disk: the first commit's sync waits while 1500 appends queue
        // up behind it, so the next commit could take them all at once.
        fs.hold_syncs(true);
        let first = {
            let st = store.clone();
            tokio::spawn(async move {
                st.append(request(
                    &key("big", "first"),
                    Expectation::Any,
                    vec![event(1)],
                ))
                .await
                .unwrap()
            })
        };
        let mut tasks = Vec::new();
        for i in 0..1500 {
            let st = store.clone();
            let event_type = event_type.clone();
            tasks.push(tokio::spawn(async move {
                let evs: Vec<NewEvent> = (0..100)
                    .map(|_| {
                        NewEvent::new(
                            eventstore_core::EventType::parse(&event_type).unwrap(),
                            eventstore_core::JsonValue::from_text("0").unwrap(),
                        )
                    })
                    .collect();
                st.append(request(
                    &key("big", &format!("b-{i}")),
                    Expectation::Any,
                    evs,
                ))
                .await
                .unwrap()
            }));
        }
        // Let them all reach the queue, then the disk.
        tokio::time::sleep(std::time::Duration::from_millis(2000)).await;
        fs.hold_syncs(false);
        first.await.unwrap();
        for t in tasks {
            t.await.unwrap();
        }
        let total = fs.contents(&dir().join("events.log")).unwrap().len() as u64;
        let largest = fs.largest_write();
        let one_frame = 100 * (200 + 64) + 128;
        assert!(total > 17 << 20, "{total} bytes written in all");
        assert!(
            largest <= (16 << 20) + one_frame,
            "a commit wrote {largest} bytes"
        );
        println!("1500 appends of 100 small events: {total} bytes, largest commit {largest} bytes");
        store.close().await;
    });
}

/// Found by the model test: a commit that starts on the last byte of a
/// sector, torn by a power cut so that only its later sectors reached the
/// disk, leaves a one-byte unwritten run (a zero where the frame's magic
/// starts); it is a crash's tail, not damage.
#[test]
fn a_commit_torn_after_the_first_byte_of_its_sector() {
    runtime().block_on(run_model(
        8081492170510625512,
        vec![
            Step::Append { s: 1, n: 2 },
            Step::Concurrent { n: 2 },
            Step::PowerCut { mode: 0 },
            Step::PowerCut { mode: 0 },
            Step::PowerCut { mode: 0 },
            Step::Append { s: 3, n: 2 },
            Step::Append { s: 3, n: 1 },
            Step::Concurrent { n: 3 },
            Step::AppendExact { s: 1, n: 1 },
            Step::DieDuring { sync: true, s: 1 },
            Step::Append { s: 1, n: 3 },
            Step::Append { s: 2, n: 3 },
            Step::Append { s: 0, n: 1 },
            Step::Concurrent { n: 3 },
            Step::DieDuring { sync: false, s: 3 },
            Step::DieDuring { sync: true, s: 3 },
        ],
    ));
}

/// A dead process's threads cannot act for its successor: the writer of a
/// store dropped at a "crash" made its final sync after the restart, took
/// the death the test had planned for the next process's sync, and that
/// process then acknowledged an append the test meant to die in its commit
/// (found by the model test, seed 4047106018750574237).
#[test]
fn a_dead_processs_file_handles_never_act_again() {
    use eventstore_embedded::vfs::FileSystem;
    let fs = SimFs::new(1);
    let path = dir().join("f");
    let old = fs.open(&path, true).unwrap();
    old.write_all_at(b"old", 0).unwrap();
    fs.kill();
    fs.heal();
    let syncs = fs.count(Op::Sync);
    assert!(old.sync_data().is_err(), "a dead process's sync");
    assert!(old.write_all_at(b"x", 0).is_err(), "a dead process's write");
    assert_eq!(fs.count(Op::Sync), syncs, "its calls are not counted");
    let new = fs.open(&path, false).unwrap();
    new.sync_data().unwrap();
    fs.power_cut(PowerCut::DropUnsynced);
    assert!(new.sync_data().is_err(), "a power cut ends the process too");
}

/// Found by the model test: the same with the frame's last byte alone in
/// its sector and unwritten (a zero where the `}` ending its metadata was).
#[test]
fn a_commit_torn_before_the_last_byte_of_its_frame() {
    runtime().block_on(run_model(
        9398006977866787846,
        vec![
            Step::Concurrent { n: 5 },
            Step::AppendExact { s: 0, n: 1 },
            Step::Append { s: 0, n: 2 },
            Step::Append { s: 0, n: 2 },
            Step::DieDuring { sync: true, s: 0 },
            Step::AppendExact { s: 0, n: 1 },
            Step::Append { s: 0, n: 2 },
            Step::DieDuring { sync: false, s: 0 },
            Step::Append { s: 0, n: 1 },
            Step::AppendExact { s: 0, n: 2 },
            Step::DieDuring { sync: true, s: 0 },
        ],
    ));
}

/// A store checkpointing every 2 events, with 4 events of `k` and its
/// first checkpoints written; from then on no file can be created
/// (`ENOSPC`), so its next checkpoint fails.
async fn checkpoints_failing_from_now(fs: &SimFs, k: &StreamKey) -> EmbeddedStore {
    let store = open_every(fs, 2).unwrap();
    for i in 0..4 {
        append(&store, k, Expectation::Any, vec![event(i)])
            .await
            .unwrap();
    }
    // Wait until the first checkpoints are in (then a failure is the
    // test's).
    let mut waited = 0;
    while fs.count(Op::Create) == 0 && waited < 500 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        waited += 1;
    }
    assert_eq!(store.checkpoint_failure(), None);
    fs.fail_every(Op::Create, ENOSPC);
    store
}

/// A checkpoint of the index that cannot write its run (`ENOSPC` when it
/// creates the file) is reported by the store (and by the
/// `eventstore_index_checkpoint_failed` metric), appends and reads go on,
/// and a reopen replays the log after the last checkpoint written whole:
/// nothing acknowledged is missing.
#[tokio::test]
async fn a_failed_checkpoint_is_reported_and_appends_go_on() {
    let fs = SimFs::new(11);
    let k = key("ckpt", "s");
    let store = checkpoints_failing_from_now(&fs, &k).await;
    for i in 4..40 {
        append(&store, &k, Expectation::Any, vec![event(i)])
            .await
            .unwrap();
    }
    let mut failure = None;
    for _ in 0..500 {
        failure = store.checkpoint_failure();
        if failure.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let failure = failure.expect("the failed checkpoint is reported");
    assert!(
        failure.contains("No space") || failure.contains("28"),
        "{failure}"
    );
    // Appends and reads go on.
    append(&store, &k, Expectation::Any, vec![event(40)])
        .await
        .unwrap();
    assert_eq!(read_all(&store, &k).await.len(), 41);
    store.close().await;
    drop(store);
    fs.heal();
    let store = open_every(&fs, 2).unwrap();
    assert_eq!(store.checkpoint_failure(), None);
    assert!(
        store.open_stats().replayed_events > 0,
        "the events after the last whole checkpoint are replayed: {:?}",
        store.open_stats()
    );
    let events = read_all(&store, &k).await;
    assert_eq!(events.len(), 41);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.revision.get(), i as u64 + 1);
    }
    store.close().await;
}

/// A checkpoint that fails while the disk is full is tried again once it
/// has room, without a restart: the failure is no longer reported, the
/// checkpoints (and their merges) go on, a clean stop writes the last one
/// (the reopen replays nothing), and the index agrees with the log.
#[tokio::test]
async fn a_failed_checkpoint_is_tried_again_once_the_disk_has_room() {
    let fs = SimFs::new(12);
    let k = key("ckpt", "again");
    let store = checkpoints_failing_from_now(&fs, &k).await;
    for i in 4..20 {
        append(&store, &k, Expectation::Any, vec![event(i)])
            .await
            .unwrap();
    }
    let reported = async {
        while store.checkpoint_failure().is_none() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), reported)
        .await
        .expect("the failed checkpoint is reported");
    let created = fs.count(Op::Create);
    fs.heal();
    let cleared = async {
        while store.checkpoint_failure().is_some() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), cleared)
        .await
        .expect("the checkpoint is tried again and written");
    assert!(fs.count(Op::Create) > created, "a run was written");
    // Checkpoints go on after it: a few more frozen deltas, with merges.
    for i in 20..60 {
        append(&store, &k, Expectation::Any, vec![event(i)])
            .await
            .unwrap();
    }
    assert_eq!(read_all(&store, &k).await.len(), 60);
    assert_eq!(store.checkpoint_failure(), None);
    store.close().await;
    drop(store);
    let report = eventstore_embedded::check_with(&fs, dir()).unwrap();
    assert!(report.is_intact(), "{report}");
    let index = report.index.as_ref().expect("an index");
    assert!(index.present && index.stale.is_none(), "{index:?}");
    assert_eq!(index.checkpoint_position, 60, "the stop's checkpoint");
    let store = open_every(&fs, 2).unwrap();
    assert_eq!(
        store.open_stats().replayed_events,
        0,
        "{:?}",
        store.open_stats()
    );
    let events = read_all(&store, &k).await;
    assert_eq!(events.len(), 60);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.revision.get(), i as u64 + 1);
        assert_eq!(e.position.unwrap().get(), i as u64 + 1);
    }
    store.close().await;
}
