//! The event store's HTTP API: one axum [`Router`] for every deployment.
//!
//! This crate owns the mapping between HTTP and the
//! [`EventStore`](eventstore_core::EventStore) trait:
//! routes and handlers for every endpoint of the API contract, the
//! extraction and validation of path, query and body (every bad input is a
//! 4xx JSON answer before the store is asked), the one place that turns
//! errors into status codes and [`eventstore_api::ErrorBody`] answers,
//! request ids, tracing spans, metrics (`GET /metrics` when the host
//! installs a recorder), optional bearer API keys, CORS (off unless
//! origins are named), the request and body timeouts and the long-poll
//! limit the host asks for, the generated OpenAPI document with its
//! Swagger UI, and the built-in web UI files.
//!
//! It must not know which backend it serves nor how it is hosted: the
//! local server binds it to a TCP listener, the AWS Lambda function wraps
//! the same router, so it answers with relative redirects only and never
//! reads the environment.
//!
//! Main items: [`router`], [`AppState`], [`CorsPolicy`], [`ApiError`],
//! [`ApiDoc`].
//!
//! ```
//! use std::sync::Arc;
//! use eventstore_core::MemoryStore;
//! use eventstore_http::{router, AppState};
//!
//! let state = AppState::new(Arc::new(MemoryStore::new())).with_api_keys(["secret"]);
//! let app: axum::Router = router(state);
//! # let _ = app;
//! ```
#![deny(missing_docs)]

mod cors;
mod error;
mod extract;
mod handlers;
pub mod metrics;
mod middleware;
mod openapi;
mod routes;
mod state;
pub mod trace;
mod ui;

pub use cors::{CorsPolicy, InvalidCorsOrigin};
pub use error::ApiError;
pub use metrics::MetricsRenderer;
pub use middleware::{REQUEST_ID_HEADER, RequestId};
pub use openapi::ApiDoc;
pub use routes::{RouteInfo, routes};
pub use state::{AppState, grant_admin};
pub use trace::{TraceContext, TraceLink};
pub use ui::ui_available;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use eventstore_core::Limits;
use tower::util::MapRequestLayer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::{TimeoutBody, TimeoutLayer};

/// The complete API over `state`: every endpoint, the OpenAPI document and
/// Swagger UI under `/openapi/`, the web UI under `/ui/`, with request ids,
/// JSON error bodies, body limits, API keys, and the timeouts and CORS
/// policy `state` carries.
pub fn router(state: AppState) -> Router {
    let mut api = Router::new();
    for route in routes::table() {
        api = api.route(route.info.axum_path, route.handler);
    }
    let mut app = api
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .layer(DefaultBodyLimit::max(Limits::MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::require_api_key,
        ));
    if let Some(timeout) = state.body_timeout() {
        app = app.layer(MapRequestLayer::new(move |req: Request| {
            req.map(|body| Body::new(TimeoutBody::new(timeout, body)))
        }));
    }
    if let Some(timeout) = state.request_timeout() {
        app = app.layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ));
    }
    app = app.layer(CatchPanicLayer::new());
    if let Some(cors) = state.cors().layer() {
        app = app.layer(cors);
    }
    app.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        middleware::request_context,
    ))
    .with_state(state)
}
