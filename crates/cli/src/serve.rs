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
use eventstore_core::{EventStore, GatedStore, MemoryStore};
use eventstore_embedded::{EmbeddedOptions, EmbeddedStore};
use eventstore_http::{AppState, router};

use crate::config::{Backend, ServeSettings};
use crate::dynamodb_cmd;

/// What was opened, and what must be finished or closed at shutdown.
struct Opened {
    store: Arc<dyn EventStore>,
    /// The embedded store, closed after the last request.
    embedded: Option<Arc<EmbeddedStore>>,
    /// What runs beside the dynamodb backend (its in-process relay).
    dynamodb: Option<dynamodb_cmd::Running>,
}

/// Opens the configured backend. `gate` is the store the router already
/// serves; the DynamoDB backend's readiness probe reports through it.
async fn open(settings: &ServeSettings, gate: &Arc<GatedStore>) -> anyhow::Result<Opened> {
    Ok(match settings.backend {
        Backend::Embedded => {
            let dir = settings.data_dir.clone();
            let options = EmbeddedOptions {
                checkpoint_events: settings.embedded.checkpoint_events,
                checkpoint_interval: settings.embedded.checkpoint_interval,
                index_cache_bytes: settings.embedded.index_cache_bytes,
                ..EmbeddedOptions::default()
            };
            let store =
                tokio::task::spawn_blocking(move || EmbeddedStore::open_with(&dir, options))
                    .await
                    .context("opening the store")?
                    .with_context(|| {
                        format!("opening the data directory {}", settings.data_dir.display())
                    })?;
            let store = Arc::new(store);
            Opened {
                store: store.clone(),
                embedded: Some(store),
                dynamodb: None,
            }
        }
        Backend::Memory => {
            tracing::warn!("memory backend: nothing is kept after the process ends");
            Opened {
                store: Arc::new(MemoryStore::new()),
                embedded: None,
                dynamodb: None,
            }
        }
        Backend::Dynamodb => {
            let dynamo = settings
                .dynamodb
                .as_ref()
                .context("the dynamodb backend needs its settings")?;
            let opened = dynamodb_cmd::open(dynamo).await?;
            readiness::start_probe(gate, &opened.sdk, dynamo.table.clone());
            Opened {
                store: opened.store,
                embedded: None,
                dynamodb: Some(opened.running),
            }
        }
    })
}

/// Binds the port, then opens the store while already answering (every
/// call, `/readiness-check` included, is a 503 until the store is open;
/// `/liveness-check` is 200 throughout), serves until SIGINT or SIGTERM,
/// lets in-flight requests finish until the shutdown deadline (or a second
/// signal), drops the connections left, then closes the store. When the
/// store cannot be opened, the server stops and the error is returned.
pub async fn run(settings: ServeSettings) -> anyhow::Result<()> {
    tracing::info!(?settings, "starting");
    let metrics = metrics::install()?;
    let gate = Arc::new(GatedStore::new(match settings.backend {
        Backend::Embedded => format!("opening the data directory {}", settings.data_dir.display()),
        _ => format!("opening the {} backend", settings.backend),
    }));
    let protection = &settings.protection;
    let state = AppState::new(gate.clone())
        .with_api_keys(settings.api_keys.iter().cloned())
        .with_admin_api_keys(settings.admin_api_keys.iter().cloned())
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
    say(&format!("starting on http://{local}: opening the store"))?;

    // The store opens while the server already answers; a failure stops
    // the server.
    let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<()>();
    let opening = {
        let settings = settings.clone();
        let gate = gate.clone();
        tokio::spawn(async move {
            let opened = open(&settings, &gate).await;
            match &opened {
                Ok(o) => {
                    gate.install(o.store.clone());
                    say(&format!("listening on http://{local}"))?;
                    tracing::info!(
                        address = %local,
                        backend = %settings.backend,
                        api_keys = settings.api_keys.len(),
                        cors = %settings.protection.cors,
                        "listening"
                    );
                }
                Err(_) => {
                    let _ = failed_tx.send(());
                }
            }
            opened
        })
    };

    let shutdown = {
        let state = state.clone();
        async move {
            tokio::select! {
                signal = shutdown_signal() => {
                    tracing::info!(signal, "shutting down: finishing requests in flight");
                }
                Ok(()) = failed_rx => {
                    tracing::error!("the store could not be opened: stopping");
                }
            }
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
    // A signal during the opening waits for it to end, so that the store is
    // closed cleanly.
    let opened = opening.await.context("opening the store")??;
    if let Some(running) = opened.dynamodb {
        running.finish().await;
    }
    if let Some(store) = opened.embedded {
        store.close().await;
        tracing::info!("store closed");
    }
    tracing::info!("stopped");
    crate::telemetry::shutdown();
    Ok(())
}

/// One line on stdout, flushed (scripts and tests wait for these lines).
fn say(line: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
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
