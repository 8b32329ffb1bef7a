//! What every handler shares: the store, the API keys, the shutdown
//! signal, and the protections the host asks for (long-poll limit,
//! timeouts, CORS).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use eventstore_core::EventStore;
use subtle::ConstantTimeEq;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use crate::cors::CorsPolicy;
use crate::error::ApiError;
use crate::metrics::MetricsRenderer;
use crate::trace::TraceLink;

/// The router's shared state. Cheap to clone: one reference count (every
/// request clones it for each layer and extractor that takes it).
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    store: Arc<dyn EventStore>,
    api_keys: Arc<[ApiKey]>,
    shutdown: Arc<watch::Sender<bool>>,
    long_polls: Option<LongPollLimit>,
    cors: CorsPolicy,
    body_timeout: Option<Duration>,
    request_timeout: Option<Duration>,
    metrics: Option<MetricsRenderer>,
    trace_link: Option<TraceLink>,
    /// Deleting and truncating need a caller the host marked as an admin
    /// ([`grant_admin`]), whatever the keys.
    admin_by_host: bool,
}

/// How many requests may be held waiting for events at once.
#[derive(Clone)]
struct LongPollLimit {
    permits: Arc<Semaphore>,
    max: usize,
}

impl AppState {
    /// State over `store`, with no API keys (authentication off).
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                api_keys: Arc::from(Vec::new()),
                shutdown: Arc::new(watch::Sender::new(false)),
                long_polls: None,
                cors: CorsPolicy::Off,
                body_timeout: None,
                request_timeout: None,
                metrics: None,
                trace_link: None,
                admin_by_host: false,
            }),
        }
    }

    /// The fields, to set while building (copied first if this state was
    /// cloned).
    fn inner_mut(&mut self) -> &mut Inner {
        Arc::make_mut(&mut self.inner)
    }

    /// Holds at most `max` feed requests waiting for events (`wait` > 0)
    /// at once; one more is answered 503 with `Retry-After` instead of
    /// waiting. Without this call there is no limit.
    pub fn with_long_poll_limit(mut self, max: usize) -> Self {
        let max = max.min(Semaphore::MAX_PERMITS);
        self.inner_mut().long_polls = Some(LongPollLimit {
            permits: Arc::new(Semaphore::new(max)),
            max,
        });
        self
    }

    /// Answers cross-origin requests by `policy` (default: CORS off).
    pub fn with_cors(mut self, policy: CorsPolicy) -> Self {
        self.inner_mut().cors = policy;
        self
    }

    /// A request body must arrive without a pause longer than `timeout`
    /// between two of its chunks; otherwise the answer is 408.
    pub fn with_body_timeout(mut self, timeout: Duration) -> Self {
        self.inner_mut().body_timeout = Some(timeout);
        self
    }

    /// Every request must be answered within `timeout` (408 otherwise),
    /// body upload included. Long polls are cut short to answer (with an
    /// empty page) one second before it.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.inner_mut().request_timeout = Some(timeout);
        self
    }

    /// Serves `GET /metrics` with what `render` returns (Prometheus text
    /// format); the host installs the recorder behind it. Without this
    /// call `/metrics` answers 404.
    pub fn with_metrics(mut self, render: MetricsRenderer) -> Self {
        self.inner_mut().metrics = Some(render);
        self
    }

    /// Lets a tracing pipeline (OpenTelemetry) take over each request's
    /// span: `link` gets the span and the request's trace context before
    /// the request runs, may make the caller's span its parent, and
    /// answers the trace and span ids the pipeline gave it, which the
    /// answer's `traceparent` and the log lines then carry.
    pub fn with_trace_link(mut self, link: TraceLink) -> Self {
        self.inner_mut().trace_link = Some(link);
        self
    }

    pub(crate) fn trace_link(&self) -> Option<&TraceLink> {
        self.inner.trace_link.as_ref()
    }

    pub(crate) fn metrics(&self) -> Option<&MetricsRenderer> {
        self.inner.metrics.as_ref()
    }

    pub(crate) fn cors(&self) -> &CorsPolicy {
        &self.inner.cors
    }

    pub(crate) fn body_timeout(&self) -> Option<Duration> {
        self.inner.body_timeout
    }

    pub(crate) fn request_timeout(&self) -> Option<Duration> {
        self.inner.request_timeout
    }

    /// The longest a long poll may wait: what the client asked for, but
    /// short enough to answer before the request timeout.
    pub(crate) fn cap_wait(&self, wait: Duration) -> Duration {
        match self.inner.request_timeout {
            Some(limit) => wait.min(limit.saturating_sub(Duration::from_secs(1))),
            None => wait,
        }
    }

    /// A place among the waiting long polls, or the 503 that says there
    /// is none. `None` when long polls are not limited.
    pub(crate) fn long_poll_permit(&self) -> Result<Option<OwnedSemaphorePermit>, ApiError> {
        match &self.inner.long_polls {
            None => Ok(None),
            Some(limit) => limit
                .permits
                .clone()
                .try_acquire_owned()
                .map(Some)
                .map_err(|_| ApiError::TooManyLongPolls(limit.max)),
        }
    }

    /// Whether [`AppState::begin_shutdown`] ran.
    pub(crate) fn shutting_down(&self) -> bool {
        *self.inner.shutdown.borrow()
    }

    /// Turns on bearer authentication with these keys (empty strings are
    /// ignored; no keys at all leaves authentication off). Replaces the
    /// keys set before, admin keys included.
    pub fn with_api_keys<I, K>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: Into<String>,
    {
        self.inner_mut().api_keys = Arc::from(Self::keys(keys, false));
        self
    }

    /// Adds admin keys: they are accepted wherever an API key is, and once
    /// any is configured, deleting and truncating streams need one (other
    /// keys get 403). Admin keys alone also turn authentication on.
    pub fn with_admin_api_keys<I, K>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: Into<String>,
    {
        let mut all: Vec<ApiKey> = self.inner.api_keys.iter().cloned().collect();
        all.extend(Self::keys(keys, true));
        self.inner_mut().api_keys = Arc::from(all);
        self
    }

    fn keys<I, K>(keys: I, admin: bool) -> Vec<ApiKey>
    where
        I: IntoIterator<Item = K>,
        K: Into<String>,
    {
        keys.into_iter()
            .map(Into::into)
            .filter(|k| !k.is_empty())
            .map(|secret| ApiKey { secret, admin })
            .collect()
    }

    /// Makes deleting and truncating need a caller that the host marked as
    /// an admin with [`grant_admin`] (for example the Lambda API function,
    /// from the caller's IAM identity); others get 403.
    pub fn with_admin_granted_by_host(mut self) -> Self {
        self.inner_mut().admin_by_host = true;
        self
    }

    /// Whether deleting and truncating need an admin: an admin key, or a
    /// caller the host marked.
    pub fn admin_keys_configured(&self) -> bool {
        self.inner.admin_by_host || self.inner.api_keys.iter().any(|k| k.admin)
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.inner.store
    }

    /// Whether requests need an API key.
    pub fn auth_required(&self) -> bool {
        !self.inner.api_keys.is_empty()
    }

    /// Which kind of key `presented` is, if it is one. Compares in
    /// constant time for keys of the same length and always looks at every
    /// key.
    pub(crate) fn key_role(&self, presented: &str) -> Option<KeyRole> {
        let mut ok = subtle::Choice::from(0);
        let mut admin = subtle::Choice::from(0);
        for key in self.inner.api_keys.iter() {
            let matches = key.secret.as_bytes().ct_eq(presented.as_bytes());
            ok |= matches;
            admin |= matches & subtle::Choice::from(u8::from(key.admin));
        }
        if !bool::from(ok) {
            None
        } else if bool::from(admin) {
            Some(KeyRole::Admin)
        } else {
            Some(KeyRole::User)
        }
    }

    /// Tells waiting feed requests (long polls) to answer now, so a
    /// graceful shutdown does not wait for them. Idempotent.
    pub fn begin_shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    /// A receiver that sees `true` once [`AppState::begin_shutdown`] ran.
    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("api_keys", &self.inner.api_keys.len())
            .field("long_polls", &self.inner.long_polls.as_ref().map(|l| l.max))
            .field("cors", &self.inner.cors)
            .field("body_timeout", &self.inner.body_timeout)
            .field("request_timeout", &self.inner.request_timeout)
            .field("metrics", &self.inner.metrics.is_some())
            .finish_non_exhaustive()
    }
}

/// A secret; never printed.
#[derive(Clone)]
struct ApiKey {
    secret: String,
    admin: bool,
}

/// Marks a request's caller as an admin (a host that authenticates callers
/// itself, such as a Lambda Function URL with `AWS_IAM` auth, calls it
/// before the router; see [`AppState::with_admin_granted_by_host`]). With
/// API keys on, the key a request presents decides instead.
pub fn grant_admin<B>(req: &mut axum::http::Request<B>) {
    req.extensions_mut().insert(KeyRole::Admin);
}

/// The kind of key a request presented (a request extension set by the
/// authentication middleware; absent when authentication is off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyRole {
    /// A key of `--api-key`.
    User,
    /// A key of `--admin-api-key`.
    Admin,
}
