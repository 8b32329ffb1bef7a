//! Shared by the black-box tests: the built `event-store` binary started as
//! a server on port 0 by the shared test kit.
#![allow(dead_code, unused_imports)]

pub use eventstore_testkit::process::{Server, wait_with_timeout};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_event-store");
