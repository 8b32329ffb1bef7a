//! The backend-agnostic conformance suite, run against a fresh store in a
//! temporary directory per check.

mod common;

eventstore_core::conformance_tests!(
    || async { common::TempStore::new() },
    eventstore_core::conformance::Settings::default(),
    |temp| &temp.store
);

/// The same suite over a store that checkpoints its index after every
/// append: every read goes through runs on disk, merged tiers and the
/// in-memory deltas at once.
mod checkpointed {
    use super::*;

    eventstore_core::conformance_tests!(
        || async { common::TempStore::checkpointed(1) },
        eventstore_core::conformance::Settings::default(),
        |temp| &temp.store
    );
}
