//! What the store reports through the [`metrics`] facade: the group
//! commit (appends per flush, `fdatasync` latency), the writer's queue, and
//! the size of what is stored. Names are defined here once; the writer and
//! the store handle call these helpers in one line each.
//!
//! Without an installed recorder every call is a no-op. Values are plain
//! atomics in the recorder: a scrape never takes the index lock or waits
//! for the writer.

use std::time::Instant;

/// Appends taken by one group commit (histogram).
pub const COMMIT_APPENDS: &str = "eventstore_commit_appends";
/// Seconds one `fdatasync` of the log took (histogram).
pub const FDATASYNC_SECONDS: &str = "eventstore_fdatasync_seconds";
/// Appends handed to the writer and not yet answered (gauge).
pub const WRITER_QUEUE_DEPTH: &str = "eventstore_writer_queue_depth";
/// The position of the last durable event (gauge).
pub const FEED_HEAD_POSITION: &str = "eventstore_feed_head_position";
/// Events in the store: positions held by the log (gauge).
pub const STORE_EVENTS: &str = "eventstore_store_events";
/// Streams in the store (gauge).
pub const STORE_STREAMS: &str = "eventstore_store_streams";
/// Bytes of the log on disk (gauge).
pub const STORE_DISK_BYTES: &str = "eventstore_store_disk_bytes";

/// The store's size as it stands: set at open and after every commit.
pub(crate) fn stored(last_position: u64, streams: u64, log_bytes: u64) {
    metrics::gauge!(FEED_HEAD_POSITION).set(last_position as f64);
    metrics::gauge!(STORE_EVENTS).set(last_position as f64);
    metrics::gauge!(STORE_STREAMS).set(streams as f64);
    metrics::gauge!(STORE_DISK_BYTES).set(log_bytes as f64);
}

/// Runs one `fdatasync` and records how long it took.
pub(crate) fn timed_sync<T>(sync: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let result = sync();
    metrics::histogram!(FDATASYNC_SECONDS).record(started.elapsed().as_secs_f64());
    result
}

/// One group commit took this many appends.
pub(crate) fn committed(appends: usize) {
    metrics::histogram!(COMMIT_APPENDS).record(appends as f64);
}

/// Counts an append in the writer's queue from its hand-over until its
/// answer (or until its caller gives up waiting).
pub(crate) struct Queued(());

impl Queued {
    pub(crate) fn enter() -> Self {
        metrics::gauge!(WRITER_QUEUE_DEPTH).increment(1.0);
        Self(())
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        metrics::gauge!(WRITER_QUEUE_DEPTH).decrement(1.0);
    }
}

/// Seconds one checkpoint of the index took (histogram).
pub const CHECKPOINT_SECONDS: &str = "eventstore_index_checkpoint_seconds";
/// Events written to the index by checkpoints (counter).
pub const CHECKPOINT_EVENTS: &str = "eventstore_index_checkpoint_events_total";
/// 1 after a checkpoint of the index failed (none is taken until the store
/// is reopened; the log goes on), else 0 (gauge).
pub const CHECKPOINT_FAILED: &str = "eventstore_index_checkpoint_failed";
/// Seconds one merge of index runs took (histogram).
pub const MERGE_SECONDS: &str = "eventstore_index_merge_seconds";
/// Run files of the index (gauge).
pub const INDEX_RUNS: &str = "eventstore_index_runs";
/// Bytes of memory the index's run fences and Bloom filters take (gauge).
pub const INDEX_MEMORY_BYTES: &str = "eventstore_index_memory_bytes";
/// Frames of the log replayed by the last open: those after the index's
/// checkpoint, or the whole log when the index was rebuilt (gauge).
pub const OPEN_REPLAYED_FRAMES: &str = "eventstore_open_replayed_frames";
/// Events in the frames replayed by the last open (gauge).
pub const OPEN_REPLAYED_EVENTS: &str = "eventstore_open_replayed_events";

pub(crate) fn checkpointed(events: u64, took: std::time::Duration) {
    metrics::histogram!(CHECKPOINT_SECONDS).record(took.as_secs_f64());
    metrics::counter!(CHECKPOINT_EVENTS).increment(events);
}

pub(crate) fn checkpoint_failed(failed: bool) {
    metrics::gauge!(CHECKPOINT_FAILED).set(if failed { 1.0 } else { 0.0 });
}

pub(crate) fn merged(took: std::time::Duration) {
    metrics::histogram!(MERGE_SECONDS).record(took.as_secs_f64());
}

pub(crate) fn index_size(runs: usize, memory: usize) {
    metrics::gauge!(INDEX_RUNS).set(runs as f64);
    metrics::gauge!(INDEX_MEMORY_BYTES).set(memory as f64);
}

pub(crate) fn replayed(frames: u64, events: u64) {
    metrics::gauge!(OPEN_REPLAYED_FRAMES).set(frames as f64);
    metrics::gauge!(OPEN_REPLAYED_EVENTS).set(events as f64);
}

/// Frames rewritten in place by erasure (counter).
pub const ERASED_FRAMES: &str = "eventstore_erased_frames_total";

/// An erasure batch rewrote this many frames.
pub(crate) fn erased(frames: u64) {
    metrics::counter!(ERASED_FRAMES).increment(frames);
}
