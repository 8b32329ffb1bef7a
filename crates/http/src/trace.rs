//! W3C Trace Context (`traceparent`): a request that carries a valid one
//! keeps its trace id; one without gets a new trace. The answer carries
//! `traceparent` with the trace id and the id of this server's span, and
//! the request's span records both (so every log line of the request can
//! be joined with the caller's trace).
//!
//! The header is 55 fixed characters (`00-<32 hex>-<16 hex>-<2 hex>`):
//! parsed here rather than through an OpenTelemetry propagator, which
//! would bring a whole tracing pipeline to a server that exports none.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderName, HeaderValue};

/// See [`AppState::with_trace_link`](crate::AppState::with_trace_link):
/// takes the request's span and trace context, answers the `(trace id,
/// span id)` (lowercase hex) the tracing pipeline gave the span, or `None`
/// to keep the context's own.
pub type TraceLink =
    Arc<dyn Fn(&tracing::Span, &TraceContext) -> Option<(String, String)> + Send + Sync>;

/// The header, in and out.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// The trace a request belongs to and this server's span in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// 32 lowercase hex digits, never all zero.
    pub trace_id: String,
    /// The caller's span (16 hex digits), when the request carried one.
    pub parent_id: Option<String>,
    /// This server's span for the request (16 hex digits).
    pub span_id: String,
    /// The trace flags (`01`: sampled).
    pub flags: u8,
}

fn hex_id(s: &str, len: usize) -> Option<String> {
    let ok = s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && s.bytes().any(|b| b != b'0');
    ok.then(|| s.to_owned())
}

/// The parts of a valid `traceparent` value: trace id, parent id, flags.
/// Version `ff` and all-zero ids are invalid; a later version's value is
/// read by its first four fields, as the specification asks.
pub fn parse(value: &str) -> Option<(String, String, u8)> {
    let mut parts = value.trim().split('-');
    let version = parts.next()?;
    if version.len() != 2
        || version == "ff"
        || !version
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let trace = hex_id(parts.next()?, 32)?;
    let parent = hex_id(parts.next()?, 16)?;
    let flags_text = parts.next()?;
    if flags_text.len() != 2 {
        return None;
    }
    let flags = u8::from_str_radix(flags_text, 16).ok()?;
    if version == "00" && parts.next().is_some() {
        return None;
    }
    Some((trace, parent, flags))
}

/// The first `bytes` bytes (at most 16) of a random UUID as lowercase
/// hex; never all zero (byte 6 holds the version, 4).
fn random_hex(bytes: usize) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let id = uuid::Uuid::new_v4();
    let mut out = String::with_capacity(bytes * 2);
    for &b in id.as_bytes().iter().take(bytes) {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

impl TraceContext {
    /// The request's trace: the caller's, or a new one.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let parsed = headers
            .get(&TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .and_then(parse);
        let span_id = random_hex(8);
        match parsed {
            Some((trace_id, parent, flags)) => Self {
                trace_id,
                parent_id: Some(parent),
                span_id,
                flags,
            },
            None => Self {
                trace_id: random_hex(16),
                parent_id: None,
                span_id,
                flags: 1,
            },
        }
    }

    /// The `traceparent` of this server's span.
    pub fn header_value(&self) -> HeaderValue {
        HeaderValue::from_str(&format!(
            "00-{}-{}-{:02x}",
            self.trace_id, self.span_id, self.flags
        ))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_lowercase_hex_of_the_right_length() {
        let hex = |s: &str, len: usize| {
            s.len() == len
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                && s.bytes().any(|b| b != b'0')
        };
        let mut seen = std::collections::HashSet::new();
        for _ in 0..100 {
            let t = TraceContext::from_headers(&HeaderMap::new());
            assert!(hex(&t.trace_id, 32), "{t:?}");
            assert!(hex(&t.span_id, 16), "{t:?}");
            assert_eq!(t.parent_id, None);
            assert!(seen.insert(t.trace_id.clone()), "a trace id twice");
            let header = t.header_value();
            let header = header.to_str().unwrap();
            assert_eq!(
                parse(header),
                Some((t.trace_id.clone(), t.span_id.clone(), 1)),
                "{header}"
            );
        }
    }

    #[test]
    fn valid_values_parse_and_invalid_ones_do_not() {
        let ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            parse(ok),
            Some((
                "4bf92f3577b34da6a3ce929d0e0e4736".into(),
                "00f067aa0ba902b7".into(),
                1
            ))
        );
        // A later version: its first four fields are read.
        assert!(parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-extra").is_some());
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
