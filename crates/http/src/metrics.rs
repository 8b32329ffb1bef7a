//! What the HTTP layer reports through the [`metrics`] facade, and the
//! `GET /metrics` endpoint that shows what the host's recorder holds.
//!
//! The router records requests (by method, route template and status, with
//! their latency), appends (by outcome, with the events and bytes written)
//! and the long polls waiting. Labels take a bounded set of values: route
//! templates such as `/streams/{streamType}/{streamId}/events`, never a raw
//! path, a stream id, a payload or a key. Which exporter renders the values
//! is the host's choice ([`AppState::with_metrics`]); without one every call
//! is a no-op and `/metrics` answers 404.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use eventstore_core::{AppendOutcome, AppendRequest, EventStore, StoreError};

use crate::error::ApiError;
use crate::state::AppState;

/// Requests answered, by `method`, `route` and `status` (counter).
pub const HTTP_REQUESTS: &str = "eventstore_http_requests_total";
/// Seconds from a request's arrival to its answer, by `method`, `route` and
/// `status` (histogram).
pub const HTTP_REQUEST_SECONDS: &str = "eventstore_http_request_duration_seconds";
/// Appends asked of the store, by `outcome` (counter): `written`, `retry`
/// (a retry of an append already written, recognised and answered as
/// such), `conflict` (the expectation did not hold), `duplicate` (an event
/// id already in the stream), `refused` (overloaded or unavailable) or
/// `failed` (any other error).
pub const APPENDS: &str = "eventstore_appends_total";
/// Events written by appends (counter; retries not counted again).
pub const EVENTS_APPENDED: &str = "eventstore_events_appended_total";
/// Bytes of payload and metadata written by appends (counter).
pub const BYTES_APPENDED: &str = "eventstore_appended_bytes_total";
/// Seconds an append took in the store (histogram), by `outcome`.
pub const APPEND_SECONDS: &str = "eventstore_append_duration_seconds";
/// Feed requests waiting for events (gauge).
pub const LONG_POLLS_OPEN: &str = "eventstore_long_polls_open";
/// 1 when the store takes writes, 0 when not (gauge, set at each scrape).
pub const READY: &str = "eventstore_ready";

/// What renders the recorder's values in Prometheus text format.
pub type MetricsRenderer = Arc<dyn Fn() -> String + Send + Sync>;

/// A request method as a label: one of the standard methods, or `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// Records one answered request. `route` is the route template the router
/// matched, `None` for a path no route has.
pub(crate) fn request_finished(
    method: &Method,
    route: Option<&str>,
    status: u16,
    elapsed: Duration,
) {
    let labels = [
        ("method", method_label(method).to_owned()),
        ("route", route.unwrap_or("unmatched").to_owned()),
        ("status", status.to_string()),
    ];
    metrics::counter!(HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(HTTP_REQUEST_SECONDS, &labels).record(elapsed.as_secs_f64());
}

/// Asks the store to append, and records the outcome.
pub(crate) async fn append(
    store: &Arc<dyn EventStore>,
    request: AppendRequest,
) -> Result<AppendOutcome, StoreError> {
    let events = request.events().len() as u64;
    let bytes: u64 = request.events().iter().map(|e| e.data_len() as u64).sum();
    let started = std::time::Instant::now();
    let result = store.append(request).await;
    let outcome = match &result {
        Ok(o) if o.already_appended => "retry",
        Ok(_) => {
            metrics::counter!(EVENTS_APPENDED).increment(events);
            metrics::counter!(BYTES_APPENDED).increment(bytes);
            "written"
        }
        Err(StoreError::WrongExpectedRevision(_)) => "conflict",
        Err(StoreError::DuplicateEvent { .. }) => "duplicate",
        Err(StoreError::Overloaded(_) | StoreError::Unavailable(_)) => "refused",
        Err(_) => "failed",
    };
    metrics::counter!(APPENDS, "outcome" => outcome).increment(1);
    metrics::histogram!(APPEND_SECONDS, "outcome" => outcome)
        .record(started.elapsed().as_secs_f64());
    result
}

/// Counts a long poll as open while it lives.
pub(crate) struct LongPoll(());

impl LongPoll {
    pub(crate) fn open() -> Self {
        metrics::gauge!(LONG_POLLS_OPEN).increment(1.0);
        Self(())
    }
}

impl Drop for LongPoll {
    fn drop(&mut self) {
        metrics::gauge!(LONG_POLLS_OPEN).decrement(1.0);
    }
}

/// Metrics.
///
/// The server's metrics in Prometheus text format (version 0.0.4): HTTP
/// requests by route template and status with latency histograms, appends
/// by outcome, events and bytes appended, the group commit, the writer's
/// queue, long polls, the feed's head and the store's size. Needs the API
/// key when keys are configured. 404 when the host records no metrics (the
/// AWS Lambda functions report to CloudWatch instead).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "meta",
    operation_id = "metrics",
    responses(
        (status = 200, description = "Prometheus text exposition format.", content_type = "text/plain; version=0.0.4", body = String),
        (status = 401, description = "An API key is required.", body = eventstore_api::ErrorBody),
        (status = 404, description = "This deployment records no metrics.", body = eventstore_api::ErrorBody),
    )
)]
pub(crate) async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let Some(render) = state.metrics() else {
        return Err(ApiError::NotFound("this server records no metrics".into()));
    };
    let ready = !state.shutting_down() && state.store().readiness().is_ok();
    metrics::gauge!(READY).set(if ready { 1.0 } else { 0.0 });
    let text = render();
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}
