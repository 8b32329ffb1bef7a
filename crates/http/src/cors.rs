//! Cross-origin requests: off unless the host names the origins it trusts.
//!
//! The web UI and the Swagger page are served by this router, so they are
//! same-origin and need no CORS. A browser page on another origin may call
//! the API only when its origin is listed, or when `*` is spelled out.

use std::fmt;

use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::middleware::REQUEST_ID_HEADER;

/// Which browser origins may call the API from another site.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CorsPolicy {
    /// No CORS headers at all: browsers only let same-origin pages call
    /// the API (the default).
    #[default]
    Off,
    /// Any origin (`access-control-allow-origin: *`), only when asked for.
    AnyOrigin,
    /// Exactly these origins (`scheme://host[:port]`, as browsers send them).
    Origins(Vec<HeaderValue>),
}

/// An origin that cannot be matched against a browser's `Origin` header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid CORS origin {origin:?}: {reason}")]
pub struct InvalidCorsOrigin {
    /// The origin as given.
    pub origin: String,
    /// Why it is refused.
    pub reason: &'static str,
}

impl CorsPolicy {
    /// The policy for these origins: none is [`CorsPolicy::Off`], `*` alone
    /// is [`CorsPolicy::AnyOrigin`], anything else must be an origin as a
    /// browser sends it: `scheme://host[:port]`, lowercase, without path or
    /// trailing slash (`https://app.example.com`, `http://localhost:3000`).
    pub fn from_origins<I, S>(origins: I) -> Result<Self, InvalidCorsOrigin>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let origins: Vec<String> = origins
            .into_iter()
            .map(|o| o.as_ref().trim().to_owned())
            .filter(|o| !o.is_empty())
            .collect();
        if origins.is_empty() {
            return Ok(CorsPolicy::Off);
        }
        if origins.iter().any(|o| o == "*") {
            if origins.len() > 1 {
                return Err(InvalidCorsOrigin {
                    origin: "*".into(),
                    reason: "`*` allows every origin and cannot be combined with named origins",
                });
            }
            return Ok(CorsPolicy::AnyOrigin);
        }
        let mut values = Vec::with_capacity(origins.len());
        for origin in origins {
            check_origin(&origin)?;
            let value = HeaderValue::from_str(&origin).map_err(|_| InvalidCorsOrigin {
                origin: origin.clone(),
                reason: "not a valid header value",
            })?;
            if !values.contains(&value) {
                values.push(value);
            }
        }
        Ok(CorsPolicy::Origins(values))
    }

    /// The layer that answers preflights and adds the CORS headers, or
    /// `None` when CORS is off.
    pub(crate) fn layer(&self) -> Option<CorsLayer> {
        let allow = match self {
            CorsPolicy::Off => return None,
            CorsPolicy::AnyOrigin => AllowOrigin::any(),
            CorsPolicy::Origins(list) => AllowOrigin::list(list.iter().cloned()),
        };
        Some(
            CorsLayer::new()
                .allow_origin(allow)
                .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    REQUEST_ID_HEADER,
                    HeaderName::from_static("traceparent"),
                ])
                .expose_headers([
                    REQUEST_ID_HEADER,
                    HeaderName::from_static("traceparent"),
                    header::LOCATION,
                    header::RETRY_AFTER,
                    HeaderName::from_static("www-authenticate"),
                ]),
        )
    }
}

impl fmt::Display for CorsPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CorsPolicy::Off => f.write_str("off"),
            CorsPolicy::AnyOrigin => f.write_str("*"),
            CorsPolicy::Origins(list) => {
                for (i, o) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    f.write_str(o.to_str().unwrap_or("?"))?;
                }
                Ok(())
            }
        }
    }
}

/// `scheme://host[:port]` with a lowercase scheme and host, as the
/// `Origin` header carries it (the comparison is byte for byte).
fn check_origin(origin: &str) -> Result<(), InvalidCorsOrigin> {
    let bad = |reason| {
        Err(InvalidCorsOrigin {
            origin: origin.to_owned(),
            reason,
        })
    };
    let Some((scheme, rest)) = origin.split_once("://") else {
        return bad("expected scheme://host[:port], e.g. https://app.example.com");
    };
    let scheme_ok = scheme
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+.-".contains(&b));
    if !scheme_ok {
        return bad("the scheme must be lowercase letters, digits, '+', '.' or '-'");
    }
    if rest.is_empty() {
        return bad("the host is missing");
    }
    if rest.contains('/') || rest.contains('?') || rest.contains('#') {
        return bad("an origin has no path, query or trailing slash");
    }
    if rest.contains('@') {
        return bad("an origin has no user information");
    }
    if !rest
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.:[]_".contains(&b))
    {
        return bad("the host must be lowercase (browsers send it so) without spaces");
    }
    if let Some((_, port)) = rest.rsplit_once(':')
        && !rest.ends_with(']')
        && port.parse::<u16>().is_err()
    {
        return bad("the port must be a number from 0 to 65535");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_checked() {
        assert_eq!(
            CorsPolicy::from_origins(Vec::<String>::new()),
            Ok(CorsPolicy::Off)
        );
        assert_eq!(CorsPolicy::from_origins([" ", ""]), Ok(CorsPolicy::Off));
        assert_eq!(CorsPolicy::from_origins(["*"]), Ok(CorsPolicy::AnyOrigin));
        assert!(CorsPolicy::from_origins(["*", "https://a.example"]).is_err());
        let ok = [
            "https://app.example.com",
            "http://localhost:3000",
            "http://127.0.0.1:8080",
            "http://[::1]:8080",
            "chrome-extension://abcdef",
        ];
        for o in ok {
            assert!(CorsPolicy::from_origins([o]).is_ok(), "{o}");
        }
        let bad = [
            "app.example.com",
            "https://app.example.com/",
            "https://app.example.com/path",
            "https://App.example.com",
            "HTTPS://app.example.com",
            "https://",
            "https://a.example:99999",
            "https://user@a.example",
            "null",
            "https://a b",
        ];
        for o in bad {
            assert!(CorsPolicy::from_origins([o]).is_err(), "{o}");
        }
        assert_eq!(
            CorsPolicy::from_origins(["https://a.example", "https://a.example"])
                .unwrap()
                .to_string(),
            "https://a.example"
        );
    }
}
