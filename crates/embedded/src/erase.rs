//! Physical erasure of deleted and truncated events: each removed record is
//! overwritten in place by a stub of the same length (revision, time and
//! event id kept; event type, payload and metadata gone), its frame's
//! checksums recomputed, so that no offset, position or revision moves and
//! the index needs no change. See `docs/storage-engine.md` ("Erasure").
//!
//! Crash safety comes from a double-write journal, `erase.journal`, that
//! holds the new images of the frames about to be rewritten (never erased
//! data) with a checksum:
//!
//! 1. write the journal, `fdatasync` it, `fsync` the directory;
//! 2. write the frames in place (under the store's erase lock, so that no
//!    read of another record of those frames runs meanwhile), `fdatasync`
//!    the log;
//! 3. record how far the log's deletions and truncations are erased
//!    (`ERASED`, replaced whole by a rename), and delete the journal.
//!
//! At open a valid journal is applied again (idempotent) before anything is
//! read; a journal that does not check was torn before step 2 began and is
//! deleted. The deletions and truncations after `ERASED`'s mark are erased
//! again by the background thread (idempotent too: erased records are
//! skipped).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use eventstore_core::StreamKey;
use tokio::sync::watch;

use crate::EmbeddedError;
use crate::checkpoint::{io, read_whole};
use crate::format::{self, FRAME_HEADER_LEN, FRAME_HEADER_LEN_V1, FrameHeader, FrameKind};
use crate::index::RevEntry;
use crate::store::Shared;
use crate::vfs::{FileSystem, StorageFile};

/// The journal of an erasure in progress.
pub(crate) const JOURNAL: &str = "erase.journal";
/// How far the log's deletions and truncations are erased.
pub(crate) const ERASED: &str = "ERASED";
const ERASED_TMP: &str = "ERASED.tmp";
const JOURNAL_MAGIC: &[u8; 8] = b"EVERASJ1";
const ERASED_MAGIC: &[u8; 8] = b"EVERASD1";
/// New frame images gathered before they are journaled and written.
const BATCH_BYTES: usize = 8 << 20;
/// Revisions looked up in the index at a time.
const REVISION_CHUNK: u64 = 4096;

/// The revisions `from..=to` of a stream to erase, removed by the
/// deletion or truncation frame that ends at `tombstone_end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EraseTask {
    pub stream: StreamKey,
    pub from: u64,
    pub to: u64,
    pub tombstone_end: u64,
}

enum Msg {
    Task(EraseTask),
    /// Every deletion and truncation before this log offset was sent as a
    /// task before this message: once those are erased, the mark may move
    /// here (the writer sends it at checkpoints and at close, so that open
    /// looks for unerased ones only in the log's last stretch).
    Advance(u64),
    Stop,
}

/// The handle of the erasure thread: takes tasks, says how many are
/// pending.
#[derive(Clone)]
pub(crate) struct Eraser {
    tx: mpsc::Sender<Msg>,
    pending: Arc<watch::Sender<u64>>,
    failed: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for Eraser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Eraser")
            .field("pending", &*self.pending.borrow())
            .finish()
    }
}

impl Eraser {
    /// Queues a task.
    pub(crate) fn submit(&self, task: EraseTask) {
        self.pending.send_modify(|n| *n += 1);
        if self.tx.send(Msg::Task(task)).is_err() {
            self.pending.send_modify(|n| *n -= 1);
        }
    }

    /// Tasks not yet erased durably.
    pub(crate) fn pending(&self) -> u64 {
        *self.pending.borrow()
    }

    /// Why erasure stopped, if it did.
    pub(crate) fn failure(&self) -> Option<String> {
        self.failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Resolves once nothing is pending, or erasure failed.
    pub(crate) async fn wait_idle(&self) -> Result<(), String> {
        let mut rx = self.pending.subscribe();
        loop {
            if let Some(f) = self.failure() {
                return Err(f);
            }
            if *rx.borrow_and_update() == 0 {
                return Ok(());
            }
            // Failures wake us too (they are followed by a modification).
            if rx.changed().await.is_err() {
                return Err("the erasure thread stopped".into());
            }
        }
    }

    /// Says that every deletion and truncation before `end` was submitted.
    pub(crate) fn advance(&self, end: u64) {
        let _ = self.tx.send(Msg::Advance(end));
    }

    /// Asks the thread to stop after the tasks queued before.
    pub(crate) fn stop(&self) {
        let _ = self.tx.send(Msg::Stop);
    }
}

/// Where the erasure thread works.
pub(crate) struct EraseFiles {
    pub fs: Arc<dyn FileSystem>,
    pub dir: PathBuf,
}

/// Starts the erasure thread over the store's log; `initial` are the
/// tasks open found not yet erased.
pub(crate) fn start(
    files: EraseFiles,
    shared: Arc<Shared>,
    initial: Vec<EraseTask>,
) -> Result<(Eraser, std::thread::JoinHandle<()>), EmbeddedError> {
    let (tx, rx) = mpsc::channel();
    let (pending, _) = watch::channel(0u64);
    let eraser = Eraser {
        tx,
        pending: Arc::new(pending),
        failed: Arc::new(Mutex::new(None)),
    };
    for t in initial {
        eraser.submit(t);
    }
    let worker = eraser.clone();
    let handle = std::thread::Builder::new()
        .name("eventstore-eraser".into())
        .spawn(move || run(files, shared, worker, rx))
        .map_err(|e| EmbeddedError::io("starting the erasure thread", e))?;
    Ok((eraser, handle))
}

fn run(files: EraseFiles, shared: Arc<Shared>, eraser: Eraser, rx: mpsc::Receiver<Msg>) {
    let mut stop = false;
    while !stop {
        let mut tasks = Vec::new();
        let mut advance = None;
        let mut take = |m: Msg, tasks: &mut Vec<EraseTask>| match m {
            Msg::Task(t) => {
                tasks.push(t);
                false
            }
            Msg::Advance(e) => {
                advance = Some(advance.unwrap_or(0).max(e));
                false
            }
            Msg::Stop => true,
        };
        match rx.recv() {
            Ok(m) => stop = take(m, &mut tasks),
            Err(_) => break,
        }
        while !stop && let Ok(m) = rx.try_recv() {
            stop = take(m, &mut tasks);
        }
        if eraser.failure().is_some() {
            continue;
        }
        let n = tasks.len() as u64;
        match erase_tasks(&files, &shared, &tasks, advance) {
            Ok(()) => eraser.pending.send_modify(|p| *p -= n),
            Err(e) => {
                tracing::error!(error = %e, "erasing removed events failed; the next open finishes it");
                *eraser.failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                eraser.pending.send_modify(|_| {});
            }
        }
    }
}

/// New images of frames, by offset.
type Images = BTreeMap<u64, Vec<u8>>;

/// Erases every task's revisions, in journaled batches.
fn erase_tasks(
    files: &EraseFiles,
    shared: &Shared,
    tasks: &[EraseTask],
    advance: Option<u64>,
) -> Result<(), EmbeddedError> {
    let mut images = Images::new();
    let mut bytes = 0usize;
    let mut mark = None;
    for task in tasks {
        let number = match shared.read_index().stream(&task.stream)? {
            Some((_, s)) => s.number,
            None => continue,
        };
        let mut from = task.from.max(1);
        while from <= task.to {
            let to = task.to.min(from + REVISION_CHUNK - 1);
            let entries = shared.read_index().revision_entries(number, from, to)?;
            bytes += frames_of(
                shared,
                &task.stream,
                number,
                &entries,
                from,
                to,
                &mut images,
            )?;
            if bytes >= BATCH_BYTES {
                // The mark stays at the last finished task.
                write_batch(files, shared, &std::mem::take(&mut images), mark)?;
                bytes = 0;
            }
            from = to + 1;
        }
        mark = Some(task.tombstone_end);
    }
    let mark = match (mark, advance) {
        (Some(m), Some(a)) => Some(m.max(a)),
        (m, a) => m.or(a),
    };
    write_batch(files, shared, &images, mark)
}

/// Adds to `images` the frames holding `entries` (revisions `from..=to`
/// of the stream), with those records erased; returns the bytes added.
fn frames_of(
    shared: &Shared,
    stream: &StreamKey,
    number: u32,
    entries: &[(u64, RevEntry)],
    from: u64,
    to: u64,
    images: &mut Images,
) -> Result<usize, EmbeddedError> {
    let prefix =
        8 + 8 + 8 + 2 + stream.stream_type.as_str().len() + stream.stream_id.as_str().len();
    let mut added = 0;
    let mut i = 0;
    while i < entries.len() {
        // The first record of the frame holding entries[i]: walk back while
        // the record before is adjacent (records of one frame are).
        let (mut first_rev, mut first) = entries[i];
        if i == 0 {
            while first_rev > 1 {
                let prev =
                    shared
                        .read_index()
                        .revision_entries(number, first_rev - 1, first_rev - 1)?;
                match prev.first() {
                    Some(&(r, e))
                        if e.span.offset + u64::from(e.span.len) + 4 == first.span.offset =>
                    {
                        first_rev = r;
                        first = e;
                    }
                    _ => break,
                }
            }
        }
        let frame_at = locate_frame(shared, first.span.offset - 4 - prefix as u64)?;
        let (offset, header) = frame_at;
        let end = offset + header.frame_len();
        // Skip the entries of this frame.
        while i < entries.len() && entries[i].1.span.offset < end {
            i += 1;
        }
        let is_new = !images.contains_key(&offset);
        let image = match images.remove(&offset) {
            Some(image) => image,
            None => {
                let mut buf = vec![0u8; header.frame_len() as usize];
                shared
                    .file
                    .read_exact_at(&mut buf, offset)
                    .map_err(|e| read_error(shared, e))?;
                buf
            }
        };
        let mut image = image;
        if !header.checks(&image[header.header_len..]) {
            return Err(corrupt(
                shared,
                offset,
                "its checksum does not match".into(),
            ));
        }
        let body = &image[header.header_len..];
        let frame = format::decode_frame(body, header.count)
            .map_err(|reason| corrupt(shared, offset, reason))?;
        if frame.stream != *stream {
            return Err(corrupt(
                shared,
                offset,
                format!("it holds stream {}, the index says {stream}", frame.stream),
            ));
        }
        let mut changed = false;
        for (k, (_, span)) in frame.events.iter().enumerate() {
            let rev = frame.first_revision.get() + k as u64;
            if rev < from || rev > to {
                continue;
            }
            let at = header.header_len + span.offset as usize;
            let record = &mut image[at..at + span.len as usize];
            if !format::is_erased(record) {
                format::erase_record(record);
                changed = true;
            }
        }
        if changed {
            format::reseal(&mut image, &header);
        }
        if changed || !is_new {
            if is_new {
                added += image.len();
            }
            images.insert(offset, image);
        }
    }
    Ok(added)
}

/// The append frame that ends its body prefix at `records_at` (the offset
/// of its first record's length prefix minus the body's head): its offset
/// and header, in the current layout or the first.
fn locate_frame(shared: &Shared, body_at: u64) -> Result<(u64, FrameHeader), EmbeddedError> {
    for header_len in [FRAME_HEADER_LEN, FRAME_HEADER_LEN_V1] {
        let Some(offset) = body_at.checked_sub(header_len as u64) else {
            continue;
        };
        if offset < format::FILE_HEADER_LEN {
            continue;
        }
        let mut head = vec![0u8; header_len];
        shared
            .file
            .read_exact_at(&mut head, offset)
            .map_err(|e| read_error(shared, e))?;
        if let Some(h) = FrameHeader::parse(&head, offset)
            && h.header_len == header_len
            && h.kind == FrameKind::Append
        {
            return Ok((offset, h));
        }
    }
    Err(corrupt(
        shared,
        body_at,
        "no append frame starts where the index's record says".into(),
    ))
}

fn read_error(shared: &Shared, e: std::io::Error) -> EmbeddedError {
    EmbeddedError::io(format!("reading {}", shared.path.display()), e)
}

fn corrupt(shared: &Shared, offset: u64, reason: String) -> EmbeddedError {
    EmbeddedError::Corrupt {
        path: shared.path.clone(),
        offset,
        reason: format!("erasing the frame at byte {offset}: {reason}"),
    }
}

/// The journal's bytes: magic, the mark, the images, a CRC of it all.
fn encode_journal(images: &Images, mark: u64) -> Vec<u8> {
    let mut out = JOURNAL_MAGIC.to_vec();
    out.extend_from_slice(&mark.to_le_bytes());
    out.extend_from_slice(&(images.len() as u32).to_le_bytes());
    for (offset, image) in images {
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(&(image.len() as u32).to_le_bytes());
        out.extend_from_slice(image);
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// A journal that checks: its mark and images.
fn decode_journal(b: &[u8]) -> Option<(u64, Images)> {
    if b.len() < 24 || &b[..8] != JOURNAL_MAGIC {
        return None;
    }
    let (body, crc) = b.split_at(b.len() - 4);
    if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().ok()?) {
        return None;
    }
    let mark = u64::from_le_bytes(body[8..16].try_into().ok()?);
    let n = u32::from_le_bytes(body[16..20].try_into().ok()?);
    let mut at = 20usize;
    let mut images = Images::new();
    for _ in 0..n {
        let offset = u64::from_le_bytes(body.get(at..at + 8)?.try_into().ok()?);
        let len = u32::from_le_bytes(body.get(at + 8..at + 12)?.try_into().ok()?) as usize;
        let image = body.get(at + 12..at + 12 + len)?.to_vec();
        images.insert(offset, image);
        at += 12 + len;
    }
    (at == body.len()).then_some((mark, images))
}

/// Journals `images`, writes them in place, makes them durable, records
/// `mark` (when given) and deletes the journal.
fn write_batch(
    files: &EraseFiles,
    shared: &Shared,
    images: &Images,
    mark: Option<u64>,
) -> Result<(), EmbeddedError> {
    if images.is_empty() && mark.is_none() {
        return Ok(());
    }
    let fs = &*files.fs;
    let dir = &files.dir;
    let journal = dir.join(JOURNAL);
    let mark_value = match mark {
        Some(m) => m,
        None => read_mark(fs, dir)?.unwrap_or(format::FILE_HEADER_LEN),
    };
    if !images.is_empty() {
        let bytes = encode_journal(images, mark_value);
        let f = fs
            .open(&journal, true)
            .map_err(io(format!("creating {}", journal.display())))?;
        f.set_len(0)
            .and_then(|()| f.write_all_at(&bytes, 0))
            .and_then(|()| f.sync_data())
            .map_err(io(format!("writing {}", journal.display())))?;
        fs.sync_dir(dir)
            .map_err(io(format!("syncing the directory {}", dir.display())))?;
        let in_place = {
            // No read of another record of these frames runs meanwhile.
            let _writing = shared.erase_lock.write().unwrap_or_else(|e| e.into_inner());
            images
                .iter()
                .try_for_each(|(offset, image)| shared.file.write_all_at(image, *offset))
                .map_err(io(format!("erasing in {}", shared.path.display())))
        }
        .and_then(|()| {
            shared
                .file
                .sync_data()
                .map_err(io(format!("syncing {}", shared.path.display())))
        });
        if let Err(e) = in_place {
            // The log's pages are shared with the writer: after a failed
            // write or sync of the log, appends in the page cache may be
            // lost while the writer's next sync succeeds (Linux reports a
            // writeback error once per open file). Stop acknowledging
            // until reopened; open applies the journal again.
            shared.set_failed(format!(
                "erasing removed events failed on the log ({e}); restart the server once the disk is healthy"
            ));
            return Err(e);
        }
    }
    if mark.is_some() {
        write_mark(fs, dir, mark_value)?;
    }
    if !images.is_empty() {
        fs.remove_file(&journal)
            .map_err(io(format!("deleting {}", journal.display())))?;
        fs.sync_dir(dir)
            .map_err(io(format!("syncing the directory {}", dir.display())))?;
    }
    crate::metrics::erased(images.len() as u64);
    Ok(())
}

/// The mark in `ERASED`: every deletion and truncation in a frame that ends
/// at or before it is erased. `None` when there is no valid file.
pub(crate) fn read_mark(fs: &dyn FileSystem, dir: &Path) -> Result<Option<u64>, EmbeddedError> {
    let path = dir.join(ERASED);
    if !fs.exists(&path) {
        return Ok(None);
    }
    let b = read_whole(fs, &path)?;
    if b.len() != 20 {
        return Ok(None);
    }
    if &b[..8] != ERASED_MAGIC
        || crc32fast::hash(&b[..16]) != u32::from_le_bytes(b[16..20].try_into().expect("4"))
    {
        return Ok(None);
    }
    Ok(Some(u64::from_le_bytes(b[8..16].try_into().expect("8"))))
}

/// Replaces `ERASED` with `mark`: written beside, synced, renamed, the
/// directory synced.
pub(crate) fn write_mark(fs: &dyn FileSystem, dir: &Path, mark: u64) -> Result<(), EmbeddedError> {
    let tmp = dir.join(ERASED_TMP);
    let path = dir.join(ERASED);
    let mut b = ERASED_MAGIC.to_vec();
    b.extend_from_slice(&mark.to_le_bytes());
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    let f = fs
        .open(&tmp, true)
        .map_err(io(format!("creating {}", tmp.display())))?;
    f.set_len(0)
        .and_then(|()| f.write_all_at(&b, 0))
        .and_then(|()| f.sync_data())
        .map_err(io(format!("writing {}", tmp.display())))?;
    fs.rename(&tmp, &path)
        .map_err(io(format!("renaming {}", tmp.display())))?;
    fs.sync_dir(dir)
        .map_err(io(format!("syncing the directory {}", dir.display())))
}

/// At open, before the log is read: applies a valid journal again (and
/// records its mark), or deletes one that does not check.
pub(crate) fn finish_journal(
    fs: &dyn FileSystem,
    dir: &Path,
    log: &dyn StorageFile,
    log_path: &Path,
) -> Result<(), EmbeddedError> {
    let path = dir.join(JOURNAL);
    if !fs.exists(&path) {
        return Ok(());
    }
    let b = read_whole(fs, &path)?;
    let log_len = log
        .len()
        .map_err(io(format!("reading the size of {}", log_path.display())))?;
    match decode_journal(&b) {
        Some((mark, images)) if images.iter().all(|(o, i)| o + i.len() as u64 <= log_len) => {
            for (offset, image) in &images {
                log.write_all_at(image, *offset)
                    .map_err(io(format!("erasing in {}", log_path.display())))?;
            }
            log.sync_data()
                .map_err(io(format!("syncing {}", log_path.display())))?;
            write_mark(fs, dir, mark)?;
            tracing::info!(frames = images.len(), "finished an interrupted erasure");
        }
        _ => {
            tracing::warn!(path = %path.display(), "deleting a torn erasure journal (its erasure had not started)");
        }
    }
    fs.remove_file(&path)
        .map_err(io(format!("deleting {}", path.display())))?;
    fs.sync_dir(dir)
        .map_err(io(format!("syncing the directory {}", dir.display())))
}

/// The log as it reads once a valid journal is applied, without writing
/// anything (what `check` reads): `log` itself when there is no valid
/// journal.
pub(crate) fn with_journal(
    fs: &dyn FileSystem,
    dir: &Path,
    log: Arc<dyn StorageFile>,
) -> Result<Arc<dyn StorageFile>, EmbeddedError> {
    let path = dir.join(JOURNAL);
    if !fs.exists(&path) {
        return Ok(log);
    }
    let b = read_whole(fs, &path)?;
    Ok(match decode_journal(&b) {
        Some((_, images)) => Arc::new(Overlay { log, images }),
        None => log,
    })
}

/// A log read with a journal's images laid over it; read only.
#[derive(Debug)]
struct Overlay {
    log: Arc<dyn StorageFile>,
    images: Images,
}

impl StorageFile for Overlay {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.log.read_exact_at(buf, offset)?;
        let end = offset + buf.len() as u64;
        for (&at, image) in self.images.range(..end) {
            let image_end = at + image.len() as u64;
            if image_end <= offset {
                continue;
            }
            let from = at.max(offset);
            let to = image_end.min(end);
            buf[(from - offset) as usize..(to - offset) as usize]
                .copy_from_slice(&image[(from - at) as usize..(to - at) as usize]);
        }
        Ok(())
    }

    fn write_all_at(&self, _: &[u8], _: u64) -> std::io::Result<()> {
        Err(std::io::Error::other("the log is read only here"))
    }

    fn sync_data(&self) -> std::io::Result<()> {
        Ok(())
    }

    fn set_len(&self, _: u64) -> std::io::Result<()> {
        Err(std::io::Error::other("the log is read only here"))
    }

    fn len(&self) -> std::io::Result<u64> {
        self.log.len()
    }
}

/// At open, after the replay: the deletions and truncations after the
/// mark, as tasks (erased again from their stream's first revision: erased
/// records are skipped).
pub(crate) fn pending_tasks(
    log: &dyn StorageFile,
    log_path: &Path,
    mark: u64,
    end: u64,
) -> Result<Vec<EraseTask>, EmbeddedError> {
    let mut tasks = Vec::new();
    let (frames, unreadable) = crate::recovery::frames_between(log, log_path, mark, end)?;
    if let Some(at) = unreadable {
        // Under the index's checkpoint, so not read by open: `check`
        // reports it and `repair` (which resets the mark) mends it.
        tracing::warn!(
            offset = at,
            "the log is unreadable where erasure looks for deletions; run `event-store check`"
        );
    }
    for (kind, body, frame_end) in frames {
        let corrupt = |reason: String| EmbeddedError::Corrupt {
            path: log_path.to_path_buf(),
            offset: frame_end,
            reason,
        };
        match kind {
            FrameKind::Delete => {
                let d = format::decode_frame(&body, 1).map_err(corrupt)?;
                tasks.push(EraseTask {
                    stream: d.stream,
                    from: 1,
                    to: d.first_revision.get() - 1,
                    tombstone_end: frame_end,
                });
            }
            FrameKind::Truncate => {
                let t = format::decode_truncate(&body).map_err(corrupt)?;
                tasks.push(EraseTask {
                    stream: t.stream,
                    from: 1,
                    to: t.before - 1,
                    tombstone_end: frame_end,
                });
            }
            _ => {}
        }
    }
    Ok(tasks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_round_trips_and_a_torn_one_does_not_check() {
        let mut images = Images::new();
        images.insert(100, vec![1, 2, 3]);
        images.insert(4000, vec![9; 700]);
        let b = encode_journal(&images, 5000);
        assert_eq!(decode_journal(&b), Some((5000, images)));
        for cut in 0..b.len() {
            assert_eq!(decode_journal(&b[..cut]), None, "cut at {cut}");
        }
        let mut flipped = b.clone();
        flipped[30] ^= 1;
        assert_eq!(decode_journal(&flipped), None);
    }
}
