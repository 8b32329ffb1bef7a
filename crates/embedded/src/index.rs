//! The index over the log: sorted run files on disk (written by
//! checkpoints, see [`crate::checkpoint`]) with a **delta** in memory over
//! the events after the last checkpoint, layered on top of them. Readers
//! and the writer look in the active delta, then in the delta being
//! checkpointed (frozen), then in the runs from the newest to the oldest.
//!
//! Events themselves stay in the log; the index holds where each record
//! lies, which stream it belongs to, its revision and its event id. Every
//! table shares one key space (a table tag, then the key); see
//! `docs/storage-engine.md`, "The on-disk index".

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use eventstore_core::{
    Direction, EventId, Revision, StreamCursor, StreamId, StreamInfo, StreamKey, StreamListPage,
    StreamRead, StreamType, StreamTypeCount, Timestamp,
};

use crate::EmbeddedError;
use crate::format::RecordSpan;
use crate::run::{Entry, Merge, ReadErrors, Run};
use crate::vfs::StorageFile;

/// The stream number of a position lost to damage (see `apply_lost`).
pub(crate) const LOST: u32 = u32::MAX;

/// The most positions one lost range may cover: far more than any log
/// holds, so a larger gap is a frame's false claim, not lost data.
pub(crate) const MAX_LOST_POSITIONS: u64 = 1 << 40;

/// Tables (the first byte of every key).
pub(crate) const TAG_STREAMS: u8 = 1;
pub(crate) const TAG_KEYS: u8 = 2;
pub(crate) const TAG_REVISIONS: u8 = 3;
pub(crate) const TAG_TYPE_FEED: u8 = 4;
pub(crate) const TAG_LISTING: u8 = 5;
pub(crate) const TAG_TYPES: u8 = 6;
pub(crate) const TAG_IDS: u8 = 7;
/// Streams deleted or truncated: stream number → [`Removal`].
pub(crate) const TAG_REMOVALS: u8 = 8;
/// The tables whose keys a run's Bloom filter holds: a new stream's and a
/// new event id's look-ups (every append makes them) read no block.
pub(crate) const BLOOM_TAGS: &[u8] = &[TAG_STREAMS, TAG_IDS];

/// Bytes of one `feed.idx` entry (and of a type feed entry's value).
pub(crate) const FEED_ENTRY_LEN: u64 = 24;

/// Where the event at a position lies, and its stream.
///
/// Encoded as `offset:u64 len:u32 crc:u32 stream:u32 entry_crc:u32`
/// (little-endian), where `crc` is the record's CRC-32 and `entry_crc` the
/// CRC-32 of the position (8 bytes) followed by the first 20 bytes: a
/// changed byte of `feed.idx`, or an entry read at another position, is
/// found on read instead of sending a reader to another record or stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FeedEntry {
    pub span: RecordSpan,
    pub stream: u32,
}

impl FeedEntry {
    /// A position lost to damage: no record, no stream.
    const LOST: Self = Self {
        span: NO_RECORD,
        stream: LOST,
    };

    /// Appends the entry of `position` to `out`.
    pub(crate) fn encode(&self, position: u64, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&self.span.offset.to_le_bytes());
        out.extend_from_slice(&self.span.len.to_le_bytes());
        out.extend_from_slice(&self.span.crc.to_le_bytes());
        out.extend_from_slice(&self.stream.to_le_bytes());
        let crc = Self::entry_crc(position, &out[start..]);
        out.extend_from_slice(&crc.to_le_bytes());
    }

    /// Decodes the entry of `position` from the first [`FEED_ENTRY_LEN`]
    /// bytes of `b`; `None` when they are too few or their CRC does not
    /// hold.
    pub(crate) fn decode(b: &[u8], position: u64) -> Option<Self> {
        let b = b.get(..FEED_ENTRY_LEN as usize)?;
        let word = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().expect("4"));
        if Self::entry_crc(position, &b[..20]) != word(20) {
            return None;
        }
        Some(Self {
            span: RecordSpan {
                offset: u64::from_le_bytes(b[0..8].try_into().expect("8")),
                len: word(8),
                crc: word(12),
            },
            stream: word(16),
        })
    }

    fn entry_crc(position: u64, fields: &[u8]) -> u32 {
        let mut h = crc32fast::Hasher::new();
        h.update(&position.to_le_bytes());
        h.update(fields);
        h.finalize()
    }
}

/// The span of a revision or position lost to damage.
const NO_RECORD: RecordSpan = RecordSpan {
    offset: 0,
    len: 0,
    crc: 0,
};

/// A stream's number and summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StreamState {
    pub number: u32,
    pub revision: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What a stream lost to a deletion or truncation. Every stream without
/// an entry keeps all its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Removal {
    /// The first revision reads return (1: nothing truncated).
    pub first_revision: u64,
    /// The stream's feed entries before this position are removed.
    pub first_position: u64,
    /// The position of the `$stream-deleted` entry; 0 while the stream
    /// lives. Every other feed entry of a deleted stream is removed.
    pub deleted_at: u64,
}

impl Removal {
    const NONE: Removal = Removal {
        first_revision: 1,
        first_position: 0,
        deleted_at: 0,
    };

    /// Whether the stream's feed entry at `position` is removed.
    pub(crate) fn hides(&self, position: u64) -> bool {
        position < self.first_position || (self.deleted_at != 0 && position != self.deleted_at)
    }

    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(24);
        v.extend_from_slice(&self.first_revision.to_le_bytes());
        v.extend_from_slice(&self.first_position.to_le_bytes());
        v.extend_from_slice(&self.deleted_at.to_le_bytes());
        v
    }

    fn decode(v: &[u8]) -> Option<Self> {
        if v.len() != 24 {
            return None;
        }
        Some(Self {
            first_revision: u64::from_le_bytes(v[0..8].try_into().ok()?),
            first_position: u64::from_le_bytes(v[8..16].try_into().ok()?),
            deleted_at: u64::from_le_bytes(v[16..24].try_into().ok()?),
        })
    }
}

/// Where a revision's event lies (`position` 0: lost to damage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RevEntry {
    pub position: u64,
    pub span: RecordSpan,
}

impl RevEntry {
    /// A revision lost to damage.
    const LOST: Self = Self {
        position: 0,
        span: NO_RECORD,
    };
}

/// A stream touched since the delta started.
#[derive(Debug, Clone)]
struct DStream {
    key: Arc<StreamKey>,
    state: StreamState,
    /// The revision of `revs[0]`.
    first_rev: u64,
    revs: Vec<RevEntry>,
    /// Whether its listing entry (at `updated_at`) is in this delta.
    listed_here: bool,
}

/// A stream type touched since the delta started.
#[derive(Debug, Clone, Default)]
struct DType {
    /// Its streams, in all (not only in this delta).
    count: u64,
    /// The position of its last event, in all.
    last_position: u64,
    /// Positions of its events in this delta, ascending.
    positions: Vec<u64>,
    /// Listing entries added in this delta.
    listing: BTreeMap<Timestamp, u32>,
    /// Listing entries of older layers that no longer hold.
    removed: BTreeSet<Timestamp>,
}

/// The index of the events after a checkpoint, in memory.
#[derive(Debug, Clone, Default)]
pub(crate) struct Delta {
    /// The first position this delta holds.
    first_position: u64,
    feed: Vec<FeedEntry>,
    streams: HashMap<Arc<StreamKey>, DStream>,
    numbers: HashMap<u32, Arc<StreamKey>>,
    /// Streams numbered from this on were created in this delta.
    new_from: u32,
    ids: HashMap<(u32, EventId), u64>,
    types: BTreeMap<StreamType, DType>,
    /// Removals made in this delta.
    removals: HashMap<u32, Removal>,
}

impl Delta {
    fn new(first_position: u64, new_from: u32) -> Self {
        Self {
            first_position,
            new_from,
            ..Self::default()
        }
    }

    /// Positions it holds.
    pub(crate) fn positions(&self) -> u64 {
        self.feed.len() as u64
    }

    pub(crate) fn first_position(&self) -> u64 {
        self.first_position
    }

    pub(crate) fn feed(&self) -> &[FeedEntry] {
        &self.feed
    }

    /// How many keys its run's Bloom filter takes (event ids and streams).
    pub(crate) fn bloom_keys(&self) -> u64 {
        (self.ids.len() + self.streams.len()) as u64
    }

    fn stream_by_number(&self, number: u32) -> Option<&DStream> {
        self.streams.get(self.numbers.get(&number)?)
    }

    fn rev_entry(&self, number: u32, revision: u64) -> Option<RevEntry> {
        let d = self.stream_by_number(number)?;
        let i = revision.checked_sub(d.first_rev)?;
        d.revs.get(i as usize).copied()
    }

    fn feed_entry(&self, position: u64) -> Option<FeedEntry> {
        let i = position.checked_sub(self.first_position)?;
        self.feed.get(i as usize).copied()
    }

    /// Its entries as a run holds them, in key order.
    pub(crate) fn entries(&self) -> Vec<Entry> {
        let mut out: Vec<Entry> = Vec::with_capacity(self.feed.len() * 4 + self.streams.len() * 2);
        for d in self.streams.values() {
            out.push((key_streams(&d.key), Some(encode_state(&d.state))));
            if d.state.number >= self.new_from {
                out.push((key_keys(d.state.number), Some(encode_stream_key(&d.key))));
            }
            for (i, r) in d.revs.iter().enumerate() {
                if r.position != 0 {
                    out.push((
                        key_revision(d.state.number, d.first_rev + i as u64),
                        Some(encode_rev(r)),
                    ));
                }
            }
        }
        for ((number, id), rev) in &self.ids {
            out.push((key_id(*number, id), Some(rev.to_le_bytes().to_vec())));
        }
        for (number, r) in &self.removals {
            out.push((key_removal(*number), Some(r.encode())));
        }
        for (t, d) in &self.types {
            let mut v = d.count.to_le_bytes().to_vec();
            v.extend_from_slice(&d.last_position.to_le_bytes());
            out.push((key_type(t), Some(v)));
            for &p in &d.positions {
                let f = self.feed_entry(p).expect("a position of this delta");
                let mut v = Vec::with_capacity(FEED_ENTRY_LEN as usize);
                f.encode(p, &mut v);
                out.push((key_type_feed(t, p), Some(v)));
            }
            for (&at, &number) in &d.listing {
                out.push((key_listing(t, at), Some(number.to_le_bytes().to_vec())));
            }
            for &at in &d.removed {
                out.push((key_listing(t, at), None));
            }
        }
        out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

fn put_type(out: &mut Vec<u8>, t: &StreamType) {
    out.push(t.as_str().len() as u8);
    out.extend_from_slice(t.as_str().as_bytes());
}

pub(crate) fn key_streams(k: &StreamKey) -> Vec<u8> {
    let mut out = vec![TAG_STREAMS];
    put_type(&mut out, &k.stream_type);
    out.extend_from_slice(k.stream_id.as_str().as_bytes());
    out
}

fn key_keys(number: u32) -> Vec<u8> {
    let mut out = vec![TAG_KEYS];
    out.extend_from_slice(&number.to_be_bytes());
    out
}

fn key_revision(number: u32, revision: u64) -> Vec<u8> {
    let mut out = vec![TAG_REVISIONS];
    out.extend_from_slice(&number.to_be_bytes());
    out.extend_from_slice(&revision.to_be_bytes());
    out
}

fn key_type_feed(t: &StreamType, position: u64) -> Vec<u8> {
    let mut out = vec![TAG_TYPE_FEED];
    put_type(&mut out, t);
    out.extend_from_slice(&position.to_be_bytes());
    out
}

/// Times as bytes that sort like the times.
fn time_bytes(t: Timestamp) -> [u8; 8] {
    ((t.as_micros() as u64) ^ (1 << 63)).to_be_bytes()
}

fn time_from(b: &[u8]) -> Timestamp {
    Timestamp::from_micros((u64::from_be_bytes(b.try_into().expect("8")) ^ (1 << 63)) as i64)
}

fn key_listing(t: &StreamType, at: Timestamp) -> Vec<u8> {
    let mut out = vec![TAG_LISTING];
    put_type(&mut out, t);
    out.extend_from_slice(&time_bytes(at));
    out
}

fn key_type(t: &StreamType) -> Vec<u8> {
    let mut out = vec![TAG_TYPES];
    put_type(&mut out, t);
    out
}

fn key_id(number: u32, id: &EventId) -> Vec<u8> {
    let mut out = vec![TAG_IDS];
    out.extend_from_slice(&number.to_be_bytes());
    out.extend_from_slice(id.as_uuid().as_bytes());
    out
}

fn key_removal(number: u32) -> Vec<u8> {
    let mut out = vec![TAG_REMOVALS];
    out.extend_from_slice(&number.to_be_bytes());
    out
}

fn encode_state(s: &StreamState) -> Vec<u8> {
    let mut v = Vec::with_capacity(28);
    v.extend_from_slice(&s.number.to_le_bytes());
    v.extend_from_slice(&s.revision.to_le_bytes());
    v.extend_from_slice(&s.created_at.as_micros().to_le_bytes());
    v.extend_from_slice(&s.updated_at.as_micros().to_le_bytes());
    v
}

fn decode_state(v: &[u8]) -> Option<StreamState> {
    if v.len() != 28 {
        return None;
    }
    Some(StreamState {
        number: u32::from_le_bytes(v[0..4].try_into().ok()?),
        revision: u64::from_le_bytes(v[4..12].try_into().ok()?),
        created_at: Timestamp::from_micros(i64::from_le_bytes(v[12..20].try_into().ok()?)),
        updated_at: Timestamp::from_micros(i64::from_le_bytes(v[20..28].try_into().ok()?)),
    })
}

fn encode_stream_key(k: &StreamKey) -> Vec<u8> {
    let mut out = Vec::new();
    put_type(&mut out, &k.stream_type);
    out.extend_from_slice(k.stream_id.as_str().as_bytes());
    out
}

fn decode_stream_key(v: &[u8]) -> Option<StreamKey> {
    let n = *v.first()? as usize;
    let t = std::str::from_utf8(v.get(1..1 + n)?).ok()?;
    let i = std::str::from_utf8(v.get(1 + n..)?).ok()?;
    Some(StreamKey::new(
        StreamType::parse(t).ok()?,
        StreamId::parse(i).ok()?,
    ))
}

fn encode_rev(r: &RevEntry) -> Vec<u8> {
    let mut v = Vec::with_capacity(24);
    v.extend_from_slice(&r.position.to_le_bytes());
    v.extend_from_slice(&r.span.offset.to_le_bytes());
    v.extend_from_slice(&r.span.len.to_le_bytes());
    v.extend_from_slice(&r.span.crc.to_le_bytes());
    v
}

fn decode_rev(v: &[u8]) -> Option<RevEntry> {
    if v.len() != 24 {
        return None;
    }
    Some(RevEntry {
        position: u64::from_le_bytes(v[0..8].try_into().ok()?),
        span: RecordSpan {
            offset: u64::from_le_bytes(v[8..16].try_into().ok()?),
            len: u32::from_le_bytes(v[16..20].try_into().ok()?),
            crc: u32::from_le_bytes(v[20..24].try_into().ok()?),
        },
    })
}

fn damaged(run: &Run, what: &str) -> EmbeddedError {
    EmbeddedError::Corrupt {
        path: run.path.clone(),
        offset: 0,
        reason: format!("an index entry of {what} does not decode"),
    }
}

/// One durable append as the index takes it in.
pub(crate) struct Commit {
    pub stream: Arc<StreamKey>,
    pub commit_time: Timestamp,
    pub first_revision: Revision,
    pub first_position: u64,
    pub events: Vec<(EventId, RecordSpan)>,
}

/// A durable deletion as the index takes it in: the `$stream-deleted`
/// entry's record.
pub(crate) struct DeleteCommit {
    pub stream: Arc<StreamKey>,
    pub commit_time: Timestamp,
    /// The entry's revision: the stream's last + 1.
    pub revision: Revision,
    pub position: u64,
    pub span: RecordSpan,
}

/// An event to load from the file: where it is and what the index knows.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub span: RecordSpan,
    pub position: u64,
    pub stream: Arc<StreamKey>,
}

/// The index: an active delta, a frozen one being checkpointed, and the
/// runs of earlier checkpoints with `feed.idx`.
#[derive(Debug, Default)]
pub(crate) struct Index {
    active: Delta,
    frozen: Option<Arc<Delta>>,
    /// Oldest first.
    runs: Vec<Arc<Run>>,
    /// `feed.idx`: positions `1..=base_position`.
    feed_file: Option<Arc<dyn StorageFile>>,
    base_position: u64,
    next_stream: u32,
    last_time: Option<Timestamp>,
    /// Revisions that a lost range says a stream lost, not yet followed
    /// by the stream's next frame: (first, last).
    pending_lost: HashMap<StreamKey, (u64, u64)>,
    /// Every stream deleted or truncated, by number (all layers: loaded
    /// from the runs at open, kept up to date by the deltas).
    removals: HashMap<u32, Removal>,
}

type IoResult<T> = Result<T, EmbeddedError>;

impl Index {
    /// An index over the runs and `feed.idx` of a checkpoint that covers
    /// positions up to `base_position`.
    pub(crate) fn with_base(
        runs: Vec<Arc<Run>>,
        feed_file: Option<Arc<dyn StorageFile>>,
        base_position: u64,
        next_stream: u32,
        last_time: Option<Timestamp>,
    ) -> Self {
        Self {
            active: Delta::new(base_position + 1, next_stream),
            frozen: None,
            runs,
            feed_file,
            base_position,
            next_stream,
            last_time,
            pending_lost: HashMap::new(),
            removals: HashMap::new(),
        }
    }

    /// `feed.idx`'s path, beside the runs (for error messages).
    fn feed_path(&self) -> std::path::PathBuf {
        let dir = self.runs.first().and_then(|r| r.path.parent());
        dir.map_or_else(|| "index".into(), Path::to_path_buf)
            .join("feed.idx")
    }

    /// Reads the removals table of the runs into memory (open does this
    /// once; the deltas keep it current from then on).
    pub(crate) fn load_removals(&mut self) -> IoResult<()> {
        // A block that does not read must fail the load, not end it early
        // (a deleted stream would come back).
        let errors = ReadErrors::default();
        // Only the runs that hold removals are read (most hold none).
        let sources: Vec<_> = self
            .runs
            .iter()
            .rev()
            .filter(|r| r.has_table(TAG_REMOVALS))
            .map(|r| errors.watch(r.iter_from(&[TAG_REMOVALS])))
            .collect();
        let mut removals = HashMap::new();
        for (k, v) in Merge::new(sources) {
            if k.first() != Some(&TAG_REMOVALS) {
                break;
            }
            let (Some(v), Ok(n)) = (v, <[u8; 4]>::try_from(&k[1..])) else {
                continue;
            };
            let r = Removal::decode(&v).ok_or_else(|| EmbeddedError::Corrupt {
                path: self.runs.last().map(|r| r.path.clone()).unwrap_or_default(),
                offset: 0,
                reason: "an index entry of the removals does not decode".into(),
            })?;
            removals.insert(u32::from_be_bytes(n), r);
        }
        errors.check()?;
        self.removals = removals;
        Ok(())
    }

    /// What stream number `number` lost to a deletion or truncation.
    pub(crate) fn removal(&self, number: u32) -> Removal {
        self.removals.get(&number).copied().unwrap_or(Removal::NONE)
    }

    /// The stream's summary, with its first kept revision.
    pub(crate) fn info_of(&self, key: &StreamKey, s: &StreamState) -> StreamInfo {
        let mut info = Self::info(key, s);
        info.first_revision = Revision::new(self.removal(s.number).first_revision);
        info
    }

    /// An index in memory only (for `check`'s analysis of a log).
    pub(crate) fn in_memory() -> Self {
        Self::with_base(Vec::new(), None, 0, 0, None)
    }

    /// How many streams there are.
    pub(crate) fn stream_count(&self) -> u64 {
        u64::from(self.next_stream)
    }

    pub(crate) fn next_stream(&self) -> u32 {
        self.next_stream
    }

    /// Positions in the active delta.
    pub(crate) fn active_positions(&self) -> u64 {
        self.active.positions()
    }

    /// Whether a checkpoint may be taken now: nothing pending from a lost
    /// range and no checkpoint in progress.
    pub(crate) fn can_freeze(&self) -> bool {
        self.frozen.is_none() && self.pending_lost.is_empty()
    }

    /// Freezes the active delta for a checkpoint and starts a new one.
    pub(crate) fn freeze(&mut self) -> Arc<Delta> {
        debug_assert!(self.frozen.is_none());
        let next = Delta::new(self.last_position() + 1, self.next_stream);
        let frozen = Arc::new(std::mem::replace(&mut self.active, next));
        self.frozen = Some(frozen.clone());
        frozen
    }

    /// The frozen delta is checkpointed: its entries are in `run` and its
    /// feed in `feed.idx`.
    pub(crate) fn install(&mut self, run: Arc<Run>, feed_file: Arc<dyn StorageFile>) {
        let frozen = self.frozen.take().expect("a frozen delta");
        self.base_position = frozen.first_position + frozen.positions() - 1;
        self.runs.push(run);
        self.feed_file = Some(feed_file);
    }

    /// Runs `replaced` (contiguous, oldest first) were merged into `run`.
    pub(crate) fn replace_runs(&mut self, replaced: &[u64], run: Arc<Run>) {
        let Some(at) = self.runs.iter().position(|r| r.seq == replaced[0]) else {
            return;
        };
        self.runs.drain(at..at + replaced.len());
        self.runs.insert(at, run);
    }

    pub(crate) fn runs(&self) -> &[Arc<Run>] {
        &self.runs
    }

    /// Bytes of memory the runs keep (fences and filters).
    pub(crate) fn run_memory(&self) -> usize {
        self.runs.iter().map(|r| r.memory()).sum()
    }

    fn deltas(&self) -> impl Iterator<Item = &Delta> {
        std::iter::once(&self.active).chain(self.frozen.as_deref())
    }

    /// The newest entry of `key` in the runs.
    fn run_get(&self, key: &[u8]) -> IoResult<Option<(Vec<u8>, &Arc<Run>)>> {
        for run in self.runs.iter().rev() {
            match run.get(key)? {
                Some(Some(v)) => return Ok(Some((v, run))),
                Some(None) => return Ok(None),
                None => {}
            }
        }
        Ok(None)
    }

    /// The stream's key (shared) and state, if it exists.
    pub(crate) fn stream(
        &self,
        key: &StreamKey,
    ) -> IoResult<Option<(Arc<StreamKey>, StreamState)>> {
        for d in self.deltas() {
            if let Some((k, s)) = d.streams.get_key_value(key) {
                return Ok(Some((k.clone(), s.state)));
            }
        }
        match self.run_get(&key_streams(key))? {
            Some((v, run)) => {
                let state = decode_state(&v).ok_or_else(|| damaged(run, "a stream"))?;
                Ok(Some((Arc::new(key.clone()), state)))
            }
            None => Ok(None),
        }
    }

    /// The key of stream number `number`.
    pub(crate) fn key_of(&self, number: u32) -> IoResult<Arc<StreamKey>> {
        for d in self.deltas() {
            if let Some(k) = d.numbers.get(&number) {
                return Ok(k.clone());
            }
        }
        match self.run_get(&key_keys(number))? {
            Some((v, run)) => Ok(Arc::new(
                decode_stream_key(&v).ok_or_else(|| damaged(run, "a stream key"))?,
            )),
            None => Err(EmbeddedError::Corrupt {
                path: self.runs.last().map(|r| r.path.clone()).unwrap_or_default(),
                offset: 0,
                reason: format!("the index has no key for stream number {number}"),
            }),
        }
    }

    /// The position of the last committed event (0 when empty).
    pub(crate) fn last_position(&self) -> u64 {
        self.active.first_position + self.active.positions() - 1
    }

    /// The commit time of the last append.
    pub(crate) fn last_time(&self) -> Option<Timestamp> {
        self.last_time
    }

    /// The revision at which `id` sits in stream `number`, if it does.
    pub(crate) fn find(&self, number: u32, id: &EventId) -> IoResult<Option<Revision>> {
        for d in self.deltas() {
            if let Some(&r) = d.ids.get(&(number, *id)) {
                return Ok(Some(Revision::new(r)));
            }
        }
        match self.run_get(&key_id(number, id))? {
            Some((v, run)) => {
                let b: [u8; 8] = v.as_slice().try_into().map_err(|_| damaged(run, "an id"))?;
                Ok(Some(Revision::new(u64::from_le_bytes(b))))
            }
            None => Ok(None),
        }
    }

    fn rev_entry(&self, number: u32, revision: u64) -> IoResult<Option<RevEntry>> {
        for d in self.deltas() {
            if let Some(r) = d.rev_entry(number, revision) {
                return Ok(Some(r));
            }
        }
        match self.run_get(&key_revision(number, revision))? {
            Some((v, run)) => Ok(Some(
                decode_rev(&v).ok_or_else(|| damaged(run, "a revision"))?,
            )),
            None => Ok(None),
        }
    }

    /// The position of the event at `revision` of stream `number`.
    pub(crate) fn position_of(&self, number: u32, revision: Revision) -> IoResult<Option<u64>> {
        Ok(self
            .rev_entry(number, revision.get())?
            .map(|r| r.position)
            .filter(|&p| p != 0))
    }

    /// The stream's summary.
    pub(crate) fn info(key: &StreamKey, s: &StreamState) -> StreamInfo {
        StreamInfo {
            stream_id: key.stream_id.clone(),
            stream_type: key.stream_type.clone(),
            revision: Revision::new(s.revision),
            first_revision: Revision::FIRST,
            updated_at: s.updated_at,
            created_at: s.created_at,
        }
    }

    /// The type's count and last position in the layers under the active
    /// delta.
    fn type_below(&self, t: &StreamType) -> IoResult<(u64, u64)> {
        if let Some(d) = self.frozen.as_ref().and_then(|f| f.types.get(t)) {
            return Ok((d.count, d.last_position));
        }
        match self.run_get(&key_type(t))? {
            Some((v, _)) if v.len() == 16 => Ok((
                u64::from_le_bytes(v[0..8].try_into().expect("8")),
                u64::from_le_bytes(v[8..16].try_into().expect("8")),
            )),
            Some((_, run)) => Err(damaged(run, "a stream type")),
            None => Ok((0, 0)),
        }
    }

    /// The last position of a type's events (0 when it has none).
    pub(crate) fn type_last_position(&self, t: &StreamType) -> IoResult<u64> {
        if let Some(d) = self.active.types.get(t) {
            return Ok(d.last_position);
        }
        Ok(self.type_below(t)?.1)
    }

    /// The active delta's entry of a stream, made from its state when it
    /// has none.
    fn touch(&mut self, key: &Arc<StreamKey>, state: StreamState) -> &mut DStream {
        self.active.numbers.insert(state.number, key.clone());
        self.active
            .streams
            .entry(key.clone())
            .or_insert_with(|| DStream {
                key: key.clone(),
                state,
                first_rev: state.revision + 1,
                revs: Vec::new(),
                listed_here: false,
            })
    }

    /// Takes in a range of positions (and stream revisions) lost to damage,
    /// as repair records it: the positions are never given out again, and
    /// the streams' next frames may continue after the lost revisions.
    pub(crate) fn apply_lost(&mut self, lost: &crate::format::LostRange) -> Result<(), String> {
        if lost.first_position <= lost.last_position {
            if lost.first_position != self.last_position() + 1 {
                return Err(format!(
                    "lost positions from {} follow position {}",
                    lost.first_position,
                    self.last_position()
                ));
            }
            let n = lost.last_position - lost.first_position + 1;
            if n > MAX_LOST_POSITIONS {
                return Err(format!("{n} lost positions"));
            }
            self.active.feed.extend((0..n).map(|_| FeedEntry::LOST));
        }
        for (key, first, last) in &lost.streams {
            let merged = match self.pending_lost.get(key) {
                Some(&(a, b)) if b + 1 == *first => (a, *last),
                _ => (*first, *last),
            };
            self.pending_lost.insert(key.clone(), merged);
        }
        Ok(())
    }

    /// Ends a replay: streams that lost their last revisions keep them
    /// counted, so that they are never given out again.
    pub(crate) fn finish_lost(&mut self) -> IoResult<()> {
        for (key, (first, last)) in std::mem::take(&mut self.pending_lost) {
            if let Some((k, state)) = self.stream(&key)?
                && state.revision + 1 == first
            {
                let d = self.touch(&k, state);
                d.revs
                    .resize((last + 1 - d.first_rev) as usize, RevEntry::LOST);
                d.state.revision = last;
            }
        }
        Ok(())
    }

    /// A frame that takes `position` at `time` must follow the last
    /// position and the last commit time.
    fn check_follows(&self, what: &str, position: u64, time: Timestamp) -> Result<(), String> {
        if position != self.last_position() + 1 {
            return Err(format!(
                "{what} at position {position} follows position {}",
                self.last_position()
            ));
        }
        if let Some(last) = self.last_time.filter(|&last| time <= last) {
            return Err(format!("commit time {time} does not follow {last}"));
        }
        Ok(())
    }

    /// Takes in one append, checking the invariants of the log: positions
    /// follow each other, revisions follow the stream's, commit times rise,
    /// an event id occurs once per stream. Returns the stream's state.
    pub(crate) fn apply(&mut self, c: &Commit) -> Result<StreamState, String> {
        self.check_follows("append", c.first_position, c.commit_time)?;
        if c.events.is_empty() {
            return Err("an append without events".into());
        }
        let existing = self.stream(&c.stream).map_err(|e| e.to_string())?;
        if let Some((_, s)) = &existing
            && self.removal(s.number).deleted_at != 0
        {
            return Err(format!(
                "an append to stream {}, which is deleted",
                c.stream
            ));
        }
        let current = existing.as_ref().map_or(0, |(_, s)| s.revision);
        let mut lost_before = 0;
        if c.first_revision.get() != current + 1 {
            match self.pending_lost.get(&*c.stream) {
                Some(&(a, b)) if a == current + 1 && b + 1 == c.first_revision.get() => {
                    lost_before = b - a + 1;
                }
                _ => {
                    return Err(format!(
                        "stream {} continues at revision {} after revision {current}",
                        c.stream, c.first_revision
                    ));
                }
            }
        }
        if lost_before == 0 && self.pending_lost.contains_key(&*c.stream) {
            // A lost range that does not end where this frame starts.
            let (a, b) = self.pending_lost[&*c.stream];
            return Err(format!(
                "stream {} lost revisions {a}–{b} but continues at revision {}",
                c.stream, c.first_revision
            ));
        }
        if let Some((_, s)) = &existing {
            for (id, _) in &c.events {
                if self
                    .find(s.number, id)
                    .map_err(|e| e.to_string())?
                    .is_some()
                {
                    return Err(format!("event {id} occurs twice in stream {}", c.stream));
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        if let Some((id, _)) = c.events.iter().find(|(id, _)| !seen.insert(*id)) {
            return Err(format!("event {id} occurs twice in stream {}", c.stream));
        }
        let t = c.stream.stream_type.clone();
        if !self.active.types.contains_key(&t) {
            let (count, last_position) = self.type_below(&t).map_err(|e| e.to_string())?;
            self.active.types.insert(
                t.clone(),
                DType {
                    count,
                    last_position,
                    ..DType::default()
                },
            );
        }
        let (key, state, new) = match existing {
            Some((k, s)) => (k, s, false),
            None => {
                if self.next_stream == LOST {
                    return Err("too many streams".into());
                }
                let s = StreamState {
                    number: self.next_stream,
                    revision: 0,
                    created_at: c.commit_time,
                    updated_at: c.commit_time,
                };
                self.next_stream += 1;
                (c.stream.clone(), s, true)
            }
        };
        let number = state.number;
        let first_position = c.first_position;
        let d = self.touch(&key, state);
        if lost_before > 0 {
            let n = d.revs.len() + lost_before as usize;
            d.revs.resize(n, RevEntry::LOST);
            d.state.revision += lost_before;
        }
        let old_updated = d.state.updated_at;
        let was_listed_here = d.listed_here;
        d.listed_here = true;
        d.state.updated_at = c.commit_time;
        for (i, (_, span)) in c.events.iter().enumerate() {
            d.revs.push(RevEntry {
                position: first_position + i as u64,
                span: *span,
            });
        }
        d.state.revision += c.events.len() as u64;
        let state = d.state;
        if lost_before > 0 {
            self.pending_lost.remove(&*c.stream);
        }
        let entry = self.active.types.get_mut(&t).expect("inserted above");
        if new {
            entry.count += 1;
        } else if was_listed_here {
            entry.listing.remove(&old_updated);
        } else {
            entry.removed.insert(old_updated);
        }
        entry.listing.insert(c.commit_time, number);
        for (i, (id, span)) in c.events.iter().enumerate() {
            let position = first_position + i as u64;
            self.active.feed.push(FeedEntry {
                span: *span,
                stream: number,
            });
            entry.positions.push(position);
            self.active.ids.insert(
                (number, *id),
                state.revision - c.events.len() as u64 + 1 + i as u64,
            );
        }
        entry.last_position = c.first_position + c.events.len() as u64 - 1;
        self.last_time = Some(c.commit_time);
        Ok(state)
    }

    /// The type's entry in the active delta, made from the layers below
    /// when it has none.
    fn active_type(&mut self, t: &StreamType) -> Result<&mut DType, String> {
        if !self.active.types.contains_key(t) {
            let (count, last_position) = self.type_below(t).map_err(|e| e.to_string())?;
            self.active.types.insert(
                t.clone(),
                DType {
                    count,
                    last_position,
                    ..DType::default()
                },
            );
        }
        Ok(self.active.types.get_mut(t).expect("inserted above"))
    }

    fn set_removal(&mut self, number: u32, r: Removal) {
        self.removals.insert(number, r);
        self.active.removals.insert(number, r);
    }

    /// The stream's state when it exists and is not deleted, after the
    /// revisions a lost range says it lost before `revision` (a replay of a
    /// repaired log).
    fn live_state_before(
        &mut self,
        key: &StreamKey,
        revision: u64,
        what: &str,
    ) -> Result<(Arc<StreamKey>, StreamState), String> {
        let Some((k, state)) = self.stream(key).map_err(|e| e.to_string())? else {
            return Err(format!("{what} of stream {key}, which does not exist"));
        };
        if self.removal(state.number).deleted_at != 0 {
            return Err(format!("{what} of stream {key}, which is deleted"));
        }
        if let Some(&(a, b)) = self.pending_lost.get(key)
            && a == state.revision + 1
            && b < revision
        {
            self.pending_lost.remove(key);
            let d = self.touch(&k, state);
            d.revs
                .resize((b + 1 - d.first_rev) as usize, RevEntry::LOST);
            d.state.revision = b;
            return Ok((k, d.state));
        }
        Ok((k, state))
    }

    /// Takes in a deletion: the stream leaves the listing and its type's
    /// count, its feed entries are removed, and the `$stream-deleted`
    /// entry takes the next position.
    pub(crate) fn apply_delete(&mut self, c: &DeleteCommit) -> Result<StreamState, String> {
        self.check_follows("a deletion", c.position, c.commit_time)?;
        let (key, state) = self.live_state_before(&c.stream, c.revision.get(), "a deletion")?;
        if c.revision.get() != state.revision + 1 {
            return Err(format!(
                "the deletion of stream {} at revision {} follows revision {}",
                c.stream, c.revision, state.revision
            ));
        }
        let number = state.number;
        let d = self.touch(&key, state);
        let was_listed_here = d.listed_here;
        d.listed_here = false;
        let updated = d.state.updated_at;
        let state = d.state;
        let t = key.stream_type.clone();
        let entry = self.active_type(&t)?;
        if was_listed_here {
            entry.listing.remove(&updated);
        } else {
            entry.removed.insert(updated);
        }
        entry.count = entry.count.saturating_sub(1);
        entry.positions.push(c.position);
        entry.last_position = c.position;
        self.active.feed.push(FeedEntry {
            span: c.span,
            stream: number,
        });
        let mut r = self.removal(number);
        r.deleted_at = c.position;
        self.set_removal(number, r);
        self.last_time = Some(c.commit_time);
        Ok(state)
    }

    /// Takes in a truncation: reads of the stream start at `before`, and
    /// its feed entries before that revision's position are removed.
    pub(crate) fn apply_truncate(
        &mut self,
        t: &crate::format::Truncation,
    ) -> Result<StreamState, String> {
        if t.next_position != self.last_position() + 1 {
            return Err(format!(
                "a truncation before position {} follows position {}",
                t.next_position,
                self.last_position()
            ));
        }
        let (_, state) = self.live_state_before(&t.stream, 0, "a truncation")?;
        let mut r = self.removal(state.number);
        if t.before > state.revision || t.before <= r.first_revision {
            return Err(format!(
                "a truncation of stream {} before revision {} (it holds revisions {}–{})",
                t.stream, t.before, r.first_revision, state.revision
            ));
        }
        // The first kept revision's position (the next one that was not
        // lost to damage), or past the end when all of them were.
        let mut first_position = self.last_position() + 1;
        for rev in t.before..=state.revision {
            if let Some(p) = self
                .position_of(state.number, Revision::new(rev))
                .map_err(|e| e.to_string())?
            {
                first_position = p;
                break;
            }
        }
        r.first_revision = t.before;
        r.first_position = first_position;
        self.set_removal(state.number, r);
        Ok(state)
    }

    /// The locations of stream `number`'s revisions `from..=to` that were
    /// not lost to damage, ascending.
    pub(crate) fn revision_entries(
        &self,
        number: u32,
        from: u64,
        to: u64,
    ) -> IoResult<Vec<(u64, RevEntry)>> {
        Ok(self
            .revs_between(number, from.saturating_sub(1), to)?
            .into_iter()
            .filter(|(_, r)| r.position != 0)
            .collect())
    }

    /// Revisions `start + 1 ..= end` of stream `number`: from the deltas
    /// where they hold them, the rest from the runs.
    fn revs_between(&self, number: u32, start: u64, end: u64) -> IoResult<BTreeMap<u64, RevEntry>> {
        let mut found: BTreeMap<u64, RevEntry> = BTreeMap::new();
        let mut below = end;
        for d in self.deltas() {
            if let Some(ds) = d.stream_by_number(number) {
                for rev in (start + 1).max(ds.first_rev)..=end {
                    if let Some(r) = ds.revs.get((rev - ds.first_rev) as usize) {
                        found.entry(rev).or_insert(*r);
                    }
                }
                below = below.min(ds.first_rev.saturating_sub(1));
            }
        }
        if below > start {
            let from = key_revision(number, start + 1);
            let to = key_revision(number, below);
            for run in self.runs.iter().rev() {
                let mut it = run.iter_from(&from);
                for (k, v) in it.by_ref() {
                    if k.as_slice() > to.as_slice() {
                        break;
                    }
                    let rev = u64::from_be_bytes(k[5..13].try_into().expect("8"));
                    if let Some(v) = v {
                        let r = decode_rev(&v).ok_or_else(|| damaged(run, "a revision"))?;
                        found.entry(rev).or_insert(r);
                    }
                }
                if let Some(e) = it.error.take() {
                    return Err(e);
                }
            }
        }
        Ok(found)
    }

    /// Feed entries of positions `from..from + n` (fewer at the end).
    pub(crate) fn feed_entries(&self, from: u64, n: u64) -> IoResult<Vec<FeedEntry>> {
        let last = self.last_position();
        let to = (from + n).min(last + 1);
        let mut out = Vec::with_capacity(to.saturating_sub(from) as usize);
        let mut p = from;
        if p <= self.base_position && p < to {
            let upto = to.min(self.base_position + 1);
            let file = self.feed_file.as_ref().expect("a feed file under a base");
            let mut buf = vec![0u8; ((upto - p) * FEED_ENTRY_LEN) as usize];
            file.read_exact_at(&mut buf, (p - 1) * FEED_ENTRY_LEN)
                .map_err(|e| EmbeddedError::io("reading the index's feed.idx", e))?;
            for (i, b) in buf.chunks_exact(FEED_ENTRY_LEN as usize).enumerate() {
                let at = p + i as u64;
                out.push(FeedEntry::decode(b, at).ok_or_else(|| EmbeddedError::Corrupt {
                    path: self.feed_path(),
                    offset: (at - 1) * FEED_ENTRY_LEN,
                    reason: format!(
                        "the entry of position {at} does not match its CRC: run `event-store check`"
                    ),
                })?);
            }
            p = upto;
        }
        while p < to {
            let f = self
                .deltas()
                .find_map(|d| d.feed_entry(p))
                .expect("a position after the base is in a delta");
            out.push(f);
            p += 1;
        }
        Ok(out)
    }

    /// What a stream read returns, in ascending position order, with
    /// `has_more` and `last_evaluated_revision`; `None` when the stream
    /// does not exist.
    pub(crate) fn stream_items(
        &self,
        key: &StreamKey,
        read: &StreamRead,
    ) -> IoResult<Option<(Vec<Item>, bool, Revision)>> {
        let Some((key, s)) = self.stream(key)? else {
            return Ok(None);
        };
        let total = s.revision;
        let limit = read.limit as u64;
        // Revisions up to `kept_from` were truncated away.
        let kept_from = self.removal(s.number).first_revision - 1;
        let (start, end, has_more, empty_rev) = match read.direction {
            Direction::Forward => {
                let after = read.from.unwrap_or(Revision::ZERO).get();
                let start = after.max(kept_from).min(total);
                let end = start.saturating_add(limit).min(total);
                (start, end, end < total, after)
            }
            Direction::Backward => {
                let before = read.from.map_or(total + 1, |r| r.get());
                let end = before.saturating_sub(1).min(total);
                let start = end.saturating_sub(limit).max(kept_from);
                let end = end.max(start);
                (start, end, start > kept_from, before)
            }
        };
        let found = self.revs_between(s.number, start, end)?;
        let items: Vec<Item> = found
            .values()
            .filter(|r| r.position != 0)
            .map(|r| Item {
                span: r.span,
                position: r.position,
                stream: key.clone(),
            })
            .collect();
        let last = if items.is_empty() {
            Revision::new(empty_rev)
        } else {
            match read.direction {
                Direction::Forward => Revision::new(end),
                Direction::Backward => Revision::new(start + 1),
            }
        };
        Ok(Some((items, has_more, last)))
    }

    /// What a feed read returns, ascending, with `has_more`.
    pub(crate) fn feed_items(
        &self,
        stream_type: Option<&StreamType>,
        after: u64,
        limit: usize,
    ) -> IoResult<(Vec<Item>, bool)> {
        let mut keys: HashMap<u32, Arc<StreamKey>> = HashMap::new();
        let mut key_of = |n: u32| -> IoResult<Arc<StreamKey>> {
            if let Some(k) = keys.get(&n) {
                return Ok(k.clone());
            }
            let k = self.key_of(n)?;
            keys.insert(n, k.clone());
            Ok(k)
        };
        match stream_type {
            None => {
                let total = self.last_position();
                let mut items = Vec::new();
                let mut p = after.min(total);
                while p < total && items.len() < limit {
                    let want = (limit - items.len()).max(16) as u64;
                    let entries = self.feed_entries(p + 1, want)?;
                    for f in entries {
                        p += 1;
                        if f.stream != LOST
                            && !self.removals.get(&f.stream).is_some_and(|r| r.hides(p))
                        {
                            items.push(Item {
                                span: f.span,
                                position: p,
                                stream: key_of(f.stream)?,
                            });
                            if items.len() == limit {
                                break;
                            }
                        }
                    }
                }
                Ok((items, p < total))
            }
            Some(t) => {
                // Pages of the type's feed, until `limit` entries that are
                // not removed are found or the feed ends.
                let mut items = Vec::new();
                let mut after = after;
                loop {
                    let (page, more) = self.type_feed_page(t, after, limit - items.len())?;
                    let Some(&(last, _)) = page.last() else {
                        return Ok((items, false));
                    };
                    for (p, f) in page {
                        if self.removals.get(&f.stream).is_some_and(|r| r.hides(p)) {
                            continue;
                        }
                        items.push(Item {
                            span: f.span,
                            position: p,
                            stream: key_of(f.stream)?,
                        });
                    }
                    if !more {
                        return Ok((items, false));
                    }
                    if items.len() == limit {
                        return Ok((items, true));
                    }
                    after = last;
                }
            }
        }
    }

    /// Up to `limit` entries of a type's feed after `after`, removed ones
    /// included, and whether there are more.
    fn type_feed_page(
        &self,
        t: &StreamType,
        after: u64,
        limit: usize,
    ) -> IoResult<(Vec<(u64, FeedEntry)>, bool)> {
        {
            {
                let want = limit.saturating_add(1);
                let mut found: BTreeMap<u64, FeedEntry> = BTreeMap::new();
                for d in self.deltas() {
                    if let Some(dt) = d.types.get(t) {
                        let i = dt.positions.partition_point(|&p| p <= after);
                        for &p in dt.positions[i..].iter().take(want) {
                            found.insert(p, d.feed_entry(p).expect("in the delta"));
                        }
                    }
                }
                let from = key_type_feed(t, after.saturating_add(1));
                let prefix_len = from.len() - 8;
                for run in self.runs.iter().rev() {
                    let mut it = run.iter_from(&from);
                    let mut n = 0;
                    for (k, v) in it.by_ref() {
                        if k.len() != from.len() || k[..prefix_len] != from[..prefix_len] {
                            break;
                        }
                        let p = u64::from_be_bytes(k[prefix_len..].try_into().expect("8"));
                        let f = v
                            .filter(|v| v.len() == FEED_ENTRY_LEN as usize)
                            .and_then(|v| FeedEntry::decode(&v, p))
                            .ok_or_else(|| damaged(run, "the type feed"))?;
                        found.insert(p, f);
                        n += 1;
                        if n == want {
                            break;
                        }
                    }
                    if let Some(e) = it.error.take() {
                        return Err(e);
                    }
                }
                let more = found.len() > limit;
                Ok((found.into_iter().take(limit).collect(), more))
            }
        }
    }

    /// The listing entries of a type from `lower` on, newest layer first,
    /// as sorted sources.
    fn listing_sources<'a>(
        &'a self,
        t: &StreamType,
        lower: Timestamp,
        errors: &'a ReadErrors,
    ) -> Vec<Box<dyn Iterator<Item = Entry> + 'a>> {
        let mut sources: Vec<Box<dyn Iterator<Item = Entry> + 'a>> = Vec::new();
        for d in self.deltas() {
            if let Some(dt) = d.types.get(t) {
                let mut v: Vec<Entry> = dt
                    .listing
                    .range(lower..)
                    .map(|(&at, &n)| (key_listing(t, at), Some(n.to_le_bytes().to_vec())))
                    .chain(
                        dt.removed
                            .range(lower..)
                            .map(|&at| (key_listing(t, at), None)),
                    )
                    .collect();
                v.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                sources.push(Box::new(v.into_iter()));
            } else {
                sources.push(Box::new(std::iter::empty()));
            }
        }
        let from = key_listing(t, lower);
        for run in self.runs.iter().rev() {
            sources.push(Box::new(errors.watch(run.iter_from(&from))));
        }
        sources
    }

    /// A page of a type's streams ordered by `(updated_at, stream_id)`.
    pub(crate) fn list_streams(
        &self,
        stream_type: &StreamType,
        updated_after: Option<Timestamp>,
        cursor: Option<&StreamCursor>,
        limit: usize,
    ) -> IoResult<StreamListPage> {
        let mut lower = updated_after.map_or(Timestamp::from_micros(i64::MIN), |u| {
            Timestamp::from_micros(u.as_micros().saturating_add(1))
        });
        if let Some(c) = cursor
            && updated_after.is_none_or(|u| c.updated_at > u)
        {
            lower = c.updated_at;
        }
        let prefix = key_type(stream_type);
        let prefix = {
            let mut p = prefix;
            p[0] = TAG_LISTING;
            p
        };
        let mut streams: Vec<StreamInfo> = Vec::new();
        let mut more = false;
        let errors = ReadErrors::default();
        for (k, v) in Merge::new(self.listing_sources(stream_type, lower, &errors)) {
            if k.len() != prefix.len() + 8 || k[..prefix.len()] != prefix[..] {
                break;
            }
            let Some(v) = v else { continue };
            let updated = time_from(&k[prefix.len()..]);
            let number = u32::from_le_bytes(v.as_slice().try_into().map_err(|_| {
                EmbeddedError::Corrupt {
                    path: Default::default(),
                    offset: 0,
                    reason: "a listing entry does not decode".into(),
                }
            })?);
            let key = self.key_of(number)?;
            if let Some(c) = cursor
                && (updated, &key.stream_id) <= (c.updated_at, &c.stream_id)
            {
                continue;
            }
            if streams.len() == limit {
                more = true;
                break;
            }
            let Some((_, state)) = self.stream(&key)? else {
                continue;
            };
            streams.push(self.info_of(&key, &state));
        }
        errors.check()?;
        let next = if more {
            streams.last().map(|s| StreamCursor {
                updated_at: s.updated_at,
                stream_id: s.stream_id.clone(),
            })
        } else {
            None
        };
        Ok(StreamListPage { streams, next })
    }

    /// Every type with its number of streams.
    pub(crate) fn stream_types(&self) -> IoResult<Vec<StreamTypeCount>> {
        let mut types: BTreeMap<StreamType, u64> = BTreeMap::new();
        let errors = ReadErrors::default();
        let sources: Vec<_> = self
            .runs
            .iter()
            .rev()
            .map(|r| errors.watch(r.iter_from(&[TAG_TYPES])))
            .collect();
        for (k, v) in Merge::new(sources) {
            if k.first() != Some(&TAG_TYPES) {
                break;
            }
            let (Some(v), Some(&n)) = (v, k.get(1)) else {
                continue;
            };
            let name = k
                .get(2..2 + n as usize)
                .and_then(|b| std::str::from_utf8(b).ok());
            if let (Some(name), true) = (name, v.len() == 16)
                && let Ok(t) = StreamType::parse(name)
            {
                types.insert(t, u64::from_le_bytes(v[0..8].try_into().expect("8")));
            }
        }
        errors.check()?;
        for d in self.deltas().collect::<Vec<_>>().into_iter().rev() {
            for (t, dt) in &d.types {
                types.insert(t.clone(), dt.count);
            }
        }
        Ok(types
            .into_iter()
            .filter(|&(_, streams)| streams > 0)
            .map(|(stream_type, streams)| StreamTypeCount {
                stream_type,
                streams,
            })
            .collect())
    }

    /// Every entry of the runs in key order, the newest of each key
    /// (what `check` compares).
    fn merged_runs<'a>(&'a self, errors: &'a ReadErrors) -> Merge<crate::run::Watched<'a>> {
        Merge::new(
            self.runs
                .iter()
                .rev()
                .map(|r| errors.watch(r.iter_from(&[])))
                .collect(),
        )
    }
}

/// What an index key names, for a report.
fn describe(k: &[u8], v: Option<&[u8]>) -> String {
    let number = |b: &[u8]| {
        b.get(..4)
            .map_or(0, |b| u32::from_be_bytes(b.try_into().expect("4")))
    };
    let short = |b: &[u8]| -> String {
        let n = b.first().copied().unwrap_or(0) as usize;
        String::from_utf8_lossy(b.get(1..1 + n).unwrap_or(&[])).into_owned()
    };
    let rest = &k[1.min(k.len())..];
    match k.first() {
        Some(&TAG_STREAMS) => {
            let n = rest.first().copied().unwrap_or(0) as usize;
            format!(
                "stream {}/{}",
                short(rest),
                String::from_utf8_lossy(rest.get(1 + n..).unwrap_or(&[]))
            )
        }
        Some(&TAG_KEYS) => format!("the key of stream number {}", number(rest)),
        Some(&TAG_REVISIONS) => format!(
            "revision {} of stream number {}{}",
            rest.get(4..12)
                .map_or(0, |b| u64::from_be_bytes(b.try_into().expect("8"))),
            number(rest),
            v.and_then(decode_rev)
                .map(|r| format!(" (position {})", r.position))
                .unwrap_or_default()
        ),
        Some(&TAG_TYPE_FEED) => format!(
            "position {} in the feed of type {}",
            rest.get(rest.len().saturating_sub(8)..)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_be_bytes),
            short(rest)
        ),
        Some(&TAG_LISTING) => format!("a listing entry of type {}", short(rest)),
        Some(&TAG_TYPES) => format!("the stream count of type {}", short(rest)),
        Some(&TAG_IDS) => format!(
            "an event id of stream number {}{}",
            number(rest),
            v.and_then(|v| v.try_into().ok())
                .map(|b| format!(" (revision {})", u64::from_le_bytes(b)))
                .unwrap_or_default()
        ),
        _ => "an entry of no known table".into(),
    }
}

/// Whether two feed entries of `position` differ only in their record's
/// CRC, for a record that a deletion or truncation removed: erasure
/// rewrote its bytes (a stub of the same length) after the index took the
/// original's CRC. Such a record is never read.
fn feed_erased_alike(erased: Erased<'_>, x: &FeedEntry, y: &FeedEntry) -> bool {
    x.stream == y.stream
        && x.span.offset == y.span.offset
        && x.span.len == y.span.len
        && erased(y.span)
}

/// Whether the log's record at a span is an erased stub.
pub(crate) type Erased<'a> = &'a dyn Fn(RecordSpan) -> bool;

/// Whether two values of one index key differ only in the CRC of a record
/// that a deletion or truncation removed (see [`feed_erased_alike`]).
fn erased_alike(erased: Erased<'_>, k: &[u8], a: Option<&[u8]>, b: Option<&[u8]>) -> bool {
    let (Some(a), Some(b)) = (a, b) else {
        return false;
    };
    match k.first() {
        Some(&TAG_REVISIONS) => {
            let (Some(x), Some(y)) = (decode_rev(a), decode_rev(b)) else {
                return false;
            };
            x.position == y.position
                && x.span.offset == y.span.offset
                && x.span.len == y.span.len
                && erased(y.span)
        }
        Some(&TAG_TYPE_FEED) if k.len() >= 9 => {
            let position = u64::from_be_bytes(k[k.len() - 8..].try_into().expect("8"));
            match (
                FeedEntry::decode(a, position),
                FeedEntry::decode(b, position),
            ) {
                (Some(x), Some(y)) => feed_erased_alike(erased, &x, &y),
                _ => false,
            }
        }
        _ => false,
    }
}

/// Compares two indexes over the same positions, table by table and
/// `feed.idx` entry by entry: the number of entries compared and the first
/// difference.
/// Entries that differ only in the CRC of a record that erasure rewrote
/// (`erased` reads the log) are alike.
pub(crate) fn compare(
    disk: &Index,
    reference: &Index,
    erased: Erased<'_>,
) -> IoResult<(u64, Option<String>)> {
    let (disk_errors, reference_errors) = (ReadErrors::default(), ReadErrors::default());
    let mut a = disk.merged_runs(&disk_errors).filter(|(_, v)| v.is_some());
    let mut b = reference
        .merged_runs(&reference_errors)
        .filter(|(_, v)| v.is_some());
    let mut n = 0u64;
    loop {
        let (x, y) = (a.next(), b.next());
        reference_errors.check()?;
        if let Err(e) = disk_errors.check() {
            return Ok((n, Some(format!("a run of the index does not read: {e}"))));
        }
        match (x, y) {
            (None, None) => break,
            (Some((k, v)), None) => {
                return Ok((
                    n,
                    Some(format!(
                        "the index holds {} that the log does not",
                        describe(&k, v.as_deref())
                    )),
                ));
            }
            (None, Some((k, v))) => {
                return Ok((
                    n,
                    Some(format!(
                        "the index lacks {} that the log holds",
                        describe(&k, v.as_deref())
                    )),
                ));
            }
            (Some((ka, va)), Some((kb, vb))) => {
                if ka != kb {
                    let (first, what) = if ka < kb {
                        (describe(&ka, va.as_deref()), "holds")
                    } else {
                        (describe(&kb, vb.as_deref()), "lacks")
                    };
                    let verb = if what == "holds" {
                        "that the log does not"
                    } else {
                        "that the log holds"
                    };
                    return Ok((n, Some(format!("the index {what} {first} {verb}"))));
                }
                if va != vb && !erased_alike(erased, &ka, va.as_deref(), vb.as_deref()) {
                    return Ok((
                        n,
                        Some(format!(
                            "{} differs: the index says {}, the log {}",
                            describe(&ka, va.as_deref()),
                            describe(&ka, va.as_deref()),
                            describe(&kb, vb.as_deref())
                        )),
                    ));
                }
                n += 1;
            }
        }
    }
    let last = disk.base_position;
    let mut p = 1;
    while p <= last {
        let chunk = 65_536.min(last + 1 - p);
        let x = match disk.feed_entries(p, chunk) {
            Ok(x) => x,
            // A changed entry is damage to report, not a failed check.
            Err(EmbeddedError::Corrupt { reason, .. }) => {
                return Ok((n, Some(format!("feed.idx: {reason}"))));
            }
            Err(e) => return Err(e),
        };
        let y = reference.feed_entries(p, chunk)?;
        if let Some(i) = x
            .iter()
            .zip(&y)
            .position(|(x, y)| x != y && !feed_erased_alike(erased, x, y))
        {
            return Ok((
                n,
                Some(format!(
                    "feed.idx says position {} lies at byte {} ({} bytes, CRC {:08x}, stream number {}); the log says byte {} ({} bytes, CRC {:08x}, stream number {})",
                    p + i as u64,
                    x[i].span.offset,
                    x[i].span.len,
                    x[i].span.crc,
                    x[i].stream,
                    y[i].span.offset,
                    y[i].span.len,
                    y[i].span.crc,
                    y[i].stream
                )),
            ));
        }
        n += chunk;
        p += chunk;
    }
    Ok((n, None))
}
