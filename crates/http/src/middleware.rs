//! Request-wide layers: request ids, tracing spans, error bodies and
//! API-key authentication.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use crate::error::{ApiError, PendingError};
use crate::state::AppState;

/// The header that carries the request id, in and out.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id, available to handlers as an extension.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Whether a client-sent request id can be trusted as a log token.
fn sane_request_id(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    let ok = !text.is_empty()
        && text.len() <= 128
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'@'));
    ok.then(|| text.to_owned())
}

/// Outermost layer: assigns the request id, opens the request's span,
/// renders every error answer as an `ErrorBody`, and sets `x-request-id`
/// on every response, and keeps the W3C trace the request carried
/// (`traceparent`, answered with this server's span in it).
pub(crate) async fn request_context(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let id = req
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(sane_request_id)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let mut trace = crate::trace::TraceContext::from_headers(req.headers());
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
        parent_span_id = trace.parent_id.as_deref(),
        method = %req.method(),
        path = %req.uri().path(),
    );
    if let Some((trace_id, span_id)) = state.trace_link().and_then(|link| link(&span, &trace)) {
        trace.trace_id = trace_id;
        trace.span_id = span_id;
    }
    span.record("trace_id", trace.trace_id.as_str());
    span.record("span_id", trace.span_id.as_str());
    let started = Instant::now();
    let response = next.run(req).instrument(span.clone()).await;
    let _entered = span.enter();
    let mut response = render_error(response, &id);
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
        .headers_mut()
        .insert(crate::trace::TRACEPARENT, trace.header_value());
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    crate::metrics::request_finished(&method, route.as_deref(), status, elapsed);
    let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
    // The access log: failures at `info` (4xx) and `warn` (5xx); answered
    // requests only at `debug` (`--log-level info,access=debug`), because a
    // line per append costs a quarter of the server's time per append
    // (docs/benchmarks.md) and the metrics count them already.
    if response.status().is_server_error() {
        tracing::warn!(target: "access", status, elapsed_ms, "request finished");
    } else if response.status().is_client_error() {
        tracing::info!(target: "access", status, elapsed_ms, "request finished");
    } else {
        tracing::debug!(target: "access", status, elapsed_ms, "request finished");
    }
    response
}

/// Gives an error answer its JSON body: ours (from [`ApiError`]) with the
/// request id filled in, or one made from the status for answers produced
/// by the router or a layer.
fn render_error(mut response: Response, request_id: &str) -> Response {
    let status = response.status();
    let body = if let Some(pending) = response.extensions_mut().remove::<PendingError>() {
        eventstore_api::ErrorBody {
            code: pending.code,
            message: pending.message,
            request_id: request_id.to_owned(),
            details: pending.details,
        }
    } else if status.is_client_error() || status.is_server_error() {
        let is_json = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if is_json {
            return response;
        }
        let err = ApiError::from_status(status);
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), "error answer from a layer");
        }
        err.body(request_id)
    } else {
        return response;
    };
    let bytes = match serde_json::to_vec(&body) {
        Ok(bytes) => bytes,
        Err(_) => return status.into_response(),
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(bytes))
}

/// Paths that answer without an API key: the liveness and readiness
/// checks, and the
/// static pages (web UI, API documentation), which hold no data and must
/// load in a browser before the user can enter a key.
fn is_public(path: &str) -> bool {
    path == "/liveness-check"
        || path == "/readiness-check"
        || path == "/"
        || path == "/ui"
        || path.starts_with("/ui/")
        || path == "/openapi"
        || path.starts_with("/openapi/")
}

/// Rejects requests without a valid `Authorization: Bearer <key>` when
/// keys are configured.
pub(crate) async fn require_api_key(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    if !state.auth_required() || is_public(req.uri().path()) {
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, key) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
        });
    match presented.and_then(|key| state.key_role(key)) {
        Some(role) => {
            let mut req = req;
            req.extensions_mut().insert(role);
            next.run(req).await
        }
        None => ApiError::Unauthorized.into_response(),
    }
}
