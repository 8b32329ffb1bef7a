//! The single writer: group commit of every append queued while the
//! previous commit was syncing.

use std::collections::HashMap;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, atomic::Ordering};
use std::time::{Duration, Instant};

use eventstore_core::idempotency::{Decision, decide};
use eventstore_core::{
    AppendOutcome, AppendRequest, EventId, Position, Revision, StoreError, StreamKey, StreamType,
    Timestamp,
};
use tokio::sync::oneshot;

use crate::EmbeddedError;
use crate::checkpoint::{Checkpoint, Checkpointer};
use crate::format::{self, FrameMeta};
use crate::index::{Commit, Index};
use crate::store::Shared;
use crate::vfs::{DirLock, StorageFile};

/// Most payload bytes one group commit takes before it stops collecting.
const MAX_BATCH_BYTES: usize = 16 << 20;
/// Most bytes one group commit writes: it takes whole frames until they
/// pass this, so one commit's write is at most this plus one frame — the
/// most a crash can tear, and what open accepts as a torn tail
/// (`recovery::MAX_TORN_TAIL`).
pub(crate) const MAX_COMMIT_BYTES: usize = 16 << 20;
/// Most appends one group commit takes.
const MAX_BATCH_APPENDS: usize = 4096;

/// The longest a commit waits for more appends to join it.
const MAX_GATHER: Duration = Duration::from_millis(2);

/// How long the next commit may wait for the clients the previous one
/// answered. A commit that finds fewer appends queued than the previous
/// one answered waits up to a quarter of the previous commit's duration
/// (at most [`MAX_GATHER`]) for them, and starts as soon as they are all
/// there. With one client nothing ever waits; with many clients and a slow
/// `fdatasync` this turns alternating small and large commits (two syncs of
/// latency per append) into full ones (one sync).
#[derive(Default)]
struct Gather {
    expected: usize,
    until: Option<Instant>,
}

impl Gather {
    fn after(appends: usize, took: Duration, now: Instant) -> Self {
        Self {
            expected: appends,
            until: Some(now + (took / 4).min(MAX_GATHER)),
        }
    }

    fn expected(&self) -> usize {
        self.expected
    }

    /// The time to wait until, while it is in the future.
    fn deadline(&self) -> Option<Instant> {
        self.until.filter(|&d| d > Instant::now())
    }
}

/// What the store handle sends the writer.
pub(crate) enum Command {
    /// Append, and answer on `reply` once durable (or rejected).
    Append {
        request: AppendRequest,
        reply: Reply,
    },
    /// Finish what is queued before this and stop.
    Close,
}

/// Where an append's answer goes, with the span of the store call that
/// waits for it: the commit's write and `fdatasync` are traced under it.
pub(crate) struct Reply {
    tx: oneshot::Sender<Result<AppendOutcome, StoreError>>,
    span: tracing::Span,
}

impl Reply {
    /// Answers on `tx`, under the caller's current span.
    pub(crate) fn new(tx: oneshot::Sender<Result<AppendOutcome, StoreError>>) -> Self {
        Self {
            tx,
            span: tracing::Span::current(),
        }
    }

    /// Sends the answer (an `Err` when the caller stopped waiting).
    fn send(
        self,
        answer: Result<AppendOutcome, StoreError>,
    ) -> Result<(), Result<AppendOutcome, StoreError>> {
        self.tx.send(answer)
    }

    /// A span for the commit's write and `fdatasync`, under the caller's
    /// span.
    fn commit_span(&self, appends: usize, bytes: usize) -> tracing::Span {
        tracing::debug_span!(parent: &self.span, "fdatasync", appends, write_bytes = bytes)
    }
}

/// What the writer decided for one append of a batch.
enum Planned {
    Write(Commit),
    Already {
        stream: StreamKey,
        first: Revision,
        last: Revision,
    },
    Rejected(StoreError),
}

/// The state of a stream as the appends earlier in the batch left it.
struct Pending {
    revision: Revision,
    ids: HashMap<EventId, Revision>,
}

/// Where the writer takes over from open's replay.
pub(crate) struct Resume {
    pub end: u64,
    pub last_position: u64,
    pub last_time: Option<Timestamp>,
    /// The last frame of the log (0: none) and its commit's start.
    pub last_frame: u64,
    pub commit_start: u64,
}

pub(crate) struct Writer {
    shared: Arc<Shared>,
    file: Arc<dyn StorageFile>,
    _lock: Box<dyn DirLock>,
    /// Where the next frame goes.
    end: u64,
    next_position: u64,
    last_time: Option<Timestamp>,
    /// The last frame written (0: none) and where its commit starts: what
    /// a checkpoint records.
    last_frame: u64,
    commit_start: u64,
    checkpointer: Checkpointer,
    checkpoint_events: u64,
    checkpoint_interval: Duration,
    /// When the active delta was started.
    delta_since: Instant,
    /// Set when a write or sync failed: what is on disk past `end` is
    /// unknown, so nothing more is written until the store is reopened.
    failed: Option<String>,
    buf: Vec<u8>,
    /// The last frame encoded into `buf` and its commit's start.
    pending_last_frame: u64,
    pending_commit_start: u64,
}

impl Writer {
    pub(crate) fn new(
        shared: Arc<Shared>,
        file: Arc<dyn StorageFile>,
        lock: Box<dyn DirLock>,
        resume: Resume,
        checkpointer: Checkpointer,
        checkpoint_events: u64,
        checkpoint_interval: Duration,
    ) -> Self {
        Self {
            shared,
            file,
            _lock: lock,
            end: resume.end,
            next_position: resume.last_position + 1,
            last_time: resume.last_time,
            last_frame: resume.last_frame,
            commit_start: resume.commit_start,
            checkpointer,
            checkpoint_events,
            checkpoint_interval,
            delta_since: Instant::now(),
            failed: None,
            buf: Vec::new(),
            pending_last_frame: 0,
            pending_commit_start: 0,
        }
    }

    /// Runs until `Close` or until every sender is gone. Appends queued
    /// behind a `Close` are dropped unanswered (their callers see the store
    /// as unavailable).
    pub(crate) fn run(mut self, queue: Receiver<Command>) {
        let mut gather = Gather::default();
        let mut carried: Vec<(AppendRequest, Reply)> = Vec::new();
        loop {
            let first = if carried.is_empty() {
                match queue.recv_timeout(self.checkpoint_interval) {
                    Ok(first) => Some(first),
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        self.maybe_checkpoint();
                        continue;
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                }
            } else {
                queue.try_recv().ok()
            };
            let mut batch = std::mem::take(&mut carried);
            let mut bytes = 0;
            let mut closing = false;
            let mut next = first;
            while let Some(command) = next.take() {
                match command {
                    Command::Close => {
                        closing = true;
                        break;
                    }
                    Command::Append { request, reply } => {
                        bytes += request.events().iter().map(|e| e.data_len()).sum::<usize>();
                        batch.push((request, reply));
                    }
                }
                if bytes >= MAX_BATCH_BYTES || batch.len() >= MAX_BATCH_APPENDS {
                    break;
                }
                next = queue.try_recv().ok();
                if next.is_none() && batch.len() < gather.expected() {
                    // The clients answered by the previous commit are
                    // probably about to send their next appends: give them
                    // a fraction of a sync's time to join this commit.
                    next = gather.deadline().and_then(|d| {
                        queue
                            .recv_timeout(d.saturating_duration_since(Instant::now()))
                            .ok()
                    });
                }
            }
            if !batch.is_empty() {
                let appends = batch.len();
                let started = Instant::now();
                carried = self.commit(batch);
                gather = Gather::after(appends, started.elapsed(), Instant::now());
                crate::metrics::committed(appends);
                self.maybe_checkpoint();
            }
            if closing && carried.is_empty() {
                break;
            }
            if closing {
                // Finish the appends carried over, then stop.
                while !carried.is_empty() {
                    let batch = std::mem::take(&mut carried);
                    carried = self.commit(batch);
                }
                break;
            }
        }
        self.shared.closed.store(true, Ordering::SeqCst);
        if self.failed.is_none()
            && let Err(e) = self.file.sync_data()
        {
            tracing::error!(error = %e, "final sync of the log failed");
        }
        // A last checkpoint, so that the next open replays nothing; the
        // lock is held until it is written.
        self.checkpointer.wait_idle();
        self.checkpoint(true);
        self.checkpointer.stop();
        tracing::info!(path = %self.shared.path.display(), "embedded store closed");
    }

    /// Starts a checkpoint when the active delta is due: it holds
    /// `checkpoint_events` events, or is older than `checkpoint_interval`.
    fn maybe_checkpoint(&mut self) {
        if self.checkpointer.idle() {
            self.checkpoint(false);
        }
    }

    /// Freezes the active delta and hands it to the checkpoint thread
    /// (when due, or whenever it is not empty with `force`).
    fn checkpoint(&mut self, force: bool) {
        if !self.checkpointer.idle() {
            return;
        }
        let job = {
            let mut index = self.shared.write_index();
            let n = index.active_positions();
            let due = n >= self.checkpoint_events
                || (n > 0 && (force || self.delta_since.elapsed() >= self.checkpoint_interval));
            if !due || !index.can_freeze() {
                None
            } else {
                let at = Checkpoint {
                    last_position: index.last_position(),
                    log_end: self.end,
                    last_frame: self.last_frame,
                    commit_start: self.commit_start,
                    last_time: index.last_time(),
                    next_stream: index.next_stream(),
                };
                Some((index.freeze(), at))
            }
        };
        if let Some((frozen, at)) = job {
            self.delta_since = Instant::now();
            self.checkpointer.submit(frozen, at);
        }
    }

    /// One group commit: decide, write, sync, publish, answer. Returns the
    /// appends left for the next commit when this one's frames reached
    /// [`MAX_COMMIT_BYTES`].
    fn commit(&mut self, batch: Vec<(AppendRequest, Reply)>) -> Vec<(AppendRequest, Reply)> {
        if let Some(reason) = &self.failed {
            for (_, reply) in batch {
                let _ = reply.send(Err(StoreError::Unavailable(reason.clone())));
            }
            return Vec::new();
        }
        self.buf.clear();
        let mut plans = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        let mut rest = Vec::new();
        {
            let shared = self.shared.clone();
            let index = shared.read_index();
            let mut pending: HashMap<StreamKey, Pending> = HashMap::new();
            let mut batch = batch.into_iter();
            for (request, reply) in batch.by_ref() {
                plans.push(self.plan(&index, &mut pending, request));
                replies.push(reply);
                if self.buf.len() >= MAX_COMMIT_BYTES {
                    break;
                }
            }
            rest.extend(batch);
        }
        if !self.buf.is_empty() {
            // Only traced callers get a span: nothing is allocated when
            // tracing does not record them.
            let spans: Vec<tracing::Span> = replies
                .iter()
                .filter(|r| !r.span.is_disabled())
                .map(|r| r.commit_span(replies.len(), self.buf.len()))
                .collect();
            let written = self
                .file
                .write_all_at(&self.buf, self.end)
                .and_then(|()| crate::metrics::timed_sync(|| self.file.sync_data()));
            drop(spans);
            if let Err(e) = written {
                self.fail(e, replies);
                for (_, reply) in rest {
                    let _ = reply.send(Err(StoreError::Unavailable(
                        self.failed.clone().unwrap_or_default(),
                    )));
                }
                return Vec::new();
            }
            self.end += self.buf.len() as u64;
            self.last_frame = self.pending_last_frame;
            self.commit_start = self.pending_commit_start;
        }
        let mut answers = Vec::with_capacity(plans.len());
        let last_position;
        let mut written: HashMap<StreamType, u64> = HashMap::new();
        {
            let mut index = self.shared.write_index();
            for plan in plans {
                if let Planned::Write(c) = &plan {
                    let last = c.first_position + c.events.len() as u64 - 1;
                    written.insert(c.stream.stream_type.clone(), last);
                }
                answers.push(answer(&mut index, plan));
            }
            last_position = index.last_position();
            crate::metrics::stored(last_position, index.stream_count(), self.end);
        }
        self.shared.committed.send_replace(last_position);
        self.shared.publish_types(&written);
        for (reply, answer) in replies.into_iter().zip(answers) {
            let _ = reply.send(answer);
        }
        rest
    }

    /// A write or sync failed: stop acknowledging (fail-stop), cut the file
    /// back to the last durable end so that neither this process nor a
    /// restart shows the failed commit, and answer its appends with an
    /// error. After a failed `fdatasync`, Linux may have marked the pages
    /// clean while they never reached the disk, so what reads would see
    /// past `end` is not to be trusted.
    fn fail(&mut self, e: std::io::Error, replies: Vec<Reply>) {
        let err = EmbeddedError::io(format!("appending to {}", self.shared.path.display()), e);
        tracing::error!(error = %err, "the log could not be written; the store stops acknowledging appends until it is reopened");
        let cut = self
            .file
            .set_len(self.end)
            .and_then(|()| self.file.sync_data());
        let reason = match cut {
            Ok(()) => format!(
                "the log could not be written ({err}); the failed commit was cut off; restart the server once the disk is healthy"
            ),
            Err(cut_err) => {
                tracing::error!(error = %cut_err, end = self.end, "cutting the failed commit off the log failed too");
                format!(
                    "the log could not be written ({err}) and the failed commit could not be cut off ({cut_err}); restart the server once the disk is healthy"
                )
            }
        };
        self.failed = Some(reason.clone());
        self.shared.set_failed(reason);
        let err = Arc::new(err);
        for reply in replies {
            let _ = reply.send(Err(StoreError::Backend(Box::new(SharedError(err.clone())))));
        }
    }

    /// Decides one append against the index plus the batch so far, and
    /// encodes its frame when it writes.
    fn plan(
        &mut self,
        index: &Index,
        pending: &mut HashMap<StreamKey, Pending>,
        request: AppendRequest,
    ) -> Planned {
        let key = request.stream();
        let existing = match index.stream(key) {
            Ok(e) => e,
            Err(e) => return Planned::Rejected(StoreError::backend(e)),
        };
        let before = pending.get(key);
        let current = before
            .map(|p| p.revision)
            .or_else(|| existing.as_ref().map(|(_, s)| Revision::new(s.revision)))
            .unwrap_or(Revision::ZERO);
        let ids = request.event_ids();
        let mut found: Vec<Option<Revision>> = Vec::with_capacity(ids.len());
        for id in &ids {
            let f = match before.and_then(|p| p.ids.get(id).copied()) {
                Some(r) => Some(r),
                None => match &existing {
                    Some((_, s)) => match index.find(s.number, id) {
                        Ok(f) => f,
                        Err(e) => return Planned::Rejected(StoreError::backend(e)),
                    },
                    None => None,
                },
            };
            found.push(f);
        }
        match decide(request.expectation(), current, &ids, &found) {
            Err(e) => Planned::Rejected(e),
            Ok(Decision::AlreadyAppended { first, last }) => Planned::Already {
                stream: key.clone(),
                first,
                last,
            },
            Ok(Decision::Write) => {
                let commit_time = self.commit_time();
                let first_revision = current.next();
                let stream = match existing {
                    Some((k, _)) => k,
                    None => Arc::new(key.clone()),
                };
                let first_position = self.next_position;
                self.pending_last_frame = self.end + self.buf.len() as u64;
                self.pending_commit_start = self.end;
                let meta = FrameMeta {
                    first_position,
                    commit_time,
                    first_revision,
                    stream: &stream,
                    commit_start: self.end,
                };
                // `self.buf[0]` goes to `self.end`.
                let spans = format::encode_frame(&mut self.buf, self.end, &meta, request.events());
                self.next_position += spans.len() as u64;
                let entry = pending.entry(key.clone()).or_insert_with(|| Pending {
                    revision: current,
                    ids: HashMap::new(),
                });
                for (i, id) in ids.iter().enumerate() {
                    entry
                        .ids
                        .insert(*id, Revision::new(first_revision.get() + i as u64));
                }
                entry.revision = Revision::new(current.get() + ids.len() as u64);
                Planned::Write(Commit {
                    stream,
                    commit_time,
                    first_revision,
                    first_position,
                    events: ids.into_iter().zip(spans).collect(),
                })
            }
        }
    }

    /// A commit time later than every earlier one, so that listings by
    /// `updatedAt` keep their order and every append has its own time.
    fn commit_time(&mut self) -> Timestamp {
        let mut now = Timestamp::now();
        if let Some(last) = self.last_time
            && now <= last
        {
            now = Timestamp::from_micros(last.as_micros() + 1);
        }
        self.last_time = Some(now);
        now
    }
}

/// Publishes one planned append into the index and makes its answer.
fn answer(index: &mut Index, plan: Planned) -> Result<AppendOutcome, StoreError> {
    match plan {
        Planned::Rejected(e) => Err(e),
        Planned::Write(commit) => {
            let s = index.apply(&commit).map_err(|reason| {
                StoreError::Backend(format!("index out of step with the log: {reason}").into())
            })?;
            let n = commit.events.len() as u64;
            Ok(AppendOutcome {
                stream: Index::info(&commit.stream, &s),
                first_revision: commit.first_revision,
                last_revision: Revision::new(commit.first_revision.get() + n - 1),
                first_position: Some(Position::new(commit.first_position)),
                already_appended: false,
            })
        }
        Planned::Already {
            stream,
            first,
            last,
        } => {
            let found = match index.stream(&stream).map_err(StoreError::backend)? {
                Some((k, s)) => index
                    .position_of(s.number, first)
                    .map_err(StoreError::backend)?
                    .map(|p| (k, s, p)),
                None => None,
            };
            let Some((k, s, position)) = found else {
                return Err(StoreError::Backend(
                    format!("a retried append of {stream} is not in the index").into(),
                ));
            };
            Ok(AppendOutcome {
                stream: Index::info(&k, &s),
                first_revision: first,
                last_revision: last,
                first_position: Some(Position::new(position)),
                already_appended: true,
            })
        }
    }
}

/// One I/O failure reported to every append of the failed batch.
#[derive(Debug)]
struct SharedError(Arc<EmbeddedError>);

impl std::fmt::Display for SharedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SharedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}
