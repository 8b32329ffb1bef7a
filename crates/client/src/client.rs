//! The [`Client`], its builder and every endpoint of the API.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, Stream, TryStreamExt};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;

use eventstore_api::{
    AppendEventBody, BatchAppendBody, BatchAppendResponse, CreateStreamBody, EventPage,
    EventPageEnvelope, ExpectedRevision, FeedPage, FeedPageEnvelope, Liveness, NewEventBody,
    StreamEnvelope, StreamPage, StreamPageEnvelope, StreamTypeEntry, StreamTypesResponse,
    TruncateBody,
};
use eventstore_core::{
    AppendOutcome, Direction, Expectation, FeedFilter, NewEvent, Position, RecordedEvent, Revision,
    StreamId, StreamInfo, StreamRead, StreamType, Timestamp,
};

use crate::error::{Error, Result};
use crate::retry::RetryPolicy;

/// The default address of a local server.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// The longest long poll the API allows, in seconds.
pub const MAX_WAIT_SECS: u64 = 30;

/// A client of one event store. Cheap to clone (the connection pool is
/// shared).
///
/// ```no_run
/// # async fn demo() -> Result<(), eventstore_client::Error> {
/// use eventstore_client::{Client, NewEvent, EventType, JsonValue, StreamType};
///
/// let client = Client::builder("http://127.0.0.1:8080").api_key("secret").build()?;
/// let order = StreamType::parse("order").unwrap();
/// let placed = NewEvent::new(
///     EventType::parse("order-placed").unwrap(),
///     JsonValue::from_text(r#"{"total":42}"#).unwrap(),
/// );
/// let stream = client.create_stream(&order, placed).await?;
/// println!("created {} at revision {}", stream.stream_id, stream.revision);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base)
            .field("auth", &self.inner.auth.kind())
            .finish_non_exhaustive()
    }
}

struct Inner {
    http: reqwest::Client,
    base: String,
    auth: Auth,
    retry: RetryPolicy,
    request_timeout: Duration,
}

enum Auth {
    None,
    Bearer(String),
    #[cfg(feature = "sigv4")]
    SigV4(crate::sigv4::SigV4Signer),
}

impl Auth {
    fn kind(&self) -> &'static str {
        match self {
            Auth::None => "none",
            Auth::Bearer(_) => "bearer",
            #[cfg(feature = "sigv4")]
            Auth::SigV4(_) => "sigv4",
        }
    }
}

/// Configures a [`Client`].
#[derive(Debug)]
#[must_use]
pub struct ClientBuilder {
    base_url: String,
    api_key: Option<String>,
    connect_timeout: Duration,
    request_timeout: Duration,
    retry: RetryPolicy,
    #[cfg(feature = "sigv4")]
    signer: Option<crate::sigv4::SigV4Signer>,
}

impl ClientBuilder {
    /// Sends `Authorization: Bearer <key>` with every request.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Time allowed to open a connection (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Time allowed for one request, from sending to the whole answer
    /// (default 30 s). Long polls get their wait on top of this.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The retry policy (default: [`RetryPolicy::default`]).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Signs every request with AWS SigV4 (for a Lambda Function URL with
    /// `AWS_IAM` auth). Replaces any API key.
    #[cfg(feature = "sigv4")]
    pub fn sigv4(mut self, signer: crate::sigv4::SigV4Signer) -> Self {
        self.signer = Some(signer);
        self
    }

    /// Builds the client. Fails when the URL is not an absolute `http`
    /// or `https` URL.
    pub fn build(self) -> Result<Client> {
        let url = Url::parse(&self.base_url)
            .map_err(|e| Error::invalid(format!("invalid URL {:?}: {e}", self.base_url)))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(Error::invalid(format!(
                "invalid URL {:?}: expected http://HOST[:PORT] or https://HOST",
                self.base_url
            )));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(Error::invalid(format!(
                "invalid URL {:?}: no query or fragment allowed",
                self.base_url
            )));
        }
        let base = url.as_str().trim_end_matches('/').to_owned();
        let http = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .user_agent(concat!("eventstore-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(Error::Transport)?;
        let auth = match self.api_key {
            Some(key) => Auth::Bearer(key),
            None => Auth::None,
        };
        #[cfg(feature = "sigv4")]
        let auth = match self.signer {
            Some(signer) => Auth::SigV4(signer),
            None => auth,
        };
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                auth,
                retry: self.retry,
                request_timeout: self.request_timeout,
            }),
        })
    }
}

/// Where a feed starts and how it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct FeedOptions {
    after: Position,
    page_size: usize,
    follow: Option<u64>,
}

impl Default for FeedOptions {
    fn default() -> Self {
        Self::from_start()
    }
}

impl FeedOptions {
    /// From the first event, pages of 100, stopping at the end.
    pub fn from_start() -> Self {
        Self {
            after: Position::ZERO,
            page_size: 100,
            follow: None,
        }
    }

    /// Starts after `position` (the last position a reader processed).
    pub fn after(mut self, position: Position) -> Self {
        self.after = position;
        self
    }

    /// Events per request (1–1000).
    pub fn page_size(mut self, n: usize) -> Self {
        self.page_size = n.clamp(1, 1000);
        self
    }

    /// Never ends: at the end of the feed, waits for new events with long
    /// polls of 20 s.
    pub fn follow(self) -> Self {
        self.follow_with_wait(Duration::from_secs(20))
    }

    /// Like [`follow`](Self::follow) with another long-poll wait (whole
    /// seconds, at most 30).
    pub fn follow_with_wait(mut self, wait: Duration) -> Self {
        self.follow = Some(wait.as_secs().min(MAX_WAIT_SECS));
        self
    }
}

/// Whether a failed try may be repeated.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// The request has no effect or is recognised when repeated.
    Idempotent,
    /// Only when it certainly did not reach the server.
    IfNotSent,
}

struct Call {
    method: Method,
    path: String,
    query: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
    extra_timeout: Duration,
    retry: Retry,
}

impl Call {
    fn get(path: String) -> Self {
        Self {
            method: Method::GET,
            path,
            query: Vec::new(),
            body: None,
            extra_timeout: Duration::ZERO,
            retry: Retry::Idempotent,
        }
    }

    fn with_body(method: Method, path: String, body: &impl serde::Serialize) -> Result<Self> {
        let body = serde_json::to_vec(body).map_err(|e| Error::invalid(e.to_string()))?;
        Ok(Self {
            method,
            path,
            query: Vec::new(),
            body: Some(body),
            extra_timeout: Duration::ZERO,
            retry: Retry::Idempotent,
        })
    }

    fn query(mut self, name: &'static str, value: impl ToString) -> Self {
        self.query.push((name, value.to_string()));
        self
    }
}

fn stream_path(stream_type: &StreamType, stream_id: &StreamId) -> String {
    // Both are validated to characters that need no escaping in a path.
    format!("/streams/{stream_type}/{stream_id}")
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        let start: String = String::from_utf8_lossy(bytes).chars().take(200).collect();
        Error::Decode(format!("{e} (body starts with {start:?})"))
    })
}

impl Client {
    /// A builder for a client of the store at `base_url` (e.g.
    /// `http://127.0.0.1:8080` or a Function URL).
    pub fn builder(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.into(),
            api_key: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            #[cfg(feature = "sigv4")]
            signer: None,
        }
    }

    /// A client with default settings and no authentication.
    pub fn new(base_url: impl Into<String>) -> Result<Self> {
        Self::builder(base_url).build()
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    async fn execute(&self, call: &Call) -> Result<(StatusCode, Vec<u8>)> {
        let mut url = Url::parse(&format!("{}{}", self.inner.base, call.path))
            .map_err(|e| Error::invalid(format!("invalid request URL: {e}")))?;
        if !call.query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in &call.query {
                pairs.append_pair(k, v);
            }
        }
        let policy = self.inner.retry;
        let mut retry = 0u32;
        loop {
            let request = self.build_request(call, &url).await?;
            let outcome = self.inner.http.execute(request).await;
            let may_retry = retry < policy.max_retries;
            match outcome {
                Err(e) => {
                    let safe = match call.retry {
                        Retry::Idempotent => true,
                        Retry::IfNotSent => e.is_connect(),
                    };
                    if may_retry && safe {
                        let pause = policy.backoff(retry);
                        tracing::debug!(error = %e, ?pause, retry, "transient failure, retrying");
                        tokio::time::sleep(pause).await;
                        retry += 1;
                        continue;
                    }
                    return Err(Error::Transport(e));
                }
                Ok(response) => {
                    let status = response.status();
                    let request_id = response
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let retry_after = response
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let body = match response.bytes().await {
                        Ok(b) => b.to_vec(),
                        Err(e) => {
                            if may_retry && call.retry == Retry::Idempotent {
                                tokio::time::sleep(policy.backoff(retry)).await;
                                retry += 1;
                                continue;
                            }
                            return Err(Error::Transport(e));
                        }
                    };
                    if status.is_success() {
                        return Ok((status, body));
                    }
                    let transient = match call.retry {
                        Retry::Idempotent => status.is_server_error() || status.as_u16() == 429,
                        Retry::IfNotSent => status.as_u16() == 429,
                    };
                    if may_retry && transient {
                        let pause = retry_after
                            .map(|d| d.min(policy.max_backoff))
                            .unwrap_or_else(|| policy.backoff(retry));
                        tracing::debug!(%status, ?pause, retry, "transient answer, retrying");
                        tokio::time::sleep(pause).await;
                        retry += 1;
                        continue;
                    }
                    return Err(Error::from_response(status.as_u16(), request_id, &body));
                }
            }
        }
    }

    async fn build_request(&self, call: &Call, url: &Url) -> Result<reqwest::Request> {
        let mut builder = self
            .inner
            .http
            .request(call.method.clone(), url.clone())
            .timeout(self.inner.request_timeout + call.extra_timeout)
            .header(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(body) = &call.body {
            builder = builder
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(body.clone());
        }
        if let Auth::Bearer(key) = &self.inner.auth {
            let mut value = HeaderValue::from_str(&format!("Bearer {key}"))
                .map_err(|_| Error::invalid("the API key has characters a header cannot carry"))?;
            value.set_sensitive(true);
            builder = builder.header(AUTHORIZATION, value);
        }
        #[allow(unused_mut)]
        let mut request = builder.build().map_err(Error::Transport)?;
        #[cfg(feature = "sigv4")]
        if let Auth::SigV4(signer) = &self.inner.auth {
            signer.sign(&mut request).await?;
        }
        Ok(request)
    }

    async fn call<T: DeserializeOwned>(&self, call: Call) -> Result<(StatusCode, T)> {
        let (status, body) = self.execute(&call).await?;
        Ok((status, decode(&body)?))
    }

    /// `GET /liveness-check`.
    pub async fn liveness(&self) -> Result<Liveness> {
        Ok(self.call(Call::get("/liveness-check".into())).await?.1)
    }

    /// Creates a stream with a server-made id (`POST /streams/{type}`).
    ///
    /// The server picks the stream's id, so a try that may have reached the
    /// server is not repeated (a repeat would create a second stream); use
    /// [`append`](Self::append) with your own id and
    /// [`Expectation::NoStream`] when you need retries.
    pub async fn create_stream(
        &self,
        stream_type: &StreamType,
        initial_event: NewEvent,
    ) -> Result<StreamInfo> {
        let body = CreateStreamBody {
            initial_event: NewEventBody::from(initial_event),
        };
        let mut call = Call::with_body(Method::POST, format!("/streams/{stream_type}"), &body)?;
        call.retry = Retry::IfNotSent;
        let (_, env): (_, StreamEnvelope) = self.call(call).await?;
        Ok(env.stream)
    }

    /// A stream's summary (`GET .../details`); [`Error::NotFound`] when it
    /// does not exist.
    pub async fn stream_details(
        &self,
        stream_type: &StreamType,
        stream_id: &StreamId,
    ) -> Result<StreamInfo> {
        let path = format!("{}/details", stream_path(stream_type, stream_id));
        let (_, env): (_, StreamEnvelope) = self.call(Call::get(path)).await?;
        Ok(env.stream)
    }

    /// Deletes the stream (`DELETE /streams/{type}/{id}`), optionally only
    /// when it is at `expected` ([`Error::WrongExpectedRevision`]
    /// otherwise). Deleting a deleted stream succeeds again. Afterwards
    /// reads and appends fail with [`Error::StreamDeleted`].
    pub async fn delete_stream(
        &self,
        stream_type: &StreamType,
        stream_id: &StreamId,
        expected: Option<Revision>,
    ) -> Result<()> {
        let mut call = Call::get(stream_path(stream_type, stream_id));
        call.method = Method::DELETE;
        if let Some(e) = expected {
            call = call.query("expected-revision", e);
        }
        self.execute(&call).await?;
        Ok(())
    }

    /// Removes the stream's events below `before`
    /// (`POST /streams/{type}/{id}/truncate`), optionally only when it is at
    /// `expected`. Revisions are never renumbered; the answer's
    /// `first_revision` is the first kept one.
    pub async fn truncate_stream(
        &self,
        stream_type: &StreamType,
        stream_id: &StreamId,
        before: Revision,
        expected: Option<Revision>,
    ) -> Result<StreamInfo> {
        let body = TruncateBody {
            before_revision: before,
        };
        let path = format!("{}/truncate", stream_path(stream_type, stream_id));
        let mut call = Call::with_body(Method::POST, path, &body)?;
        if let Some(e) = expected {
            call = call.query("expected-revision", e);
        }
        let (_, env): (_, StreamEnvelope) = self.call(call).await?;
        Ok(env.stream)
    }

    /// Appends one event at `revision`, which must be the stream's current
    /// revision + 1 (`PUT .../events/{revision}`). The stream must exist.
    ///
    /// The event's id is part of the request, so retries after a transient
    /// failure are recognised by the server (`already_appended` is then
    /// true).
    pub async fn append_at(
        &self,
        stream_type: &StreamType,
        stream_id: &StreamId,
        revision: Revision,
        event: NewEvent,
    ) -> Result<AppendOutcome> {
        let body = AppendEventBody {
            event: NewEventBody::from(event),
        };
        let path = format!("{}/events/{revision}", stream_path(stream_type, stream_id));
        let (status, env): (_, StreamEnvelope) = self
            .call(Call::with_body(Method::PUT, path, &body)?)
            .await?;
        Ok(AppendOutcome {
            stream: env.stream,
            first_revision: revision,
            last_revision: revision,
            first_position: None,
            already_appended: status == StatusCode::OK,
        })
    }

    /// Appends events atomically under an expectation
    /// (`POST .../events`); creates the stream when it does not exist and
    /// the expectation allows it.
    ///
    /// Event ids are fixed in `events` before the first try, so transient
    /// failures are retried safely: a retry the server recognises comes back
    /// with `already_appended: true` and nothing is written twice.
    ///
    /// ```no_run
    /// # async fn demo(client: eventstore_client::Client) -> Result<(), eventstore_client::Error> {
    /// use eventstore_client::{EventType, Expectation, JsonValue, NewEvent, Revision, StreamId, StreamType};
    ///
    /// let (t, id) = (StreamType::parse("cart").unwrap(), StreamId::parse("c-1").unwrap());
    /// let added = NewEvent::new(EventType::parse("item-added").unwrap(), JsonValue::from_text("{}").unwrap());
    /// match client.append(&t, &id, Expectation::Exact(Revision::new(3)), vec![added]).await {
    ///     Ok(outcome) => println!("now at {}", outcome.last_revision),
    ///     Err(eventstore_client::Error::WrongExpectedRevision { actual, .. }) => {
    ///         println!("someone else wrote first; stream is at {actual:?}")
    ///     }
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn append(
        &self,
        stream_type: &StreamType,
        stream_id: &StreamId,
        expectation: Expectation,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome> {
        let body = BatchAppendBody {
            expected_revision: ExpectedRevision(expectation),
            events: events.into_iter().map(NewEventBody::from).collect(),
        };
        let path = format!("{}/events", stream_path(stream_type, stream_id));
        let (status, answer): (_, BatchAppendResponse) = self
            .call(Call::with_body(Method::POST, path, &body)?)
            .await?;
        Ok(AppendOutcome {
            stream: answer.stream,
            first_revision: answer.first_revision,
            last_revision: answer.last_revision,
            first_position: None,
            already_appended: status == StatusCode::OK,
        })
    }

    /// One page of a stream's events (`GET .../events`). `read.from` is the
    /// revision to read after (forward) or before (backward).
    pub async fn read_stream_page(
        &self,
        stream_type: &StreamType,
        stream_id: &StreamId,
        read: StreamRead,
    ) -> Result<EventPage> {
        let path = format!("{}/events", stream_path(stream_type, stream_id));
        let mut call = Call::get(path).query("limit", read.limit.clamp(1, 1000));
        match read.direction {
            Direction::Forward => {
                if let Some(r) = read.from {
                    call = call.query("after-revision", r);
                }
            }
            Direction::Backward => {
                call = call.query("direction", "backward");
                if let Some(r) = read.from {
                    call = call.query("before-revision", r);
                }
            }
        }
        let (_, env): (_, EventPageEnvelope) = self.call(call).await?;
        Ok(env.event_page)
    }

    /// All of a stream's events from `read.from` on, in `read.direction`,
    /// fetched in pages of `read.limit`. Stop early by dropping the stream
    /// (or with [`futures::StreamExt::take`]).
    ///
    /// ```no_run
    /// # async fn demo(client: eventstore_client::Client) -> Result<(), eventstore_client::Error> {
    /// use futures::TryStreamExt;
    /// use eventstore_client::{StreamId, StreamRead, StreamType};
    ///
    /// let (t, id) = (StreamType::parse("cart").unwrap(), StreamId::parse("c-1").unwrap());
    /// let events: Vec<_> = client.read_stream(&t, &id, StreamRead::forward()).try_collect().await?;
    /// println!("{} events", events.len());
    /// # Ok(())
    /// # }
    /// ```
    pub fn read_stream(
        &self,
        stream_type: &StreamType,
        stream_id: &StreamId,
        read: StreamRead,
    ) -> impl Stream<Item = Result<RecordedEvent>> + Send + 'static {
        let client = self.clone();
        let (t, id) = (stream_type.clone(), stream_id.clone());
        // State: the next read, or None once the last page was fetched.
        let pages = stream::try_unfold(Some(read), move |next| {
            let (client, t, id) = (client.clone(), t.clone(), id.clone());
            async move {
                let Some(read) = next else {
                    return Ok(None);
                };
                let page = client.read_stream_page(&t, &id, read).await?;
                let cont = (page.has_more && !page.events.is_empty()).then_some(StreamRead {
                    from: Some(page.last_evaluated_revision),
                    ..read
                });
                Ok(Some((page.events, cont)))
            }
        });
        flatten(pages)
    }

    /// One page of a type's streams (`GET /streams/{type}`), of at most
    /// `limit` streams (the server's default, 100, when `None`).
    pub async fn list_streams_page(
        &self,
        stream_type: &StreamType,
        updated_after: Option<Timestamp>,
        page_key: Option<&str>,
        limit: Option<usize>,
    ) -> Result<StreamPage> {
        let mut call = Call::get(format!("/streams/{stream_type}"));
        if let Some(n) = limit {
            call = call.query("limit", n.clamp(1, 1000));
        }
        if let Some(t) = updated_after {
            call = call.query("updated-after", t.to_rfc3339());
        }
        if let Some(k) = page_key {
            call = call.query("next-page-key", k);
        }
        let (_, env): (_, StreamPageEnvelope) = self.call(call).await?;
        Ok(env.stream_page)
    }

    /// Every stream of a type, by `updatedAt` ascending (updated after
    /// `updated_after` when given), following `nextPageKey` page by page.
    pub fn list_streams(
        &self,
        stream_type: &StreamType,
        updated_after: Option<Timestamp>,
    ) -> impl Stream<Item = Result<StreamInfo>> + Send + 'static {
        enum Next {
            First,
            Key(String),
            Done,
        }
        let client = self.clone();
        let t = stream_type.clone();
        let pages = stream::try_unfold(Next::First, move |next| {
            let (client, t) = (client.clone(), t.clone());
            async move {
                let key = match next {
                    Next::Done => return Ok(None),
                    Next::First => None,
                    Next::Key(k) => Some(k),
                };
                let page = client
                    .list_streams_page(&t, updated_after, key.as_deref(), None)
                    .await?;
                let cont = match (page.has_more, page.next_page_key) {
                    (true, Some(k)) => Next::Key(k),
                    _ => Next::Done,
                };
                Ok(Some((page.streams, cont)))
            }
        });
        flatten(pages)
    }

    /// Every stream type with its number of streams (`GET /streams`).
    pub fn stream_types(&self) -> impl Stream<Item = Result<StreamTypeEntry>> + Send + 'static {
        let client = self.clone();
        let page = stream::once(async move {
            let (_, answer): (_, StreamTypesResponse) =
                client.call(Call::get("/streams".into())).await?;
            Ok(answer.stream_types)
        });
        flatten(page)
    }

    /// One page of the global feed (`filter` = [`FeedFilter::All`]) or of a
    /// type's feed, after `after`; `wait` holds the request up to that many
    /// seconds when nothing is past `after` yet.
    pub async fn feed_page(
        &self,
        filter: &FeedFilter,
        after: Position,
        limit: usize,
        wait: Option<u64>,
    ) -> Result<FeedPage> {
        let path = match filter {
            FeedFilter::All => "/events".to_owned(),
            FeedFilter::StreamType(t) => format!("/streams/{t}/events"),
        };
        let mut call = Call::get(path)
            .query("after-position", after)
            .query("limit", limit.clamp(1, 1000));
        if let Some(w) = wait {
            let w = w.min(MAX_WAIT_SECS);
            call = call.query("wait", w);
            call.extra_timeout = Duration::from_secs(w);
        }
        let (_, env): (_, FeedPageEnvelope) = self.call(call).await?;
        Ok(env.event_page)
    }

    /// The global feed: every event of every stream in feed order.
    ///
    /// The next page is asked for as soon as a page arrives, while its
    /// events are consumed (needs a Tokio runtime).
    /// Without [`FeedOptions::follow`] the stream ends at the end of the
    /// feed; with it, it waits for new events with long polls and never
    /// ends. It resumes after the last position it yielded, so no event is
    /// missed or repeated. In follow mode a transient failure that outlived
    /// the retries is yielded as an error and the stream goes on; any other
    /// error ends it.
    ///
    /// ```no_run
    /// # async fn demo(client: eventstore_client::Client) -> Result<(), eventstore_client::Error> {
    /// use futures::TryStreamExt;
    /// use eventstore_client::{FeedOptions, Position};
    ///
    /// let mut feed = std::pin::pin!(client.feed(FeedOptions::from_start().after(Position::new(41)).follow()));
    /// while let Some(event) = feed.try_next().await? {
    ///     println!("{:?} {}/{} {}", event.position, event.stream_type, event.stream_id, event.event_type);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn feed(
        &self,
        options: FeedOptions,
    ) -> impl Stream<Item = Result<RecordedEvent>> + Send + 'static {
        self.feed_filtered(FeedFilter::All, options)
    }

    /// The feed of one stream type; see [`feed`](Self::feed).
    pub fn type_feed(
        &self,
        stream_type: &StreamType,
        options: FeedOptions,
    ) -> impl Stream<Item = Result<RecordedEvent>> + Send + 'static {
        self.feed_filtered(FeedFilter::StreamType(stream_type.clone()), options)
    }

    fn feed_filtered(
        &self,
        filter: FeedFilter,
        options: FeedOptions,
    ) -> impl Stream<Item = Result<RecordedEvent>> + Send + 'static {
        use futures::future::{FutureExt, RemoteHandle};
        struct State {
            client: Client,
            filter: FeedFilter,
            options: FeedOptions,
            after: Position,
            done: bool,
            failures: u32,
            /// The next page, asked for as soon as the previous one came,
            /// while its events are consumed (dropped with the stream).
            next: Option<RemoteHandle<Result<FeedPage>>>,
        }
        impl State {
            fn fetch(
                &self,
            ) -> impl std::future::Future<Output = Result<FeedPage>> + Send + 'static {
                let (client, filter, options, after) = (
                    self.client.clone(),
                    self.filter.clone(),
                    self.options,
                    self.after,
                );
                async move {
                    client
                        .feed_page(&filter, after, options.page_size, options.follow)
                        .await
                }
            }
        }
        let state = State {
            client: self.clone(),
            filter,
            options,
            after: options.after,
            done: false,
            failures: 0,
            next: None,
        };
        let pages = stream::unfold(state, |mut s| async move {
            if s.done {
                return None;
            }
            let answer = match s.next.take() {
                Some(next) => next.await,
                None => s.fetch().await,
            };
            match answer {
                Ok(page) => {
                    s.failures = 0;
                    let after = s.after;
                    let events: Vec<_> = page
                        .events
                        .into_iter()
                        .filter(|e| e.position.is_none_or(|p| p > after))
                        .collect();
                    let last = events.iter().filter_map(|e| e.position).max();
                    s.after = s
                        .after
                        .max(page.last_position)
                        .max(last.unwrap_or(Position::ZERO));
                    if s.options.follow.is_none() && (!page.has_more || events.is_empty()) {
                        s.done = true;
                    } else {
                        let (fetch, handle) = s.fetch().remote_handle();
                        tokio::spawn(fetch);
                        s.next = Some(handle);
                    }
                    Some((Ok(events), s))
                }
                Err(e) => {
                    if s.options.follow.is_some() && e.is_transient() {
                        let pause = s.client.inner.retry.backoff(s.failures);
                        s.failures = s.failures.saturating_add(1);
                        tokio::time::sleep(pause).await;
                    } else {
                        s.done = true;
                    }
                    Some((Err(e), s))
                }
            }
        });
        flatten(pages)
    }
}

/// Turns a stream of pages into a stream of items.
fn flatten<T: Send + 'static>(
    pages: impl Stream<Item = Result<Vec<T>>> + Send + 'static,
) -> impl Stream<Item = Result<T>> + Send + 'static {
    pages
        .map_ok(|items| stream::iter(items.into_iter().map(Ok)))
        .try_flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_rejects_bad_urls() {
        assert!(Client::new("127.0.0.1:8080").is_err());
        assert!(Client::new("ftp://x").is_err());
        assert!(Client::new("http://x/?a=b").is_err());
        let c = Client::new("http://127.0.0.1:8080/prefix/").unwrap();
        assert_eq!(c.base_url(), "http://127.0.0.1:8080/prefix");
    }

    #[test]
    fn feed_options_clamp() {
        let o = FeedOptions::from_start()
            .page_size(5000)
            .follow_with_wait(Duration::from_secs(99));
        assert_eq!(o.page_size, 1000);
        assert_eq!(o.follow, Some(30));
    }
}
