//! Logging: one subscriber for the whole process, writing to stderr
//! (stdout carries the `listening on` line and command output), and, when
//! `--otlp-endpoint` names a collector, an OpenTelemetry layer that exports
//! the spans by OTLP over HTTP.

use std::io::IsTerminal;
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogArgs, LogFormat};

/// What the exported spans include beyond `info`: the store calls (debug
/// spans of the backends) and the AWS SDK's calls under them.
const OTLP_FILTER: &str = "info,eventstore_http=debug,eventstore_embedded=debug,eventstore_dynamodb=debug,aws_sdk_dynamodb=debug,aws_smithy_runtime=debug";

/// The exporter's provider, flushed by [`shutdown`].
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Installs the process's tracing subscriber. Call once, first thing.
pub fn init(args: &LogArgs) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&args.log_level)
        .with_context(|| format!("invalid log filter {:?}", args.log_level))?;
    let ansi = std::io::stderr().is_terminal();
    let fmt = match args.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_filter(filter)
            .boxed(),
    };
    let otel = match &args.otlp_endpoint {
        None => None,
        Some(endpoint) => {
            let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(url)
                .with_timeout(std::time::Duration::from_secs(5))
                .build()
                .context("the OTLP exporter")?;
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(
                    opentelemetry_sdk::Resource::builder()
                        .with_service_name("event-store")
                        .build(),
                )
                .build();
            let tracer = provider.tracer("event-store");
            let _ = PROVIDER.set(provider);
            Some(
                tracing_opentelemetry::layer()
                    .with_tracer(tracer)
                    .with_filter(EnvFilter::new(OTLP_FILTER)),
            )
        }
    };
    tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init()
        .map_err(|e| anyhow::anyhow!("installing the log subscriber: {e}"))
}

/// Whether spans are exported (`--otlp-endpoint`).
pub fn exporting() -> bool {
    PROVIDER.get().is_some()
}

/// Makes each request's span a child of the caller's span (`traceparent`)
/// in the exported trace, and tells the router the ids the span got.
pub fn trace_link() -> eventstore_http::TraceLink {
    Arc::new(|span, trace| {
        if let Some(parent) = &trace.parent_id {
            let remote = SpanContext::new(
                TraceId::from_hex(&trace.trace_id).ok()?,
                SpanId::from_hex(parent).ok()?,
                TraceFlags::new(trace.flags),
                true,
                TraceState::default(),
            );
            let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
        }
        let cx = span.context();
        let ids = cx.span().span_context().clone();
        ids.is_valid()
            .then(|| (ids.trace_id().to_string(), ids.span_id().to_string()))
    })
}

/// Exports the spans still buffered. Call once, at the end of `serve`.
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get()
        && let Err(e) = provider.shutdown()
    {
        tracing::warn!(error = %e, "exporting the last spans failed");
    }
}
