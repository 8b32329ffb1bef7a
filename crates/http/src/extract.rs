//! Extractors that turn every malformed input into an [`ApiError`] with a
//! helpful message, before any lookup.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{FromRequest, FromRequestParts, Query, RawPathParams, Request};
use axum::http::request::Parts;
use eventstore_core::{Limits, Position, Revision, StreamId, StreamKey, StreamType, Timestamp};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body; rejections (wrong content type, bad JSON, missing fields,
/// too large) become [`ApiError`]s.
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(JsonBody(value))
    }
}

/// The path parameters of a route, percent-decoded.
#[derive(Debug)]
pub(crate) struct PathParams(HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for PathParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let raw = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        let mut params = HashMap::new();
        for (name, value) in &raw {
            params.insert(name.to_owned(), value.to_owned());
        }
        Ok(PathParams(params))
    }
}

impl PathParams {
    fn get(&self, name: &str) -> Result<&str, ApiError> {
        self.0
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| ApiError::Internal(format!("route has no path parameter {name}")))
    }

    /// The `{streamType}` segment.
    pub fn stream_type(&self) -> Result<StreamType, ApiError> {
        StreamType::parse(self.get("streamType")?).map_err(|e| ApiError::BadRequest(e.to_string()))
    }

    /// The `{streamType}` and `{streamId}` segments.
    pub fn stream_key(&self) -> Result<StreamKey, ApiError> {
        let stream_type = self.stream_type()?;
        let stream_id = StreamId::parse(self.get("streamId")?)
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        Ok(StreamKey::new(stream_type, stream_id))
    }

    /// A revision segment: 0 to [`MAX_COUNTER`].
    pub fn revision(&self, name: &str) -> Result<Revision, ApiError> {
        let v = self.get(name)?;
        Revision::parse(v)
            .ok()
            .filter(|r| r.get() <= MAX_COUNTER)
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "path parameter {name} must be an integer from 0 to {MAX_COUNTER}, got {v:?}"
                ))
            })
    }
}

/// The query string's parameters. A parameter given twice is a 400;
/// unknown parameters are ignored.
#[derive(Debug, Default)]
pub(crate) struct QueryParams(HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(pairs) = Query::<Vec<(String, String)>>::from_request_parts(parts, state).await?;
        let mut params = HashMap::with_capacity(pairs.len());
        for (name, value) in pairs {
            if params.contains_key(&name) {
                return Err(ApiError::BadRequest(format!(
                    "query parameter {name} is given more than once"
                )));
            }
            params.insert(name, value);
        }
        Ok(QueryParams(params))
    }
}

impl QueryParams {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// An optional revision: 0 to [`MAX_COUNTER`].
    pub fn revision(&self, name: &str) -> Result<Option<Revision>, ApiError> {
        self.counter(name, Revision::parse, Revision::get)
    }

    /// An optional position: 0 to [`MAX_COUNTER`].
    pub fn position(&self, name: &str) -> Result<Option<Position>, ApiError> {
        self.counter(name, Position::parse, Position::get)
    }

    fn counter<T, E>(
        &self,
        name: &str,
        parse: impl Fn(&str) -> Result<T, E>,
        get: impl Fn(T) -> u64,
    ) -> Result<Option<T>, ApiError>
    where
        T: Copy,
    {
        self.get(name)
            .map(|v| {
                parse(v)
                    .ok()
                    .filter(|n| get(*n) <= MAX_COUNTER)
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!(
                            "query parameter {name} must be an integer from 0 to {MAX_COUNTER}, got {v:?}"
                        ))
                    })
            })
            .transpose()
    }

    /// An optional RFC 3339 time.
    pub fn timestamp(&self, name: &str) -> Result<Option<Timestamp>, ApiError> {
        self.get(name)
            .map(|v| {
                Timestamp::parse(v).map_err(|e| {
                    ApiError::BadRequest(format!(
                        "query parameter {name} must be an RFC 3339 time such as 2025-01-25T10:11:12Z, got {v:?} ({e})"
                    ))
                })
            })
            .transpose()
    }

    /// An optional text parameter.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name)
    }

    /// `limit`: 1–1000, default 100.
    pub fn limit(&self) -> Result<usize, ApiError> {
        match self.get("limit") {
            None => Ok(Limits::DEFAULT_READ_LIMIT),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=Limits::MAX_READ_LIMIT).contains(&n) && !v.starts_with('+') => Ok(n),
                _ => Err(ApiError::BadRequest(format!(
                    "query parameter limit must be an integer from 1 to {}, got {v:?}",
                    Limits::MAX_READ_LIMIT
                ))),
            },
        }
    }

    /// `wait`: whole seconds, 0–30, default 0.
    pub fn wait(&self) -> Result<Duration, ApiError> {
        match self.get("wait") {
            None => Ok(Duration::ZERO),
            Some(v) => match v.parse::<u64>() {
                Ok(n) if n <= MAX_WAIT_SECONDS && !v.starts_with('+') => Ok(Duration::from_secs(n)),
                _ => Err(ApiError::BadRequest(format!(
                    "query parameter wait must be whole seconds from 0 to {MAX_WAIT_SECONDS}, got {v:?}"
                ))),
            },
        }
    }
}

/// The longest a feed request may be held (seconds); the `wait` maximum
/// of the OpenAPI document.
pub(crate) const MAX_WAIT_SECONDS: u64 = 30;

/// The largest revision or position a path or query accepts: the maximum
/// of a signed 64-bit integer, as the OpenAPI document states (`format:
/// int64`, `maximum: 9223372036854775807`). Larger numbers are a 400.
pub(crate) const MAX_COUNTER: u64 = i64::MAX as u64;

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> QueryParams {
        QueryParams(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn counters_stop_at_the_documented_maximum() {
        let max = MAX_COUNTER.to_string();
        let over = (MAX_COUNTER + 1).to_string();
        assert_eq!(max, "9223372036854775807");
        let q = query(&[
            ("p", &max),
            ("r", &max),
            ("big", &over),
            ("huge", "18446744073709551616"),
        ]);
        assert_eq!(q.position("p").unwrap(), Some(Position::new(MAX_COUNTER)));
        assert_eq!(q.revision("r").unwrap(), Some(Revision::new(MAX_COUNTER)));
        for name in ["big", "huge"] {
            assert!(q.position(name).is_err(), "{name}");
            assert!(q.revision(name).is_err(), "{name}");
        }
        assert_eq!(q.position("absent").unwrap(), None);
    }
}
