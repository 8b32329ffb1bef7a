//! The single writer: group commit of every append queued while the
//! previous commit was syncing.

use std::collections::HashMap;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, atomic::Ordering};
use std::time::{Duration, Instant};

use eventstore_core::idempotency::{Decision, decide};
use eventstore_core::store::{check_expected, check_truncation};
use eventstore_core::{
    AppendOutcome, AppendRequest, DeleteOutcome, EventId, EventType, JsonObject, JsonValue,
    NewEvent, Position, Revision, STREAM_DELETED, StoreError, StreamInfo, StreamKey, StreamType,
    Timestamp,
};
use tokio::sync::oneshot;

use crate::EmbeddedError;
use crate::checkpoint::{Checkpoint, Checkpointer};
use crate::erase::{EraseTask, Eraser};
use crate::format::{self, FrameMeta, Truncation};
use crate::index::{Commit, DeleteCommit, Index};
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
    /// Delete or truncate a stream, and answer once durable (or refused).
    Lifecycle {
        op: Lifecycle,
        reply: oneshot::Sender<Result<LifecycleOutcome, StoreError>>,
    },
    /// Finish what is queued before this and stop.
    Close,
}

/// A deletion or a truncation.
#[derive(Debug, Clone)]
pub(crate) enum Lifecycle {
    Delete {
        stream: StreamKey,
        expected: Option<Revision>,
    },
    Truncate {
        stream: StreamKey,
        before: Revision,
        expected: Option<Revision>,
    },
}

impl Lifecycle {
    fn stream(&self) -> &StreamKey {
        match self {
            Lifecycle::Delete { stream, .. } | Lifecycle::Truncate { stream, .. } => stream,
        }
    }
}

/// The answer to a [`Lifecycle`] command.
#[derive(Debug)]
pub(crate) enum LifecycleOutcome {
    Deleted(DeleteOutcome),
    Truncated(StreamInfo),
}

/// One command of a group commit.
enum Job {
    Append(AppendRequest, Reply),
    Lifecycle(
        Lifecycle,
        oneshot::Sender<Result<LifecycleOutcome, StoreError>>,
    ),
}

/// Where a job's answer goes.
enum JobReply {
    Append(Reply),
    Lifecycle(oneshot::Sender<Result<LifecycleOutcome, StoreError>>),
}

impl JobReply {
    fn fail(self, e: StoreError) {
        match self {
            JobReply::Append(r) => r.send(Err(e)),
            JobReply::Lifecycle(r) => {
                let _ = r.send(Err(e));
            }
        }
    }
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

    /// Sends the answer (dropped when the caller stopped waiting).
    fn send(self, answer: Result<AppendOutcome, StoreError>) {
        let _ = self.tx.send(answer);
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
    /// A deletion written: its entry, and the revisions it removes.
    Delete {
        commit: DeleteCommit,
        erase: EraseTask,
    },
    /// A deletion of a deleted stream: nothing written.
    AlreadyDeleted(Revision),
    /// A truncation written, and the revisions it removes.
    Truncate {
        truncation: Truncation,
        erase: EraseTask,
    },
    /// A truncation at or below an earlier one: nothing written.
    Unchanged(StreamKey),
}

/// The state of a stream as the jobs earlier in the batch left it.
struct Pending {
    revision: Revision,
    ids: HashMap<EventId, Revision>,
    /// Its first kept revision, and whether it is deleted.
    first: u64,
    deleted: bool,
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
    /// Where the removed events of deletions and truncations are sent to
    /// be erased.
    eraser: Eraser,
    eraser_thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    pub(crate) fn new(
        shared: Arc<Shared>,
        file: Arc<dyn StorageFile>,
        lock: Box<dyn DirLock>,
        resume: Resume,
        (checkpointer, checkpoint_events, checkpoint_interval): (Checkpointer, u64, Duration),
        (eraser, eraser_thread): (Eraser, std::thread::JoinHandle<()>),
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
            eraser,
            eraser_thread: Some(eraser_thread),
        }
    }

    /// Runs until `Close` or until every sender is gone. Appends queued
    /// behind a `Close` are dropped unanswered (their callers see the store
    /// as unavailable).
    pub(crate) fn run(mut self, queue: Receiver<Command>) {
        let mut gather = Gather::default();
        let mut carried: Vec<Job> = Vec::new();
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
                        batch.push(Job::Append(request, reply));
                    }
                    Command::Lifecycle { op, reply } => batch.push(Job::Lifecycle(op, reply)),
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
                // Recorded before the commit answers its appends: a client
                // that scrapes `/metrics` right after its answer sees it.
                crate::metrics::committed(appends);
                let started = Instant::now();
                carried = self.commit(batch);
                gather = Gather::after(appends, started.elapsed(), Instant::now());
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
        // Erasure finishes what was queued and stops before the lock goes.
        if self.failed.is_none() {
            self.eraser.advance(self.end);
        }
        self.eraser.stop();
        if let Some(t) = self.eraser_thread.take() {
            let _ = t.join();
        }
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
            // Every deletion before here was handed to the eraser.
            self.eraser.advance(self.end);
        }
    }

    /// One group commit: decide, write, sync, publish, answer. Returns the
    /// appends left for the next commit when this one's frames reached
    /// [`MAX_COMMIT_BYTES`].
    fn commit(&mut self, batch: Vec<Job>) -> Vec<Job> {
        if self.failed.is_none() {
            // Erasure failed a write or sync of the log: this commit's
            // pages could be dropped as its were.
            self.failed = self.shared.failure();
        }
        if let Some(reason) = &self.failed {
            for job in batch {
                match job {
                    Job::Append(_, reply) => JobReply::Append(reply),
                    Job::Lifecycle(_, reply) => JobReply::Lifecycle(reply),
                }
                .fail(StoreError::Unavailable(reason.clone()));
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
            for job in batch.by_ref() {
                match job {
                    Job::Append(request, reply) => {
                        plans.push(self.plan(&index, &mut pending, request));
                        replies.push(JobReply::Append(reply));
                    }
                    Job::Lifecycle(op, reply) => {
                        plans.push(self.plan_lifecycle(&index, &mut pending, op));
                        replies.push(JobReply::Lifecycle(reply));
                    }
                }
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
                .filter_map(|r| match r {
                    JobReply::Append(r) if !r.span.is_disabled() => {
                        Some(r.commit_span(replies.len(), self.buf.len()))
                    }
                    _ => None,
                })
                .collect();
            let written = self
                .file
                .write_all_at(&self.buf, self.end)
                .and_then(|()| crate::metrics::timed_sync(|| self.file.sync_data()))
                .and_then(|()| match self.shared.failure() {
                    // Erasure's sync of the log failed while this commit's
                    // pages were in the page cache: Linux reports a
                    // writeback error once per open file, so this sync
                    // succeeding proves nothing about them.
                    Some(reason) => Err(std::io::Error::other(reason)),
                    None => Ok(()),
                });
            drop(spans);
            if let Err(e) = written {
                self.fail(e, replies);
                for job in rest {
                    match job {
                        Job::Append(_, reply) => JobReply::Append(reply),
                        Job::Lifecycle(_, reply) => JobReply::Lifecycle(reply),
                    }
                    .fail(StoreError::Unavailable(
                        self.failed.clone().unwrap_or_default(),
                    ));
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
        let mut erase = Vec::new();
        {
            let mut index = self.shared.write_index();
            for plan in plans {
                match &plan {
                    Planned::Write(c) => {
                        let last = c.first_position + c.events.len() as u64 - 1;
                        written.insert(c.stream.stream_type.clone(), last);
                    }
                    Planned::Delete { commit, erase: e } => {
                        written.insert(commit.stream.stream_type.clone(), commit.position);
                        erase.push(e.clone());
                    }
                    Planned::Truncate { erase: e, .. } => erase.push(e.clone()),
                    _ => {}
                }
                answers.push(answer(&mut index, plan));
            }
            last_position = index.last_position();
            crate::metrics::stored(last_position, index.stream_count(), self.end);
        }
        self.shared.committed.send_replace(last_position);
        self.shared.publish_types(&written);
        // Published first: from here on no read selects the removed
        // events, so the eraser may overwrite them.
        for task in erase {
            self.eraser.submit(task);
        }
        for (reply, answer) in replies.into_iter().zip(answers) {
            match (reply, answer) {
                (JobReply::Append(r), Answer::Append(a)) => r.send(a),
                (JobReply::Lifecycle(r), Answer::Lifecycle(a)) => {
                    let _ = r.send(a);
                }
                (r, Answer::Rejected(e)) => r.fail(e),
                (r, _) => r.fail(StoreError::Backend(
                    "the writer mixed up the answers of a commit".into(),
                )),
            }
        }
        rest
    }

    /// A write or sync failed: stop acknowledging (fail-stop), cut the file
    /// back to the last durable end so that neither this process nor a
    /// restart shows the failed commit, and answer its appends with an
    /// error. After a failed `fdatasync`, Linux may have marked the pages
    /// clean while they never reached the disk, so what reads would see
    /// past `end` is not to be trusted.
    fn fail(&mut self, e: std::io::Error, replies: Vec<JobReply>) {
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
            reply.fail(StoreError::Backend(Box::new(SharedError(err.clone()))));
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
        let deleted = match (before, &existing) {
            (Some(p), _) => p.deleted,
            (None, Some((_, s))) => index.removal(s.number).deleted_at != 0,
            (None, None) => false,
        };
        if deleted {
            return Planned::Rejected(StoreError::StreamDeleted(key.clone()));
        }
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
                let first = existing
                    .as_ref()
                    .map_or(1, |(_, s)| index.removal(s.number).first_revision);
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
                    first,
                    deleted: false,
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

    /// Decides a deletion or truncation against the index plus the batch
    /// so far, and encodes its frame when it writes.
    fn plan_lifecycle(
        &mut self,
        index: &Index,
        pending: &mut HashMap<StreamKey, Pending>,
        op: Lifecycle,
    ) -> Planned {
        let key = op.stream().clone();
        let existing = match index.stream(&key) {
            Ok(e) => e,
            Err(e) => return Planned::Rejected(StoreError::backend(e)),
        };
        let (stream, state) = match (&existing, pending.get(&key)) {
            (Some((k, s)), p) => {
                let r = index.removal(s.number);
                let state = match p {
                    Some(p) => (p.revision, p.first, p.deleted),
                    None => (
                        Revision::new(s.revision),
                        r.first_revision,
                        r.deleted_at != 0,
                    ),
                };
                (k.clone(), state)
            }
            // Created earlier in this batch.
            (None, Some(p)) => (Arc::new(key.clone()), (p.revision, p.first, p.deleted)),
            (None, None) => return Planned::Rejected(StoreError::StreamNotFound(key)),
        };
        let (last, first, deleted) = state;
        let entry = |pending: &mut HashMap<StreamKey, Pending>| {
            pending.entry(key.clone()).or_insert_with(|| Pending {
                revision: last,
                ids: HashMap::new(),
                first,
                deleted,
            });
        };
        match op {
            Lifecycle::Delete { expected, .. } => {
                if deleted {
                    return Planned::AlreadyDeleted(last);
                }
                if let Err(e) = check_expected(expected, last) {
                    return Planned::Rejected(e);
                }
                let commit_time = self.commit_time();
                let position = self.next_position;
                let frame_at = self.end + self.buf.len() as u64;
                self.pending_last_frame = frame_at;
                self.pending_commit_start = self.end;
                let meta = FrameMeta {
                    first_position: position,
                    commit_time,
                    first_revision: last.next(),
                    stream: &stream,
                    commit_start: self.end,
                };
                let mut announcement = NewEvent::new(
                    EventType::parse(STREAM_DELETED).expect("a valid event type"),
                    JsonValue::from_text("{}").expect("valid JSON"),
                );
                announcement.metadata = JsonObject::empty();
                let span = format::encode_delete(&mut self.buf, self.end, &meta, &announcement);
                self.next_position += 1;
                entry(pending);
                let p = pending.get_mut(&key).expect("just made");
                p.deleted = true;
                Planned::Delete {
                    commit: DeleteCommit {
                        stream,
                        commit_time,
                        revision: last.next(),
                        position,
                        span,
                    },
                    erase: EraseTask {
                        stream: key.clone(),
                        from: first,
                        to: last.get(),
                        tombstone_end: self.end + self.buf.len() as u64,
                    },
                }
            }
            Lifecycle::Truncate {
                before, expected, ..
            } => {
                if deleted {
                    return Planned::Rejected(StoreError::StreamDeleted(key));
                }
                if let Err(e) = check_expected(expected, last).and(check_truncation(before, last)) {
                    return Planned::Rejected(e);
                }
                if before.get() <= first {
                    return Planned::Unchanged(key);
                }
                let frame_at = self.end + self.buf.len() as u64;
                self.pending_last_frame = frame_at;
                self.pending_commit_start = self.end;
                let truncation = Truncation {
                    next_position: self.next_position,
                    stream: key.clone(),
                    before: before.get(),
                };
                format::encode_truncate(&mut self.buf, self.end, &truncation);
                entry(pending);
                pending.get_mut(&key).expect("just made").first = before.get();
                Planned::Truncate {
                    truncation,
                    erase: EraseTask {
                        stream: key.clone(),
                        from: first,
                        to: before.get() - 1,
                        tombstone_end: self.end + self.buf.len() as u64,
                    },
                }
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

/// The answer to one job of a commit.
enum Answer {
    Append(Result<AppendOutcome, StoreError>),
    Lifecycle(Result<LifecycleOutcome, StoreError>),
    Rejected(StoreError),
}

fn out_of_step(reason: String) -> StoreError {
    StoreError::Backend(format!("index out of step with the log: {reason}").into())
}

/// Publishes one planned job into the index and makes its answer.
fn answer(index: &mut Index, plan: Planned) -> Answer {
    match plan {
        Planned::Delete { commit, .. } => {
            Answer::Lifecycle(index.apply_delete(&commit).map_err(out_of_step).map(|_| {
                LifecycleOutcome::Deleted(DeleteOutcome {
                    last_revision: Revision::new(commit.revision.get() - 1),
                    position: Some(Position::new(commit.position)),
                    already_deleted: false,
                })
            }))
        }
        Planned::AlreadyDeleted(last) => {
            Answer::Lifecycle(Ok(LifecycleOutcome::Deleted(DeleteOutcome {
                last_revision: last,
                position: None,
                already_deleted: true,
            })))
        }
        Planned::Truncate { truncation, .. } => Answer::Lifecycle(
            index
                .apply_truncate(&truncation)
                .map_err(out_of_step)
                .map(|s| LifecycleOutcome::Truncated(index.info_of(&truncation.stream, &s))),
        ),
        Planned::Unchanged(key) => Answer::Lifecycle(match index.stream(&key) {
            Ok(Some((k, s))) => Ok(LifecycleOutcome::Truncated(index.info_of(&k, &s))),
            Ok(None) => Err(StoreError::StreamNotFound(key)),
            Err(e) => Err(StoreError::backend(e)),
        }),
        // A rejection answers a job of either kind.
        Planned::Rejected(e) => Answer::Rejected(e),
        other => Answer::Append(answer_append(index, other)),
    }
}

/// Publishes one planned append into the index and makes its answer.
fn answer_append(index: &mut Index, plan: Planned) -> Result<AppendOutcome, StoreError> {
    match plan {
        Planned::Rejected(e) => Err(e),
        Planned::Write(commit) => {
            let s = index.apply(&commit).map_err(out_of_step)?;
            let n = commit.events.len() as u64;
            Ok(AppendOutcome {
                stream: index.info_of(&commit.stream, &s),
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
                stream: index.info_of(&k, &s),
                first_revision: first,
                last_revision: last,
                first_position: Some(Position::new(position)),
                already_appended: true,
            })
        }
        _ => Err(StoreError::Backend(
            "the writer mixed up the plans of a commit".into(),
        )),
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
