//! The HTTP contract suite (`eventstore_testkit::contract`) against the
//! router on the reference model (`MemoryStore`), in process, on a real
//! TCP listener, with an API key.

use std::sync::Arc;

use eventstore_core::MemoryStore;
use eventstore_http::AppState;
use eventstore_testkit::contract::{Profile, Target};
use eventstore_testkit::http::spawn_with;

const KEY: &str = "contract-key";

async fn target() -> Target {
    let state = AppState::new(Arc::new(MemoryStore::new())).with_api_keys([KEY]);
    let server = spawn_with(state).await;
    let base = server.base.clone();
    Target::new(&base, Profile::consistent("memory", Some(KEY)), server)
}

eventstore_testkit::contract_suite!(target);
