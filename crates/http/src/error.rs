//! The one place where failures become HTTP answers.
//!
//! Handlers and extractors return [`ApiError`]; its [`IntoResponse`] picks
//! the status and the [`ErrorCode`]. The body itself is rendered by the
//! request middleware ([`crate::middleware`]), which knows the request id,
//! and which also turns every other error response (unknown route, wrong
//! method, a panic) into the same JSON shape.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use eventstore_api::{ErrorBody, ErrorCode, ExpectedRevision};
use eventstore_core::{EventId, ExpectationFailed, StoreError};
use serde_json::json;

/// Everything a request can fail with, in terms of the API's error codes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// 400: the request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 404: no such stream or route.
    #[error("{0}")]
    NotFound(String),
    /// 409: the append's expectation did not hold.
    #[error(transparent)]
    WrongExpectedRevision(ExpectationFailed),
    /// 409: an event id is already in the stream.
    #[error("event {0} is already in the stream")]
    DuplicateEvent(EventId),
    /// 413: the request exceeds a limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 415: the body is not JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 401: an API key is required and was missing or wrong.
    #[error("a valid API key is required: send `Authorization: Bearer <key>`")]
    Unauthorized,
    /// 403: the key may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 410: the stream was deleted.
    #[error("{0}")]
    StreamDeleted(String),
    /// 405: the route exists, the method does not.
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// 503: the store is not accepting work (for example while shutting down).
    #[error("the store is not available: {0}")]
    Unavailable(String),
    /// 503 with `Retry-After`: the store has more work queued than it
    /// takes ([`StoreError::Overloaded`]). The text is for the log only.
    #[error("the store is overloaded: {0}")]
    Overloaded(String),
    /// 503 with `Retry-After`: as many long polls as allowed are already
    /// waiting (the limit is the number).
    #[error("too many long polls are waiting (at most {0})")]
    TooManyLongPolls(usize),
    /// 503: the readiness check failed, for this reason.
    #[error("not ready: {0}")]
    NotReady(String),
    /// 408: the request (or its body) did not arrive in time.
    #[error("{0}")]
    RequestTimeout(String),
    /// 500: anything else. The text is for the log only.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Seconds a client is asked to wait (`Retry-After`) before retrying
/// after an overload answer.
pub(crate) const RETRY_AFTER_SECS: u64 = 1;

/// An error answer waiting for its body: the request middleware renders it
/// with the request id.
#[derive(Debug, Clone)]
pub(crate) struct PendingError {
    pub code: ErrorCode,
    pub message: String,
    pub details: serde_json::Value,
}

impl ApiError {
    /// The status, code, client-facing message and details of this error.
    fn parts(&self) -> (StatusCode, ErrorCode, String, serde_json::Value) {
        use ApiError::*;
        let none = serde_json::Value::Null;
        match self {
            BadRequest(m) => (
                StatusCode::BAD_REQUEST,
                ErrorCode::BadRequest,
                m.clone(),
                none,
            ),
            NotFound(m) => (StatusCode::NOT_FOUND, ErrorCode::NotFound, m.clone(), none),
            WrongExpectedRevision(e) => (
                StatusCode::CONFLICT,
                ErrorCode::WrongExpectedRevision,
                e.to_string(),
                json!({
                    "expectedRevision": ExpectedRevision(e.expected),
                    "actualRevision": e.actual,
                }),
            ),
            DuplicateEvent(id) => (
                StatusCode::CONFLICT,
                ErrorCode::DuplicateEvent,
                self.to_string(),
                json!({ "eventId": id }),
            ),
            PayloadTooLarge(m) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                m.clone(),
                none,
            ),
            UnsupportedMediaType(m) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                m.clone(),
                none,
            ),
            Unauthorized => (
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                self.to_string(),
                none,
            ),
            Forbidden(m) => (StatusCode::FORBIDDEN, ErrorCode::Forbidden, m.clone(), none),
            StreamDeleted(m) => (StatusCode::GONE, ErrorCode::StreamDeleted, m.clone(), none),
            MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::MethodNotAllowed,
                self.to_string(),
                none,
            ),
            Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                "the store is not available right now; retry later".into(),
                none,
            ),
            Overloaded(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                format!(
                    "the server is busy (its write queue is full); retry after {RETRY_AFTER_SECS} s (Retry-After)"
                ),
                none,
            ),
            TooManyLongPolls(max) => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                format!(
                    "too many long polls are waiting (at most {max}); retry after {RETRY_AFTER_SECS} s (Retry-After), or read without `wait`"
                ),
                json!({ "maxLongPolls": max }),
            ),
            NotReady(reason) => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                format!("not ready: {reason}"),
                none,
            ),
            RequestTimeout(m) => (
                StatusCode::REQUEST_TIMEOUT,
                ErrorCode::BadRequest,
                m.clone(),
                none,
            ),
            Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "internal error; the request id identifies the details in the server log".into(),
                none,
            ),
        }
    }

    /// The error a bare status stands for (used for error answers made by
    /// layers and the router rather than by our handlers).
    pub(crate) fn from_status(status: StatusCode) -> Self {
        match status {
            StatusCode::NOT_FOUND => ApiError::NotFound("no such route".into()),
            StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(format!(
                "the request body exceeds {} bytes",
                eventstore_core::Limits::MAX_BODY_BYTES
            )),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                ApiError::UnsupportedMediaType("expected `Content-Type: application/json`".into())
            }
            StatusCode::UNAUTHORIZED => ApiError::Unauthorized,
            StatusCode::REQUEST_TIMEOUT => ApiError::RequestTimeout(
                "the request was not received and answered within the server's request timeout"
                    .into(),
            ),
            StatusCode::SERVICE_UNAVAILABLE => ApiError::Unavailable(status.to_string()),
            s if s.is_client_error() => {
                ApiError::BadRequest(s.canonical_reason().unwrap_or("bad request").into())
            }
            s => ApiError::Internal(format!("error response {s} from a layer")),
        }
    }

    /// The JSON body of this error for `request_id`.
    pub(crate) fn body(&self, request_id: &str) -> ErrorBody {
        let (_, code, message, details) = self.parts();
        ErrorBody {
            code,
            message,
            request_id: request_id.to_owned(),
            details,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message, details) = self.parts();
        match &self {
            ApiError::Internal(detail) | ApiError::Unavailable(detail) => {
                tracing::error!(status = status.as_u16(), error = %detail, "request failed");
            }
            ApiError::Overloaded(detail) => {
                tracing::warn!(status = status.as_u16(), error = %detail, "request refused: overloaded");
            }
            ApiError::TooManyLongPolls(max) => {
                tracing::warn!(
                    status = status.as_u16(),
                    max,
                    "long poll refused: limit reached"
                );
            }
            ApiError::NotReady(reason) => {
                tracing::warn!(status = status.as_u16(), %reason, "not ready");
            }
            _ => tracing::debug!(status = status.as_u16(), ?code, %message, "request rejected"),
        }
        let mut response = status.into_response();
        match self {
            ApiError::Unauthorized => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::Overloaded(_) | ApiError::TooManyLongPolls(_) => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
            }
            _ => {}
        }
        response.extensions_mut().insert(PendingError {
            code,
            message,
            details,
        });
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::WrongExpectedRevision(e) => ApiError::WrongExpectedRevision(e),
            StoreError::DuplicateEvent { event_id } => ApiError::DuplicateEvent(event_id),
            StoreError::StreamNotFound(key) => {
                ApiError::NotFound(format!("stream {key} not found"))
            }
            StoreError::StreamDeleted(key) => ApiError::StreamDeleted(format!(
                "stream {key} was deleted; its id is not used again"
            )),
            StoreError::InvalidRequest(m) => ApiError::BadRequest(m),
            StoreError::TooLarge(m) => ApiError::PayloadTooLarge(m),
            StoreError::Unavailable(m) => ApiError::Unavailable(m),
            StoreError::Overloaded(m) => ApiError::Overloaded(m),
            other => ApiError::Internal(error_chain(&other)),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        let text = rejection.body_text();
        if caused_by_body_timeout(&rejection) {
            return ApiError::RequestTimeout(
                "the request body stalled longer than the server's body timeout".into(),
            );
        }
        match status {
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(text),
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::from_status(status),
            s if s.is_server_error() => ApiError::Internal(text),
            _ => ApiError::BadRequest(text),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        if rejection.status().is_server_error() {
            ApiError::Internal(rejection.body_text())
        } else {
            ApiError::BadRequest(rejection.body_text())
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}

/// Whether reading the body failed because it stalled past the body
/// timeout ([`tower_http::timeout::TimeoutBody`]).
fn caused_by_body_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(e) = current {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        current = e.source();
    }
    false
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
