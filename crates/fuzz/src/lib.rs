//! Fuzz targets of the event store's decoders and parsers, run on stable
//! Rust by a small mutation engine of this crate ([`engine`]).
//!
//! This crate owns the targets and the engine; it must not hold any logic
//! of the store itself: each target drives public entry points of the
//! crates under test and checks what they answer against a model or a
//! round trip, not only that nothing panicked.
//!
//! # Layout
//!
//! - [`engine`]: [`engine::Target`], the mutators, the run loop and its
//!   budget (`FUZZ_ITERS`, `FUZZ_SECONDS`, `FUZZ_SEED`), crash files and
//!   replay (`FUZZ_REPLAY`).
//! - [`targets`]: one module per target: the embedded log
//!   ([`targets::embedded_log`]), the DynamoDB item codec
//!   ([`targets::dynamodb_codec`]), JSON bodies ([`targets::json_bodies`]),
//!   page keys ([`targets::page_keys`]) and the router's path and query
//!   parsing ([`targets::http_router`]).
//!
//! `tests/fuzz.rs` runs every target for a bounded number of inputs (part
//! of `scripts/test`); `scripts/fuzz.sh SECONDS [TARGET]` runs them longer.
//! Crashes found are kept as regression tests in `tests/regressions.rs`.

pub mod engine;
pub mod targets;
