//! Reading a log back: replay at open, the rule that tells a torn tail from
//! damage, `check` and `repair`. The rule is written down, with its
//! invariants, in `docs/storage-engine.md` ("Torn tail or damage").

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use eventstore_core::{StreamKey, StreamType};

use crate::EmbeddedError;
use crate::format::{
    self, FILE_HEADER_LEN, FRAME_HEADER_LEN, FrameHeader, FrameKind, LostRange, MIN_EVENT_BYTES,
    RecordSpan,
};
use crate::index::{Commit, Index, MAX_LOST_POSITIONS};
use crate::vfs::{SECTOR, StorageFile};

/// The most bytes one group commit writes: whole frames, until they pass
/// this (see `writer::MAX_COMMIT_BYTES`), plus one frame of at most the
/// largest body.
pub(crate) const MAX_TORN_TAIL: u64 = crate::writer::MAX_COMMIT_BYTES as u64
    + FRAME_HEADER_LEN as u64
    + format::MAX_FRAME_BODY as u64;

/// A run of zero bytes starting at a sector boundary or where the damage
/// starts, and reaching a sector boundary or the end of the damage, marks
/// a sector that a crash never wrote (the file was extended but the data
/// did not reach the disk). It is at least this long so that no change of a
/// single byte can produce one (every frame starts with its magic and ends
/// with the `}` of its last record's metadata).
const MIN_ZERO_RUN_AT_END: u64 = 2;

/// Reads the log in large chunks.
struct LogReader<'a> {
    file: &'a dyn StorageFile,
    len: u64,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    at: u64,
}

const CHUNK: u64 = 1 << 20;

impl<'a> LogReader<'a> {
    fn new(file: &'a dyn StorageFile, len: u64) -> Self {
        Self {
            file,
            len,
            buf: Vec::new(),
            at: 0,
        }
    }

    /// The bytes `[offset, offset + n)`, or fewer at the end of the file.
    fn get(&mut self, offset: u64, n: u64, path: &Path) -> Result<&[u8], EmbeddedError> {
        let end = (offset + n).min(self.len);
        if offset < self.at || end > self.at + self.buf.len() as u64 {
            let want = (end - offset).max(CHUNK.min(self.len - offset));
            self.buf.resize(want as usize, 0);
            self.file
                .read_exact_at(&mut self.buf, offset)
                .map_err(|e| EmbeddedError::io(format!("reading {}", path.display()), e))?;
            self.at = offset;
        }
        let from = (offset - self.at) as usize;
        Ok(&self.buf[from..from + (end - offset) as usize])
    }
}

/// An intact frame: its header parses (and checks, for this layout) and
/// its body passes its checksum.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameAt {
    pub offset: u64,
    pub header: FrameHeader,
}

impl FrameAt {
    fn end(&self) -> u64 {
        self.offset + self.header.frame_len()
    }

    fn body_offset(&self) -> u64 {
        self.offset + self.header.header_len as u64
    }
}

/// The body of an intact frame.
fn frame_body(r: &mut LogReader<'_>, f: &FrameAt, path: &Path) -> Result<Vec<u8>, EmbeddedError> {
    Ok(r.get(f.body_offset(), u64::from(f.header.body_len), path)?
        .to_vec())
}

/// Reads the intact frame at `offset`, if there is one.
fn frame_at(
    r: &mut LogReader<'_>,
    offset: u64,
    path: &Path,
) -> Result<Option<(FrameAt, Vec<u8>)>, EmbeddedError> {
    let head = r.get(offset, FRAME_HEADER_LEN as u64, path)?;
    let Some(header) = FrameHeader::parse(head, offset) else {
        return Ok(None);
    };
    let body_at = offset + header.header_len as u64;
    if body_at + u64::from(header.body_len) > r.len {
        return Ok(None);
    }
    let body = r.get(body_at, u64::from(header.body_len), path)?;
    if !header.checks(body) {
        return Ok(None);
    }
    Ok(Some((FrameAt { offset, header }, body.to_vec())))
}

/// One stretch of the log that is not intact frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedStretch {
    /// First byte.
    pub start: u64,
    /// One past the last byte (the next intact frame, or the end of file).
    pub end: u64,
    /// Whether a crash can explain it: a frame cut short by the end of the
    /// file, or sectors that were never written.
    pub crash_explained: bool,
}

/// Finds every intact frame in `[from, len)`, scanning byte by byte past
/// damage, and the damaged stretches between them.
fn scan(
    r: &mut LogReader<'_>,
    from: u64,
    path: &Path,
) -> Result<(Vec<FrameAt>, Vec<DamagedStretch>), EmbeddedError> {
    let len = r.len;
    let mut frames = Vec::new();
    let mut damaged = Vec::new();
    let mut offset = from;
    let mut damage_start: Option<u64> = None;
    while offset < len {
        let found = if len - offset >= format::FRAME_HEADER_LEN_V1 as u64 {
            frame_at(r, offset, path)?
        } else {
            None
        };
        match found {
            Some((f, _)) => {
                if let Some(start) = damage_start.take() {
                    let crash_explained = explained_by_crash(r, start, offset, path)?;
                    damaged.push(DamagedStretch {
                        start,
                        end: offset,
                        crash_explained,
                    });
                }
                offset = f.end();
                frames.push(f);
            }
            None => {
                damage_start.get_or_insert(offset);
                offset += 1;
            }
        }
    }
    if let Some(start) = damage_start {
        let crash_explained = explained_by_crash(r, start, len, path)?;
        damaged.push(DamagedStretch {
            start,
            end: len,
            crash_explained,
        });
    }
    Ok((frames, damaged))
}

/// Whether the damaged stretch `[start, end)` is what a crash leaves: a
/// frame cut short by the end of the file, or a run of zeroes (sectors the
/// disk never wrote) starting where the stretch starts or at a sector
/// boundary, at least a sector long or reaching the stretch's end or the
/// next sector boundary (and at least 2 bytes long).
fn explained_by_crash(
    r: &mut LogReader<'_>,
    start: u64,
    end: u64,
    path: &Path,
) -> Result<bool, EmbeddedError> {
    if end == r.len {
        if end - start < format::FRAME_HEADER_LEN_V1 as u64 {
            return Ok(true);
        }
        let head = r.get(start, FRAME_HEADER_LEN as u64, path)?;
        if let Some(h) = FrameHeader::parse(head, start) {
            if start + h.frame_len() > end {
                return Ok(true);
            }
        } else if end - start < FRAME_HEADER_LEN as u64 && head.len() >= 4 && head[..4] == *b"EVF2"
        {
            // A header of this layout cut short by the end of the file.
            return Ok(true);
        }
    }
    let bytes = r.get(start, end - start, path)?.to_vec();
    let mut i = 0u64;
    let n = end - start;
    while i < n {
        let at = start + i;
        if bytes[i as usize] == 0 && (i == 0 || at.is_multiple_of(SECTOR)) {
            let run = bytes[i as usize..].iter().take_while(|&&b| b == 0).count() as u64;
            // The rest of the sector (or of the stretch) is all zeroes.
            let to_boundary = (SECTOR - at % SECTOR).min(n - i);
            if run >= to_boundary && run >= MIN_ZERO_RUN_AT_END.min(n) {
                return Ok(true);
            }
            if run == 1 && to_boundary == 1 && one_unwritten_byte(&bytes, start, i as usize) {
                return Ok(true);
            }
            i += run.max(1);
        } else {
            i += 1;
        }
    }
    Ok(false)
}

/// Whether the stretch is one frame whose only fault is a zero byte alone
/// in its sector, at `i`: its first byte (the last of a sector) or its last
/// byte (the first of a sector). A commit torn by a power cut leaves that
/// when the disk wrote every sector of the frame but that one. It is
/// accepted only when putting a byte back there makes the whole frame
/// check (header and body CRCs), so the frame is otherwise exactly as
/// written. Shorter than `MIN_ZERO_RUN_AT_END`, this is the one one-byte run
/// accepted, and only in that shape.
fn one_unwritten_byte(bytes: &[u8], start: u64, i: usize) -> bool {
    if bytes.len() < FRAME_HEADER_LEN || bytes[i] != 0 || (i != 0 && i != bytes.len() - 1) {
        return false;
    }
    let mut frame = bytes.to_vec();
    let candidates: Vec<u8> = if i == 0 {
        vec![format::FRAME_MAGIC.to_le_bytes()[0]]
    } else {
        (1..=255).collect()
    };
    candidates.into_iter().any(|b| {
        frame[i] = b;
        FrameHeader::parse(&frame[..FRAME_HEADER_LEN], start).is_some_and(|h| {
            h.frame_len() == frame.len() as u64 && h.checks(&frame[h.header_len..])
        })
    })
}

/// What the replay at open found.
pub(crate) struct Replayed {
    pub index: Index,
    /// End of the last frame kept.
    pub end: u64,
    /// Length of the file.
    pub len: u64,
    /// The last frame kept (0: none) and where its commit starts.
    pub last_frame: u64,
    pub commit_start: u64,
    /// Frames and events replayed.
    pub frames: u64,
    pub events: u64,
}

/// Applies a frame's body to the index.
fn apply_frame(index: &mut Index, f: &FrameAt, body: &[u8]) -> Result<(), String> {
    match f.header.kind {
        FrameKind::Lost => index.apply_lost(&format::decode_lost(body)?),
        FrameKind::Truncate => index
            .apply_truncate(&format::decode_truncate(body)?)
            .map(|_| ()),
        FrameKind::Delete => {
            let frame = format::decode_frame(body, f.header.count)?;
            let [(_, span)] = frame.events[..] else {
                return Err("a deletion frame holds one record".into());
            };
            let stream = match index.stream(&frame.stream).map_err(|e| e.to_string())? {
                Some((k, _)) => k,
                None => Arc::new(frame.stream),
            };
            index
                .apply_delete(&crate::index::DeleteCommit {
                    stream,
                    commit_time: frame.commit_time,
                    revision: frame.first_revision,
                    position: frame.first_position,
                    span: RecordSpan {
                        offset: f.body_offset() + span.offset,
                        ..span
                    },
                })
                .map(|_| ())
        }
        FrameKind::Append => {
            let frame = format::decode_frame(body, f.header.count)?;
            let body_offset = f.body_offset();
            let stream = match index.stream(&frame.stream).map_err(|e| e.to_string())? {
                Some((k, _)) => k,
                None => Arc::new(frame.stream),
            };
            let commit = Commit {
                stream,
                commit_time: frame.commit_time,
                first_revision: frame.first_revision,
                first_position: frame.first_position,
                events: frame
                    .events
                    .into_iter()
                    .map(|(id, span)| {
                        (
                            id,
                            RecordSpan {
                                offset: body_offset + span.offset,
                                ..span
                            },
                        )
                    })
                    .collect(),
            };
            index.apply(&commit).map(|_| ())
        }
    }
}

/// The end and last position of the intact frame at `offset`, if there is
/// one (how open checks a checkpoint against the log).
pub(crate) fn probe_frame(file: &dyn StorageFile, path: &Path, offset: u64) -> Option<(u64, u64)> {
    let len = file.len().ok()?;
    if offset < FILE_HEADER_LEN || offset >= len {
        return None;
    }
    let mut r = LogReader::new(file, len);
    let (f, body) = frame_at(&mut r, offset, path).ok()??;
    let last = match f.header.kind {
        FrameKind::Append | FrameKind::Delete => {
            let d = format::decode_frame(&body, f.header.count).ok()?;
            d.first_position + u64::from(f.header.count) - 1
        }
        FrameKind::Truncate => format::decode_truncate(&body).ok()?.next_position - 1,
        FrameKind::Lost => {
            let l = format::decode_lost(&body).ok()?;
            if l.first_position <= l.last_position {
                l.last_position
            } else {
                l.first_position.checked_sub(1)?
            }
        }
    };
    Some((f.end(), last))
}

/// Deletion and truncation frames with their bodies and ends.
pub(crate) type LifecycleFrames = Vec<(FrameKind, Vec<u8>, u64)>;

/// The deletion and truncation frames between `from` (the start of a
/// frame) and `end` (the end of one), with their bodies and ends: what
/// open hands the erasure thread; and where the frames stopped being
/// readable, if they did before `end`.
pub(crate) fn frames_between(
    file: &dyn StorageFile,
    path: &Path,
    from: u64,
    end: u64,
) -> Result<(LifecycleFrames, Option<u64>), EmbeddedError> {
    let mut r = LogReader::new(file, end);
    let mut offset = from;
    let mut out = Vec::new();
    while offset < end {
        let found = if end - offset >= format::FRAME_HEADER_LEN_V1 as u64 {
            frame_at(&mut r, offset, path)?
        } else {
            None
        };
        let Some((f, body)) = found else {
            return Ok((out, Some(offset)));
        };
        if matches!(f.header.kind, FrameKind::Delete | FrameKind::Truncate) {
            out.push((f.header.kind, body, f.end()));
        }
        offset = f.end();
    }
    Ok((out, None))
}

/// Where a replay starts: after a checkpoint's last frame.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReplayFrom {
    pub offset: u64,
    /// The last frame before `offset` (0: none) and its commit's start.
    pub last_frame: u64,
    pub commit_start: u64,
    /// Stop at this offset (the end of a frame), as if the log ended there.
    pub until: u64,
}

/// A frame the replay took in: its offset, end and commit's start.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Replaying {
    pub offset: u64,
    pub end: u64,
    pub commit_start: u64,
}

/// Hook called after each frame of a replay (open takes checkpoints there).
pub(crate) type OnFrame<'a> = &'a mut dyn FnMut(&mut Index, Replaying) -> Result<(), EmbeddedError>;

/// Replays the log from `from` into `index`, cutting nothing: returns where
/// the kept frames end. A torn tail (see the module docs) ends the log;
/// anything else that is not an intact frame is
/// [`EmbeddedError::Corrupt`], naming the file, the offset, and the
/// positions and streams affected.
pub(crate) fn replay(
    file: &dyn StorageFile,
    path: &Path,
    mut index: Index,
    from: ReplayFrom,
    on_frame: OnFrame<'_>,
) -> Result<Replayed, EmbeddedError> {
    let len = file
        .len()
        .map_err(|e| EmbeddedError::io(format!("reading the size of {}", path.display()), e))?
        .min(from.until);
    let mut r = LogReader::new(file, len);
    let mut offset = from.offset;
    let mut last_frame = from.last_frame;
    let mut frames = 0;
    let mut events = 0;
    // The commit of the frame before: a frame continues it or starts its own.
    let mut commit_start = (from.last_frame != 0).then_some(from.commit_start);
    let corrupt = |offset: u64, reason: String| EmbeddedError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason,
    };
    while offset < len {
        let found = if len - offset >= format::FRAME_HEADER_LEN_V1 as u64 {
            frame_at(&mut r, offset, path)?
        } else {
            None
        };
        let Some((f, body)) = found else { break };
        if f.header.commit_start != offset && Some(f.header.commit_start) != commit_start {
            return Err(corrupt(
                offset,
                format!(
                    "the frame says its commit starts at byte {}, which is not where a commit of the log starts",
                    f.header.commit_start
                ),
            ));
        }
        commit_start = Some(f.header.commit_start);
        apply_frame(&mut index, &f, &body).map_err(|reason| corrupt(offset, reason))?;
        frames += 1;
        if f.header.kind == FrameKind::Append {
            events += u64::from(f.header.count);
        }
        last_frame = offset;
        offset = f.end();
        on_frame(
            &mut index,
            Replaying {
                offset: f.offset,
                end: offset,
                commit_start: f.header.commit_start,
            },
        )?;
    }
    if offset < len {
        let (after, damaged) = scan(&mut r, offset, path)?;
        let same_commit = |f: &FrameAt| {
            f.header.header_len == FRAME_HEADER_LEN
                && (Some(f.header.commit_start) == commit_start || f.header.commit_start == offset)
        };
        let torn = after.iter().all(same_commit)
            && damaged.iter().all(|d| d.crash_explained)
            && len - offset <= MAX_TORN_TAIL;
        if !torn {
            index.finish_lost()?;
            return Err(corrupt(
                offset,
                describe_damage(&mut r, &index, offset, &after, &damaged, path)?,
            ));
        }
    }
    index.finish_lost()?;
    Ok(Replayed {
        index,
        end: offset,
        len,
        last_frame,
        commit_start: commit_start.unwrap_or(0),
        frames,
        events,
    })
}

/// The reason given when open refuses: what is damaged, what follows, and
/// which positions and streams are affected.
fn describe_damage(
    r: &mut LogReader<'_>,
    index: &Index,
    offset: u64,
    after: &[FrameAt],
    damaged: &[DamagedStretch],
    path: &Path,
) -> Result<String, EmbeddedError> {
    let mut out = String::new();
    let first = &damaged[0];
    out.push_str(&format!(
        "bytes {}..{} are not an intact frame ({}); ",
        first.start,
        first.end,
        if first.crash_explained {
            "they could be a crash's, but intact data of a later commit follows"
        } else {
            "a crash cannot leave them: the data was damaged after it was written"
        }
    ));
    let last = index.last_position();
    match after.first() {
        Some(f) => {
            let (p, _) = frame_positions(r, f, path)?;
            let lost_to = p.saturating_sub(1);
            if lost_to > last {
                out.push_str(&format!(
                    "positions {}–{lost_to} are unreadable; ",
                    last + 1
                ));
            }
            let mut streams: Vec<String> = Vec::new();
            let mut last_after = 0;
            for f in after {
                let (first_pos, key) = frame_positions(r, f, path)?;
                last_after = last_after.max(first_pos + u64::from(f.header.count) - 1);
                if let Some(k) = key
                    && !streams.contains(&k.to_string())
                    && streams.len() < 10
                {
                    streams.push(k.to_string());
                }
            }
            out.push_str(&format!(
                "{} intact frames follow (positions up to {last_after}, streams {}{}); ",
                after.len(),
                streams.join(", "),
                if streams.len() == 10 { ", …" } else { "" }
            ));
        }
        None => out.push_str(&format!(
            "{} bytes to the end of the file, after position {last}; ",
            r.len - offset
        )),
    }
    if let Some(guess) = guess_damaged_frame(r, offset, path)? {
        out.push_str(&format!("the damaged frame reads as {guess}; "));
    }
    out.push_str(
        "the store will not open it: run `event-store check` for a report and \
         `event-store repair` to keep every intact frame",
    );
    Ok(out)
}

/// The first position and stream of an intact frame.
fn frame_positions(
    r: &mut LogReader<'_>,
    f: &FrameAt,
    path: &Path,
) -> Result<(u64, Option<StreamKey>), EmbeddedError> {
    Ok(positions_of(f, &frame_body(r, f, path)?))
}

/// The first position and stream of a frame, from its body.
fn positions_of(f: &FrameAt, body: &[u8]) -> (u64, Option<StreamKey>) {
    match f.header.kind {
        FrameKind::Append | FrameKind::Delete => match format::decode_frame(body, f.header.count) {
            Ok(d) => (d.first_position, Some(d.stream)),
            Err(_) => (0, None),
        },
        FrameKind::Truncate => match format::decode_truncate(body) {
            Ok(t) => (t.next_position, Some(t.stream)),
            Err(_) => (0, None),
        },
        FrameKind::Lost => match format::decode_lost(body) {
            Ok(l) => (l.first_position, None),
            Err(_) => (0, None),
        },
    }
}

/// What a damaged frame seems to hold, read from its body's head without
/// trusting its checksum: positions, stream and revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedFrameGuess {
    /// First position the frame seems to hold.
    pub first_position: u64,
    /// How many events.
    pub count: u64,
    /// The stream.
    pub stream: StreamKey,
    /// First revision.
    pub first_revision: u64,
}

impl fmt::Display for DamagedFrameGuess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "positions {}–{} of stream {} (revisions {}–{})",
            self.first_position,
            self.first_position + self.count - 1,
            self.stream,
            self.first_revision,
            self.first_revision + self.count - 1
        )
    }
}

fn guess_damaged_frame(
    r: &mut LogReader<'_>,
    offset: u64,
    path: &Path,
) -> Result<Option<DamagedFrameGuess>, EmbeddedError> {
    let bytes = r.get(offset, FRAME_HEADER_LEN as u64 + 24 + 2 + 256, path)?;
    if bytes.len() < FRAME_HEADER_LEN + 26 || bytes[..4] != *b"EVF2" || bytes[4] != 1 {
        return Ok(None);
    }
    let count = u64::from(u32::from_le_bytes(bytes[12..16].try_into().expect("4")));
    let body = &bytes[FRAME_HEADER_LEN..];
    let first_position = u64::from_le_bytes(body[0..8].try_into().expect("8"));
    let first_revision = u64::from_le_bytes(body[16..24].try_into().expect("8"));
    let mut at = 24;
    let mut short = || -> Option<String> {
        let n = *body.get(at)? as usize;
        let s = std::str::from_utf8(body.get(at + 1..at + 1 + n)?).ok()?;
        at += 1 + n;
        Some(s.to_string())
    };
    let (Some(t), Some(i)) = (short(), short()) else {
        return Ok(None);
    };
    let (Ok(t), Ok(i)) = (StreamType::parse(t), eventstore_core::StreamId::parse(i)) else {
        return Ok(None);
    };
    if count == 0 || count > 100 || first_position == 0 || first_revision == 0 {
        return Ok(None);
    }
    Ok(Some(DamagedFrameGuess {
        first_position,
        count,
        stream: StreamKey::new(t, i),
        first_revision,
    }))
}

/// Positions and events lost to one damaged stretch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostEvents {
    /// The damaged bytes.
    pub stretch: DamagedStretch,
    /// First and last position that the stretch may have held (an empty
    /// range when `first > last`): never given out again.
    pub first_position: u64,
    /// See `first_position`.
    pub last_position: u64,
    /// Streams known to have lost revisions there, with the revisions.
    pub streams: Vec<(StreamKey, u64, u64)>,
    /// What the damaged frame's head seems to say, when readable.
    pub guess: Option<DamagedFrameGuess>,
}

impl fmt::Display for LostEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bytes {}..{} ({} bytes, {}): ",
            self.stretch.start,
            self.stretch.end,
            self.stretch.end - self.stretch.start,
            if self.stretch.crash_explained {
                "unwritten or cut short"
            } else {
                "damaged"
            }
        )?;
        if self.first_position <= self.last_position {
            write!(
                f,
                "positions {}–{} lost",
                self.first_position, self.last_position
            )?;
        } else {
            write!(f, "no position lost")?;
        }
        for (key, a, b) in &self.streams {
            write!(f, "; stream {key} revisions {a}–{b}")?;
        }
        if let Some(g) = &self.guess {
            write!(f, "; the damaged frame's head reads as {g}")?;
        }
        Ok(())
    }
}

/// The report of [`crate::check`]: every frame verified, and the index that
/// would be built from them.
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// The log file.
    pub path: PathBuf,
    /// Its length in bytes.
    pub bytes: u64,
    /// Intact frames.
    pub frames: u64,
    /// Events in them.
    pub events: u64,
    /// Streams.
    pub streams: u64,
    /// The last position given out.
    pub last_position: u64,
    /// A torn tail that open will cut off: (offset, bytes).
    pub torn_tail: Option<(u64, u64)>,
    /// Damage: what is lost, by stretch.
    pub damage: Vec<LostEvents>,
    /// Intact frames that the index refuses (they break an invariant).
    pub invalid_frames: Vec<(u64, String)>,
    /// The on-disk index checked against the log (when the log is intact).
    pub index: Option<IndexCheck>,
}

/// The on-disk index checked against the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexCheck {
    /// Whether the store has an index yet (open builds one when not).
    pub present: bool,
    /// The last position its checkpoint covers.
    pub checkpoint_position: u64,
    /// Entries compared (runs and `feed.idx`).
    pub entries: u64,
    /// Why the index disagrees with the log: damage that open does not
    /// see (it trusts a checkpoint that matches the log); `repair`
    /// rebuilds the index.
    pub problem: Option<String>,
    /// Why the index is not used as it is (none yet, or a checkpoint that
    /// does not match the log): open rebuilds it, nothing is lost.
    pub stale: Option<String>,
}

impl CheckReport {
    /// Whether the store opens as it is, losing nothing acknowledged.
    pub fn is_intact(&self) -> bool {
        self.damage.is_empty()
            && self.invalid_frames.is_empty()
            && self.index.as_ref().is_none_or(|i| i.problem.is_none())
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "log:       {} ({} bytes)",
            self.path.display(),
            self.bytes
        )?;
        writeln!(
            f,
            "frames:    {} intact, {} events in {} streams, last position {}",
            self.frames, self.events, self.streams, self.last_position
        )?;
        if let Some((at, n)) = self.torn_tail {
            writeln!(
                f,
                "torn tail: {n} bytes at byte {at}, an append that was never acknowledged; open cuts it off"
            )?;
        }
        for d in &self.damage {
            writeln!(f, "DAMAGE:    {d}")?;
        }
        for (at, why) in &self.invalid_frames {
            writeln!(f, "INVALID:   frame at byte {at}: {why}")?;
        }
        if let Some(i) = self.index.as_ref().filter(|i| !i.present) {
            writeln!(f, "index:     none yet; open builds it from the log")?;
            let _ = i;
        }
        if let Some(i) = self.index.as_ref().filter(|i| i.present) {
            match (&i.problem, &i.stale) {
                (Some(p), _) => writeln!(
                    f,
                    "INDEX:     does not match the log: {p}; `event-store repair` rebuilds it"
                )?,
                (None, Some(s)) => writeln!(f, "index:     {s}")?,
                (None, None) => writeln!(
                    f,
                    "index:     checkpoint at position {}, {} entries match the log",
                    i.checkpoint_position, i.entries
                )?,
            }
        }
        if self.is_intact() {
            write!(f, "result:    intact")
        } else {
            write!(
                f,
                "result:    DAMAGED; `event-store repair` keeps every intact frame and names what is lost"
            )
        }
    }
}

/// The log taken apart: intact frames (with the index built from those
/// that fit), damage, and what each damaged stretch lost.
pub(crate) struct Analysis {
    pub report: CheckReport,
    /// Frames to keep, in order, with lost ranges between them: what
    /// repair writes.
    pub plan: Vec<Piece>,
}

/// One piece of a repaired log.
pub(crate) enum Piece {
    /// An intact frame of the old log, kept.
    Keep(FrameAt),
    /// Positions and revisions lost.
    Lost(LostRange),
}

/// Reads the whole log, past any damage, and works out what a repair keeps
/// and loses.
pub(crate) fn analyze(file: &dyn StorageFile, path: &Path) -> Result<Analysis, EmbeddedError> {
    let len = file
        .len()
        .map_err(|e| EmbeddedError::io(format!("reading the size of {}", path.display()), e))?;
    let mut r = LogReader::new(file, len);
    let (frames, damaged) = scan(&mut r, FILE_HEADER_LEN.min(len), path)?;
    // Is the only damage a torn tail that open would cut?
    let torn_tail = match damaged.as_slice() {
        [d] if d.end == len && d.crash_explained && len - d.start <= MAX_TORN_TAIL => {
            let last_commit = frames
                .iter()
                .rev()
                .find(|f| f.offset < d.start)
                .map(|f| f.header.commit_start);
            frames
                .iter()
                .filter(|f| f.offset > d.start)
                .all(|f| {
                    f.header.header_len == FRAME_HEADER_LEN
                        && (Some(f.header.commit_start) == last_commit
                            || f.header.commit_start == d.start)
                })
                .then_some((d.start, len - d.start))
        }
        _ => None,
    };
    let mut index = Index::in_memory();
    let mut plan = Vec::new();
    let mut damage = Vec::new();
    let mut invalid = Vec::new();
    let mut events = 0;
    let mut kept_frames = 0;
    let mut pieces: Vec<(u64, Option<FrameAt>, Option<DamagedStretch>)> = frames
        .iter()
        .map(|f| (f.offset, Some(*f), None))
        .chain(damaged.iter().map(|d| (d.start, None, Some(d.clone()))))
        .collect();
    pieces.sort_by_key(|p| p.0);
    // Streams whose later frames jump: their lost revisions, found first
    // so that each damaged stretch can name them.
    let (jumps, last_frame_of) = find_jumps(&mut r, &frames, path)?;
    let mut pending: Option<LostEvents> = None;
    let flush = |pending: &mut Option<LostEvents>,
                 index: &mut Index,
                 plan: &mut Vec<Piece>,
                 damage: &mut Vec<LostEvents>,
                 next_first: Option<u64>| {
        if let Some(mut lost) = pending.take() {
            let from = index.last_position() + 1;
            let to = match next_first {
                Some(p) => p.saturating_sub(1),
                None => {
                    let by_bytes =
                        (lost.stretch.end - lost.stretch.start).div_ceil(MIN_EVENT_BYTES);
                    // The damaged frame's own count, when its head is
                    // readable and continues the positions (else it is
                    // garbage and ignored).
                    let by_guess = lost
                        .guess
                        .as_ref()
                        .filter(|g| g.first_position == from)
                        .map_or(0, |g| g.count);
                    from - 1 + by_bytes.max(by_guess)
                }
            };
            lost.first_position = from;
            lost.last_position = to.max(from - 1);
            // A readable head of the damaged frame that continues the log
            // names its stream: keep those revisions from being given out
            // again when no later frame of the stream says so already.
            if let Some(g) = lost.guess.as_ref().filter(|g| {
                g.first_position == from && g.first_position + g.count - 1 <= lost.last_position
            }) {
                let current = index
                    .stream(&g.stream)
                    .ok()
                    .flatten()
                    .map_or(0, |(_, s)| s.revision);
                // Only for a stream with no intact frame after the damage:
                // the others' lost revisions are known from their frames.
                let later = last_frame_of
                    .get(&g.stream)
                    .is_some_and(|&o| o > lost.stretch.start);
                if current + 1 == g.first_revision
                    && !later
                    && !lost.streams.iter().any(|(k, ..)| *k == g.stream)
                {
                    lost.streams.push((
                        g.stream.clone(),
                        g.first_revision,
                        g.first_revision + g.count - 1,
                    ));
                }
            }
            let range = LostRange {
                first_position: lost.first_position,
                last_position: lost.last_position,
                streams: lost.streams.clone(),
            };
            // Cannot fail: positions continue from the index's last.
            let _ = index.apply_lost(&range);
            plan.push(Piece::Lost(range));
            damage.push(lost);
        }
    };
    // Where the commit of the frame before starts, while no damage came
    // before: open's replay refuses a frame whose commit starts neither at
    // itself nor there, and so must check. (After damage, open refuses
    // anyway, and repair writes every kept frame as its own commit.)
    let mut last_commit: Option<u64> = None;
    let mut after_damage = false;
    for (_, frame, stretch) in pieces {
        if let Some(d) = stretch {
            after_damage = true;
            if torn_tail.is_some_and(|(at, _)| at == d.start) {
                break;
            }
            let guess = guess_damaged_frame(&mut r, d.start, path)?;
            let streams = jumps
                .iter()
                .filter(|(_, j)| j.stretch_after == Some(d.start))
                .map(|(k, j)| (k.clone(), j.first, j.last))
                .collect();
            flush(&mut pending, &mut index, &mut plan, &mut damage, None);
            pending = Some(LostEvents {
                stretch: d,
                first_position: 0,
                last_position: 0,
                streams,
                guess,
            });
            continue;
        }
        let f = frame.expect("a frame or a stretch");
        if torn_tail.is_some_and(|(at, _)| f.offset > at) {
            break;
        }
        if !after_damage {
            let commit = f.header.commit_start;
            last_commit = Some(if commit != f.offset && Some(commit) != last_commit {
                invalid.push((
                    f.offset,
                    format!(
                        "the frame says its commit starts at byte {commit}, which is not where a commit of the log starts"
                    ),
                ));
                // Its successors are judged as if it started its own.
                f.offset
            } else {
                commit
            });
            if last_commit == Some(f.offset) && commit != f.offset {
                continue;
            }
        }
        // Read once: for its positions here and for the index below.
        let body = frame_body(&mut r, &f, path)?;
        let (first, _) = positions_of(&f, &body);
        // An intact frame whose positions leap further than any log holds
        // is invalid (only a bug writes one), not evidence that the
        // positions before it were lost: its claim must not become a lost
        // range, which the index would refuse at the next open.
        let leaps = first.saturating_sub(index.last_position()) > MAX_LOST_POSITIONS;
        flush(
            &mut pending,
            &mut index,
            &mut plan,
            &mut damage,
            (!leaps).then_some(first),
        );
        if leaps {
            invalid.push((
                f.offset,
                format!(
                    "positions from {first} follow position {}",
                    index.last_position()
                ),
            ));
            continue;
        }
        if first > index.last_position() + 1 {
            // Positions missing without damage in between: say so.
            let range = LostRange {
                first_position: index.last_position() + 1,
                last_position: first - 1,
                streams: Vec::new(),
            };
            let _ = index.apply_lost(&range);
            // Open refuses a gap that no damage explains, so check does
            // not call the log intact; repair records the gap as lost.
            damage.push(LostEvents {
                stretch: DamagedStretch {
                    start: f.offset,
                    end: f.offset,
                    crash_explained: false,
                },
                first_position: range.first_position,
                last_position: range.last_position,
                streams: Vec::new(),
                guess: None,
            });
            plan.push(Piece::Lost(range));
        }
        match apply_frame(&mut index, &f, &body) {
            Ok(()) => {
                kept_frames += 1;
                if f.header.kind == FrameKind::Append {
                    events += u64::from(f.header.count);
                }
                plan.push(Piece::Keep(f));
            }
            Err(why) => invalid.push((f.offset, why)),
        }
    }
    flush(&mut pending, &mut index, &mut plan, &mut damage, None);
    index.finish_lost()?;
    Ok(Analysis {
        report: CheckReport {
            path: path.to_path_buf(),
            bytes: len,
            frames: kept_frames,
            events,
            streams: index.stream_count(),
            last_position: index.last_position(),
            torn_tail,
            damage,
            invalid_frames: invalid,
            index: None,
        },
        plan,
    })
}

/// A stream's revisions that are missing before one of its frames.
struct Jump {
    first: u64,
    last: u64,
    /// The damaged stretch the revisions are charged to: the last one
    /// before the frame that jumps.
    stretch_after: Option<u64>,
}

/// Per stream, its lost revisions before a later frame, and the offset of
/// its last intact frame.
type Jumps = (HashMap<StreamKey, Jump>, HashMap<StreamKey, u64>);

fn find_jumps(
    r: &mut LogReader<'_>,
    frames: &[FrameAt],
    path: &Path,
) -> Result<Jumps, EmbeddedError> {
    let mut last_frame_of: HashMap<StreamKey, u64> = HashMap::new();
    let mut revisions: HashMap<StreamKey, u64> = HashMap::new();
    let mut jumps: HashMap<StreamKey, Jump> = HashMap::new();
    let mut prev_end = FILE_HEADER_LEN;
    let mut last_gap: Option<u64> = None;
    for f in frames {
        if f.offset > prev_end {
            last_gap = Some(prev_end);
        }
        prev_end = f.end();
        if f.header.kind != FrameKind::Append {
            continue;
        }
        let body = frame_body(r, f, path)?;
        let Ok(d) = format::decode_frame(&body, f.header.count) else {
            continue;
        };
        let current = revisions.get(&d.stream).copied().unwrap_or(0);
        let first = d.first_revision.get();
        if first > current + 1 && last_gap.is_some() {
            jumps.insert(
                d.stream.clone(),
                Jump {
                    first: current + 1,
                    last: first - 1,
                    stretch_after: last_gap,
                },
            );
        }
        last_frame_of.insert(d.stream.clone(), f.offset);
        revisions.insert(d.stream, first + u64::from(f.header.count) - 1);
    }
    Ok((jumps, last_frame_of))
}

/// Copies an intact frame with its header rewritten as its own commit at
/// `new_offset`.
pub(crate) fn rewrite_frame(
    file: &dyn StorageFile,
    f: &FrameAt,
    new_offset: u64,
    path: &Path,
    out: &mut Vec<u8>,
) -> Result<(), EmbeddedError> {
    let mut body = vec![0u8; f.header.body_len as usize];
    file.read_exact_at(&mut body, f.body_offset())
        .map_err(|e| EmbeddedError::io(format!("reading {}", path.display()), e))?;
    let start = out.len();
    out.extend_from_slice(&[0u8; FRAME_HEADER_LEN]);
    out.extend_from_slice(&body);
    format::write_header(
        &mut out[start..start + FRAME_HEADER_LEN],
        f.header.kind,
        f.header.body_len,
        f.header.count,
        new_offset,
        f.header.crc,
    );
    Ok(())
}
