//! The reference model passes the conformance suite: the suite itself is sound.

use eventstore_core::MemoryStore;

eventstore_core::conformance_tests!(|| async { MemoryStore::new() });
