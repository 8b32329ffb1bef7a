//! `event-store serve`: the HTTP API over the embedded, in-memory or
//! DynamoDB store, protected by the limits and timeouts of
//! [`crate::config::Protection`].

mod connections;
mod metrics;
mod readiness;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use eventstore_core::{EventStore, MemoryStore};
use eventstore_embedded::EmbeddedStore;
use eventstore_http::{AppState, router};

use crate::config::{Backend, ServeSettings};
use crate::dynamodb_cmd;

/// Opens the store, serves until SIGINT or SIGTERM, lets in-flight
/// requests finish until the shutdown deadline (or a second signal), drops
/// the connections left, then closes the store.
pub async fn run(settings: ServeSettings) -> anyhow::Result<()> {
    tracing::info!(?settings, "starting");
    let metrics = metrics::install()?;
    // What runs beside the dynamodb backend (its in-process relay).
    let mut dynamodb = None;
    let (store, embedded): (Arc<dyn EventStore>, Option<Arc<EmbeddedStore>>) =
        match settings.backend {
            Backend::Embedded => {
                let dir = settings.data_dir.clone();
                let store = tokio::task::spawn_blocking(move || EmbeddedStore::open(&dir))
                    .await
                    .context("opening the store")?
                    .with_context(|| {
                        format!("opening the data directory {}", settings.data_dir.display())
                    })?;
                let store = Arc::new(store);
                (store.clone(), Some(store))
            }
            Backend::Memory => {
                tracing::warn!("memory backend: nothing is kept after the process ends");
                (Arc::new(MemoryStore::new()), None)
            }
            Backend::Dynamodb => {
                let dynamo = settings
                    .dynamodb
                    .as_ref()
                    .context("the dynamodb backend needs its settings")?;
                let opened = dynamodb_cmd::open(dynamo).await?;
                dynamodb = Some(opened.running);
                let probed =
                    readiness::ProbedStore::start(opened.store, &opened.sdk, dynamo.table.clone());
                (probed, None)
            }
        };
    let protection = &settings.protection;
    let state = AppState::new(store)
        .with_api_keys(settings.api_keys.iter().cloned())
        .with_long_poll_limit(protection.max_long_polls)
        .with_body_timeout(protection.body_timeout)
        .with_request_timeout(protection.request_timeout)
        .with_cors(protection.cors.clone())
        .with_metrics(metrics);
    let state = if crate::telemetry::exporting() {
        state.with_trace_link(crate::telemetry::trace_link())
    } else {
        state
    };
    let limits = connections::ConnectionLimits {
        max_connections: protection.max_connections,
        header_timeout: protection.header_timeout,
        keep_alive_timeout: protection.keep_alive_timeout,
        shutdown_timeout: protection.shutdown_timeout,
    };

    let addr = SocketAddr::new(settings.bind, settings.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr().context("reading the bound address")?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{local}")?;
        out.flush()?;
    }
    tracing::info!(
        address = %local,
        backend = %settings.backend,
        api_keys = settings.api_keys.len(),
        cors = %protection.cors,
        "listening"
    );

    let shutdown = {
        let state = state.clone();
        async move {
            let signal = shutdown_signal().await;
            tracing::info!(signal, "shutting down: finishing requests in flight");
            state.begin_shutdown();
        }
    };
    let hurry = async {
        let signal = shutdown_signal().await;
        tracing::warn!(signal, "second signal: not waiting for requests in flight");
    };
    let drained = connections::serve(listener, router(state), &limits, shutdown, hurry).await;
    if let connections::Drained::Dropped(n) = drained {
        tracing::warn!(
            connections = n,
            "connections dropped at the shutdown deadline"
        );
    }
    if let Some(running) = dynamodb {
        running.finish().await;
    }
    if let Some(store) = embedded {
        store.close().await;
        tracing::info!("store closed");
    }
    tracing::info!("stopped");
    crate::telemetry::shutdown();
    Ok(())
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM, with its name.
async fn shutdown_signal() -> &'static str {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => "SIGINT",
        _ = term => "SIGTERM",
    }
}
