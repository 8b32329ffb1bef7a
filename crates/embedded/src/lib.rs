//! The embedded, file-based, crash-safe storage backend of the event store.
//!
//! This crate owns the files under a data directory: an append-only log
//! (`events.log`) that holds every append as one checksummed frame, an
//! on-disk index (`index/`: sorted run files, `feed.idx` and a `MANIFEST`
//! naming them and the checkpoint they cover) and a `LOCK` file that keeps a
//! second process out. At open it checks the index's checkpoint against the
//! log and replays only the log after it into an in-memory delta layered
//! over the runs (the whole log when the index is missing or does not
//! match), discarding a torn tail left by a crash. One writer thread owns
//! the write path: it takes every append queued while the previous commit
//! was on its way to disk, decides each with
//! [`eventstore_core::idempotency::decide`], writes their frames with one
//! `write` and makes them durable with one `fdatasync` (group commit), then
//! publishes them to readers and answers. A checkpoint thread writes the
//! delta to disk as a new run every `checkpoint_events` events and merges
//! runs in tiers, so memory does not grow with the events.
//! Readers take a read lock on the index for a few microseconds and read
//! the records with positional reads; the writer never holds that lock
//! while it writes or syncs.
//!
//! It must not know about HTTP, the wire format or any other backend: it
//! implements [`eventstore_core::EventStore`] and nothing more. The format,
//! its invariants and the measurements behind the choice of engine are in
//! `docs/storage-engine.md`.
//!
//! # Main types
//!
//! - [`EmbeddedStore`]: open a data directory with [`EmbeddedStore::open`],
//!   use it through [`EventStore`](eventstore_core::EventStore), shut it down
//!   with [`EmbeddedStore::close`].
//! - [`EmbeddedError`]: why a data directory could not be opened, or why a
//!   read or write failed.
#![deny(missing_docs)]

mod checkpoint;
mod erase;
mod format;
mod index;
pub mod metrics;
mod recovery;
mod run;
mod store;
pub mod vfs;
mod writer;

use std::path::PathBuf;

pub use recovery::{CheckReport, DamagedFrameGuess, DamagedStretch, IndexCheck, LostEvents};
pub use store::{
    EmbeddedOptions, EmbeddedStore, OpenStats, RepairReport, check, check_with, repair, repair_with,
};

/// Errors of the embedded backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmbeddedError {
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Another process (or another store in this process) has the data
    /// directory open.
    #[error("the data directory {0} is in use by another process (its LOCK file is locked)")]
    Locked(PathBuf),
    /// The file is not an event log of a format this code reads.
    #[error("{path} is not an event store log of format version 1: {reason}")]
    NotALog {
        /// The file.
        path: PathBuf,
        /// What is wrong with its header.
        reason: String,
    },
    /// The log holds a checksummed frame that breaks an invariant, or more
    /// unreadable bytes than a crash can leave: it was damaged, not torn.
    #[error("the log {path} is damaged at byte {offset}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where the damage starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
}

impl EmbeddedError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        EmbeddedError::Io {
            context: context.into(),
            source,
        }
    }
}
