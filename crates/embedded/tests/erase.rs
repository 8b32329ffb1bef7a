//! Physical erasure of deleted and truncated events: a unique marker in
//! the removed events' payloads and metadata is found in no byte of any
//! file of the data directory once erasure ran (on demand with `compact`,
//! or by itself), every other stream's events stay readable, `check` finds
//! the erased log intact; and a process death or a power cut at any call
//! of an erasure (journal, in-place writes, syncs, the mark, the journal's
//! deletion) loses no acknowledged event of another stream, keeps the
//! deleted stream deleted, and the erasure completes after the restart.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{TempStore, WRITING_OPS, append, die_and_cut, key, read_all, read_feed_all};
use eventstore_core::{
    EventStore, EventType, Expectation, FeedFilter, JsonObject, JsonValue, NewEvent, Revision,
    StoreError, StreamKey, StreamRead,
};
use eventstore_embedded::vfs::{Op, PowerCut, SimFs};
use eventstore_embedded::{EmbeddedError, EmbeddedOptions, EmbeddedStore};

fn marker() -> String {
    format!("MARKER-{}", uuid::Uuid::new_v4().simple())
}

/// Events whose payload and metadata hold `marker`.
fn secret_events(n: usize, marker: &str) -> Vec<NewEvent> {
    (0..n)
        .map(|i| {
            let mut e = NewEvent::new(
                EventType::parse("personal").unwrap(),
                JsonValue::from_text(format!(r#"{{"i":{i},"name":"{marker}"}}"#)).unwrap(),
            );
            e.metadata = JsonObject::from_text(format!(r#"{{"by":"{marker}"}}"#)).unwrap();
            e
        })
        .collect()
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn holds(bytes: &[u8], needle: &str) -> bool {
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// The files of `dir` that hold `marker` anywhere in their bytes.
fn files_holding(dir: &Path, marker: &str) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| holds(&std::fs::read(p).unwrap(), marker))
        .collect()
}

/// Deletion and truncation, erased on demand and by themselves, with
/// records under a checkpoint and in the active delta, in frames shared
/// with kept events: the markers are gone from every file, the rest reads
/// as before, and `check` calls the erased log intact.
async fn markers_are_gone(temp: TempStore) {
    let deleted_marker = marker();
    let truncated_marker = marker();
    let kept_marker = marker();
    let gone = key("person", "p-gone");
    let cut = key("person", "p-cut");
    let kept = key("person", "p-kept");
    append(
        &temp,
        &kept,
        Expectation::NoStream,
        secret_events(3, &kept_marker),
    )
    .await
    .unwrap();
    for _ in 0..3 {
        append(
            &temp,
            &gone,
            Expectation::Any,
            secret_events(4, &deleted_marker),
        )
        .await
        .unwrap();
    }
    // Revisions 1–5 hold the marker; 6–8 share the second frame and stay.
    append(
        &temp,
        &cut,
        Expectation::NoStream,
        secret_events(3, &truncated_marker),
    )
    .await
    .unwrap();
    append(&temp, &cut, Expectation::Any, {
        let mut v = secret_events(2, &truncated_marker);
        v.extend(secret_events(3, "kept-part"));
        v
    })
    .await
    .unwrap();
    assert!(!files_holding(temp.path(), &deleted_marker).is_empty());

    temp.delete_stream(&gone, None).await.unwrap();
    let info = temp
        .truncate_stream(&cut, Revision::new(6), None)
        .await
        .unwrap();
    assert_eq!(info.first_revision, Revision::new(6));
    temp.compact().await.unwrap();
    assert_eq!(temp.pending_erasures(), 0);
    assert_eq!(
        files_holding(temp.path(), &deleted_marker),
        Vec::<PathBuf>::new()
    );
    assert_eq!(
        files_holding(temp.path(), &truncated_marker),
        Vec::<PathBuf>::new()
    );
    assert_eq!(
        files_holding(temp.path(), &kept_marker).len(),
        1,
        "the log keeps the rest"
    );

    // What stays reads as before, before and after a reopen.
    let temp = {
        let rest = read_all(&temp, &cut).await;
        assert_eq!(
            rest.iter().map(|e| e.revision.get()).collect::<Vec<_>>(),
            vec![6, 7, 8]
        );
        assert_eq!(read_all(&temp, &kept).await.len(), 3);
        temp.reopen().await
    };
    assert_eq!(read_all(&temp, &cut).await.len(), 3);
    assert_eq!(read_all(&temp, &kept).await.len(), 3);
    let feed = read_feed_all(&temp, &FeedFilter::All).await;
    assert_eq!(
        feed.len(),
        3 + 3 + 1,
        "kept, the truncated stream's rest, the deletion"
    );
    assert!(matches!(
        temp.read_stream(&gone, StreamRead::forward()).await,
        Err(StoreError::StreamDeleted(_))
    ));

    // By itself: a second deletion, no compact, only waiting.
    let later_marker = marker();
    let later = key("person", "p-later");
    append(
        &temp,
        &later,
        Expectation::NoStream,
        secret_events(2, &later_marker),
    )
    .await
    .unwrap();
    temp.delete_stream(&later, None).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while temp.pending_erasures() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(temp.pending_erasures(), 0, "erased by itself");
    assert_eq!(
        files_holding(temp.path(), &later_marker),
        Vec::<PathBuf>::new()
    );

    let path = temp.path().to_path_buf();
    temp.store.close().await;
    let report = eventstore_embedded::check(&path).unwrap();
    assert!(report.is_intact(), "{report}");
    let index = report.index.as_ref().expect("an index was checked");
    assert!(index.problem.is_none() && index.stale.is_none(), "{report}");
    drop(temp);
}

#[tokio::test]
async fn removed_events_leave_no_byte_in_the_data_directory() {
    markers_are_gone(TempStore::new()).await;
}

#[tokio::test]
async fn removed_events_under_a_checkpoint_leave_no_byte_either() {
    markers_are_gone(TempStore::checkpointed(1)).await;
}

/// Erasure that a restart interrupts is finished by the next open: the
/// tasks after the erasure mark are found in the log again.
#[tokio::test]
async fn a_pending_erasure_survives_a_restart() {
    let fs = SimFs::new(11);
    let dir = PathBuf::from("/sim/pending");
    let m = marker();
    let gone = key("person", "p");
    let open = |fs: &SimFs| {
        EmbeddedStore::open_with(
            &dir,
            EmbeddedOptions {
                fs: Arc::new(fs.clone()),
                ..EmbeddedOptions::default()
            },
        )
        .unwrap()
    };
    let store = open(&fs);
    append(&store, &gone, Expectation::NoStream, secret_events(5, &m))
        .await
        .unwrap();
    // The erasure fails at its journal's creation; the deletion stands.
    fs.fail_nth(Op::Create, fs.count(Op::Create), libc_eio());
    store.delete_stream(&gone, None).await.unwrap();
    assert!(store.compact().await.is_err(), "the erasure failed");
    assert!(sim_holds(&fs, &m), "not erased yet");
    store.close().await;
    fs.heal();
    let store = open(&fs);
    store.compact().await.unwrap();
    assert!(!sim_holds(&fs, &m), "open finished the erasure");
    assert!(matches!(
        store.stream_info(&gone).await,
        Err(StoreError::StreamDeleted(_))
    ));
    store.close().await;
}

fn libc_eio() -> i32 {
    5
}

fn sim_holds(fs: &SimFs, needle: &str) -> bool {
    fs.list()
        .iter()
        .any(|p| fs.contents(p).is_some_and(|b| holds(&b, needle)))
}

/// One session of the crash scenario; returns what it acknowledged.
struct Session {
    /// Event ids of the kept stream acknowledged, by revision.
    kept: Vec<eventstore_core::EventId>,
    deleted: bool,
    truncated: bool,
}

/// Frames of several sectors each, so that a power cut can keep some of a
/// frame's rewritten sectors and not others.
fn big_secret_events(n: usize, marker: &str) -> Vec<NewEvent> {
    let pad = "p".repeat(1500);
    (0..n)
        .map(|i| {
            let mut e = NewEvent::new(
                EventType::parse("personal").unwrap(),
                JsonValue::from_text(format!(r#"{{"i":{i},"name":"{marker}","pad":"{pad}"}}"#))
                    .unwrap(),
            );
            e.metadata = JsonObject::from_text(format!(r#"{{"by":"{marker}"}}"#)).unwrap();
            e
        })
        .collect()
}

async fn session(store: &EmbeddedStore, m: &str) -> Session {
    let kept = key("other", "kept");
    let gone = key("person", "gone");
    let cut = key("person", "cut");
    let mut s = Session {
        kept: Vec::new(),
        deleted: false,
        truncated: false,
    };
    let mut kept_append = |out: Result<eventstore_core::AppendOutcome, StoreError>,
                           ids: Vec<eventstore_core::EventId>| {
        if out.is_ok() {
            s.kept.extend(ids);
            true
        } else {
            false
        }
    };
    let e = secret_events(2, "kept");
    let ids = e.iter().map(|e| e.event_id).collect();
    if !kept_append(append(store, &kept, Expectation::Any, e).await, ids) {
        return s;
    }
    for _ in 0..2 {
        if append(store, &gone, Expectation::Any, big_secret_events(3, m))
            .await
            .is_err()
        {
            return s;
        }
    }
    if append(store, &cut, Expectation::Any, big_secret_events(4, m))
        .await
        .is_err()
        || append(store, &cut, Expectation::Any, secret_events(1, "rest"))
            .await
            .is_err()
    {
        return s;
    }
    s.deleted = store.delete_stream(&gone, None).await.is_ok();
    s.truncated = store
        .truncate_stream(&cut, Revision::new(5), None)
        .await
        .is_ok();
    let e = secret_events(1, "kept");
    let ids = e.iter().map(|e| e.event_id).collect();
    kept_append(append(store, &kept, Expectation::Any, e).await, ids);
    let _ = store.compact().await;
    s
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The store in `dir` on the simulated disk, checkpointed every 3 events.
fn open_sim(dir: &Path, fs: &SimFs) -> Result<EmbeddedStore, EmbeddedError> {
    EmbeddedStore::open_with(
        dir,
        EmbeddedOptions {
            fs: Arc::new(fs.clone()),
            checkpoint_events: 3,
            ..EmbeddedOptions::default()
        },
    )
}

/// One session of the scenario on `fs`, closed; `None` when the store
/// did not open.
fn session_on(rt: &tokio::runtime::Runtime, dir: &Path, fs: &SimFs, m: &str) -> Option<Session> {
    rt.block_on(async {
        let store = open_sim(dir, fs).ok()?;
        let s = session(&store, m).await;
        store.close().await;
        Some(s)
    })
}

/// The scenario without a fault, on a new simulated disk: its calls are
/// what the fault tests fail or die at. Every request succeeds and the
/// marker is erased.
fn clean_run(rt: &tokio::runtime::Runtime, dir: &Path, seed: u64, m: &str) -> SimFs {
    let clean = SimFs::new(seed);
    let s = session_on(rt, dir, &clean, m).expect("the store opens");
    assert!(s.deleted && s.truncated && s.kept.len() == 3);
    assert!(!sim_holds(&clean, m));
    clean
}

/// Reopens the store on `fs` after the faults: it is as acknowledged by
/// `s`, its erasure completes, and `check` finds it intact.
fn reopened_as_acknowledged(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    fs: &SimFs,
    s: Option<&Session>,
    what: &str,
    m: &str,
) {
    let store = open_sim(dir, fs).unwrap_or_else(|e| panic!("{what}: reopen: {e}"));
    reopened_store_as_acknowledged(rt, dir, fs, store, s, what, m);
}

/// [`reopened_as_acknowledged`] for a store reopened already.
fn reopened_store_as_acknowledged(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    fs: &SimFs,
    store: EmbeddedStore,
    s: Option<&Session>,
    what: &str,
    m: &str,
) {
    rt.block_on(as_acknowledged_then_erased(store, fs, s, what, m));
    let report =
        eventstore_embedded::check_with(fs, dir).unwrap_or_else(|e| panic!("{what}: check: {e}"));
    assert!(report.is_intact(), "{what}: {report}");
}

/// A death at every call of the scenario (the erasure's journal, in-place
/// writes, syncs, the mark's rename, the journal's deletion among them),
/// then a power cut of each kind: after the restart no acknowledged event
/// of the other stream is lost, an acknowledged deletion or truncation
/// stands, and once the restarted store's erasure completed the marker is
/// in no file.
#[test]
fn a_death_at_any_call_of_an_erasure_loses_nothing_and_erasure_completes() {
    let rt = runtime();
    let dir = PathBuf::from("/sim/erase");
    let m = "MARKER-crash-scenario";
    let clean = clean_run(&rt, &dir, 7, m);
    let mut runs = 0;
    for op in WRITING_OPS {
        for n in 0..clean.count(op) {
            runs += 1;
            let fs = SimFs::new(n * 17 + op as u64);
            fs.kill_at(op, n);
            let what = format!("death at {op:?} call {n}");
            let s = session_on(&rt, &dir, &fs, m);
            die_and_cut(&fs, n);
            // check reads the log as open will leave it: an erasure cut
            // short is not damage.
            if let Ok(report) = eventstore_embedded::check_with(&fs, &dir) {
                assert!(report.is_intact(), "{what}: check before reopen: {report}");
            }
            reopened_as_acknowledged(&rt, &dir, &fs, s.as_ref(), &what, m);
        }
    }
    assert!(runs > 50, "enough calls to die at: {runs}");
}

/// Every call of the scenario (the erasure's journal, its in-place writes
/// and syncs, the mark's rename, the journal's deletion among them) fails
/// once with `EIO` and once with `ENOSPC`, and the process goes on: later
/// requests of the session are answered or refused, never acknowledged and
/// then lost. After a restart (every other case after a power cut that
/// drops what was not synced) the store is as acknowledged, and erasure
/// completes.
#[test]
fn a_failed_call_of_an_erasure_loses_nothing_and_erasure_completes() {
    let rt = runtime();
    let dir = PathBuf::from("/sim/erase-fail");
    let m = "MARKER-failed-call";
    let clean = clean_run(&rt, &dir, 9, m);
    let mut runs = 0;
    for op in WRITING_OPS {
        for n in 0..clean.count(op) {
            for errno in [libc_eio(), 28] {
                runs += 1;
                let fs = SimFs::new(n * 13 + op as u64 + errno as u64);
                fs.fail_nth(op, n, errno);
                let what = format!("{op:?} call {n} fails with errno {errno}");
                let s = session_on(&rt, &dir, &fs, m);
                fs.heal();
                if runs % 2 == 0 {
                    fs.power_cut(PowerCut::DropUnsynced);
                }
                reopened_as_acknowledged(&rt, &dir, &fs, s.as_ref(), &what, m);
            }
        }
    }
    assert!(runs > 100, "enough calls to fail: {runs}");
}

/// A crash during an erasure leaves `erase.journal` behind; then a bit of
/// the journal flips before the restart (a crash and damage at rest
/// together). Whichever bit flipped, open either refuses, naming the
/// damage, or opens the store as acknowledged, and its erasure then
/// completes: a journal that does not check is never half applied, and the
/// frames it would have finished are never served damaged.
#[test]
fn a_flipped_bit_in_an_interrupted_erasures_journal_is_never_silent() {
    let rt = runtime();
    let dir = PathBuf::from("/sim/erase-journal");
    let open = |fs: &SimFs| open_sim(&dir, fs);
    let m = "MARKER-journal-flip";
    let clean = clean_run(&rt, &dir, 5, m);
    let journal = dir.join("erase.journal");
    let (mut crashes, mut flips, mut refused) = (0, 0, 0);
    for n in 0..clean.count(Op::Write) {
        let fs = SimFs::new(n * 31);
        fs.kill_at(Op::Write, n);
        let s = session_on(&rt, &dir, &fs, m);
        fs.kill();
        fs.heal();
        let Some(bytes) = fs.contents(&journal) else {
            continue;
        };
        crashes += 1;
        let files: Vec<(PathBuf, Vec<u8>)> = fs
            .list()
            .into_iter()
            .filter_map(|p| fs.contents(&p).map(|b| (p, b)))
            .collect();
        // Every byte of a small journal, a spread of a large one's.
        let stride = (bytes.len() / 48).max(1);
        for at in (0..bytes.len()).step_by(stride) {
            flips += 1;
            let copy = SimFs::new(at as u64);
            for (p, b) in &files {
                copy.set_contents(p, b.clone());
            }
            let mut damaged = bytes.clone();
            damaged[at] ^= 1 << (at % 8);
            copy.set_contents(&journal, damaged);
            let what = format!("death at write {n}, journal byte {at} flipped");
            let store = match open(&copy) {
                Ok(store) => store,
                Err(EmbeddedError::Corrupt { .. }) => {
                    refused += 1;
                    continue;
                }
                Err(e) => panic!("{what}: open failed otherwise: {e}"),
            };
            reopened_store_as_acknowledged(&rt, &dir, &copy, store, s.as_ref(), &what, m);
        }
    }
    assert!(
        crashes > 0 && flips > 20,
        "crashes with a journal: {crashes}, flips: {flips}"
    );
    eprintln!("{crashes} crashes left a journal; {flips} flips, {refused} refused at open");
}

/// After a restart: no acknowledged event of the kept stream is lost, an
/// acknowledged deletion or truncation stands; then whatever was not done
/// is done again, erasure completes, and the marker is in no file and the
/// feed repeats no position.
async fn as_acknowledged_then_erased(
    store: EmbeddedStore,
    fs: &SimFs,
    s: Option<&Session>,
    what: &str,
    m: &str,
) {
    let kept = key("other", "kept");
    let gone = key("person", "gone");
    let cut = key("person", "cut");
    if let Some(s) = &s {
        let read = match store.read_stream(&kept, StreamRead::forward()).await {
            Ok(r) => r.events,
            Err(StoreError::StreamNotFound(_)) => Vec::new(),
            Err(e) => panic!("{what}: {e}"),
        };
        for (i, id) in s.kept.iter().enumerate() {
            assert_eq!(
                read.get(i).map(|e| e.event_id),
                Some(*id),
                "{what}: kept {i}"
            );
        }
        if s.deleted {
            assert!(
                matches!(
                    store.stream_info(&gone).await,
                    Err(StoreError::StreamDeleted(_))
                ),
                "{what}: the deletion stands"
            );
        }
        if s.truncated {
            let info = store.stream_info(&cut).await.unwrap().unwrap();
            assert_eq!(info.first_revision, Revision::new(5), "{what}");
        }
    }
    // Whatever was not done, do it now; then erasure completes.
    match store.delete_stream(&gone, None).await {
        Ok(_) | Err(StoreError::StreamNotFound(_)) => {}
        Err(e) => panic!("{what}: delete after restart: {e}"),
    }
    match store.stream_info(&cut).await.unwrap() {
        Some(info) if info.revision.get() >= 5 => {
            store
                .truncate_stream(&cut, Revision::new(5), None)
                .await
                .unwrap();
        }
        Some(_) => {
            store.delete_stream(&cut, None).await.unwrap();
        }
        None => {}
    }
    store
        .compact()
        .await
        .unwrap_or_else(|e| panic!("{what}: compact: {e}"));
    // A torn tail cut off at open is kept beside the log for
    // inspection (an append never acknowledged): a copy like a
    // backup, outside erasure (docs/lifecycle.md says so).
    let holding: Vec<_> = fs
        .list()
        .into_iter()
        .filter(|p| !p.to_string_lossy().contains(".discarded-at-"))
        .filter(|p| fs.contents(p).is_some_and(|b| holds(&b, m)))
        .collect();
    assert!(holding.is_empty(), "{what}: the marker is in {holding:?}");
    let feed = read_feed_all(&store, &FeedFilter::All).await;
    let mut positions: Vec<_> = feed.iter().map(|e| e.position).collect();
    positions.dedup();
    assert_eq!(positions.len(), feed.len(), "{what}");
    store.close().await;
}

/// Reads never see a record half rewritten: readers of the kept stream
/// and of the feed run while deletions and truncations of streams whose
/// frames they share are erased.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_during_erasure_see_whole_records() {
    let temp = Arc::new(TempStore::new());
    let kept = key("mix", "kept");
    let mut victims: Vec<StreamKey> = Vec::new();
    for i in 0..20 {
        let k = key("mix", &format!("v{i}"));
        append(&temp, &k, Expectation::Any, secret_events(10, "x"))
            .await
            .unwrap();
        append(&temp, &kept, Expectation::Any, secret_events(2, "kept"))
            .await
            .unwrap();
        victims.push(k);
    }
    let reader = {
        let temp = temp.clone();
        let kept = kept.clone();
        tokio::spawn(async move {
            for _ in 0..200 {
                assert_eq!(read_all(&temp, &kept).await.len(), 40);
                read_feed_all(&temp, &FeedFilter::All).await;
                tokio::task::yield_now().await;
            }
        })
    };
    for (i, k) in victims.iter().enumerate() {
        if i % 2 == 0 {
            temp.delete_stream(k, None).await.unwrap();
        } else {
            temp.truncate_stream(k, Revision::new(6), None)
                .await
                .unwrap();
        }
    }
    temp.compact().await.unwrap();
    reader.await.unwrap();
    let _ = temp.path().to_path_buf();
}

/// A removals entry that no longer reads (its index block damaged) makes
/// open rebuild the index from the log: the deleted stream stays deleted
/// and the truncated one keeps its first revision, never coming back whole.
#[tokio::test]
async fn a_damaged_removals_block_is_rebuilt_not_ignored() {
    let temp = TempStore::checkpointed(1);
    let gone = key("person", "gone");
    let cut = key("person", "cut");
    append(&temp, &gone, Expectation::NoStream, secret_events(2, "g"))
        .await
        .unwrap();
    append(&temp, &cut, Expectation::NoStream, secret_events(3, "c"))
        .await
        .unwrap();
    temp.delete_stream(&gone, None).await.unwrap();
    temp.truncate_stream(&cut, Revision::new(3), None)
        .await
        .unwrap();
    let path = temp.path().to_path_buf();
    temp.store.close().await;
    // Entries of the removals table (tag 8, stream numbers 0 and 1):
    // key_len 5, value_len 24, then the key.
    let mut damaged = 0;
    for run in files_under(&path.join("index")) {
        if !run.to_string_lossy().contains("run-") {
            continue;
        }
        let mut bytes = std::fs::read(&run).unwrap();
        for number in [0u8, 1] {
            let pattern = [5, 0, 24, 0, 8, 0, 0, 0, number];
            if let Some(at) = bytes.windows(9).position(|w| w == pattern) {
                bytes[at + 12] ^= 0x01;
                damaged += 1;
            }
        }
        std::fs::write(&run, &bytes).unwrap();
    }
    assert!(damaged > 0, "the removals entries were found in the runs");
    let store = EmbeddedStore::open(&path).unwrap();
    assert!(
        store.open_stats().rebuilt.is_some(),
        "{:?}",
        store.open_stats()
    );
    assert!(matches!(
        store.stream_info(&gone).await,
        Err(StoreError::StreamDeleted(_))
    ));
    let info = store.stream_info(&cut).await.unwrap().unwrap();
    assert_eq!(info.first_revision, Revision::new(3));
    assert_eq!(read_all(&store, &cut).await.len(), 1);
    store.close().await;
    drop(temp.dir);
}

/// A failed sync at any point of a deletion and its erasure (the deletion's
/// commit, the journal, the log after the in-place writes, the mark, the
/// directory entries): when it was a sync of the log, the store stops
/// acknowledging appends until it is reopened, as after the writer's own
/// failed sync. The log's pages are shared with the writer, and Linux
/// reports a writeback error once per open file, so an append whose pages
/// the failed sync dropped would otherwise be acknowledged by the writer's
/// next sync, which succeeds. A failed sync of another file stops only
/// erasure. Either way, after a power cut the next open keeps every
/// acknowledged event and the acknowledged deletion, and its erasure
/// completes.
#[test]
fn a_failed_sync_during_erasure_never_loses_an_acknowledged_append() {
    let rt = runtime();
    let dir = PathBuf::from("/sim/erase-eio");
    let open = |fs: &SimFs| {
        EmbeddedStore::open_with(
            &dir,
            EmbeddedOptions {
                fs: Arc::new(fs.clone()),
                ..EmbeddedOptions::default()
            },
        )
    };
    let m = "MARKER-failed-sync";
    let kept = key("other", "kept");
    let gone = key("person", "gone");
    let scenario = |store, fs| failed_sync_scenario(store, fs, m);
    let clean = SimFs::new(3);
    let (from, to) = rt.block_on(async {
        let store = open(&clean).unwrap();
        let s = scenario(store, clean.clone()).await;
        assert!(s.1 && s.2);
        (s.4.0, clean.count(Op::Sync))
    });
    let mut by_log_after_deletion = 0;
    let mut by_other_files = 0;
    for k in from..to {
        let fs = SimFs::new(k);
        fs.fail_nth(Op::Sync, k, libc_eio());
        let (ids, deleted, acked, ready, (_, before_last)) = rt.block_on(async {
            let store = open(&fs).unwrap();
            scenario(store, fs.clone()).await
        });
        let failed = fs.failed_syncs();
        let what = format!("sync {k} failed: {failed:?}");
        match failed.first() {
            // At close, after the last append: nothing to refuse.
            _ if k >= before_last => {}
            Some(p) if p.ends_with("events.log") => {
                assert!(!acked, "{what}: an append was acknowledged after it");
                assert!(ready.is_err(), "{what}: still ready");
                if deleted {
                    by_log_after_deletion += 1;
                }
            }
            Some(_) => {
                assert!(acked, "{what}: appends stopped for another file");
                by_other_files += 1;
            }
            None => {}
        }
        fs.kill();
        fs.power_cut(PowerCut::DropUnsynced);
        rt.block_on(async {
            let store = open(&fs).unwrap_or_else(|e| panic!("{what}: reopen: {e}"));
            let read = read_all(&store, &kept).await;
            let got: Vec<_> = read.iter().map(|e| e.event_id).collect();
            assert_eq!(got[..ids.len()], ids[..], "{what}");
            if deleted {
                assert!(
                    matches!(
                        store.stream_info(&gone).await,
                        Err(StoreError::StreamDeleted(_))
                    ),
                    "{what}: the deletion stands"
                );
            } else {
                match store.delete_stream(&gone, None).await {
                    Ok(_) | Err(StoreError::StreamNotFound(_)) => {}
                    Err(e) => panic!("{what}: delete after restart: {e}"),
                }
            }
            store
                .compact()
                .await
                .unwrap_or_else(|e| panic!("{what}: compact: {e}"));
            store.close().await;
        });
        let holding: Vec<_> = fs
            .list()
            .into_iter()
            .filter(|p| !p.to_string_lossy().contains(".discarded-at-"))
            .filter(|p| fs.contents(p).is_some_and(|b| holds(&b, m)))
            .collect();
        assert!(holding.is_empty(), "{what}: the marker is in {holding:?}");
    }
    assert!(
        by_log_after_deletion >= 1 && by_other_files >= 1,
        "the failures hit erasure's log sync ({by_log_after_deletion}) and other files ({by_other_files})"
    );
}

/// What [`failed_sync_scenario`] saw.
type FailedSyncRun = (
    Vec<eventstore_core::EventId>,
    bool,
    bool,
    Result<(), String>,
    (u64, u64),
);

/// Appends the kept stream's events and a stream to delete, deletes it,
/// erases, appends once more; returns the acknowledged ids of the kept
/// stream, whether the deletion was acknowledged, whether the last append
/// was, the readiness after it, and the syncs made before the deletion and
/// before the last append.
async fn failed_sync_scenario(store: EmbeddedStore, fs: SimFs, m: &str) -> FailedSyncRun {
    let kept = key("other", "kept");
    let gone = key("person", "gone");
    let mut ids = Vec::new();
    let e = secret_events(2, "kept");
    let first: Vec<_> = e.iter().map(|e| e.event_id).collect();
    append(&store, &kept, Expectation::Any, e).await.unwrap();
    ids.extend(first);
    append(&store, &gone, Expectation::Any, big_secret_events(3, m))
        .await
        .unwrap();
    let before = fs.count(Op::Sync);
    let deleted = store.delete_stream(&gone, None).await.is_ok();
    let _ = store.compact().await;
    let before_last = fs.count(Op::Sync);
    let e = secret_events(1, "kept");
    let last: Vec<_> = e.iter().map(|e| e.event_id).collect();
    let acked = append(&store, &kept, Expectation::Any, e).await.is_ok();
    if acked {
        ids.extend(last);
    }
    let ready = store.readiness();
    store.close().await;
    (ids, deleted, acked, ready, (before, before_last))
}
