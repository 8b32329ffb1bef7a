//! What every handler shares: the store, the API keys, the shutdown signal.

use std::fmt;
use std::sync::Arc;

use eventstore_core::EventStore;
use subtle::ConstantTimeEq;
use tokio::sync::watch;

/// The router's shared state. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    store: Arc<dyn EventStore>,
    api_keys: Arc<[ApiKey]>,
    shutdown: Arc<watch::Sender<bool>>,
}

impl AppState {
    /// State over `store`, with no API keys (authentication off).
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self {
            store,
            api_keys: Arc::from(Vec::new()),
            shutdown: Arc::new(watch::Sender::new(false)),
        }
    }

    /// Turns on bearer authentication with these keys (empty strings are
    /// ignored; no keys at all leaves authentication off).
    pub fn with_api_keys<I, K>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: Into<String>,
    {
        let keys: Vec<ApiKey> = keys
            .into_iter()
            .map(Into::into)
            .filter(|k| !k.is_empty())
            .map(ApiKey)
            .collect();
        self.api_keys = Arc::from(keys);
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// Whether requests need an API key.
    pub fn auth_required(&self) -> bool {
        !self.api_keys.is_empty()
    }

    /// Whether `presented` is one of the keys. Compares in constant time
    /// for keys of the same length and always looks at every key.
    pub(crate) fn accepts_key(&self, presented: &str) -> bool {
        let mut ok = subtle::Choice::from(0);
        for key in self.api_keys.iter() {
            ok |= key.0.as_bytes().ct_eq(presented.as_bytes());
        }
        bool::from(ok)
    }

    /// Tells waiting feed requests (long polls) to answer now, so a
    /// graceful shutdown does not wait for them. Idempotent.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// A receiver that sees `true` once [`AppState::begin_shutdown`] ran.
    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("api_keys", &self.api_keys.len())
            .finish_non_exhaustive()
    }
}

/// A secret; never printed.
struct ApiKey(String);
