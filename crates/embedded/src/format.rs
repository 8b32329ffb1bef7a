//! The on-disk format of `events.log` (see `docs/storage-engine.md`).
//!
//! ```text
//! file    := file_header frame*
//! file_header (16 bytes) := "EVSTLOG\0" version:u32 reserved:u32
//! frame   := magic:u32 "EVFR" | body_len:u32 | crc:u32 | count:u32 | body
//!            crc = CRC-32 of (count as 4 LE bytes ++ body)
//! body    := first_position:u64 commit_time:i64 first_revision:u64
//!            type_len:u8 stream_type  id_len:u8 stream_id
//!            record{count}
//! record  := record_len:u32 | revision:u64 created_at:i64 event_id:[u8;16]
//!            event_type_len:u16 event_type payload_len:u32 payload
//!            metadata_len:u32 metadata
//! ```
//!
//! All integers are little-endian; times are microseconds since the Unix
//! epoch. One frame holds one append, so an append is on disk whole or not
//! at all. Indexes point at a record's bytes after its `record_len`.

use eventstore_core::{
    EventId, EventType, JsonObject, JsonValue, NewEvent, Revision, StreamId, StreamKey, StreamType,
    Timestamp,
};

/// Magic bytes at the start of the file.
pub(crate) const FILE_MAGIC: &[u8; 8] = b"EVSTLOG\0";
/// The format version this code writes. Version 1 and 2 files are read and
/// upgraded in place at open (their header's version is rewritten before
/// any frame or record of a newer kind is written): version 3 adds the
/// deletion and truncation frames and erased records.
pub(crate) const FORMAT_VERSION: u32 = 3;
/// Length of the file header.
pub(crate) const FILE_HEADER_LEN: u64 = 16;
/// Magic number that opens every frame of the first layout.
pub(crate) const FRAME_MAGIC_V1: u32 = u32::from_le_bytes(*b"EVFR");
/// Magic number that opens every frame this code writes.
pub(crate) const FRAME_MAGIC: u32 = u32::from_le_bytes(*b"EVF2");
/// Length of a frame header of the first layout.
pub(crate) const FRAME_HEADER_LEN_V1: usize = 16;
/// Length of a frame header.
pub(crate) const FRAME_HEADER_LEN: usize = 32;
/// Largest frame body accepted: 100 events of 256 KiB of data each, their
/// names and headers, with room to spare.
pub(crate) const MAX_FRAME_BODY: u32 = 64 << 20;
/// The fewest bytes one event takes in a frame (record length, revision,
/// time, id, lengths, the shortest payload `0` and metadata `{}`): bounds
/// how many events a damaged stretch of the log can have held.
pub(crate) const MIN_EVENT_BYTES: u64 = 4 + 8 + 8 + 16 + 2 + 1 + 4 + 1 + 4 + 2;

/// The file header this code writes.
pub(crate) fn file_header() -> [u8; FILE_HEADER_LEN as usize] {
    let mut h = [0u8; FILE_HEADER_LEN as usize];
    h[..8].copy_from_slice(FILE_MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h
}

/// What a frame holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameKind {
    /// One append: 1–100 events to one stream.
    Append,
    /// Positions (and stream revisions) lost to damage, written by repair
    /// so that they are never given out again.
    Lost,
    /// A stream's deletion: laid out like an append of one record, the
    /// `$stream-deleted` feed entry (format version 3).
    Delete,
    /// A stream's truncation: the events below a revision are removed; it
    /// takes no position (format version 3).
    Truncate,
}

impl FrameKind {
    fn byte(self) -> u8 {
        match self {
            FrameKind::Append => 1,
            FrameKind::Lost => 2,
            FrameKind::Delete => 3,
            FrameKind::Truncate => 4,
        }
    }
}

/// A frame's header fields.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameHeader {
    pub kind: FrameKind,
    pub body_len: u32,
    pub crc: u32,
    pub count: u32,
    /// Offset of the first byte of the group commit (one write) that wrote
    /// this frame; a frame of the first layout is its own commit.
    pub commit_start: u64,
    /// Length of the header: [`FRAME_HEADER_LEN`], or
    /// [`FRAME_HEADER_LEN_V1`] for the first layout.
    pub header_len: usize,
}

impl FrameHeader {
    /// Parses the header of a frame at `offset`; `None` when the bytes are
    /// not a valid header (wrong magic, header checksum, impossible lengths
    /// or commit start). `bytes` holds at least [`FRAME_HEADER_LEN`] bytes,
    /// or fewer at the end of the file.
    pub(crate) fn parse(bytes: &[u8], offset: u64) -> Option<Self> {
        let word = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
        if bytes.len() < FRAME_HEADER_LEN_V1 {
            return None;
        }
        match word(0) {
            FRAME_MAGIC_V1 => {
                let header = Self {
                    kind: FrameKind::Append,
                    body_len: word(4),
                    crc: word(8),
                    count: word(12),
                    commit_start: offset,
                    header_len: FRAME_HEADER_LEN_V1,
                };
                (header.body_len <= MAX_FRAME_BODY && header.count > 0).then_some(header)
            }
            FRAME_MAGIC if bytes.len() >= FRAME_HEADER_LEN => {
                if crc32fast::hash(&bytes[..28]) != word(28) {
                    return None;
                }
                let kind = match bytes[4] {
                    1 => FrameKind::Append,
                    2 => FrameKind::Lost,
                    3 => FrameKind::Delete,
                    4 => FrameKind::Truncate,
                    _ => return None,
                };
                let commit_start = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
                let header = Self {
                    kind,
                    body_len: word(8),
                    count: word(12),
                    crc: word(24),
                    commit_start,
                    header_len: FRAME_HEADER_LEN,
                };
                (header.body_len <= MAX_FRAME_BODY
                    && header.count > 0
                    && header.commit_start <= offset)
                    .then_some(header)
            }
            _ => None,
        }
    }

    /// Whether `body` is the body this header announces.
    pub(crate) fn checks(&self, body: &[u8]) -> bool {
        body.len() == self.body_len as usize && frame_crc(self.count, body) == self.crc
    }

    /// The frame's whole length.
    pub(crate) fn frame_len(&self) -> u64 {
        self.header_len as u64 + u64::from(self.body_len)
    }
}

pub(crate) fn frame_crc(count: u32, body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&count.to_le_bytes());
    h.update(body);
    h.finalize()
}

pub(crate) fn write_header(
    out: &mut [u8],
    kind: FrameKind,
    body_len: u32,
    count: u32,
    commit_start: u64,
    crc: u32,
) {
    out[0..4].copy_from_slice(&FRAME_MAGIC.to_le_bytes());
    out[4] = kind.byte();
    out[5..8].fill(0);
    out[8..12].copy_from_slice(&body_len.to_le_bytes());
    out[12..16].copy_from_slice(&count.to_le_bytes());
    out[16..24].copy_from_slice(&commit_start.to_le_bytes());
    out[24..28].copy_from_slice(&crc.to_le_bytes());
    let hcrc = crc32fast::hash(&out[..28]);
    out[28..32].copy_from_slice(&hcrc.to_le_bytes());
}

/// Where an encoded record lies in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordSpan {
    /// Offset of the record's first byte after its length prefix.
    pub offset: u64,
    /// Length of the record without its length prefix.
    pub len: u32,
    /// CRC-32 of the record's bytes (`len` bytes from `offset`): the index
    /// keeps it so that every read verifies what it loads, also under a
    /// checkpoint, where open no longer reads the log.
    pub crc: u32,
}

/// What a frame says besides its events.
pub(crate) struct FrameMeta<'a> {
    pub first_position: u64,
    pub commit_time: Timestamp,
    pub first_revision: Revision,
    pub stream: &'a StreamKey,
    /// File offset where the group commit's write starts.
    pub commit_start: u64,
}

/// Appends one frame holding `events` to `out`; `base` is the file offset
/// of `out[0]`. Returns where each record lands.
pub(crate) fn encode_frame(
    out: &mut Vec<u8>,
    base: u64,
    meta: &FrameMeta<'_>,
    events: &[NewEvent],
) -> Vec<RecordSpan> {
    encode_frame_of(out, base, meta, events, FrameKind::Append)
}

/// Appends a frame of kind [`FrameKind::Delete`]: one record, the
/// `$stream-deleted` entry (revision = the stream's last + 1, payload `{}`).
pub(crate) fn encode_delete(
    out: &mut Vec<u8>,
    base: u64,
    meta: &FrameMeta<'_>,
    entry: &NewEvent,
) -> RecordSpan {
    encode_frame_of(
        out,
        base,
        meta,
        std::slice::from_ref(entry),
        FrameKind::Delete,
    )[0]
}

fn encode_frame_of(
    out: &mut Vec<u8>,
    base: u64,
    meta: &FrameMeta<'_>,
    events: &[NewEvent],
    kind: FrameKind,
) -> Vec<RecordSpan> {
    let start = out.len();
    out.extend_from_slice(&[0u8; FRAME_HEADER_LEN]);
    let body_start = out.len();
    out.extend_from_slice(&meta.first_position.to_le_bytes());
    out.extend_from_slice(&meta.commit_time.as_micros().to_le_bytes());
    out.extend_from_slice(&meta.first_revision.get().to_le_bytes());
    put_short(out, meta.stream.stream_type.as_str());
    put_short(out, meta.stream.stream_id.as_str());
    let mut spans = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        let len_at = out.len();
        out.extend_from_slice(&[0u8; 4]);
        let record_start = out.len();
        out.extend_from_slice(&(meta.first_revision.get() + i as u64).to_le_bytes());
        out.extend_from_slice(&meta.commit_time.as_micros().to_le_bytes());
        out.extend_from_slice(e.event_id.as_uuid().as_bytes());
        let event_type = e.event_type.as_str().as_bytes();
        out.extend_from_slice(&(event_type.len() as u16).to_le_bytes());
        out.extend_from_slice(event_type);
        put_long(out, e.payload.get());
        put_long(out, e.metadata.get());
        let len = (out.len() - record_start) as u32;
        out[len_at..record_start].copy_from_slice(&len.to_le_bytes());
        spans.push(RecordSpan {
            offset: base + record_start as u64,
            len,
            crc: crc32fast::hash(&out[record_start..]),
        });
    }
    let body_len = (out.len() - body_start) as u32;
    let count = events.len() as u32;
    let crc = frame_crc(count, &out[body_start..]);
    write_header(
        &mut out[start..body_start],
        kind,
        body_len,
        count,
        meta.commit_start,
        crc,
    );
    spans
}

/// What a truncation frame records: the stream's events below `before`
/// are removed. `next_position` is the position the next event will take
/// (a truncation takes none), so that the frame, like every other, says
/// which position precedes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Truncation {
    pub next_position: u64,
    pub stream: StreamKey,
    pub before: u64,
}

/// Appends a frame of kind [`FrameKind::Truncate`].
pub(crate) fn encode_truncate(out: &mut Vec<u8>, commit_start: u64, t: &Truncation) {
    let start = out.len();
    out.extend_from_slice(&[0u8; FRAME_HEADER_LEN]);
    let body_start = out.len();
    out.extend_from_slice(&t.next_position.to_le_bytes());
    out.extend_from_slice(&t.before.to_le_bytes());
    put_short(out, t.stream.stream_type.as_str());
    put_short(out, t.stream.stream_id.as_str());
    let body_len = (out.len() - body_start) as u32;
    let crc = frame_crc(1, &out[body_start..]);
    write_header(
        &mut out[start..body_start],
        FrameKind::Truncate,
        body_len,
        1,
        commit_start,
        crc,
    );
}

/// Takes a CRC-checked truncation body apart.
pub(crate) fn decode_truncate(body: &[u8]) -> Result<Truncation, String> {
    let mut r = Reader::new(body);
    let next_position = r.u64()?;
    let before = r.u64()?;
    let stream_type = r.short_str()?;
    let stream_id = r.short_str()?;
    let stream = StreamKey::new(
        StreamType::parse(stream_type).map_err(|e| e.to_string())?,
        StreamId::parse(stream_id).map_err(|e| e.to_string())?,
    );
    if r.pos != body.len() {
        return Err("trailing bytes after a truncation".into());
    }
    if next_position == 0 || before < 2 {
        return Err(format!(
            "a truncation before revision {before} at position {next_position}"
        ));
    }
    Ok(Truncation {
        next_position,
        stream,
        before,
    })
}

/// The event-type length that marks an erased record: such a record keeps
/// its revision, time and event id, and every byte after this marker is
/// [`ERASED_FILL`] (the event type, payload and metadata are gone). Event
/// types are at most a few hundred bytes, so no live record has it.
pub(crate) const ERASED_MARK: u16 = 0xFFFF;
/// What an erased record's removed bytes are overwritten with: not zero,
/// so that an intact frame still holds no run of zeroes that the torn-tail
/// rule could take for an unwritten sector, and not text.
pub(crate) const ERASED_FILL: u8 = 0xFF;
/// Bytes of a record before its event-type length.
const RECORD_HEAD_LEN: usize = 8 + 8 + 16;

/// Whether the record (the bytes after its length prefix) is erased.
pub(crate) fn is_erased(record: &[u8]) -> bool {
    record.len() >= RECORD_HEAD_LEN + 2
        && u16::from_le_bytes([record[RECORD_HEAD_LEN], record[RECORD_HEAD_LEN + 1]]) == ERASED_MARK
}

/// Turns a record (the bytes after its length prefix) into its erased stub
/// of the same length: revision, time and event id kept, the rest replaced.
pub(crate) fn erase_record(record: &mut [u8]) {
    record[RECORD_HEAD_LEN..RECORD_HEAD_LEN + 2].copy_from_slice(&ERASED_MARK.to_le_bytes());
    record[RECORD_HEAD_LEN + 2..].fill(ERASED_FILL);
}

/// Recomputes the checksums of a frame (`frame` = header and body) after
/// its body changed: the body CRC, and for the current layout the
/// header's own CRC. The header's other fields stay as they are.
pub(crate) fn reseal(frame: &mut [u8], header: &FrameHeader) {
    let body = &frame[header.header_len..];
    let crc = frame_crc(header.count, body);
    if header.header_len == FRAME_HEADER_LEN {
        frame[24..28].copy_from_slice(&crc.to_le_bytes());
        let hcrc = crc32fast::hash(&frame[..28]);
        frame[28..32].copy_from_slice(&hcrc.to_le_bytes());
    } else {
        frame[8..12].copy_from_slice(&crc.to_le_bytes());
    }
}

/// What a lost-frame records: positions that were lost to damage, and the
/// revisions of streams known to have been lost with them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LostRange {
    /// First and last lost position (an empty range when `first > last`).
    pub first_position: u64,
    pub last_position: u64,
    /// Streams with their first and last lost revision.
    pub streams: Vec<(StreamKey, u64, u64)>,
}

/// Appends a frame of kind [`FrameKind::Lost`] to `out`; `commit_start` is
/// the file offset of the write it belongs to.
pub(crate) fn encode_lost(out: &mut Vec<u8>, commit_start: u64, lost: &LostRange) {
    let start = out.len();
    out.extend_from_slice(&[0u8; FRAME_HEADER_LEN]);
    let body_start = out.len();
    out.extend_from_slice(&lost.first_position.to_le_bytes());
    out.extend_from_slice(&lost.last_position.to_le_bytes());
    out.extend_from_slice(&(lost.streams.len() as u32).to_le_bytes());
    for (key, first, last) in &lost.streams {
        put_short(out, key.stream_type.as_str());
        put_short(out, key.stream_id.as_str());
        out.extend_from_slice(&first.to_le_bytes());
        out.extend_from_slice(&last.to_le_bytes());
    }
    let body_len = (out.len() - body_start) as u32;
    let crc = frame_crc(1, &out[body_start..]);
    write_header(
        &mut out[start..body_start],
        FrameKind::Lost,
        body_len,
        1,
        commit_start,
        crc,
    );
}

/// Takes a CRC-checked lost-frame body apart.
pub(crate) fn decode_lost(body: &[u8]) -> Result<LostRange, String> {
    let mut r = Reader::new(body);
    let first_position = r.u64()?;
    let last_position = r.u64()?;
    let n = r.u32()?;
    let mut streams = Vec::new();
    for _ in 0..n {
        let stream_type = r.short_str()?;
        let stream_id = r.short_str()?;
        let key = StreamKey::new(
            StreamType::parse(stream_type).map_err(|e| e.to_string())?,
            StreamId::parse(stream_id).map_err(|e| e.to_string())?,
        );
        let first = r.u64()?;
        let last = r.u64()?;
        if first == 0 || last < first {
            return Err(format!("lost revisions {first}..{last} of {key}"));
        }
        streams.push((key, first, last));
    }
    if r.pos != body.len() {
        return Err("trailing bytes after a lost range".into());
    }
    Ok(LostRange {
        first_position,
        last_position,
        streams,
    })
}

fn put_short(out: &mut Vec<u8>, s: &str) {
    // Stream types and ids are at most 128 bytes (validated by their types).
    out.push(s.len() as u8);
    out.extend_from_slice(s.as_bytes());
}

fn put_long(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A frame body taken apart, as recovery needs it.
pub(crate) struct DecodedFrame {
    pub first_position: u64,
    pub commit_time: Timestamp,
    pub first_revision: Revision,
    pub stream: StreamKey,
    /// Event id and span of each record (spans relative to the body start).
    pub events: Vec<(EventId, RecordSpan)>,
}

/// Takes a CRC-checked frame body apart.
pub(crate) fn decode_frame(body: &[u8], count: u32) -> Result<DecodedFrame, String> {
    let mut r = Reader::new(body);
    let first_position = r.u64()?;
    let commit_time = Timestamp::from_micros(r.i64()?);
    let first_revision = Revision::new(r.u64()?);
    let stream_type = r.short_str()?;
    let stream_id = r.short_str()?;
    let stream = StreamKey::new(
        StreamType::parse(stream_type).map_err(|e| e.to_string())?,
        StreamId::parse(stream_id).map_err(|e| e.to_string())?,
    );
    let mut events = Vec::with_capacity(count as usize);
    for i in 0..count {
        let len = r.u32()?;
        let offset = r.pos as u64;
        let record = r.take(len as usize)?;
        let event = record_head(record)?;
        if event.revision.get() != first_revision.get() + u64::from(i) {
            return Err(format!(
                "record {i} has revision {}, expected {}",
                event.revision,
                first_revision.get() + u64::from(i)
            ));
        }
        if event.created_at != commit_time {
            return Err(format!("record {i} has another time than its frame"));
        }
        events.push((
            event.event_id,
            RecordSpan {
                offset,
                len,
                crc: crc32fast::hash(record),
            },
        ));
    }
    if r.pos != body.len() {
        return Err("trailing bytes after the last record".into());
    }
    Ok(DecodedFrame {
        first_position,
        commit_time,
        first_revision,
        stream,
        events,
    })
}

/// The fields of a record that recovery needs.
struct RecordHead {
    revision: Revision,
    created_at: Timestamp,
    event_id: EventId,
}

/// Reads a record's head and checks that its lengths add up, without
/// validating its text (the frame's CRC vouches for it; reads validate).
fn record_head(bytes: &[u8]) -> Result<RecordHead, String> {
    let mut r = Reader::new(bytes);
    let revision = Revision::new(r.u64()?);
    let created_at = Timestamp::from_micros(r.i64()?);
    let id: [u8; 16] = r.take(16)?.try_into().expect("16 bytes");
    let type_len = r.u16()?;
    if type_len == ERASED_MARK {
        // An erased stub: the rest is fill.
        if bytes[r.pos..].iter().any(|&b| b != ERASED_FILL) {
            return Err("an erased record holds other bytes than its fill".into());
        }
        return Ok(RecordHead {
            revision,
            created_at,
            event_id: EventId::from(uuid::Uuid::from_bytes(id)),
        });
    }
    r.take(type_len as usize)?;
    let payload_len = r.u32()?;
    r.take(payload_len as usize)?;
    let metadata_len = r.u32()?;
    r.take(metadata_len as usize)?;
    if r.pos != bytes.len() {
        return Err("trailing bytes in a record".into());
    }
    Ok(RecordHead {
        revision,
        created_at,
        event_id: EventId::from(uuid::Uuid::from_bytes(id)),
    })
}

/// One record's fields.
pub(crate) struct DecodedRecord {
    pub revision: Revision,
    pub created_at: Timestamp,
    pub event_id: EventId,
    pub event_type: EventType,
    pub payload: JsonValue,
    pub metadata: JsonObject,
}

/// Decodes one record (the bytes after its length prefix).
pub(crate) fn decode_record(bytes: &[u8]) -> Result<DecodedRecord, String> {
    let mut r = Reader::new(bytes);
    let revision = Revision::new(r.u64()?);
    let created_at = Timestamp::from_micros(r.i64()?);
    let id: [u8; 16] = r.take(16)?.try_into().expect("16 bytes");
    let event_id = EventId::from(uuid::Uuid::from_bytes(id));
    let type_len = r.u16()?;
    if type_len == ERASED_MARK {
        return Err(format!(
            "revision {revision} was erased (a read of a removed event; the index should have skipped it)"
        ));
    }
    let event_type = EventType::parse(r.str(type_len as usize)?).map_err(|e| e.to_string())?;
    let payload_len = r.u32()?;
    let payload = JsonValue::from_text(r.str(payload_len as usize)?).map_err(|e| e.to_string())?;
    let metadata_len = r.u32()?;
    let metadata =
        JsonObject::from_text(r.str(metadata_len as usize)?).map_err(|e| e.to_string())?;
    if r.pos != bytes.len() {
        return Err("trailing bytes in a record".into());
    }
    Ok(DecodedRecord {
        revision,
        created_at,
        event_id,
        event_type,
        payload,
        metadata,
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| format!("truncated at byte {} (wanted {n} more)", self.pos))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn str(&mut self, n: usize) -> Result<&'a str, String> {
        std::str::from_utf8(self.take(n)?).map_err(|e| e.to_string())
    }

    fn short_str(&mut self) -> Result<&'a str, String> {
        let n = self.take(1)?[0] as usize;
        self.str(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (StreamKey, Vec<NewEvent>) {
        let key = StreamKey::new(
            StreamType::parse("order").unwrap(),
            StreamId::parse("o-1").unwrap(),
        );
        let mut e = NewEvent::new(
            EventType::parse("placed").unwrap(),
            JsonValue::from_text(r#"{"b":1, "a":[1.50]}"#).unwrap(),
        );
        e.metadata = JsonObject::from_text(r#"{"by":"me"}"#).unwrap();
        let f = NewEvent::new(
            EventType::parse("paid ✓").unwrap(),
            JsonValue::from_text("\"x\"").unwrap(),
        );
        (key, vec![e, f])
    }

    #[test]
    fn a_frame_round_trips() {
        let (key, events) = sample();
        let mut out = vec![0u8; 5];
        let meta = FrameMeta {
            first_position: 7,
            commit_time: Timestamp::from_micros(1_700_000_000_000_001),
            first_revision: Revision::new(3),
            stream: &key,
            commit_start: 100,
        };
        let spans = encode_frame(&mut out, 100, &meta, &events);
        let header = FrameHeader::parse(&out[5..37], 105).unwrap();
        assert_eq!(header.commit_start, 100);
        let body = &out[37..];
        assert!(header.checks(body));
        let frame = decode_frame(body, header.count).unwrap();
        assert_eq!(frame.stream, key);
        assert_eq!(frame.first_position, 7);
        assert_eq!(frame.first_revision, Revision::new(3));
        for ((id, rel), (span, e)) in frame.events.iter().zip(spans.iter().zip(&events)) {
            assert_eq!(*id, e.event_id);
            assert_eq!(span.offset - 100 - 37, rel.offset);
            let s = (span.offset - 100) as usize;
            let rec = decode_record(&out[s..s + span.len as usize]).unwrap();
            assert_eq!(rec.payload, e.payload);
            assert_eq!(rec.metadata, e.metadata);
            assert_eq!(rec.event_type, e.event_type);
            assert_eq!(rec.created_at, meta.commit_time);
        }
    }

    #[test]
    fn a_lost_range_round_trips() {
        let (key, _) = sample();
        let lost = LostRange {
            first_position: 4,
            last_position: 9,
            streams: vec![(key, 2, 3)],
        };
        let mut out = Vec::new();
        encode_lost(&mut out, 0, &lost);
        let header = FrameHeader::parse(&out[..32], 0).unwrap();
        assert_eq!(header.kind, FrameKind::Lost);
        assert!(header.checks(&out[32..]));
        assert_eq!(decode_lost(&out[32..]).unwrap(), lost);
    }

    #[test]
    fn a_flipped_bit_fails_the_check() {
        let (key, events) = sample();
        let mut out = Vec::new();
        let meta = FrameMeta {
            first_position: 1,
            commit_time: Timestamp::now(),
            first_revision: Revision::new(1),
            stream: &key,
            commit_start: 0,
        };
        encode_frame(&mut out, 0, &meta, &events);
        let header = FrameHeader::parse(&out[..32], 0).unwrap();
        for i in 0..32 {
            let mut bad = out.clone();
            bad[i] ^= 0x10;
            assert!(
                FrameHeader::parse(&bad[..32], 0).is_none(),
                "flip at {i} of the header must be detected"
            );
        }
        for i in 32..out.len() {
            let mut bad = out.clone();
            bad[i] ^= 0x10;
            assert!(!header.checks(&bad[32..]), "flip at {i} must be detected");
        }
        assert!(
            FrameHeader::parse(&[0u8; 32], 0).is_none(),
            "zeroes are not a frame"
        );
        assert!(
            FrameHeader::parse(&out[..32], 0).is_some()
                && FrameHeader::parse(
                    &{
                        let mut o = out.clone();
                        o[16..24].copy_from_slice(&5u64.to_le_bytes());
                        o
                    }[..32],
                    0
                )
                .is_none(),
            "a commit start after the frame is refused"
        );
    }
}
