//! The router on a real listener, from the shared test kit.
pub use eventstore_testkit::http::{Answer, TestServer, spawn, spawn_with};
