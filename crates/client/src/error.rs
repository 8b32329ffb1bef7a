//! The client's one error type.

use eventstore_api::{ErrorBody, ErrorCode, ExpectedRevision};
use eventstore_core::{Expectation, Revision};

/// Everything that can go wrong when talking to the store.
///
/// Answers of the server are mapped by their error code (and status): a
/// caller matches on the variant, never on a message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// 409 `wrong-expected-revision`: the stream was not at the revision the
    /// append expected.
    #[error("wrong expected revision: {message}")]
    WrongExpectedRevision {
        /// What the append expected (from the error's `details`).
        expected: Option<Expectation>,
        /// The stream's revision when the server checked (from `details`).
        actual: Option<Revision>,
        /// The server's message.
        message: String,
        /// The request's id, for the server's log.
        request_id: Option<String>,
    },
    /// 409 `duplicate-event`: an event id of the append is already in the
    /// stream in another arrangement than a retry of this append.
    #[error("duplicate event: {message}")]
    DuplicateEvent {
        /// The server's message.
        message: String,
        /// The request's id.
        request_id: Option<String>,
    },
    /// 404: the stream does not exist.
    #[error("not found: {message}")]
    NotFound {
        /// The server's message.
        message: String,
        /// The request's id.
        request_id: Option<String>,
    },
    /// 410 `stream-deleted`: the stream was deleted; its id is never used
    /// again.
    #[error("stream deleted: {message}")]
    StreamDeleted {
        /// The server's message.
        message: String,
        /// The request's id.
        request_id: Option<String>,
    },
    /// 403 `forbidden`: the key may not do this (deleting and truncating
    /// need an admin key when the server has admin keys).
    #[error("forbidden: {message}")]
    Forbidden {
        /// The server's message.
        message: String,
        /// The request's id.
        request_id: Option<String>,
    },
    /// 400 from the server, or input the client rejected before sending it.
    #[error("invalid input: {message}")]
    InvalidInput {
        /// What is wrong.
        message: String,
        /// The request's id (`None` when the client rejected the input).
        request_id: Option<String>,
    },
    /// 401 (or 403 from an AWS front end): missing or wrong credentials.
    #[error("unauthorized: {message}")]
    Unauthorized {
        /// The server's message.
        message: String,
        /// The request's id.
        request_id: Option<String>,
    },
    /// 413: too many events, an event too large, or a body too large.
    #[error("too large: {message}")]
    TooLarge {
        /// The server's message.
        message: String,
        /// The request's id.
        request_id: Option<String>,
    },
    /// The server could not be reached or the connection failed (includes
    /// timeouts).
    #[error("cannot reach the store (transport error)")]
    Transport(#[source] reqwest::Error),
    /// Any other answer that is not a success: 5xx after the retries ran
    /// out, or an unexpected status.
    #[error("server error {status} ({}): {message}", code.map(code_str).unwrap_or("no code"))]
    Server {
        /// The HTTP status.
        status: u16,
        /// The error code of the body, when it had one.
        code: Option<ErrorCode>,
        /// The server's message (or the start of the body).
        message: String,
        /// The request's id.
        request_id: Option<String>,
    },
    /// A success answer whose body is not what the API promises.
    #[error("cannot decode the answer: {0}")]
    Decode(String),
    /// Signing the request failed (credentials could not be loaded or the
    /// request could not be signed). Only with the `sigv4` feature.
    #[error("cannot sign the request: {0}")]
    Signing(String),
    /// An AWS service call failed (the SQS notification consumer).
    #[error("AWS call failed: {0}")]
    Aws(String),
}

fn code_str(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::BadRequest => "bad-request",
        ErrorCode::NotFound => "not-found",
        ErrorCode::WrongExpectedRevision => "wrong-expected-revision",
        ErrorCode::DuplicateEvent => "duplicate-event",
        ErrorCode::PayloadTooLarge => "payload-too-large",
        ErrorCode::UnsupportedMediaType => "unsupported-media-type",
        ErrorCode::Unauthorized => "unauthorized",
        ErrorCode::Forbidden => "forbidden",
        ErrorCode::StreamDeleted => "stream-deleted",
        ErrorCode::MethodNotAllowed => "method-not-allowed",
        ErrorCode::Unavailable => "unavailable",
        ErrorCode::Internal => "internal",
        _ => "other",
    }
}

impl Error {
    /// Whether the error is one a retry may cure: a transport failure, a
    /// timeout, a 5xx or a 429.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Transport(_) => true,
            Error::Server { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    /// Whether this is a conflict (409: wrong expected revision or
    /// duplicate event).
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            Error::WrongExpectedRevision { .. } | Error::DuplicateEvent { .. }
        )
    }

    /// The request id the server gave the failed request, if any.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Error::WrongExpectedRevision { request_id, .. }
            | Error::DuplicateEvent { request_id, .. }
            | Error::NotFound { request_id, .. }
            | Error::StreamDeleted { request_id, .. }
            | Error::Forbidden { request_id, .. }
            | Error::InvalidInput { request_id, .. }
            | Error::Unauthorized { request_id, .. }
            | Error::TooLarge { request_id, .. }
            | Error::Server { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// Client-side rejection of input.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidInput {
            message: message.into(),
            request_id: None,
        }
    }

    /// Maps an error answer (status, `x-request-id` header, body) to a
    /// variant.
    pub(crate) fn from_response(
        status: u16,
        header_request_id: Option<String>,
        body: &[u8],
    ) -> Self {
        let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
        let (code, message, request_id, details) = match parsed {
            Some(b) => (
                Some(b.code),
                b.message,
                Some(b.request_id)
                    .filter(|s| !s.is_empty())
                    .or(header_request_id),
                b.details,
            ),
            None => {
                let text = String::from_utf8_lossy(body);
                let text: String = text.chars().take(300).collect();
                let message = if text.trim().is_empty() {
                    format!("HTTP {status}")
                } else {
                    text
                };
                (None, message, header_request_id, serde_json::Value::Null)
            }
        };
        match (status, code) {
            (_, Some(ErrorCode::WrongExpectedRevision)) => Error::WrongExpectedRevision {
                expected: details
                    .get("expectedRevision")
                    .and_then(|v| serde_json::from_value::<ExpectedRevision>(v.clone()).ok())
                    .map(|e| e.0),
                actual: details
                    .get("actualRevision")
                    .and_then(|v| serde_json::from_value::<Revision>(v.clone()).ok()),
                message,
                request_id,
            },
            (_, Some(ErrorCode::DuplicateEvent)) => Error::DuplicateEvent {
                message,
                request_id,
            },
            (404, _) | (_, Some(ErrorCode::NotFound)) => Error::NotFound {
                message,
                request_id,
            },
            (_, Some(ErrorCode::StreamDeleted)) => Error::StreamDeleted {
                message,
                request_id,
            },
            (_, Some(ErrorCode::Forbidden)) => Error::Forbidden {
                message,
                request_id,
            },
            (400, _) | (_, Some(ErrorCode::BadRequest)) => Error::InvalidInput {
                message,
                request_id,
            },
            (401 | 403, _) | (_, Some(ErrorCode::Unauthorized)) => Error::Unauthorized {
                message,
                request_id,
            },
            (413, _) | (_, Some(ErrorCode::PayloadTooLarge)) => Error::TooLarge {
                message,
                request_id,
            },
            (status, code) => Error::Server {
                status,
                code,
                message,
                request_id,
            },
        }
    }
}

/// The client's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_carries_expected_and_actual_revision() {
        let body = br#"{"code":"wrong-expected-revision","message":"m","requestId":"r1",
            "details":{"expectedRevision":3,"actualRevision":5}}"#;
        match Error::from_response(409, None, body) {
            Error::WrongExpectedRevision {
                expected,
                actual,
                request_id,
                ..
            } => {
                assert_eq!(expected, Some(Expectation::Exact(Revision::new(3))));
                assert_eq!(actual, Some(Revision::new(5)));
                assert_eq!(request_id.as_deref(), Some("r1"));
            }
            other => panic!("unexpected {other:?}"),
        }
        let body = br#"{"code":"wrong-expected-revision","message":"m","requestId":"r1",
            "details":{"expectedRevision":"no-stream","actualRevision":1}}"#;
        assert!(matches!(
            Error::from_response(409, None, body),
            Error::WrongExpectedRevision {
                expected: Some(Expectation::NoStream),
                ..
            }
        ));
    }

    #[test]
    fn statuses_map_to_variants() {
        let e = |status, code: &str| {
            let body = format!(r#"{{"code":"{code}","message":"m","requestId":"r"}}"#);
            Error::from_response(status, None, body.as_bytes())
        };
        assert!(matches!(e(404, "not-found"), Error::NotFound { .. }));
        assert!(matches!(e(400, "bad-request"), Error::InvalidInput { .. }));
        assert!(matches!(e(401, "unauthorized"), Error::Unauthorized { .. }));
        assert!(matches!(
            e(413, "payload-too-large"),
            Error::TooLarge { .. }
        ));
        assert!(matches!(
            e(409, "duplicate-event"),
            Error::DuplicateEvent { .. }
        ));
        assert!(matches!(
            e(500, "internal"),
            Error::Server {
                status: 500,
                code: Some(ErrorCode::Internal),
                ..
            }
        ));
        assert!(e(503, "unavailable").is_transient());
        assert!(!e(404, "not-found").is_transient());
    }

    #[test]
    fn a_body_that_is_not_json_still_maps_by_status() {
        let err = Error::from_response(502, Some("h".into()), b"Bad Gateway");
        match err {
            Error::Server {
                status,
                code,
                message,
                request_id,
            } => {
                assert_eq!((status, code), (502, None));
                assert_eq!(message, "Bad Gateway");
                assert_eq!(request_id.as_deref(), Some("h"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            Error::from_response(403, None, b""),
            Error::Unauthorized { .. }
        ));
    }
}
