//! [`EmbeddedStore`]: opening and recovering a data directory, and the
//! read side of [`EventStore`].

use std::fs::{File, OpenOptions};
use std::io::{BufReader, ErrorKind, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard, mpsc};

use async_trait::async_trait;
use eventstore_core::{
    AppendOutcome, AppendRequest, EventStore, FeedFilter, FeedPage, Position, RecordedEvent,
    StoreError, StreamCursor, StreamInfo, StreamKey, StreamListPage, StreamRead, StreamSlice,
    StreamType, StreamTypeCount, Timestamp,
};
use tokio::sync::{oneshot, watch};

use crate::EmbeddedError;
use crate::format::{self, FILE_HEADER_LEN, FRAME_HEADER_LEN, FrameHeader, RecordSpan};
use crate::index::{Commit, Index, Item};
use crate::writer::{Command, Writer};

/// Name of the log file inside the data directory.
pub(crate) const LOG_FILE: &str = "events.log";
/// Name of the lock file inside the data directory.
const LOCK_FILE: &str = "LOCK";
/// The most bytes a crash can leave unreadable at the end of the log: one
/// group commit's write (see `writer::MAX_BATCH_BYTES`) plus one largest
/// frame. More than that is damage, not a torn tail, and open refuses it.
const MAX_TORN_TAIL: u64 = 128 << 20;
/// Records closer than this are read with one positional read.
const COALESCE_GAP: u64 = 4096;
/// The most bytes one coalesced read takes.
const COALESCE_MAX: u64 = 1 << 20;

/// State shared by the store handle, its readers and the writer thread.
pub(crate) struct Shared {
    pub index: RwLock<Index>,
    /// A read-only handle for positional reads of records.
    pub reader: File,
    /// The position of the last durable, published event.
    pub committed: watch::Sender<u64>,
    pub closed: AtomicBool,
    pub path: PathBuf,
}

impl Shared {
    pub(crate) fn read_index(&self) -> RwLockReadGuard<'_, Index> {
        // A panic while holding the lock cannot leave the index half
        // updated in a way readers would notice more than the panic itself.
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn write_index(&self) -> RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// The embedded event store: an append-only log file with an in-memory
/// index, group commit and crash recovery. See the crate documentation.
///
/// Dropping the store lets the writer finish the appends already queued;
/// [`EmbeddedStore::close`] does the same and waits for it.
pub struct EmbeddedStore {
    shared: Arc<Shared>,
    commands: mpsc::Sender<Command>,
    stopped: watch::Receiver<bool>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Opens (creating it if needed) the store in directory `path`: takes
    /// the directory's lock, replays the log into the index, discards a torn
    /// tail left by a crash, and starts the writer thread.
    ///
    /// Blocking (file I/O proportional to the log's size); call it at start
    /// up, or from `spawn_blocking`. Fails with [`EmbeddedError::Locked`]
    /// when another process holds the directory.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, EmbeddedError> {
        let dir = path.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir)
            .map_err(|e| EmbeddedError::io(format!("creating {}", dir.display()), e))?;
        let lock = take_lock(&dir)?;
        let log_path = dir.join(LOG_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&log_path)
            .map_err(|e| EmbeddedError::io(format!("opening {}", log_path.display()), e))?;
        check_or_write_header(&mut file, &log_path, &dir)?;
        let recovered = recover(&file, &log_path)?;
        if recovered.end < recovered.len {
            discard_tail(&file, &log_path, recovered.end, recovered.len)?;
        }
        let reader = File::open(&log_path)
            .map_err(|e| EmbeddedError::io(format!("opening {}", log_path.display()), e))?;
        let last_position = recovered.index.last_position();
        let last_time = recovered.index.last_time();
        let (committed, _) = watch::channel(last_position);
        let shared = Arc::new(Shared {
            index: RwLock::new(recovered.index),
            reader,
            committed,
            closed: AtomicBool::new(false),
            path: log_path,
        });
        let (commands, queue) = mpsc::channel();
        let (stop_tx, stopped) = watch::channel(false);
        let writer = Writer::new(
            shared.clone(),
            file,
            lock,
            recovered.end,
            last_position,
            last_time,
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
            "embedded store open"
        );
        Ok(Self {
            shared,
            commands,
            stopped,
        })
    }

    /// Shuts down gracefully: new appends are refused with
    /// [`StoreError::Unavailable`], appends already queued are written and
    /// synced, then the log and the directory lock are released. Reads keep
    /// working on what was committed. Idempotent.
    pub async fn close(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        let _ = self.commands.send(Command::Close);
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
                .reader
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

    fn decode(&self, item: &Item, bytes: &[u8]) -> Result<RecordedEvent, StoreError> {
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

fn take_lock(dir: &Path) -> Result<File, EmbeddedError> {
    let path = dir.join(LOCK_FILE);
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| EmbeddedError::io(format!("opening {}", path.display()), e))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => Err(EmbeddedError::Locked(dir.to_path_buf())),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(EmbeddedError::io(format!("locking {}", path.display()), e))
        }
    }
}

/// Checks the file header, or writes it (durably, with the directory
/// entry) when the file is new or its creation was cut short by a crash.
fn check_or_write_header(file: &mut File, path: &Path, dir: &Path) -> Result<(), EmbeddedError> {
    let io = |what: &str, e| EmbeddedError::io(format!("{what} {}", path.display()), e);
    let len = file
        .metadata()
        .map_err(|e| io("reading the size of", e))?
        .len();
    let expected = format::file_header();
    let mut found = vec![0u8; len.min(FILE_HEADER_LEN) as usize];
    file.read_exact_at(&mut found, 0)
        .map_err(|e| io("reading", e))?;
    if len >= FILE_HEADER_LEN {
        if found[..8] != expected[..8] {
            return Err(EmbeddedError::NotALog {
                path: path.to_path_buf(),
                reason: "wrong magic bytes".into(),
            });
        }
        if found[8..12] != expected[8..12] {
            return Err(EmbeddedError::NotALog {
                path: path.to_path_buf(),
                reason: format!(
                    "format version {}",
                    u32::from_le_bytes(found[8..12].try_into().expect("4 bytes"))
                ),
            });
        }
        return Ok(());
    }
    // Shorter than a header: a new file, or a creation torn by a crash.
    let torn_creation = found
        .iter()
        .zip(expected.iter())
        .all(|(f, e)| f == e || *f == 0);
    if !torn_creation {
        return Err(EmbeddedError::NotALog {
            path: path.to_path_buf(),
            reason: "too short and not a header".into(),
        });
    }
    file.set_len(0).map_err(|e| io("truncating", e))?;
    file.write_all_at(&expected, 0)
        .map_err(|e| io("writing", e))?;
    file.flush().map_err(|e| io("writing", e))?;
    file.sync_all().map_err(|e| io("syncing", e))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), EmbeddedError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| EmbeddedError::io(format!("syncing the directory {}", dir.display()), e))
}

struct Recovered {
    index: Index,
    /// End of the last valid frame.
    end: u64,
    /// Length of the file.
    len: u64,
}

/// Replays the log into an index. Stops at the first frame that is cut
/// short or fails its checksum (the torn tail); fails on a checksummed
/// frame that breaks an invariant (damage that a crash cannot cause).
fn recover(file: &File, path: &Path) -> Result<Recovered, EmbeddedError> {
    let len = file
        .metadata()
        .map_err(|e| EmbeddedError::io(format!("reading the size of {}", path.display()), e))?
        .len();
    let mut input = BufReader::with_capacity(1 << 20, file);
    std::io::Seek::seek(&mut input, std::io::SeekFrom::Start(FILE_HEADER_LEN))
        .map_err(|e| EmbeddedError::io(format!("reading {}", path.display()), e))?;
    let mut index = Index::default();
    let mut offset = FILE_HEADER_LEN;
    let mut body = Vec::new();
    loop {
        let mut header = [0u8; FRAME_HEADER_LEN];
        if !read_fully(&mut input, &mut header, path)? {
            break;
        }
        let Some(h) = FrameHeader::parse(&header) else {
            break;
        };
        if offset + (FRAME_HEADER_LEN as u64) + u64::from(h.body_len) > len {
            break;
        }
        body.resize(h.body_len as usize, 0);
        if !read_fully(&mut input, &mut body, path)? || !h.checks(&body) {
            break;
        }
        let corrupt = |reason: String| EmbeddedError::Corrupt {
            path: path.to_path_buf(),
            offset,
            reason,
        };
        let frame = format::decode_frame(&body, h.count).map_err(corrupt)?;
        let body_offset = offset + FRAME_HEADER_LEN as u64;
        let stream = match index.stream(&frame.stream) {
            Some(s) => index.key(s).clone(),
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
                            len: span.len,
                        },
                    )
                })
                .collect(),
        };
        index.apply(&commit).map_err(corrupt)?;
        offset = body_offset + u64::from(h.body_len);
    }
    if len - offset > MAX_TORN_TAIL {
        return Err(EmbeddedError::Corrupt {
            path: path.to_path_buf(),
            offset,
            reason: format!(
                "{} unreadable bytes follow; a crash leaves at most {MAX_TORN_TAIL}",
                len - offset
            ),
        });
    }
    Ok(Recovered {
        index,
        end: offset,
        len,
    })
}

/// Reads exactly `buf.len()` bytes; `false` at end of file.
fn read_fully(input: &mut impl Read, buf: &mut [u8], path: &Path) -> Result<bool, EmbeddedError> {
    match input.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(EmbeddedError::io(format!("reading {}", path.display()), e)),
    }
}

/// Cuts the torn tail off, keeping a copy beside the log when it holds
/// anything but zeroes, and makes the cut durable.
fn discard_tail(file: &File, path: &Path, end: u64, len: u64) -> Result<(), EmbeddedError> {
    let io = |what: String, e| EmbeddedError::io(what, e);
    let mut tail = vec![0u8; (len - end) as usize];
    file.read_exact_at(&mut tail, end)
        .map_err(|e| io(format!("reading {}", path.display()), e))?;
    if tail.iter().any(|&b| b != 0) {
        let keep = path.with_file_name(format!("{LOG_FILE}.discarded-at-{end}"));
        std::fs::write(&keep, &tail).map_err(|e| io(format!("writing {}", keep.display()), e))?;
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
    file.sync_all()
        .map_err(|e| io(format!("syncing {}", path.display()), e))
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
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Append { request, reply })
            .map_err(|_| unavailable())?;
        answer.await.map_err(|_| unavailable())?
    }

    async fn stream_info(&self, stream: &StreamKey) -> Result<Option<StreamInfo>, StoreError> {
        let index = self.shared.read_index();
        Ok(index.stream(stream).map(|s| index.info(s)))
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn read_stream(
        &self,
        stream: &StreamKey,
        read: StreamRead,
    ) -> Result<StreamSlice, StoreError> {
        let found = self.shared.read_index().stream_items(stream, &read);
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
        Ok(self.shared.read_index().list_streams(
            stream_type,
            updated_after,
            cursor.as_ref(),
            limit,
        ))
    }

    async fn stream_types(&self) -> Result<Vec<StreamTypeCount>, StoreError> {
        Ok(self.shared.read_index().stream_types())
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
        let (items, has_more) =
            self.shared
                .read_index()
                .feed_items(stream_type, after.get(), limit);
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
}
