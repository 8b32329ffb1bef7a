//! The event store's HTTP API: one axum [`Router`] for every deployment.
//!
//! This crate owns the mapping between HTTP and the
//! [`EventStore`](eventstore_core::EventStore) trait:
//! routes and handlers for every endpoint of the API contract, the
//! extraction and validation of path, query and body (every bad input is a
//! 4xx JSON answer before the store is asked), the one place that turns
//! errors into status codes and [`eventstore_api::ErrorBody`] answers,
//! request ids, tracing spans, optional bearer API keys, CORS, the
//! generated OpenAPI document with its Swagger UI, and the built-in web UI
//! files.
//!
//! It must not know which backend it serves nor how it is hosted: the
//! local server binds it to a TCP listener, the AWS Lambda function wraps
//! the same router, so it answers with relative redirects only and never
//! reads the environment.
//!
//! Main items: [`router`], [`AppState`], [`ApiError`], [`ApiDoc`].
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

mod error;
mod extract;
mod handlers;
mod middleware;
mod openapi;
mod routes;
mod state;
mod ui;

pub use error::ApiError;
pub use middleware::{REQUEST_ID_HEADER, RequestId};
pub use openapi::ApiDoc;
pub use routes::{RouteInfo, routes};
pub use state::AppState;
pub use ui::ui_available;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Method, header};
use eventstore_core::Limits;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{Any, CorsLayer};

/// The complete API over `state`: every endpoint, the OpenAPI document and
/// Swagger UI under `/openapi/`, the web UI under `/ui/`, with request ids,
/// JSON error bodies, body limits, API keys and CORS.
pub fn router(state: AppState) -> Router {
    let mut api = Router::new();
    for route in routes::table() {
        api = api.route(route.info.axum_path, route.handler);
    }
    api.fallback(|| async { ApiError::NotFound("no such route".into()) })
        .layer(DefaultBodyLimit::max(Limits::MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::require_api_key,
        ))
        .layer(CatchPanicLayer::new())
        .layer(
            CorsLayer::new()
                .allow_origin(Any)
                .allow_methods([Method::GET, Method::POST, Method::PUT])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    REQUEST_ID_HEADER,
                ])
                .expose_headers([REQUEST_ID_HEADER, HeaderName::from_static("location")]),
        )
        .layer(axum::middleware::from_fn(middleware::request_context))
        .with_state(state)
}
