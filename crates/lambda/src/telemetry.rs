//! Logs for CloudWatch: one JSON object per line on stdout, with the fields
//! of every open span (the Lambda request id from [`lambda_span`], the API
//! request id from the router's own span).

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

/// `info`, with every request's access log line.
const INFO: &str = "info,access=debug";

/// Installs the JSON subscriber. The level comes from `RUST_LOG`, else from
/// `AWS_LAMBDA_LOG_LEVEL` (set by Lambda's logging configuration), else
/// `info`. At `info` the access log's line for every request is kept (the
/// local server logs answered requests only at `debug`; here a line per
/// invocation is cheap beside the invocation, and a Function URL has no
/// access log of its own). Safe to call twice (the second call does
/// nothing).
pub fn init() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| {
            std::env::var("AWS_LAMBDA_LOG_LEVEL")
                .ok()
                .map(|l| l.to_lowercase())
                .map(|l| if l == "info" { INFO.to_owned() } else { l })
        })
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(INFO));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_span_list(true)
        .with_span_events(FmtSpan::NONE)
        .with_target(true)
        .with_ansi(false)
        .try_init();
}

/// The span every invocation runs in: carries the Lambda request id.
pub fn lambda_span(function: &'static str, lambda_request_id: &str) -> tracing::Span {
    tracing::info_span!("invocation", function, lambda_request_id = %lambda_request_id)
}
