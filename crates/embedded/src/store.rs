//! [`EmbeddedStore`]: opening and recovering a data directory, and the
//! read side of [`EventStore`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard, mpsc};
use std::time::Duration;

use async_trait::async_trait;
use eventstore_core::{
    AppendOutcome, AppendRequest, DeleteOutcome, EventStore, FeedFilter, FeedPage, Position,
    RecordedEvent, Revision, StoreError, StreamCursor, StreamInfo, StreamKey, StreamListPage,
    StreamRead, StreamSlice, StreamType, StreamTypeCount, Timestamp,
};
use tokio::sync::{oneshot, watch};

use crate::EmbeddedError;
use crate::checkpoint::{self, Checkpoint};
use crate::erase::{self, EraseTask, Eraser};
use crate::format::{self, FILE_HEADER_LEN};
use crate::index::{self, Index, Item};
use crate::recovery::{self, CheckReport};
use crate::vfs::{DirLock, FileSystem, OsFs, StorageFile};
use crate::writer::{Command, Lifecycle, LifecycleOutcome, Writer};

/// Name of the log file inside the data directory.
pub(crate) const LOG_FILE: &str = "events.log";
/// Name of the lock file inside the data directory.
const LOCK_FILE: &str = "LOCK";
/// Records closer than this are read with one positional read.
const COALESCE_GAP: u64 = 4096;
/// The most bytes one coalesced read takes.
const COALESCE_MAX: u64 = 1 << 20;

/// How a store is opened: the file layer under it, the bound of its
/// writer's queue, and when its index is checkpointed.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// The file layer: [`OsFs`] (the default), or a [`crate::vfs::SimFs`]
    /// for fault-injection tests.
    pub fs: Arc<dyn FileSystem>,
    /// The most appends waiting for the writer; past it an append is
    /// refused at once with [`StoreError::Overloaded`] (HTTP 503 with
    /// `Retry-After`) instead of queueing without bound.
    pub queue_capacity: usize,
    /// A checkpoint writes the index's in-memory delta to disk once it
    /// holds this many events: it bounds the memory of the delta and what
    /// open replays from the log.
    pub checkpoint_events: u64,
    /// A checkpoint is also taken when the delta is older than this and
    /// not empty.
    pub checkpoint_interval: Duration,
    /// The most bytes of index blocks kept in memory.
    pub index_cache_bytes: usize,
    /// The pause before a failed checkpoint is tried again; it doubles
    /// with every failure of the same checkpoint, up to 30 s.
    pub checkpoint_retry: Duration,
}

impl EmbeddedOptions {
    /// The default of [`EmbeddedOptions::checkpoint_events`].
    pub const DEFAULT_CHECKPOINT_EVENTS: u64 = 100_000;
    /// The default of [`EmbeddedOptions::checkpoint_interval`].
    pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(10);
    /// The default of [`EmbeddedOptions::index_cache_bytes`].
    pub const DEFAULT_INDEX_CACHE_BYTES: usize = 64 << 20;
    /// The default of [`EmbeddedOptions::checkpoint_retry`].
    pub const DEFAULT_CHECKPOINT_RETRY: Duration = Duration::from_millis(500);
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        Self {
            fs: Arc::new(OsFs),
            queue_capacity: 16_384,
            checkpoint_events: Self::DEFAULT_CHECKPOINT_EVENTS,
            checkpoint_interval: Self::DEFAULT_CHECKPOINT_INTERVAL,
            index_cache_bytes: Self::DEFAULT_INDEX_CACHE_BYTES,
            checkpoint_retry: Self::DEFAULT_CHECKPOINT_RETRY,
        }
    }
}

/// What open did to the index: used a checkpoint and replayed the log
/// after it, or rebuilt it from the whole log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenStats {
    /// Whether the index was rebuilt from the whole log (a new store, one
    /// written by an older version, or an index that did not match the
    /// log), and why when it did not match.
    pub rebuilt: Option<String>,
    /// The position the checkpoint covered (0 when rebuilt).
    pub checkpoint_position: u64,
    /// Frames of the log replayed.
    pub replayed_frames: u64,
    /// Events in them.
    pub replayed_events: u64,
}

/// State shared by the store handle, its readers and the writer thread.
pub(crate) struct Shared {
    pub index: Arc<RwLock<Index>>,
    /// The log, for positional reads of records (and the writer's writes).
    pub file: Arc<dyn StorageFile>,
    /// The position of the last durable, published event.
    pub committed: watch::Sender<u64>,
    /// Per stream type, the position of its last durable, published event;
    /// only for types someone waited on or wrote since open.
    pub type_progress: Mutex<HashMap<StreamType, watch::Sender<u64>>>,
    pub closed: AtomicBool,
    /// Why the store stopped acknowledging appends, after a failed write or
    /// sync (fail-stop until reopened).
    pub failed: Mutex<Option<String>>,
    /// Why the checkpoint of the index in progress failed, while it is
    /// tried again (appends go on: the log is the truth).
    pub checkpoint_failure: Arc<Mutex<Option<String>>>,
    /// A checkpoint (with its merges) is being written, or tried again.
    pub checkpoint_busy: Arc<std::sync::atomic::AtomicBool>,
    pub path: PathBuf,
    /// Readers hold it (shared) from their index look-up until their log
    /// reads are done; erasure holds it (exclusive) while it rewrites
    /// frames in place, so that no read sees a frame half rewritten.
    pub erase_lock: RwLock<()>,
}

impl Shared {
    pub(crate) fn reading(&self) -> RwLockReadGuard<'_, ()> {
        self.erase_lock.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn read_index(&self) -> RwLockReadGuard<'_, Index> {
        // A panic while holding the lock cannot leave the index half
        // updated in a way readers would notice more than the panic itself.
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn write_index(&self) -> RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn failure(&self) -> Option<String> {
        self.failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn set_failed(&self, reason: String) {
        *self.failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
    }

    /// Wakes the long polls of the types just written.
    pub(crate) fn publish_types(&self, written: &HashMap<StreamType, u64>) {
        let waiters = self.type_progress.lock().unwrap_or_else(|e| e.into_inner());
        for (t, p) in written {
            if let Some(w) = waiters.get(t) {
                w.send_replace(*p);
            }
        }
    }
}

/// The embedded event store: an append-only log file with an in-memory
/// index, group commit and crash recovery. See the crate documentation.
///
/// Dropping the store lets the writer finish the appends already queued;
/// [`EmbeddedStore::close`] does the same and waits for it.
pub struct EmbeddedStore {
    shared: Arc<Shared>,
    commands: mpsc::SyncSender<Command>,
    stopped: watch::Receiver<bool>,
    stats: OpenStats,
    eraser: Eraser,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Opens (creating it if needed) the store in directory `path` on the
    /// real file system. See [`EmbeddedStore::open_with`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, EmbeddedError> {
        Self::open_with(path, EmbeddedOptions::default())
    }

    /// Opens (creating it if needed) the store in directory `path`: takes
    /// the directory's lock, replays the log into the index, cuts off a torn
    /// tail left by a crash (and refuses any other damage with
    /// [`EmbeddedError::Corrupt`]), makes the log and the directory durable,
    /// and starts the writer thread. Nothing is served before the replayed
    /// log is durable.
    ///
    /// Blocking (file I/O proportional to the log's size); call it at start
    /// up, or from `spawn_blocking`. Fails with [`EmbeddedError::Locked`]
    /// when another process holds the directory.
    pub fn open_with(
        path: impl AsRef<Path>,
        options: EmbeddedOptions,
    ) -> Result<Self, EmbeddedError> {
        let dir = path.as_ref().to_path_buf();
        let Recovered {
            lock,
            file,
            log_path,
            replayed,
            files,
            stats,
            erase_tasks,
            fs,
        } = recover(&options, &dir)?;
        let every = options.checkpoint_events.max(1);
        let index = replayed.index;
        let last_position = index.last_position();
        let last_time = index.last_time();
        crate::metrics::stored(last_position, index.stream_count(), replayed.end);
        crate::metrics::index_size(index.runs().len(), index.run_memory());
        let (committed, _) = watch::channel(last_position);
        let index = Arc::new(RwLock::new(index));
        let shared = Arc::new(Shared {
            index: index.clone(),
            file: file.clone(),
            committed,
            type_progress: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
            failed: Mutex::new(None),
            checkpoint_failure: Arc::new(Mutex::new(None)),
            checkpoint_busy: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            path: log_path,
            erase_lock: RwLock::new(()),
        });
        let (eraser, eraser_thread) = erase::start(
            erase::EraseFiles {
                fs,
                dir: dir.clone(),
            },
            shared.clone(),
            erase_tasks,
        )?;
        let checkpointer = checkpoint::Checkpointer::start(
            files,
            index,
            shared.checkpoint_failure.clone(),
            shared.checkpoint_busy.clone(),
            options.checkpoint_retry,
        )?;
        let (commands, queue) = mpsc::sync_channel(options.queue_capacity.max(1));
        let (stop_tx, stopped) = watch::channel(false);
        let writer = Writer::new(
            shared.clone(),
            file,
            lock,
            crate::writer::Resume {
                end: replayed.end,
                last_position,
                last_time,
                last_frame: replayed.last_frame,
                commit_start: replayed.commit_start,
            },
            (checkpointer, every, options.checkpoint_interval),
            (eraser.clone(), eraser_thread),
        );
        std::thread::Builder::new()
            .name("eventstore-writer".into())
            .spawn(move || {
                writer.run(queue);
                // The writer dropped the log and the lock: tell `close`.
                stop_tx.send_replace(true);
            })
            .map_err(|e| EmbeddedError::io("starting the writer thread", e))?;
        tracing::info!(
            path = %dir.display(),
            events = last_position,
            checkpoint = stats.checkpoint_position,
            replayed_frames = stats.replayed_frames,
            rebuilt = stats.rebuilt.as_deref().unwrap_or("no"),
            "embedded store open"
        );
        Ok(Self {
            shared,
            commands,
            stopped,
            stats,
            eraser,
        })
    }

    /// Erases what deletions and truncations removed, now: resolves once
    /// every removed event answered so far is overwritten on disk (the
    /// erasure thread does this by itself as soon as a deletion or
    /// truncation is answered; this waits for it). Fails when erasure
    /// stopped on an I/O error (the next open finishes it).
    pub async fn compact(&self) -> Result<(), StoreError> {
        self.eraser
            .wait_idle()
            .await
            .map_err(StoreError::Unavailable)
    }

    /// Deletions and truncations whose removed events are not yet erased
    /// on disk.
    pub fn pending_erasures(&self) -> u64 {
        self.eraser.pending()
    }

    /// Sends a deletion or truncation to the writer and waits for its
    /// answer.
    async fn lifecycle(&self, op: Lifecycle) -> Result<LifecycleOutcome, StoreError> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(unavailable());
        }
        if let Some(reason) = self.shared.failure() {
            return Err(StoreError::Unavailable(reason));
        }
        let (reply, answer) = oneshot::channel();
        match self.commands.try_send(Command::Lifecycle { op, reply }) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Full(_)) => {
                return Err(StoreError::Overloaded(
                    "the writer's queue is full; retry shortly".into(),
                ));
            }
            Err(mpsc::TrySendError::Disconnected(_)) => return Err(unavailable()),
        }
        answer.await.map_err(|_| unavailable())?
    }

    /// Why writing the index fails, while it does. Appends and reads go on
    /// (the log is the truth, and the index's deltas stay in memory); the
    /// checkpoint is tried again after [`EmbeddedOptions::checkpoint_retry`]
    /// (0.5 s by default), then after pauses doubling up to 30 s, until it
    /// is written (then this is `None` again).
    /// Meanwhile memory grows with every append, and an open would replay
    /// the log from the last checkpoint written. The metric
    /// `eventstore_index_checkpoint_failed` is 1 meanwhile.
    pub fn checkpoint_failure(&self) -> Option<String> {
        self.shared
            .checkpoint_failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether a checkpoint of the index (with the merges it makes due) is
    /// being written, or tried again after a failure.
    pub fn checkpoint_in_progress(&self) -> bool {
        self.shared
            .checkpoint_busy
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// What open did to the index: the checkpoint it started from and how
    /// much of the log it replayed.
    pub fn open_stats(&self) -> &OpenStats {
        &self.stats
    }

    /// Shuts down gracefully: new appends are refused with
    /// [`StoreError::Unavailable`], appends already queued are written and
    /// synced, then the log and the directory lock are released. Reads keep
    /// working on what was committed. Idempotent.
    pub async fn close(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        // Until sent, or the writer is gone already.
        while let Err(mpsc::TrySendError::Full(_)) = self.commands.try_send(Command::Close) {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        let mut stopped = self.stopped.clone();
        // An error means the writer thread is gone already.
        let _ = stopped.wait_for(|s| *s).await;
    }

    /// The data directory's log file.
    pub fn log_path(&self) -> &Path {
        &self.shared.path
    }

    /// Loads records from the log; `items` must be in ascending offset order.
    fn load(&self, items: &[Item]) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut out = Vec::with_capacity(items.len());
        let mut buf = Vec::new();
        let mut i = 0;
        while i < items.len() {
            // Extend a run while records are close together.
            let start = items[i].span.offset;
            let mut end = start + u64::from(items[i].span.len);
            let mut j = i + 1;
            while j < items.len() {
                let s = items[j].span;
                if s.offset < end
                    || s.offset - end > COALESCE_GAP
                    || s.offset + u64::from(s.len) - start > COALESCE_MAX
                {
                    break;
                }
                end = s.offset + u64::from(s.len);
                j += 1;
            }
            buf.resize((end - start) as usize, 0);
            self.shared
                .file
                .read_exact_at(&mut buf, start)
                .map_err(|e| {
                    StoreError::backend(EmbeddedError::io(
                        format!("reading {}", self.shared.path.display()),
                        e,
                    ))
                })?;
            for item in &items[i..j] {
                let at = (item.span.offset - start) as usize;
                out.push(self.decode(item, &buf[at..at + item.span.len as usize])?);
            }
            i = j;
        }
        Ok(out)
    }

    /// Decodes a record read from the log, after checking its bytes against
    /// the CRC the index took when the record was written or replayed: a
    /// byte changed since then (also under a checkpoint, where open no
    /// longer reads the log) fails the read instead of being served.
    fn decode(&self, item: &Item, bytes: &[u8]) -> Result<RecordedEvent, StoreError> {
        let found = crc32fast::hash(bytes);
        if found != item.span.crc {
            return Err(StoreError::backend(EmbeddedError::Corrupt {
                path: self.shared.path.clone(),
                offset: item.span.offset,
                reason: format!(
                    "the event at position {} ({} bytes) has CRC {found:08x}, the index recorded {:08x} when it was written: the log was damaged since (run `event-store check`)",
                    item.position, item.span.len, item.span.crc
                ),
            }));
        }
        let r = format::decode_record(bytes).map_err(|reason| {
            StoreError::backend(EmbeddedError::Corrupt {
                path: self.shared.path.clone(),
                offset: item.span.offset,
                reason,
            })
        })?;
        Ok(RecordedEvent {
            stream_id: item.stream.stream_id.clone(),
            stream_type: item.stream.stream_type.clone(),
            revision: r.revision,
            event_type: r.event_type,
            payload: r.payload,
            created_at: r.created_at,
            event_id: r.event_id,
            metadata: r.metadata,
            position: Some(Position::new(item.position)),
        })
    }
}

/// A data directory opened and its log replayed.
struct Recovered {
    lock: Box<dyn DirLock>,
    file: Arc<dyn StorageFile>,
    log_path: PathBuf,
    replayed: recovery::Replayed,
    files: checkpoint::IndexFiles,
    stats: OpenStats,
    /// Deletions and truncations not yet erased.
    erase_tasks: Vec<EraseTask>,
    fs: Arc<dyn FileSystem>,
}

/// Opens the data directory: takes its lock, opens the log, loads the
/// index's checkpoint (or starts a rebuild), replays the log after it
/// (taking checkpoints on the way), cuts a torn tail and makes everything
/// it read durable.
fn recover(options: &EmbeddedOptions, dir: &Path) -> Result<Recovered, EmbeddedError> {
    let fs = options
        .fs
        .for_this_process()
        .unwrap_or_else(|| options.fs.clone());
    let (lock, file, log_path, version) = open_log(&*fs, dir)?;
    // An erasure cut short by a crash is finished before the log is read.
    erase::finish_journal(&*fs, dir, &*file, &log_path)?;
    let mark = match erase::read_mark(&*fs, dir)? {
        Some(m) => m,
        None if version < format::FORMAT_VERSION => {
            // A new log, or one of an older format: no deletion in it.
            let len = file.len().map_err(|e| {
                EmbeddedError::io(format!("reading the size of {}", log_path.display()), e)
            })?;
            erase::write_mark(&*fs, dir, len)?;
            len
        }
        None => FILE_HEADER_LEN,
    };
    // What is read from here on is durable: a process killed during a
    // commit's `fdatasync` may have left frames in the page cache only,
    // and a checkpoint must never cover a frame a power cut can take.
    file.sync_data()
        .map_err(|e| EmbeddedError::io(format!("syncing {}", log_path.display()), e))?;
    let log_len = file
        .len()
        .map_err(|e| EmbeddedError::io(format!("reading the size of {}", log_path.display()), e))?;
    let probe = |offset: u64| recovery::probe_frame(&*file, &log_path, offset);
    let loaded = checkpoint::load(
        &fs,
        dir,
        &dir.join(checkpoint::INDEX_DIR),
        options.index_cache_bytes,
        log_len,
        &probe,
        false,
    )?;
    let mut files = loaded.files;
    let c = files.checkpoint;
    let from = recovery::ReplayFrom {
        offset: c.log_end,
        last_frame: c.last_frame,
        commit_start: c.commit_start,
        until: u64::MAX,
    };
    let every = options.checkpoint_events.max(1);
    let mut on_frame = |index: &mut Index, f: recovery::Replaying| {
        if index.active_positions() >= every && index.can_freeze() {
            let at = Checkpoint {
                last_position: index.last_position(),
                log_end: f.end,
                last_frame: f.offset,
                commit_start: f.commit_start,
                last_time: index.last_time(),
                next_stream: index.next_stream(),
            };
            checkpoint::checkpoint_now(&mut files, index, at)?;
        }
        Ok(())
    };
    let replayed = recovery::replay(&*file, &log_path, loaded.index, from, &mut on_frame)?;
    if replayed.end < replayed.len {
        discard_tail(&*fs, &*file, &log_path, replayed.end, replayed.len)?;
    }
    // Durable before visible: the cut, then the directory entries.
    file.sync_data()
        .map_err(|e| EmbeddedError::io(format!("syncing {}", log_path.display()), e))?;
    fs.sync_dir(dir)
        .map_err(|e| EmbeddedError::io(format!("syncing the directory {}", dir.display()), e))?;
    let stats = OpenStats {
        rebuilt: match loaded.found {
            checkpoint::Found::Checkpoint => None,
            checkpoint::Found::Missing => Some("no index".into()),
            checkpoint::Found::Mismatch => Some(loaded.reason.unwrap_or_default()),
        },
        checkpoint_position: if loaded.found == checkpoint::Found::Checkpoint {
            c.last_position
        } else {
            0
        },
        replayed_frames: replayed.frames,
        replayed_events: replayed.events,
    };
    crate::metrics::replayed(replayed.frames, replayed.events);
    // A mark past the log's end (a log replaced from elsewhere): look
    // everywhere.
    let from = if mark <= replayed.end {
        mark
    } else {
        FILE_HEADER_LEN
    };
    let erase_tasks = erase::pending_tasks(&*file, &log_path, from, replayed.end)?;
    Ok(Recovered {
        lock,
        file,
        log_path,
        replayed,
        files,
        stats,
        erase_tasks,
        fs,
    })
}

/// Rebuilds the index of the store in `dir` from its log: discards the
/// index (its MANIFEST first), replays the whole log with checkpoints and
/// writes a last checkpoint. The store must not be open.
pub(crate) fn rebuild_index(
    options: &EmbeddedOptions,
    dir: &Path,
) -> Result<OpenStats, EmbeddedError> {
    let fs = options.fs.clone();
    checkpoint::discard(&*fs, &dir.join(checkpoint::INDEX_DIR))?;
    let Recovered {
        lock,
        replayed,
        mut files,
        stats,
        ..
    } = recover(options, dir)?;
    let mut index = replayed.index;
    if index.active_positions() > 0 && index.can_freeze() {
        let at = Checkpoint {
            last_position: index.last_position(),
            log_end: replayed.end,
            last_frame: replayed.last_frame,
            commit_start: replayed.commit_start,
            last_time: index.last_time(),
            next_stream: index.next_stream(),
        };
        checkpoint::checkpoint_now(&mut files, &mut index, at)?;
    }
    drop(lock);
    Ok(stats)
}

/// Takes the data directory's lock: [`EmbeddedError::Locked`] when a
/// server (or another store) holds it.
fn lock_dir(fs: &dyn FileSystem, dir: &Path) -> Result<Box<dyn DirLock>, EmbeddedError> {
    let lock_path = dir.join(LOCK_FILE);
    match fs.lock(&lock_path) {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            Err(EmbeddedError::Locked(dir.to_path_buf()))
        }
        Err(e) => Err(EmbeddedError::io(
            format!("locking {}", lock_path.display()),
            e,
        )),
    }
}

/// The directory's lock, its log, the log's path and the format version it
/// had (0: new).
type OpenedLog = (Box<dyn DirLock>, Arc<dyn StorageFile>, PathBuf, u32);

/// Takes the directory's lock and opens its log, creating it (durably, with
/// its directory entry) when new, finishing a creation cut short by a
/// crash, and upgrading a log of format version 1 in place.
fn open_log(fs: &dyn FileSystem, dir: &Path) -> Result<OpenedLog, EmbeddedError> {
    fs.create_dir_all(dir)
        .map_err(|e| EmbeddedError::io(format!("creating {}", dir.display()), e))?;
    let lock = lock_dir(fs, dir)?;
    let path = dir.join(LOG_FILE);
    let file = fs
        .open(&path, true)
        .map_err(|e| EmbeddedError::io(format!("opening {}", path.display()), e))?;
    let io = |what: &str, e| EmbeddedError::io(format!("{what} {}", path.display()), e);
    let len = file.len().map_err(|e| io("reading the size of", e))?;
    let expected = format::file_header();
    let mut found = vec![0u8; len.min(FILE_HEADER_LEN) as usize];
    file.read_exact_at(&mut found, 0)
        .map_err(|e| io("reading", e))?;
    if len >= FILE_HEADER_LEN {
        if found[..8] != expected[..8] {
            return Err(EmbeddedError::NotALog {
                path,
                reason: "wrong magic bytes".into(),
            });
        }
        let version = u32::from_le_bytes(found[8..12].try_into().expect("4 bytes"));
        match version {
            format::FORMAT_VERSION => {}
            1 | 2 => {
                // Frames of the older layouts stay readable; new frames
                // (and erased records) use the current format, which older
                // code must not read as a torn tail or as damage: mark the
                // file first.
                file.write_all_at(&expected[8..12], 8)
                    .and_then(|()| file.sync_data())
                    .map_err(|e| io("upgrading the format version of", e))?;
                tracing::info!(path = %path.display(), from = version, to = format::FORMAT_VERSION, "log format upgraded");
            }
            other => {
                return Err(EmbeddedError::NotALog {
                    path,
                    reason: format!("format version {other}"),
                });
            }
        }
        return Ok((lock, file, path, version));
    }
    // Shorter than a header: a new file, or a creation torn by a crash.
    let torn_creation = found
        .iter()
        .zip(expected.iter())
        .all(|(f, e)| f == e || *f == 0);
    if !torn_creation {
        return Err(EmbeddedError::NotALog {
            path,
            reason: "too short and not a header".into(),
        });
    }
    file.set_len(0).map_err(|e| io("truncating", e))?;
    file.write_all_at(&expected, 0)
        .map_err(|e| io("writing", e))?;
    file.sync_data().map_err(|e| io("syncing", e))?;
    fs.sync_dir(dir)
        .map_err(|e| EmbeddedError::io(format!("syncing the directory {}", dir.display()), e))?;
    Ok((lock, file, path, 0))
}

/// Cuts the torn tail off, keeping a copy beside the log when it holds
/// anything but zeroes, and makes the cut durable.
fn discard_tail(
    fs: &dyn FileSystem,
    file: &dyn StorageFile,
    path: &Path,
    end: u64,
    len: u64,
) -> Result<(), EmbeddedError> {
    let io = |what: String, e| EmbeddedError::io(what, e);
    let mut tail = vec![0u8; (len - end) as usize];
    file.read_exact_at(&mut tail, end)
        .map_err(|e| io(format!("reading {}", path.display()), e))?;
    if tail.iter().any(|&b| b != 0) {
        let keep = path.with_file_name(format!("{LOG_FILE}.discarded-at-{end}"));
        let copy = fs
            .open(&keep, true)
            .map_err(|e| io(format!("creating {}", keep.display()), e))?;
        copy.set_len(0)
            .and_then(|()| copy.write_all_at(&tail, 0))
            .and_then(|()| copy.sync_data())
            .map_err(|e| io(format!("writing {}", keep.display()), e))?;
        tracing::warn!(
            path = %path.display(),
            offset = end,
            bytes = tail.len(),
            kept = %keep.display(),
            "discarding the torn tail of the log (an append that was never acknowledged)"
        );
    }
    file.set_len(end)
        .map_err(|e| io(format!("truncating {}", path.display()), e))?;
    file.sync_data()
        .map_err(|e| io(format!("syncing {}", path.display()), e))
}

/// Verifies every frame of the store in `dir` and the index that would be
/// built from them, without changing anything. The store must not be open.
pub fn check(dir: impl AsRef<Path>) -> Result<CheckReport, EmbeddedError> {
    check_with(&OsFs, dir)
}

/// [`check`] over any file layer.
pub fn check_with<F: FileSystem + Clone>(
    fs: &F,
    dir: impl AsRef<Path>,
) -> Result<CheckReport, EmbeddedError> {
    let dir = dir.as_ref();
    let path = dir.join(LOG_FILE);
    if !fs.exists(&path) {
        return Err(EmbeddedError::NotALog {
            path,
            reason: "there is no log".into(),
        });
    }
    let _lock = lock_dir(fs, dir)?;
    let file = fs
        .open(&path, false)
        .map_err(|e| EmbeddedError::io(format!("opening {}", path.display()), e))?;
    check_header(&*file, &path)?;
    // An erasure a crash interrupted: the log is read as open will leave
    // it, with the journal's frames in place (nothing is written).
    let file = erase::with_journal(fs, dir, file)?;
    let mut report = recovery::analyze(&*file, &path)?.report;
    if report.is_intact() {
        let fs: Arc<dyn FileSystem> = Arc::new(fs.clone());
        report.index = Some(check_index(&fs, dir, &*file, &path)?);
    }
    Ok(report)
}

/// Verifies the index against the log: the MANIFEST's checkpoint, every
/// run's checksums, and every entry of every table and of `feed.idx`
/// against an index built afresh from the log up to the checkpoint (in
/// `index/check/`, deleted afterwards).
fn check_index(
    fs: &Arc<dyn FileSystem>,
    dir: &Path,
    file: &dyn StorageFile,
    path: &Path,
) -> Result<recovery::IndexCheck, EmbeddedError> {
    let index_dir = dir.join(checkpoint::INDEX_DIR);
    let mut out = recovery::IndexCheck::default();
    let log_len = file
        .len()
        .map_err(|e| EmbeddedError::io(format!("reading the size of {}", path.display()), e))?;
    let probe = |offset: u64| recovery::probe_frame(file, path, offset);
    if !fs.exists(&index_dir.join("MANIFEST")) {
        return Ok(out);
    }
    out.present = true;
    let cache = options_cache();
    let disk = match checkpoint::load(fs, dir, &index_dir, cache, log_len, &probe, true) {
        Ok(l) => l,
        Err(EmbeddedError::Corrupt { reason, .. }) => {
            out.stale = Some(format!(
                "the index's checkpoint does not match the log ({reason}); open rebuilds the index"
            ));
            return Ok(out);
        }
        Err(e) => return Err(e),
    };
    let c = disk.files.checkpoint;
    out.checkpoint_position = c.last_position;
    for run in disk.index.runs() {
        if let Err(e) = run.verify() {
            out.problem = Some(e.to_string());
            return Ok(out);
        }
    }
    // The reference: an index built from the log up to the checkpoint.
    let scratch = index_dir.join("check");
    checkpoint::discard(&**fs, &scratch)?;
    let result = (|| -> Result<(), EmbeddedError> {
        let fresh = checkpoint::load(fs, &index_dir, &scratch, cache, log_len, &probe, false)?;
        let mut files = fresh.files;
        let every = EmbeddedOptions::DEFAULT_CHECKPOINT_EVENTS;
        let mut on_frame = |index: &mut Index, f: recovery::Replaying| {
            if index.active_positions() >= every && index.can_freeze() {
                let at = Checkpoint {
                    last_position: index.last_position(),
                    log_end: f.end,
                    last_frame: f.offset,
                    commit_start: f.commit_start,
                    last_time: index.last_time(),
                    next_stream: index.next_stream(),
                };
                checkpoint::checkpoint_now(&mut files, index, at)?;
            }
            Ok(())
        };
        let from = recovery::ReplayFrom {
            offset: FILE_HEADER_LEN,
            last_frame: 0,
            commit_start: 0,
            until: c.log_end,
        };
        let replayed = recovery::replay(file, path, fresh.index, from, &mut on_frame)?;
        let mut reference = replayed.index;
        if reference.active_positions() > 0 {
            let at = Checkpoint {
                last_position: reference.last_position(),
                log_end: replayed.end,
                last_frame: replayed.last_frame,
                commit_start: replayed.commit_start,
                last_time: reference.last_time(),
                next_stream: reference.next_stream(),
            };
            checkpoint::checkpoint_now(&mut files, &mut reference, at)?;
        }
        if reference.last_position() != c.last_position || reference.next_stream() != c.next_stream
        {
            out.problem = Some(format!(
                "the checkpoint says positions up to {} and {} streams; the log up to byte {} holds positions up to {} and {} streams",
                c.last_position,
                c.next_stream,
                c.log_end,
                reference.last_position(),
                reference.next_stream()
            ));
            return Ok(());
        }
        let erased = |span: format::RecordSpan| {
            let mut b = vec![0u8; span.len as usize];
            file.read_exact_at(&mut b, span.offset).is_ok() && format::is_erased(&b)
        };
        let (n, diff) = index::compare(&disk.index, &reference, &erased)?;
        out.entries = n;
        out.problem = diff;
        Ok(())
    })();
    let cleanup = checkpoint::discard(&**fs, &scratch);
    result?;
    cleanup?;
    Ok(out)
}

/// The block cache of `check`'s two indexes.
fn options_cache() -> usize {
    EmbeddedOptions::DEFAULT_INDEX_CACHE_BYTES / 2
}

fn check_header(file: &dyn StorageFile, path: &Path) -> Result<(), EmbeddedError> {
    let mut h = [0u8; FILE_HEADER_LEN as usize];
    file.read_exact_at(&mut h, 0)
        .map_err(|_| EmbeddedError::NotALog {
            path: path.to_path_buf(),
            reason: "shorter than its header".into(),
        })?;
    let version = u32::from_le_bytes(h[8..12].try_into().expect("4 bytes"));
    if h[..8] != format::file_header()[..8] || !(1..=format::FORMAT_VERSION).contains(&version) {
        return Err(EmbeddedError::NotALog {
            path: path.to_path_buf(),
            reason: "wrong magic bytes or version".into(),
        });
    }
    Ok(())
}

/// What [`repair`] did.
#[derive(Debug, Clone)]
pub struct RepairReport {
    /// The check of the log before the repair: what was kept and lost.
    pub before: CheckReport,
    /// Where the damaged original was kept, when anything was changed.
    pub original_kept_at: Option<PathBuf>,
    /// Whether the index was rebuilt from the (repaired) log.
    pub index_rebuilt: bool,
}

impl std::fmt::Display for RepairReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.original_kept_at {
            None if self.index_rebuilt => write!(
                f,
                "{}\nthe log is intact; the index was rebuilt from it",
                self.before
            ),
            None => write!(f, "{}\nnothing to repair", self.before),
            Some(at) => {
                writeln!(
                    f,
                    "kept {} intact frames ({} events) at their positions and revisions",
                    self.before.frames, self.before.events
                )?;
                for d in &self.before.damage {
                    writeln!(f, "lost: {d}")?;
                }
                for (o, why) in &self.before.invalid_frames {
                    writeln!(f, "lost: the frame at byte {o} ({why})")?;
                }
                write!(
                    f,
                    "the damaged original is kept at {}; lost positions are never given out again{}",
                    at.display(),
                    if self.index_rebuilt {
                        "; the index was rebuilt from the repaired log"
                    } else {
                        ""
                    }
                )
            }
        }
    }
}

/// Repairs a damaged store in `dir`: keeps every intact frame at its
/// position and revision (also those after the damage), records the
/// positions and revisions that the damage held as lost so that they are
/// never given out again, keeps the damaged original beside the log, and
/// reports exactly what was lost. The store must not be open.
pub fn repair(dir: impl AsRef<Path>) -> Result<RepairReport, EmbeddedError> {
    repair_with(&OsFs, dir)
}

/// [`repair`] over any file layer.
pub fn repair_with<F: FileSystem + Clone>(
    fs: &F,
    dir: impl AsRef<Path>,
) -> Result<RepairReport, EmbeddedError> {
    let dir = dir.as_ref();
    let mut report = repair_log(fs, dir)?;
    let index_bad = report
        .before
        .index
        .as_ref()
        .is_some_and(|i| i.problem.is_some() || i.stale.is_some());
    if report.original_kept_at.is_some() || index_bad {
        let options = EmbeddedOptions {
            fs: Arc::new(fs.clone()),
            ..EmbeddedOptions::default()
        };
        rebuild_index(&options, dir)?;
        report.index_rebuilt = true;
        tracing::warn!(path = %dir.display(), "index rebuilt from the log");
    }
    Ok(report)
}

/// Repairs the log (see [`repair`]); the index is left to the caller.
fn repair_log<F: FileSystem + Clone>(fs: &F, dir: &Path) -> Result<RepairReport, EmbeddedError> {
    let path = dir.join(LOG_FILE);
    let _lock = lock_dir(fs, dir)?;
    let io = |what: String, e| EmbeddedError::io(what, e);
    let file = fs
        .open(&path, false)
        .map_err(|e| io(format!("opening {}", path.display()), e))?;
    check_header(&*file, &path)?;
    // Finish an erasure a crash interrupted first: its half-rewritten
    // frames are not damage.
    erase::finish_journal(fs, dir, &*file, &path)?;
    let mut analysis = recovery::analyze(&*file, &path)?;
    if analysis.report.is_intact() {
        let shared: Arc<dyn FileSystem> = Arc::new(fs.clone());
        analysis.report.index = Some(check_index(&shared, dir, &*file, &path)?);
        return Ok(RepairReport {
            before: analysis.report,
            original_kept_at: None,
            index_rebuilt: false,
        });
    }
    // 1. Keep the original, durably, before anything replaces it.
    let stamp = Timestamp::now().as_micros();
    let kept = dir.join(format!("{LOG_FILE}.damaged-{stamp}"));
    let len = file
        .len()
        .map_err(|e| io(format!("reading the size of {}", path.display()), e))?;
    let copy = fs
        .open(&kept, true)
        .map_err(|e| io(format!("creating {}", kept.display()), e))?;
    let mut at = 0;
    let mut buf = vec![0u8; 1 << 20];
    while at < len {
        let n = ((len - at) as usize).min(buf.len());
        file.read_exact_at(&mut buf[..n], at)
            .and_then(|()| copy.write_all_at(&buf[..n], at))
            .map_err(|e| {
                io(
                    format!("copying {} to {}", path.display(), kept.display()),
                    e,
                )
            })?;
        at += n as u64;
    }
    copy.sync_data()
        .map_err(|e| io(format!("syncing {}", kept.display()), e))?;
    // 2. Write the repaired log beside it.
    let fresh_path = dir.join(format!("{LOG_FILE}.repairing"));
    let fresh = fs
        .open(&fresh_path, true)
        .map_err(|e| io(format!("creating {}", fresh_path.display()), e))?;
    fresh
        .set_len(0)
        .map_err(|e| io(format!("truncating {}", fresh_path.display()), e))?;
    // Written in pieces of about 8 MiB, so that memory does not grow with
    // the log.
    let mut out = format::file_header().to_vec();
    let mut written = 0u64;
    for piece in &analysis.plan {
        let offset = written + out.len() as u64;
        match piece {
            recovery::Piece::Keep(f) => {
                recovery::rewrite_frame(&*file, f, offset, &path, &mut out)?
            }
            recovery::Piece::Lost(range) => format::encode_lost(&mut out, offset, range),
        }
        if out.len() >= 8 << 20 {
            fresh
                .write_all_at(&out, written)
                .map_err(|e| io(format!("writing {}", fresh_path.display()), e))?;
            written += out.len() as u64;
            out.clear();
        }
    }
    fresh
        .write_all_at(&out, written)
        .and_then(|()| fresh.sync_data())
        .map_err(|e| io(format!("writing {}", fresh_path.display()), e))?;
    // 3. Put it in place.
    fs.sync_dir(dir)
        .map_err(|e| io(format!("syncing the directory {}", dir.display()), e))?;
    // The repaired log's frames moved: the erasure mark starts over (open
    // then erases again whatever deletions and truncations it holds;
    // erased records are skipped).
    erase::write_mark(fs, dir, FILE_HEADER_LEN)?;
    fs.rename(&fresh_path, &path)
        .map_err(|e| io(format!("renaming {}", fresh_path.display()), e))?;
    fs.sync_dir(dir)
        .map_err(|e| io(format!("syncing the directory {}", dir.display()), e))?;
    tracing::warn!(path = %path.display(), kept = %kept.display(), "log repaired");
    Ok(RepairReport {
        before: analysis.report,
        original_kept_at: Some(kept),
        index_rebuilt: false,
    })
}

fn unavailable() -> StoreError {
    StoreError::Unavailable("the store is shutting down".into())
}

#[async_trait]
impl EventStore for EmbeddedStore {
    #[tracing::instrument(level = "debug", skip_all, fields(stream = %request.stream()))]
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(unavailable());
        }
        if let Some(reason) = self.shared.failure() {
            return Err(StoreError::Unavailable(reason));
        }
        let (reply, answer) = oneshot::channel();
        let reply = crate::writer::Reply::new(reply);
        let _queued = crate::metrics::Queued::enter();
        match self.commands.try_send(Command::Append { request, reply }) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Full(_)) => {
                return Err(StoreError::Overloaded(
                    "the writer's queue is full; retry shortly".into(),
                ));
            }
            Err(mpsc::TrySendError::Disconnected(_)) => return Err(unavailable()),
        }
        answer.await.map_err(|_| unavailable())?
    }

    async fn stream_info(&self, stream: &StreamKey) -> Result<Option<StreamInfo>, StoreError> {
        let index = self.shared.read_index();
        match index.stream(stream).map_err(StoreError::backend)? {
            Some((_, s)) if index.removal(s.number).deleted_at != 0 => {
                Err(StoreError::StreamDeleted(stream.clone()))
            }
            Some((k, s)) => Ok(Some(index.info_of(&k, &s))),
            None => Ok(None),
        }
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn read_stream(
        &self,
        stream: &StreamKey,
        read: StreamRead,
    ) -> Result<StreamSlice, StoreError> {
        let _reading = self.shared.reading();
        let found = {
            let index = self.shared.read_index();
            if let Some((_, s)) = index.stream(stream).map_err(StoreError::backend)?
                && index.removal(s.number).deleted_at != 0
            {
                return Err(StoreError::StreamDeleted(stream.clone()));
            }
            index
                .stream_items(stream, &read)
                .map_err(StoreError::backend)?
        };
        let (items, has_more, last_evaluated_revision) =
            found.ok_or_else(|| StoreError::StreamNotFound(stream.clone()))?;
        let mut events = self.load(&items)?;
        if read.direction == eventstore_core::Direction::Backward {
            events.reverse();
        }
        Ok(StreamSlice {
            events,
            has_more,
            last_evaluated_revision,
        })
    }

    async fn list_streams(
        &self,
        stream_type: &StreamType,
        updated_after: Option<Timestamp>,
        cursor: Option<StreamCursor>,
        limit: usize,
    ) -> Result<StreamListPage, StoreError> {
        self.shared
            .read_index()
            .list_streams(stream_type, updated_after, cursor.as_ref(), limit)
            .map_err(StoreError::backend)
    }

    async fn stream_types(&self) -> Result<Vec<StreamTypeCount>, StoreError> {
        self.shared
            .read_index()
            .stream_types()
            .map_err(StoreError::backend)
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn read_feed(
        &self,
        filter: &FeedFilter,
        after: Position,
        limit: usize,
    ) -> Result<FeedPage, StoreError> {
        let stream_type = match filter {
            FeedFilter::All => None,
            FeedFilter::StreamType(t) => Some(t),
        };
        let _reading = self.shared.reading();
        let (items, has_more) = self
            .shared
            .read_index()
            .feed_items(stream_type, after.get(), limit)
            .map_err(StoreError::backend)?;
        let events = self.load(&items)?;
        let last_position = items.last().map_or(after, |i| Position::new(i.position));
        Ok(FeedPage {
            events,
            has_more,
            last_position,
        })
    }

    async fn wait_for_feed(&self, after: Position) -> Result<(), StoreError> {
        let mut committed = self.shared.committed.subscribe();
        loop {
            if *committed.borrow_and_update() > after.get() {
                return Ok(());
            }
            // The sender lives as long as the store: an error cannot happen
            // while `self` is borrowed, but answer sensibly if it does.
            committed.changed().await.map_err(|_| unavailable())?;
        }
    }

    async fn wait_for_type_feed(
        &self,
        stream_type: &StreamType,
        after: Position,
    ) -> Result<(), StoreError> {
        let mut progress = {
            let mut waiters = self
                .shared
                .type_progress
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            match waiters.get(stream_type) {
                Some(w) => w.subscribe(),
                None => {
                    // Read under the waiters' lock: the writer publishes
                    // after the index, under the same lock.
                    let last = self
                        .shared
                        .read_index()
                        .type_last_position(stream_type)
                        .map_err(StoreError::backend)?;
                    let (tx, rx) = watch::channel(last);
                    waiters.insert(stream_type.clone(), tx);
                    rx
                }
            }
        };
        loop {
            if *progress.borrow_and_update() > after.get() {
                return Ok(());
            }
            progress.changed().await.map_err(|_| unavailable())?;
        }
    }

    async fn delete_stream(
        &self,
        stream: &StreamKey,
        expected: Option<Revision>,
    ) -> Result<DeleteOutcome, StoreError> {
        let op = Lifecycle::Delete {
            stream: stream.clone(),
            expected,
        };
        match self.lifecycle(op).await? {
            LifecycleOutcome::Deleted(d) => Ok(d),
            LifecycleOutcome::Truncated(_) => Err(StoreError::Backend(
                "the writer answered a deletion as a truncation".into(),
            )),
        }
    }

    async fn truncate_stream(
        &self,
        stream: &StreamKey,
        before: Revision,
        expected: Option<Revision>,
    ) -> Result<StreamInfo, StoreError> {
        let op = Lifecycle::Truncate {
            stream: stream.clone(),
            before,
            expected,
        };
        match self.lifecycle(op).await? {
            LifecycleOutcome::Truncated(info) => Ok(info),
            LifecycleOutcome::Deleted(_) => Err(StoreError::Backend(
                "the writer answered a truncation as a deletion".into(),
            )),
        }
    }

    fn readiness(&self) -> Result<(), String> {
        if let Some(reason) = self.shared.failure() {
            return Err(reason);
        }
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err("the store is shutting down".into());
        }
        Ok(())
    }
}
