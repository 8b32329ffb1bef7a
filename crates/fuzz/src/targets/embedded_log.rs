//! The embedded store's log: frame decoding, recovery, check and repair.
//!
//! An input is the whole content of `events.log`, put on a simulated file
//! system ([`SimFs::set_contents`]) and given to [`check_with`],
//! [`EmbeddedStore::open_with`] and [`repair_with`]. The seeds are logs the
//! store itself wrote, with known events (fixed ids); the fix-up
//! recomputes every frame's checksums so that mutated frames get past
//! them and reach the decoder and the index.
//!
//! Checked, besides "no panic":
//!
//! - whatever an open serves is a set of the seeds' own events, unchanged
//!   (stream, revision, type, payload, metadata by event id): damage is
//!   never served as data; positions increase and each stream's revisions
//!   run 1, 2, 3… up to its `stream_info` revision, except for revisions
//!   a repair recorded as lost;
//! - `check` and `open` agree: a log that check calls intact opens, with
//!   as many events as check counted; a log open refuses as damaged is
//!   not called intact by check;
//! - an opened store takes an append, and reopens with it;
//! - after a successful repair the log checks intact and opens, serving
//!   only seed events.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use eventstore_core::{
    AppendRequest, EventId, EventStore, EventType, Expectation, FeedFilter, JsonObject, JsonValue,
    NewEvent, Position, RecordedEvent, StoreError, StreamId, StreamKey, StreamType,
};
use eventstore_embedded::vfs::SimFs;
use eventstore_embedded::{EmbeddedError, EmbeddedOptions, EmbeddedStore, check_with, repair_with};

use crate::engine::Target;

/// The target.
pub const TARGET: Target = Target {
    name: "embedded_log",
    seeds,
    dictionary: &[
        b"EVSTLOG\0",
        b"EVF2",
        b"EVFR",
        &[2, 0, 0, 0],
        &[1, 0, 0, 0],
        &[0xff, 0xff, 0xff, 0x7f],
        b"{}",
        b"null",
    ],
    fixup: Some(reseal),
    check,
    default_iters: 400,
};

const DIR: &str = "/fuzz/db";
const HEADER: usize = 16;

fn log_path() -> PathBuf {
    Path::new(DIR).join("events.log")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// An event as the log holds it: everything but its time and position.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Known {
    event_id: EventId,
    stream: StreamKey,
    revision: u64,
    event_type: String,
    payload: String,
    metadata: String,
}

impl Known {
    fn of(e: &RecordedEvent) -> Self {
        Self {
            event_id: e.event_id,
            stream: e.stream_key(),
            revision: e.revision.get(),
            event_type: e.event_type.as_str().to_owned(),
            payload: e.payload.get().to_owned(),
            metadata: e.metadata.get().to_owned(),
        }
    }
}

fn key(t: &str, n: u128) -> StreamKey {
    StreamKey::new(
        StreamType::parse(t).expect("type"),
        StreamId::parse(format!("s-{n}")).expect("id"),
    )
}

fn event(id: u128, t: &str, payload: &str, metadata: Option<&str>) -> NewEvent {
    let mut e = NewEvent::new(
        EventType::parse(t).expect("event type"),
        JsonValue::from_text(payload).expect("payload"),
    );
    e.event_id = EventId::from(uuid::Uuid::from_u128(id));
    if let Some(m) = metadata {
        e.metadata = JsonObject::from_text(m).expect("metadata");
    }
    e
}

/// The appends of the seed logs: several streams and types, a batch,
/// 4-byte characters, metadata, the longest event type.
fn appends(base: u128) -> Vec<(StreamKey, Vec<NewEvent>)> {
    let long_type = "𝄞".repeat(200);
    vec![
        (
            key("order", base),
            vec![event(base + 1, "OrderPlaced", r#"{"total":12.5}"#, None)],
        ),
        (
            key("order", base),
            vec![
                event(base + 2, "ItemAdded", r#"{"sku":"A-1","qty":3}"#, None),
                event(
                    base + 3,
                    "ItemAdded",
                    r#""😀 text""#,
                    Some(r#"{"by":"me"}"#),
                ),
                event(base + 4, &long_type, "[1,2,3]", None),
            ],
        ),
        (
            key("cart", base + 1),
            vec![event(base + 5, "CartOpened", "null", None)],
        ),
        (
            key("order", base + 2),
            vec![event(base + 6, "é ✓", "0", Some(r#"{"k":[{}]}"#))],
        ),
        (
            key("order", base),
            vec![event(base + 7, "Shipped", "true", None)],
        ),
    ]
}

fn write_log(rt: &tokio::runtime::Runtime, fs: &SimFs, appends: Vec<(StreamKey, Vec<NewEvent>)>) {
    let store = open(fs).expect("opening a fresh store");
    rt.block_on(async {
        for (stream, events) in appends {
            let request = AppendRequest::new(stream, Expectation::Any, events).expect("request");
            store.append(request).await.expect("append");
        }
        store.close().await;
    });
}

fn open(fs: &SimFs) -> Result<EmbeddedStore, EmbeddedError> {
    EmbeddedStore::open_with(
        DIR,
        EmbeddedOptions {
            fs: Arc::new(fs.clone()),
            ..EmbeddedOptions::default()
        },
    )
}

fn build_seeds() -> Vec<Vec<u8>> {
    let rt = runtime();
    let mut logs = Vec::new();
    for (base, cut) in [(100u128, 5usize), (200, 1), (300, 5)] {
        let fs = SimFs::new(1);
        let mut a = appends(base);
        a.truncate(cut);
        write_log(&rt, &fs, a);
        let mut log = fs.contents(&log_path()).expect("a log");
        if base == 300 {
            // A repaired log: the second frame damaged, then repaired, so
            // the seed holds a lost-range frame too.
            let second = frames(&log).get(1).map(|f| f.start);
            if let Some(at) = second {
                log[at + 40] ^= 0x55;
                fs.set_contents(&log_path(), log);
                repair_with(&fs, DIR).expect("repairing a seed");
                log = fs.contents(&log_path()).expect("a repaired log");
            }
        }
        logs.push(log);
    }
    // And the shortest logs: a header only, and nothing at all.
    logs.push(logs[0][..HEADER].to_vec());
    logs.push(Vec::new());
    logs
}

fn seeds() -> Vec<Vec<u8>> {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(build_seeds).clone()
}

fn read_all(
    rt: &tokio::runtime::Runtime,
    store: &EmbeddedStore,
) -> Result<Vec<RecordedEvent>, StoreError> {
    rt.block_on(async {
        let mut out = Vec::new();
        let mut after = Position::ZERO;
        loop {
            let page = store.read_feed(&FeedFilter::All, after, 1000).await?;
            out.extend(page.events);
            if !page.has_more || page.last_position <= after {
                break;
            }
            after = page.last_position;
        }
        Ok(out)
    })
}

/// Checks what an opened store serves against the model's reading of the
/// log it was opened on. `None` when the log holds checksummed records
/// whose text is invalid and the store refused to read them.
fn verify_served(
    rt: &tokio::runtime::Runtime,
    store: &EmbeddedStore,
    model: &Model,
) -> Option<Vec<RecordedEvent>> {
    let events = match read_all(rt, store) {
        Ok(events) => events,
        Err(e) if model.invalid_records > 0 => {
            let _ = e;
            return None;
        }
        Err(e) => panic!("reading a log of valid records fails: {e}"),
    };
    let mut last_position = 0;
    let mut streams: HashMap<StreamKey, u64> = HashMap::new();
    for e in &events {
        let position = e.position.expect("a feed event has a position").get();
        assert!(
            position > last_position,
            "positions go {last_position} then {position}"
        );
        last_position = position;
        assert!(
            model.events.contains(&Known::of(e)),
            "event {} is not in an intact frame of the log: {e:?}",
            e.event_id
        );
        let last = streams.entry(e.stream_key()).or_default();
        assert!(
            e.revision.get() > *last,
            "stream {} goes from revision {last} to {}",
            e.stream_key(),
            e.revision
        );
        *last = e.revision.get();
    }
    rt.block_on(async {
        for (stream, last) in &streams {
            let info = store
                .stream_info(stream)
                .await
                .expect("stream info")
                .expect("a stream with events exists");
            assert!(
                info.revision.get() >= *last,
                "stream {stream} says revision {} but serves {last}",
                info.revision
            );
        }
    });
    Some(events)
}

fn check(input: &[u8]) {
    let rt = runtime();
    let model = Model::of(input);
    if model.leaps {
        // A known limit, not checked: lost positions and revisions take
        // index memory like events, so a forged frame (both checksums
        // valid) claiming 2^39 of them makes check, repair and open
        // allocate that much, or abort.
        return;
    }
    let fs = SimFs::new(7);
    fs.set_contents(&log_path(), input.to_vec());
    let checked = check_with(&fs, DIR);
    match open(&fs) {
        Ok(store) => {
            let Some(served) = verify_served(&rt, &store, &model) else {
                rt.block_on(store.close());
                return;
            };
            if let Ok(report) = &checked
                && report.is_intact()
            {
                assert_eq!(
                    report.events,
                    served.len() as u64,
                    "check counts {} events, open serves {}",
                    report.events,
                    served.len()
                );
            }
            // It takes an append and keeps it across a reopen.
            let stream = key("fuzz", 1);
            let new = event(1, "Appended", "1", None);
            rt.block_on(async {
                let request =
                    AppendRequest::new(stream, Expectation::Any, vec![new]).expect("request");
                store
                    .append(request)
                    .await
                    .expect("an opened store takes an append");
                store.close().await;
            });
            drop(store);
            let again = open(&fs).unwrap_or_else(|e| panic!("reopening after an append: {e}"));
            let events = read_all(&rt, &again).expect("reading a reopened store");
            assert_eq!(
                events.len(),
                served.len() + 1,
                "the append survives a reopen"
            );
            assert_eq!(events[..served.len()], served[..], "reopen serves the same");
            rt.block_on(again.close());
        }
        Err(refused @ EmbeddedError::Corrupt { .. }) => {
            if let Ok(report) = &checked {
                assert!(
                    !report.is_intact(),
                    "open refuses a log that check calls intact ({refused}):\n{report}"
                );
            }
            // Repair keeps what is intact; the repaired log opens.
            if repair_with(&fs, DIR).is_ok() {
                let report = check_with(&fs, DIR).expect("checking a repaired log");
                assert!(report.is_intact(), "a repaired log is damaged:\n{report}");
                let store = open(&fs).unwrap_or_else(|e| panic!("opening a repaired log: {e}"));
                verify_served(&rt, &store, &model);
                rt.block_on(store.close());
            }
        }
        Err(EmbeddedError::NotALog { .. }) => {}
        Err(e) => panic!("open fails with neither damage nor a foreign file: {e}"),
    }
}

/// The fuzzer's own reading of a log: the records of every frame, at any
/// offset, whose checksums hold. Whatever a store serves must be among
/// them. Written from the format's documentation, not from its code.
struct Model {
    events: HashSet<Known>,
    /// Records in intact frames whose text is not valid (not UTF-8, a bad
    /// type or id, not JSON): only a bug or a forger writes those, and
    /// reads may refuse them.
    invalid_records: usize,
    /// An intact frame claims a position or revision past
    /// [`MAX_CLAIMED_POSITION`].
    leaps: bool,
}

/// Positions beyond this, claimed by an intact frame, are not fuzzed: the
/// index holds lost positions densely (see `check`).
const MAX_CLAIMED_POSITION: u64 = 1 << 20;

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        (self.0.len() >= n).then(|| {
            let (head, rest) = self.0.split_at(n);
            self.0 = rest;
            head
        })
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2)
            .map(|b| u16::from_le_bytes(b.try_into().expect("2")))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4")))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8")))
    }
    fn text(&mut self, n: usize) -> Option<&'a str> {
        self.take(n).and_then(|b| std::str::from_utf8(b).ok())
    }
}

impl Model {
    fn of(log: &[u8]) -> Self {
        let mut model = Model {
            events: HashSet::new(),
            invalid_records: 0,
            leaps: false,
        };
        for at in 0..log.len().saturating_sub(15) {
            let word =
                |i: usize| u32::from_le_bytes(log[at + i..at + i + 4].try_into().expect("4"));
            let (body_at, body_len, count, crc, kind) = match &log[at..at + 4] {
                b"EVF2" if at + 32 <= log.len() => {
                    if crc32(&log[at..at + 28]) != word(28) {
                        continue;
                    }
                    (at + 32, word(8) as usize, word(12), word(24), log[at + 4])
                }
                b"EVFR" => (at + 16, word(4) as usize, word(12), word(8), 1),
                _ => continue,
            };
            let Some(body) = body_at
                .checked_add(body_len)
                .and_then(|end| log.get(body_at..end))
            else {
                continue;
            };
            let mut h = Crc32::new();
            h.update(&count.to_le_bytes());
            h.update(body);
            if h.finalize() != crc {
                continue;
            }
            // Both kinds begin with a position: the first event's, or the
            // first lost one's (then the last lost one's).
            let claims = |i: usize| {
                body.get(i..i + 8)
                    .map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8")))
            };
            let last = match kind {
                // An append: its positions and its stream's revisions.
                1 => claims(0).max(claims(16)).saturating_add(u64::from(count)),
                // A lost range: its positions, and its streams' revisions.
                _ => Self::lost_claims(body).max(claims(0)).max(claims(8)),
            };
            model.leaps |= last > MAX_CLAIMED_POSITION;
            if kind == 1 {
                model.add_frame(body, count);
            }
        }
        model
    }

    /// The highest revision a lost-range body names (`u64::MAX` when it
    /// cannot be read: then it is not fuzzed either).
    fn lost_claims(body: &[u8]) -> u64 {
        let mut r = Cursor(body);
        let mut read = || -> Option<u64> {
            r.take(16)?;
            let mut top = 0;
            for _ in 0..r.u32()? {
                let tl = r.u8()? as usize;
                r.take(tl)?;
                let il = r.u8()? as usize;
                r.take(il)?;
                top = top.max(r.u64()?).max(r.u64()?);
            }
            Some(top)
        };
        read().unwrap_or(u64::MAX)
    }

    fn add_frame(&mut self, body: &[u8], count: u32) {
        let mut r = Cursor(body);
        let head = (|| {
            let _first_position = r.u64()?;
            let _commit_time = r.u64()?;
            let _first_revision = r.u64()?;
            let tl = r.u8()? as usize;
            let t = r.take(tl)?;
            let il = r.u8()? as usize;
            let id = r.take(il)?;
            Some((t, id))
        })();
        let Some((t, id)) = head else {
            self.invalid_records += 1;
            return;
        };
        let stream = std::str::from_utf8(t)
            .ok()
            .and_then(|t| StreamType::parse(t).ok())
            .zip(
                std::str::from_utf8(id)
                    .ok()
                    .and_then(|i| StreamId::parse(i).ok()),
            )
            .map(|(t, i)| StreamKey::new(t, i));
        for _ in 0..count.min(1 << 16) {
            let Some(record) = r.u32().and_then(|n| r.take(n as usize)) else {
                self.invalid_records += 1;
                return;
            };
            match (&stream, Self::record(record)) {
                (Some(stream), Some((event_id, revision, event_type, payload, metadata))) => {
                    self.events.insert(Known {
                        event_id,
                        stream: stream.clone(),
                        revision,
                        event_type,
                        payload,
                        metadata,
                    });
                }
                _ => self.invalid_records += 1,
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn record(bytes: &[u8]) -> Option<(EventId, u64, String, String, String)> {
        let mut r = Cursor(bytes);
        let revision = r.u64()?;
        let _created_at = r.u64()?;
        let id: [u8; 16] = r.take(16)?.try_into().expect("16");
        let tl = r.u16()? as usize;
        let event_type = EventType::parse(r.text(tl)?).ok()?;
        let pl = r.u32()? as usize;
        let payload = JsonValue::from_text(r.text(pl)?).ok()?;
        let ml = r.u32()? as usize;
        let metadata = JsonObject::from_text(r.text(ml)?).ok()?;
        Some((
            EventId::from(uuid::Uuid::from_bytes(id)),
            revision,
            event_type.as_str().to_owned(),
            payload.get().to_owned(),
            metadata.get().to_owned(),
        ))
    }
}

/// A frame found by walking the log's frame headers.
struct FrameAt {
    start: usize,
}

/// Walks the frames of a log by their headers (see the format in
/// `crates/embedded/src/format.rs`): an EVF2 header is 32 bytes with the
/// body length at 8, an EVFR header 16 bytes with it at 4.
fn frames(log: &[u8]) -> Vec<FrameAt> {
    let mut out = Vec::new();
    let mut at = HEADER;
    while at + 16 <= log.len() {
        let word = |i: usize| u32::from_le_bytes(log[at + i..at + i + 4].try_into().expect("4"));
        let (header, body) = match &log[at..at + 4] {
            b"EVF2" => (32, word(8) as usize),
            b"EVFR" => (16, word(4) as usize),
            _ => break,
        };
        out.push(FrameAt { start: at });
        at = at.saturating_add(header).saturating_add(body);
    }
    out
}

/// Recomputes the checksums of every frame whose header and body are in
/// the input, so that a mutation inside a frame reaches the decoder:
/// body CRC = CRC-32 of (count LE ++ body), and for EVF2 the header CRC
/// over the header's first 28 bytes.
fn reseal(log: &mut [u8]) {
    let mut at = HEADER;
    while at + 16 <= log.len() {
        let word = |log: &[u8], i: usize| {
            u32::from_le_bytes(log[at + i..at + i + 4].try_into().expect("4"))
        };
        let magic: [u8; 4] = log[at..at + 4].try_into().expect("4");
        let (header, body_len, count_at, crc_at) = match &magic {
            b"EVF2" if at + 32 <= log.len() => (32, word(log, 8) as usize, 12, 24),
            b"EVFR" => (16, word(log, 4) as usize, 12, 8),
            _ => return,
        };
        let body_start = at + header;
        let Some(end) = body_start.checked_add(body_len) else {
            return;
        };
        if end > log.len() {
            return;
        }
        let mut h = Crc32::new();
        h.update(&log[at + count_at..at + count_at + 4]);
        h.update(&log[body_start..end]);
        let crc = h.finalize();
        log[at + crc_at..at + crc_at + 4].copy_from_slice(&crc.to_le_bytes());
        if header == 32 {
            let hcrc = crc32(&log[at..at + 28]);
            log[at + 28..at + 32].copy_from_slice(&hcrc.to_le_bytes());
        }
        at = end;
    }
}

/// CRC-32 (IEEE), bitwise: the fuzzer's own copy, so that it does not
/// share a bug with the code under test.
fn crc32(bytes: &[u8]) -> u32 {
    let mut h = Crc32::new();
    h.update(bytes);
    h.finalize()
}

struct Crc32(u32);

impl Crc32 {
    fn new() -> Self {
        Self(!0)
    }

    fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u32::from(b);
            for _ in 0..8 {
                let mask = (self.0 & 1).wrapping_neg();
                self.0 = (self.0 >> 1) ^ (0xEDB8_8320 & mask);
            }
        }
    }

    fn finalize(self) -> u32 {
        !self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resealing_a_log_the_store_wrote_changes_nothing() {
        for log in seeds() {
            let mut again = log.clone();
            reseal(&mut again);
            assert_eq!(again, log);
        }
    }

    #[test]
    fn the_seeds_have_frames() {
        let logs = seeds();
        assert!(frames(&logs[0]).len() >= 5);
    }
}
