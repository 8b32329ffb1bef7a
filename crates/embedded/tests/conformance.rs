//! The backend-agnostic conformance suite, run against a fresh store in a
//! temporary directory per check.

mod common;

eventstore_core::conformance_tests!(
    || async { common::TempStore::new() },
    eventstore_core::conformance::Settings::default(),
    |temp| &temp.store
);
