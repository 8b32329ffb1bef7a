//! The accept loop: hyper's HTTP/1 connections over the router, with a
//! cap on connections, the header and keep-alive timeouts, and a
//! graceful shutdown that ends at a hard deadline.
//!
//! Timeouts inside a request (body, whole request) and the long-poll limit
//! belong to the router (`eventstore_http::AppState`); this module owns
//! what happens between requests and around connections.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::Service;

/// How connections are accepted, kept and ended.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Connections served at once; more wait in the listen queue.
    pub max_connections: usize,
    /// Time to send a complete request head (hyper's header read timeout;
    /// it runs from when the connection starts waiting for a head).
    pub header_timeout: Duration,
    /// Idle time allowed after an answer; `None` turns keep-alive off.
    pub keep_alive_timeout: Option<Duration>,
    /// Time requests in flight get after shutdown begins.
    pub shutdown_timeout: Duration,
}

/// How the serving ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// Every connection finished before the deadline.
    Cleanly,
    /// The deadline (or a second signal) passed; this many connections
    /// were dropped.
    Dropped(usize),
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops
/// accepting, lets connections finish their requests until the deadline
/// (or until `hurry` resolves), and drops what is left.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &ConnectionLimits,
    shutdown: impl Future<Output = ()>,
    hurry: impl Future<Output = ()>,
) -> Drained {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(limits.keep_alive_timeout.is_some());
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let activity = Arc::new(Activity::default());
        let service = Tracked {
            app: app.clone(),
            activity: activity.clone(),
        };
        let conn = http.serve_connection(TokioIo::new(stream), service);
        let mut stop = stop_rx.clone();
        let keep_alive = limits.keep_alive_timeout;
        connections.spawn(async move {
            let _permit = permit;
            tokio::pin!(conn);
            let mut closing = false;
            loop {
                tokio::select! {
                    ended = conn.as_mut() => {
                        if let Err(err) = ended {
                            tracing::debug!(%peer, error = %err, "connection ended");
                        }
                        break;
                    }
                    _ = stop.wait_for(|stop| *stop), if !closing => {
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                    }
                    () = idle_expired(&activity, keep_alive), if !closing => {
                        tracing::debug!(%peer, "closing an idle connection");
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                    }
                }
            }
        });
    }
    // Stop accepting: new connections are refused from here on.
    drop(listener);
    let _ = stop_tx.send(true);
    let in_flight = connections.len();
    tracing::info!(
        connections = in_flight,
        deadline_s = limits.shutdown_timeout.as_secs_f64(),
        "finishing requests in flight"
    );
    let drain = async { while connections.join_next().await.is_some() {} };
    let cut = tokio::select! {
        () = drain => false,
        () = tokio::time::sleep(limits.shutdown_timeout) => true,
        () = hurry => true,
    };
    if cut {
        let left = connections.len();
        tracing::warn!(
            connections = left,
            "shutdown deadline: dropping connections"
        );
        connections.shutdown().await;
        Drained::Dropped(left)
    } else {
        Drained::Cleanly
    }
}

/// What a connection is doing: requests in flight, and since when it has
/// been idle (`None` before its first request, when only the header
/// timeout applies).
#[derive(Default)]
struct Activity {
    state: Mutex<(usize, Option<Instant>)>,
    changed: Notify,
}

impl Activity {
    fn begin(self: &Arc<Self>) -> InFlight {
        self.state.lock().expect("poisoned").0 += 1;
        self.changed.notify_waiters();
        InFlight(self.clone())
    }
}

/// One request in flight; dropped when its answer has been written.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        {
            let mut state = self.0.state.lock().expect("poisoned");
            state.0 -= 1;
            if state.0 == 0 {
                state.1 = Some(Instant::now());
            }
        }
        self.0.changed.notify_waiters();
    }
}

/// Resolves once the connection has been idle for `keep_alive` after an
/// answer; never when keep-alive is off (hyper closes after the answer).
async fn idle_expired(activity: &Activity, keep_alive: Option<Duration>) {
    let Some(keep_alive) = keep_alive else {
        return std::future::pending().await;
    };
    loop {
        let changed = activity.changed.notified();
        let deadline = {
            let state = activity.state.lock().expect("poisoned");
            match *state {
                (0, Some(idle_since)) => Some(idle_since + keep_alive),
                _ => None,
            }
        };
        match deadline {
            Some(deadline) => tokio::select! {
                () = tokio::time::sleep_until(deadline) => return,
                () = changed => {}
            },
            None => changed.await,
        }
    }
}

/// The router as a hyper service that tracks the connection's activity.
#[derive(Clone)]
struct Tracked {
    app: Router,
    activity: Arc<Activity>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for Tracked {
    type Response = hyper::Response<TrackedBody>;
    type Error = std::convert::Infallible;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        let in_flight = self.activity.begin();
        let mut app = self.app.clone();
        Box::pin(async move {
            let response = app.call(req.map(Body::new)).await?;
            Ok(response.map(|body| TrackedBody {
                body,
                _in_flight: in_flight,
            }))
        })
    }
}

/// An answer's body that marks the request finished when hyper drops it
/// (after writing it, or when the connection goes away).
struct TrackedBody {
    body: Body,
    _in_flight: InFlight,
}

impl HttpBody for TrackedBody {
    type Data = <Body as HttpBody>::Data;
    type Error = <Body as HttpBody>::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
