//! Damage that no crash causes: every single-byte change of a small
//! multi-frame log is refused by open with the damage named, or proven
//! harmless — never silently dropped; `check` reports it and `repair` keeps
//! every intact frame at its position and revision, names what was lost and
//! never gives a lost position out again.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use common::{event, key, read_all, read_feed_all};
use eventstore_core::{
    AppendRequest, EventId, EventStore, Expectation, FeedFilter, Position, Revision, StreamKey,
    StreamRead, StreamType,
};
use eventstore_embedded::vfs::SimFs;
use eventstore_embedded::{EmbeddedError, EmbeddedOptions, EmbeddedStore, check_with, repair_with};

fn dir() -> PathBuf {
    PathBuf::from("/sim/damage")
}

fn log() -> PathBuf {
    dir().join("events.log")
}

fn open(fs: &SimFs) -> Result<EmbeddedStore, EmbeddedError> {
    EmbeddedStore::open_with(
        dir(),
        EmbeddedOptions {
            fs: Arc::new(fs.clone()),
            ..EmbeddedOptions::default()
        },
    )
}

/// Removes the store's index, so that the next open replays (and checks)
/// the whole log, as for a store written before the index was on disk.
/// With an index, open replays only the log after its checkpoint; damage
/// before it is `check`'s to find (see
/// `damage_under_a_checkpoint_is_found_by_check_and_repaired`).
fn without_index(fs: &SimFs) {
    use eventstore_embedded::vfs::FileSystem;
    for p in fs.list() {
        if p.starts_with(dir().join("index")) {
            fs.remove_file(&p).unwrap();
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Every event of the store: (position, stream, revision, id, payload).
type Content = Vec<(u64, StreamKey, u64, EventId, String)>;

async fn content(store: &EmbeddedStore) -> Content {
    read_feed_all(store, &FeedFilter::All)
        .await
        .into_iter()
        .map(|e| {
            (
                e.position.unwrap().get(),
                StreamKey::new(e.stream_type.clone(), e.stream_id.clone()),
                e.revision.get(),
                e.event_id,
                e.payload.get().to_string(),
            )
        })
        .collect()
}

/// A small log: three streams, single appends, a batch, and one group
/// commit of several frames. Returns the log's bytes and its content.
fn small_log(rt: &tokio::runtime::Runtime) -> (Vec<u8>, Content) {
    let fs = SimFs::new(11);
    rt.block_on(async {
        let store = Arc::new(open(&fs).unwrap());
        let keys: Vec<StreamKey> = (0..3).map(|i| key("flip", &format!("f-{i}"))).collect();
        for (i, k) in keys.iter().enumerate() {
            store
                .append(
                    AppendRequest::new(k.clone(), Expectation::NoStream, vec![event(i)]).unwrap(),
                )
                .await
                .unwrap();
        }
        store
            .append(
                AppendRequest::new(keys[0].clone(), Expectation::Any, vec![event(7), event(8)])
                    .unwrap(),
            )
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            let st = store.clone();
            let k = k.clone();
            tasks.push(tokio::spawn(async move {
                st.append(AppendRequest::new(k, Expectation::Any, vec![event(20 + i)]).unwrap())
                    .await
                    .unwrap()
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let c = content(&store).await;
        store.close().await;
        (fs.contents(&log()).unwrap(), c)
    })
}

/// Flips every byte of a small log, one at a time and in three ways; each
/// change is refused by open, naming the offset, or leaves the store
/// exactly as it was. Refused logs are then repaired: the repaired store
/// opens, keeps every event the damage did not touch at its position and
/// revision, and never gives a lost position out again.
#[test]
fn every_single_byte_change_is_refused_or_harmless() {
    let rt = runtime();
    let (original, expected) = small_log(&rt);
    assert!(original.len() > 1000, "{} bytes", original.len());
    let mut refused = 0;
    let mut harmless = 0;
    let mut repaired_losses: BTreeMap<usize, usize> = BTreeMap::new();
    for i in 0..original.len() {
        for mask in [0x01u8, 0x80, 0xFF] {
            let mut bytes = original.clone();
            bytes[i] ^= mask;
            let fs = SimFs::new(i as u64);
            fs.set_contents(&log(), bytes.clone());
            let what = format!("byte {i} ^ {mask:#04x}");
            match open(&fs) {
                Ok(store) => {
                    let got = rt.block_on(content(&store));
                    assert_eq!(got, expected, "{what}: opened, so it must be harmless");
                    harmless += 1;
                    rt.block_on(store.close());
                }
                Err(EmbeddedError::Corrupt { offset, reason, .. }) => {
                    refused += 1;
                    assert!(offset as usize <= i, "{what}: damage named at {offset}");
                    assert!(reason.contains("position"), "{what}: {reason}");
                    assert_eq!(fs.contents(&log()).unwrap(), bytes, "{what}: untouched");
                    // check names it and fails.
                    let report = check_with(&fs, dir()).unwrap();
                    assert!(!report.is_intact(), "{what}: check must see the damage");
                    // repair keeps the rest.
                    let r = repair_with(&fs, dir()).unwrap();
                    let kept_at = r.original_kept_at.clone().expect("something repaired");
                    assert_eq!(
                        fs.contents(&kept_at).unwrap(),
                        bytes,
                        "{what}: original kept"
                    );
                    let store = open(&fs)
                        .unwrap_or_else(|e| panic!("{what}: the repaired store opens: {e}"));
                    let got = rt.block_on(content(&store));
                    for e in &got {
                        assert!(expected.contains(e), "{what}: repair invented {e:?}");
                    }
                    let lost: Vec<_> = expected.iter().filter(|e| !got.contains(e)).collect();
                    // Every lost event is named in the report by position.
                    for (p, ..) in &lost {
                        assert!(
                            r.before
                                .damage
                                .iter()
                                .any(|d| d.first_position <= *p && *p <= d.last_position),
                            "{what}: lost position {p} is named in {r}"
                        );
                    }
                    *repaired_losses.entry(lost.len()).or_default() += 1;
                    // A new append never reuses a lost position, and stream
                    // revisions go on after the lost ones.
                    let max_expected = expected.iter().map(|e| e.0).max().unwrap();
                    let k = key("flip", "f-0");
                    let out = rt
                        .block_on(
                            store.append(
                                AppendRequest::new(k.clone(), Expectation::Any, vec![event(99)])
                                    .unwrap(),
                            ),
                        )
                        .unwrap();
                    assert!(
                        out.first_position.unwrap().get() > max_expected,
                        "{what}: position {:?} reused",
                        out.first_position
                    );
                    let max_rev = expected
                        .iter()
                        .filter(|e| e.1 == k)
                        .map(|e| e.2)
                        .max()
                        .unwrap();
                    // Revisions of the lost events are not reused when the
                    // stream's later frames survived or the damaged frame
                    // named its stream.
                    if got.iter().any(|e| e.1 == k && e.2 == max_rev) {
                        assert!(out.first_revision.get() > max_rev, "{what}");
                    }
                    let read = rt.block_on(read_all(&store, &k));
                    for w in read.windows(2) {
                        assert!(w[0].revision < w[1].revision);
                    }
                    rt.block_on(store.close());
                    // The repaired store opens again, and check says intact.
                    let report = check_with(&fs, dir()).unwrap();
                    assert!(report.is_intact(), "{what}: after repair: {report}");
                }
                Err(EmbeddedError::NotALog { .. }) if i < 16 => refused += 1,
                Err(other) => panic!("{what}: unexpected {other:?}"),
            }
        }
    }
    println!(
        "{} bytes × 3 changes: {refused} refused (then repaired), {harmless} harmless; events lost per repair: {repaired_losses:?}",
        original.len()
    );
    // Only the file header's reserved bytes are harmless, and the version
    // 3 turned into 2 by flipping its low bit: an older format, which open
    // reads and marks as the current one again.
    assert_eq!(harmless, 4 * 3 + 1);
}

/// Damage in the middle: the frames after it are kept by repair at their
/// positions, the lost stream revisions are recorded, and a read of that
/// stream shows the surviving revisions with the hole.
#[test]
fn repair_keeps_frames_after_the_damage() {
    let rt = runtime();
    let fs = SimFs::new(5);
    let k = key("mid", "m-1");
    let other = key("mid", "m-2");
    let (ids, frame_starts) = rt.block_on(async {
        let store = open(&fs).unwrap();
        let mut ids = Vec::new();
        let mut starts = Vec::new();
        for i in 0..6 {
            starts.push(fs.contents(&log()).unwrap().len());
            let target = if i == 3 { &other } else { &k };
            let e = event(i);
            ids.push(e.event_id);
            store
                .append(AppendRequest::new(target.clone(), Expectation::Any, vec![e]).unwrap())
                .await
                .unwrap();
        }
        store.close().await;
        (ids, starts)
    });
    without_index(&fs);
    // Damage the third append's payload (stream m-1, revision 3, position 3).
    let mut bytes = fs.contents(&log()).unwrap();
    let at = frame_starts[2] + 80;
    bytes[at] ^= 0x04;
    fs.set_contents(&log(), bytes);
    match open(&fs) {
        Err(EmbeddedError::Corrupt { offset, reason, .. }) => {
            assert_eq!(offset as usize, frame_starts[2]);
            assert!(reason.contains("positions 3–3"), "{reason}");
            assert!(reason.contains("mid/m-1"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let report = check_with(&fs, dir()).unwrap();
    let text = report.to_string();
    assert!(text.contains("DAMAGE"), "{text}");
    assert!(text.contains("positions 3–3 lost"), "{text}");
    let r = repair_with(&fs, dir()).unwrap();
    let text = r.to_string();
    assert!(text.contains("stream mid/m-1 revisions 3–3"), "{text}");
    rt.block_on(async {
        let store = open(&fs).unwrap();
        let read = read_all(&store, &k).await;
        let revs: Vec<u64> = read.iter().map(|e| e.revision.get()).collect();
        assert_eq!(
            revs,
            vec![1, 2, 4, 5],
            "surviving revisions keep their numbers"
        );
        let positions: Vec<u64> = read.iter().map(|e| e.position.unwrap().get()).collect();
        assert_eq!(positions, vec![1, 2, 5, 6]);
        assert_eq!(read[2].event_id, ids[4]);
        let info = store.stream_info(&k).await.unwrap().unwrap();
        assert_eq!(info.revision, Revision::new(5));
        // The next append continues at revision 6, position 7.
        let out = store
            .append(
                AppendRequest::new(
                    k.clone(),
                    Expectation::Exact(Revision::new(5)),
                    vec![event(9)],
                )
                .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(out.first_revision, Revision::new(6));
        assert_eq!(out.first_position.unwrap().get(), 7);
        let feed = read_feed_all(&store, &FeedFilter::All).await;
        let ps: Vec<u64> = feed.iter().map(|e| e.position.unwrap().get()).collect();
        assert_eq!(
            ps,
            vec![1, 2, 4, 5, 6, 7],
            "position 3 is lost, never reused"
        );
        store.close().await;
    });
    assert!(check_with(&fs, dir()).unwrap().is_intact());
}

/// Damage in the last frame, with nothing after it: the lost positions are
/// reserved from the damaged bytes, so a consumer that saw them never sees
/// a different event there.
#[test]
fn repair_of_a_damaged_last_frame_reserves_its_positions() {
    let rt = runtime();
    let fs = SimFs::new(6);
    let k = key("end", "e-1");
    rt.block_on(async {
        let store = open(&fs).unwrap();
        for i in 0..3 {
            store
                .append(
                    AppendRequest::new(k.clone(), Expectation::Any, vec![event(i), event(i + 10)])
                        .unwrap(),
                )
                .await
                .unwrap();
        }
        store.close().await;
    });
    without_index(&fs);
    let mut bytes = fs.contents(&log()).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0x20;
    fs.set_contents(&log(), bytes);
    assert!(matches!(open(&fs), Err(EmbeddedError::Corrupt { .. })));
    let r = repair_with(&fs, dir()).unwrap();
    assert_eq!(r.before.damage.len(), 1);
    let d = &r.before.damage[0];
    assert_eq!(d.first_position, 5);
    assert!(d.last_position >= 6, "{r}");
    assert_eq!(d.guess.as_ref().map(|g| g.first_revision), Some(5), "{r}");
    rt.block_on(async {
        let store = open(&fs).unwrap();
        assert_eq!(read_all(&store, &k).await.len(), 4);
        let out = store
            .append(AppendRequest::new(k.clone(), Expectation::Any, vec![event(50)]).unwrap())
            .await
            .unwrap();
        assert!(out.first_position.unwrap().get() > 6);
        assert_eq!(
            out.first_revision,
            Revision::new(7),
            "the damaged frame named its stream: revisions 5–6 are not given out again"
        );
        store.close().await;
    });
}

/// `check` on an intact store, and on one with only a torn tail, exits
/// clean; `repair` then changes nothing.
#[test]
fn check_and_repair_leave_an_intact_store_alone() {
    let rt = runtime();
    let (bytes, _) = small_log(&rt);
    let fs = SimFs::new(1);
    fs.set_contents(&log(), bytes.clone());
    let report = check_with(&fs, dir()).unwrap();
    assert!(report.is_intact(), "{report}");
    assert!(report.torn_tail.is_none());
    let mut torn = bytes.clone();
    torn.extend_from_slice(&bytes[16..40]);
    fs.set_contents(&log(), torn.clone());
    let report = check_with(&fs, dir()).unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.torn_tail, Some((bytes.len() as u64, 24)));
    let r = repair_with(&fs, dir()).unwrap();
    assert!(r.original_kept_at.is_none());
    assert_eq!(
        fs.contents(&log()).unwrap(),
        torn,
        "repair leaves a torn tail to open"
    );
    assert_eq!(fs.list(), vec![log()], "no other file");
}

/// A log larger than repair's write piece (8 MiB), damaged in the middle:
/// the repaired log, written in pieces, keeps every other event in place.
#[test]
fn repair_of_a_large_log_writes_it_in_pieces() {
    let rt = runtime();
    let fs = SimFs::new(8);
    let payload = format!("\"{}\"", "x".repeat(900));
    let expected = rt.block_on(async {
        let store = open(&fs).unwrap();
        for i in 0..120 {
            let events = (0..100)
                .map(|_| {
                    eventstore_core::NewEvent::new(
                        eventstore_core::EventType::parse("big").unwrap(),
                        eventstore_core::JsonValue::from_text(payload.clone()).unwrap(),
                    )
                })
                .collect();
            store
                .append(
                    AppendRequest::new(
                        key("large", &format!("l-{}", i % 7)),
                        Expectation::Any,
                        events,
                    )
                    .unwrap(),
                )
                .await
                .unwrap();
        }
        let c = content(&store).await;
        store.close().await;
        c
    });
    without_index(&fs);
    let mut bytes = fs.contents(&log()).unwrap();
    assert!(bytes.len() > 10 << 20, "{} bytes", bytes.len());
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x08;
    fs.set_contents(&log(), bytes);
    assert!(matches!(open(&fs), Err(EmbeddedError::Corrupt { .. })));
    let r = repair_with(&fs, dir()).unwrap();
    assert_eq!(r.before.damage.len(), 1, "{r}");
    let d = &r.before.damage[0];
    assert_eq!(
        d.last_position - d.first_position + 1,
        100,
        "one append lost: {r}"
    );
    rt.block_on(async {
        let store = open(&fs).unwrap();
        let got = content(&store).await;
        assert_eq!(got.len(), expected.len() - 100);
        for e in &got {
            assert!(expected.contains(e));
        }
        store.close().await;
    });
    assert!(check_with(&fs, dir()).unwrap().is_intact());
}

/// Open trusts a checkpoint that matches the log and replays only the log
/// after it, so damage in the part the checkpoint covers is not seen at
/// open: `check` finds it (the log's frames and the index against them),
/// and `repair` repairs the log and rebuilds the index.
#[test]
fn damage_under_a_checkpoint_is_found_by_check_and_repaired() {
    let rt = runtime();
    let fs = SimFs::new(12);
    let k = key("under", "u-1");
    let mut starts = Vec::new();
    rt.block_on(async {
        let store = open(&fs).unwrap();
        for i in 0..5 {
            starts.push(fs.contents(&log()).unwrap().len());
            store
                .append(AppendRequest::new(k.clone(), Expectation::Any, vec![event(i)]).unwrap())
                .await
                .unwrap();
        }
        store.close().await;
    });
    assert!(
        fs.contents(&dir().join("index/MANIFEST")).is_some(),
        "close writes a checkpoint"
    );
    let report = check_with(&fs, dir()).unwrap();
    assert!(report.is_intact(), "{report}");
    let index = report.index.as_ref().unwrap();
    assert_eq!(index.checkpoint_position, 5, "{report}");
    assert!(index.entries > 5, "{report}");
    // Damage the second append's payload.
    let mut bytes = fs.contents(&log()).unwrap();
    bytes[starts[1] + 80] ^= 0x04;
    fs.set_contents(&log(), bytes);
    let store = open(&fs).expect("open replays only after the checkpoint");
    assert_eq!(store.open_stats().replayed_frames, 0);
    rt.block_on(store.close());
    drop(store);
    let report = check_with(&fs, dir()).unwrap();
    assert!(!report.is_intact(), "{report}");
    assert!(
        report.to_string().contains("positions 2–2 lost"),
        "{report}"
    );
    let r = repair_with(&fs, dir()).unwrap();
    assert!(r.index_rebuilt, "{r}");
    rt.block_on(async {
        let store = open(&fs).unwrap();
        assert_eq!(
            store.open_stats().rebuilt,
            None,
            "repair left a fresh checkpoint"
        );
        let read = read_all(&store, &k).await;
        assert_eq!(read.len(), 4);
        assert!(read.iter().all(|e| e.position.unwrap().get() != 2));
        store.close().await;
    });
    assert!(check_with(&fs, dir()).unwrap().is_intact());
}

/// An index whose entries disagree with the log while its checkpoint
/// matches (a damaged run or `feed.idx`): `check` names the first
/// difference and exits as damaged; `repair` rebuilds the index and leaves
/// the log alone.
#[test]
fn a_damaged_index_is_found_by_check_and_rebuilt_by_repair() {
    let rt = runtime();
    let fs = SimFs::new(13);
    let k = key("idx", "i-1");
    rt.block_on(async {
        let store = open(&fs).unwrap();
        for i in 0..4 {
            store
                .append(AppendRequest::new(k.clone(), Expectation::Any, vec![event(i)]).unwrap())
                .await
                .unwrap();
        }
        store.close().await;
    });
    let log_before = fs.contents(&log()).unwrap();
    // feed.idx: position 3's entry names another offset (its CRC no
    // longer holds).
    let feed = dir().join("index/feed.idx");
    let mut bytes = fs.contents(&feed).unwrap();
    bytes[2 * 24] ^= 0x01;
    fs.set_contents(&feed, bytes);
    let report = check_with(&fs, dir()).unwrap();
    assert!(!report.is_intact(), "{report}");
    assert!(report.to_string().contains("position 3"), "{report}");
    // A run's block: its checksum no longer matches.
    let run = fs
        .list()
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with(".idx") && p.to_string_lossy().contains("run-"))
        .unwrap();
    let mut bytes = fs.contents(&run).unwrap();
    bytes[10] ^= 0x01;
    fs.set_contents(&run, bytes);
    let report = check_with(&fs, dir()).unwrap();
    assert!(!report.is_intact(), "{report}");
    assert!(report.to_string().contains("checksum"), "{report}");
    let r = repair_with(&fs, dir()).unwrap();
    assert!(r.index_rebuilt && r.original_kept_at.is_none(), "{r}");
    assert_eq!(
        fs.contents(&log()).unwrap(),
        log_before,
        "the log is not changed"
    );
    assert!(check_with(&fs, dir()).unwrap().is_intact());
    rt.block_on(async {
        let store = open(&fs).unwrap();
        assert_eq!(read_all(&store, &k).await.len(), 4);
        store.close().await;
    });
}

/// Where a run's fences and Bloom filter lie, from its trailer (the last
/// 64 bytes; see `src/run.rs`).
fn run_parts(run: &[u8]) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
    let t = &run[run.len() - 64..];
    assert_eq!(&t[56..], b"EVIDXRN2");
    let fences_offset = u64::from_le_bytes(t[0..8].try_into().unwrap()) as usize;
    let fences_len = u32::from_le_bytes(t[8..12].try_into().unwrap()) as usize;
    let bloom_bits = u64::from_le_bytes(t[20..28].try_into().unwrap()) as usize;
    let bloom = fences_offset + fences_len;
    (fences_offset..bloom, bloom..bloom + bloom_bits / 8)
}

/// Open reads a run's trailer and tables only; its Bloom filter and its
/// fences are read, and checked against their own CRCs, by the first
/// look-up that needs them. A damaged filter (whose cleared bits would say
/// "no such stream") or damaged fences are found there: that look-up fails,
/// and so does the next (the failure is not kept as a filter), an append
/// that would start the stream again is refused, and `check` finds the
/// damage. Intact again, the same store reads.
#[test]
fn a_damaged_bloom_filter_or_fences_fail_the_first_look_up_instead_of_being_served() {
    let rt = runtime();
    let fs = SimFs::new(17);
    let k = key("lazy", "l-1");
    rt.block_on(async {
        let store = open(&fs).unwrap();
        for i in 0..3 {
            store
                .append(AppendRequest::new(k.clone(), Expectation::Any, vec![event(i)]).unwrap())
                .await
                .unwrap();
        }
        store.close().await;
    });
    let runs: Vec<PathBuf> = fs.list().into_iter().filter(|p| is_run(p)).collect();
    let [run] = &runs[..] else {
        panic!("one run after close: {runs:?}")
    };
    let original = fs.contents(run).unwrap();
    let (fences, bloom) = run_parts(&original);
    assert!(
        fences.len() > 14 && bloom.len() >= 8,
        "{fences:?} {bloom:?}"
    );
    for (what, range) in [("the Bloom filter", bloom), ("the fences", fences)] {
        // Every bit of one byte: set bits are cleared.
        for at in [range.start, range.start + range.len() / 2, range.end - 1] {
            let mut bytes = original.clone();
            bytes[at] ^= 0xFF;
            fs.set_contents(run, bytes);
            let store = open(&fs).unwrap_or_else(|e| {
                panic!("{what}, byte {at}: open reads neither filter nor fences: {e}")
            });
            assert_eq!(store.open_stats().rebuilt, None, "{what}, byte {at}");
            rt.block_on(async {
                for _ in 0..2 {
                    let e = store.stream_info(&k).await.expect_err(what).to_string();
                    assert!(
                        e.contains(&format!("{what}'s checksum does not match")),
                        "{what}, byte {at}: {e}"
                    );
                }
                let again = AppendRequest::new(k.clone(), Expectation::NoStream, vec![event(9)]);
                let r = store.append(again.unwrap()).await;
                assert!(r.is_err(), "{what}, byte {at}: {r:?}");
                store.close().await;
            });
            drop(store);
            let report = check_with(&fs, dir()).unwrap();
            assert!(!report.is_intact(), "{what}, byte {at}: {report}");
            assert!(report.to_string().contains(what), "{report}");
        }
    }
    fs.set_contents(run, original);
    rt.block_on(async {
        let store = open(&fs).unwrap();
        assert_eq!(read_all(&store, &k).await.len(), 3);
        store.close().await;
    });
    assert!(check_with(&fs, dir()).unwrap().is_intact());
}

/// Everything a reader can see of a store, read page by page with the
/// errors kept: each stream forward and backward, its details, the global
/// and per-type feeds, the listings and the type counts.
async fn everything(store: &EmbeddedStore, keys: &[StreamKey]) -> Result<String, String> {
    use std::fmt::Write as _;
    let e = |e: eventstore_core::StoreError| e.to_string();
    let mut out = String::new();
    for k in keys {
        let info = match store.stream_info(k).await {
            Err(eventstore_core::StoreError::StreamDeleted(_)) => {
                writeln!(out, "{k} deleted").unwrap();
                continue;
            }
            other => other.map_err(e)?,
        };
        writeln!(out, "{info:?}").unwrap();
        for read in [
            StreamRead::forward_after(Revision::ZERO, 3),
            StreamRead::forward_after(Revision::new(2), 100),
        ] {
            let page = store.read_stream(k, read).await.map_err(e)?;
            writeln!(out, "{page:?}").unwrap();
        }
    }
    let mut types: Vec<StreamType> = keys.iter().map(|k| k.stream_type.clone()).collect();
    types.dedup();
    let mut filters = vec![FeedFilter::All];
    filters.extend(types.iter().cloned().map(FeedFilter::StreamType));
    for f in &filters {
        let mut after = Position::ZERO;
        loop {
            let page = store.read_feed(f, after, 4).await.map_err(e)?;
            writeln!(out, "{page:?}").unwrap();
            after = page.last_position;
            if !page.has_more {
                break;
            }
        }
    }
    out.push_str(&listings(store, keys).await?);
    Ok(out)
}

/// The listings of the keys' types and the type counts.
async fn listings(store: &EmbeddedStore, keys: &[StreamKey]) -> Result<String, String> {
    use std::fmt::Write as _;
    let e = |e: eventstore_core::StoreError| e.to_string();
    let mut types: Vec<StreamType> = keys.iter().map(|k| k.stream_type.clone()).collect();
    types.dedup();
    let mut out = String::new();
    for t in &types {
        let page = store.list_streams(t, None, None, 100).await.map_err(e)?;
        writeln!(out, "{page:?}").unwrap();
    }
    writeln!(out, "{:?}", store.stream_types().await.map_err(e)?).unwrap();
    Ok(out)
}

/// A checkpointed store of four streams of three types (several runs and
/// `feed.idx`), one of them deleted and one truncated, both erased: its
/// files and keys.
fn checkpointed_files(
    rt: &tokio::runtime::Runtime,
) -> (BTreeMap<PathBuf, Vec<u8>>, Vec<StreamKey>) {
    let fs = SimFs::new(13);
    let keys = vec![
        key("alpha", "a-1"),
        key("alpha", "a-2"),
        key("beta", "b-1"),
        key("gamma", "g-1"),
    ];
    rt.block_on(async {
        let store = EmbeddedStore::open_with(dir(), small_checkpoints(&fs)).unwrap();
        let append = |k: &StreamKey, round: usize, i: usize| {
            store.append(
                AppendRequest::new(
                    k.clone(),
                    Expectation::Any,
                    vec![event(10 * round + i), event(100 + 10 * round + i)],
                )
                .unwrap(),
            )
        };
        for round in 0..3 {
            for (i, k) in keys.iter().enumerate() {
                append(k, round, i).await.unwrap();
            }
        }
        // A deletion and a truncation, erased (the ERASED mark, stubs in
        // the log, the removals table), under more appends.
        store.delete_stream(&keys[3], None).await.unwrap();
        store
            .truncate_stream(&keys[1], Revision::new(3), None)
            .await
            .unwrap();
        for (i, k) in keys[..3].iter().enumerate() {
            append(k, 3, i).await.unwrap();
        }
        store.compact().await.unwrap();
        store.close().await;
    });
    let files: BTreeMap<PathBuf, Vec<u8>> = fs
        .list()
        .into_iter()
        .filter_map(|p| fs.contents(&p).map(|b| (p, b)))
        .filter(|(p, _)| !p.ends_with("LOCK"))
        .collect();
    assert!(files.keys().any(|p| p.ends_with("feed.idx")), "{files:?}");
    // Usually several runs; the merges' timing can leave one.
    assert!(
        files.keys().filter(|p| is_run(p)).count() >= 1,
        "{:?}",
        files.keys()
    );
    (files, keys)
}

fn is_run(p: &std::path::Path) -> bool {
    p.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("run-"))
}

/// Checkpoints every 3 events: several runs.
fn small_checkpoints(fs: &SimFs) -> EmbeddedOptions {
    EmbeddedOptions {
        fs: Arc::new(fs.clone()),
        checkpoint_events: 3,
        ..EmbeddedOptions::default()
    }
}

/// Changes each byte of the files `which` selects, one at a time, opens
/// the store and reads with `read`: open refuses, the read fails, or it
/// sees what it saw before the change. Returns (refused, failed, unchanged).
fn flip_every_byte<F>(which: impl Fn(&std::path::Path) -> bool, read: F) -> (u32, u32, u32)
where
    F: for<'a> Fn(
        &'a EmbeddedStore,
        &'a [StreamKey],
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<String, String>> + 'a>,
    >,
{
    let rt = runtime();
    let (files, keys) = checkpointed_files(&rt);
    let original = rt.block_on(async {
        let fs = SimFs::new(14);
        for (p, b) in &files {
            fs.set_contents(p, b.clone());
        }
        let store = EmbeddedStore::open_with(dir(), small_checkpoints(&fs)).unwrap();
        let seen = read(&store, &keys).await.unwrap();
        store.close().await;
        seen
    });
    let (mut refused, mut failed_reads, mut unchanged) = (0, 0, 0);
    for (path, bytes) in files.iter().filter(|(p, _)| which(p)) {
        for at in 0..bytes.len() {
            let fs = SimFs::new(14);
            for (p, b) in &files {
                let mut b = b.clone();
                if p == path {
                    b[at] ^= 1 << (at % 8);
                }
                fs.set_contents(p, b);
            }
            let Ok(store) = EmbeddedStore::open_with(dir(), small_checkpoints(&fs)) else {
                refused += 1;
                continue;
            };
            match rt.block_on(read(&store, &keys)) {
                Err(_) => failed_reads += 1,
                Ok(seen) => {
                    assert_eq!(
                        seen,
                        original,
                        "byte {at} of {} changed what readers see",
                        path.display()
                    );
                    unchanged += 1;
                }
            }
            rt.block_on(store.close());
        }
    }
    (refused, failed_reads, unchanged)
}

/// The reads that a store under a checkpoint answers without replaying
/// its log at open: every single-byte change of any file of the data
/// directory (the log under the checkpoint, `feed.idx`, the runs, the
/// MANIFEST) is refused by open, makes open rebuild the index, fails the
/// reads that meet it, or changes nothing a reader sees. A changed byte is
/// never served.
#[test]
fn no_changed_byte_under_a_checkpoint_is_ever_served() {
    let (refused, failed_reads, unchanged) =
        flip_every_byte(|_| true, |store, keys| Box::pin(everything(store, keys)));
    eprintln!(
        "open refused {refused}, reads failed {failed_reads}, nothing visible changed {unchanged}"
    );
    assert!(failed_reads > 0 && unchanged > 0);
}

/// Listings and type counts merge the runs: an unreadable block fails
/// them instead of ending the listing early. One run of many blocks (300
/// streams), a byte changed every 509 bytes of it, one change at a time.
#[test]
fn a_listing_over_a_damaged_run_fails_rather_than_ends_early() {
    let rt = runtime();
    let fs = SimFs::new(15);
    let keys: Vec<StreamKey> = (0..300)
        .map(|i| key("many", &format!("m-{i:03}")))
        .collect();
    rt.block_on(async {
        let store = open(&fs).unwrap();
        for (i, k) in keys.iter().enumerate() {
            store
                .append(
                    AppendRequest::new(k.clone(), Expectation::NoStream, vec![event(i)]).unwrap(),
                )
                .await
                .unwrap();
        }
        store.close().await;
    });
    let original = {
        let store = open(&fs).unwrap();
        let seen = rt.block_on(list_many(&store)).unwrap();
        rt.block_on(store.close());
        seen
    };
    let files: BTreeMap<PathBuf, Vec<u8>> = fs
        .list()
        .into_iter()
        .filter_map(|p| fs.contents(&p).map(|b| (p, b)))
        .filter(|(p, _)| !p.ends_with("LOCK"))
        .collect();
    let run = files.keys().find(|p| is_run(p)).unwrap().clone();
    let mut failed = 0;
    for at in (0..files[&run].len()).step_by(509) {
        let fs = SimFs::new(16);
        for (p, b) in &files {
            let mut b = b.clone();
            if *p == run {
                b[at] ^= 0x10;
            }
            fs.set_contents(p, b);
        }
        let Ok(store) = open(&fs) else { continue };
        match rt.block_on(list_many(&store)) {
            Err(_) => failed += 1,
            Ok(seen) => assert_eq!(seen, original, "byte {at} of the run changed the listing"),
        }
        rt.block_on(store.close());
    }
    assert!(failed > 0);
}

/// Every stream of type "many", paged, and the type counts.
async fn list_many(store: &EmbeddedStore) -> Result<String, String> {
    let t = StreamType::parse("many").unwrap();
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_streams(&t, None, cursor, 40)
            .await
            .map_err(|e| e.to_string())?;
        out.extend(page.streams.into_iter().map(|s| s.stream_id));
        cursor = page.next;
        if cursor.is_none() {
            break;
        }
    }
    let types = store.stream_types().await.map_err(|e| e.to_string())?;
    Ok(format!("{out:?} {types:?}"))
}

/// A run damaged where open reads it makes open rebuild the index from the
/// log, taking checkpoints as it replays, so that the new runs are numbered
/// from 1 again: the rebuilt store reads exactly as before. (Open had
/// cached blocks of the discarded runs under those numbers and served them
/// for the new runs: a rebuilt store lost the last append of a stream. The
/// byte-flipping test found it in some of the file layouts the checkpoint
/// thread's timing produces; this one damages the trailer of each run, which open reads.)
#[test]
fn a_rebuild_after_a_damaged_run_reads_as_before() {
    let rt = runtime();
    let (files, keys) = checkpointed_files(&rt);
    let load = |flip: Option<&PathBuf>, every: u64| {
        let fs = SimFs::new(14);
        for (p, b) in &files {
            let mut b = b.clone();
            if Some(p) == flip {
                let last = b.len() - 1;
                b[last] ^= 1;
            }
            fs.set_contents(p, b);
        }
        EmbeddedStore::open_with(
            dir(),
            EmbeddedOptions {
                checkpoint_events: every,
                ..small_checkpoints(&fs)
            },
        )
        .unwrap()
    };
    let original = rt.block_on(async {
        let store = load(None, 3);
        let seen = everything(&store, &keys).await.unwrap();
        store.close().await;
        seen
    });
    let mut rebuilt = 0;
    // Rebuilds that checkpoint every 1 to 6 events: new runs of every
    // number the old ones had.
    for every in 1..=6 {
        for run in files.keys().filter(|p| is_run(p)) {
            rt.block_on(async {
                let store = load(Some(run), every);
                if store.open_stats().rebuilt.is_some() {
                    rebuilt += 1;
                    let seen = everything(&store, &keys).await.unwrap();
                    assert_eq!(
                        seen,
                        original,
                        "rebuilt with a checkpoint every {every} events after {} was damaged",
                        run.display()
                    );
                }
                store.close().await;
            });
        }
    }
    assert!(rebuilt >= 1, "open rebuilt {rebuilt} times");
}
