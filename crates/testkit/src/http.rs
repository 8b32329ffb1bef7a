//! HTTP for tests: [`Api`], a client of one base URL with JSON helpers and
//! assertions on the error shape, and [`TestServer`], the router over any
//! [`EventStore`] on a real TCP listener on `127.0.0.1:0`.

use std::sync::Arc;

use eventstore_core::{EventStore, MemoryStore};
use eventstore_http::{AppState, router};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A server on a free port serving the router over a store; the server
/// stops when this is dropped. It derefs to its [`Api`].
pub struct TestServer {
    /// A client of the server.
    pub api: Api,
    /// The router's state (the store is `state.store()`).
    pub state: AppState,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::ops::Deref for TestServer {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

/// The router over a fresh reference model ([`MemoryStore`]).
pub async fn spawn() -> TestServer {
    serve(MemoryStore::new()).await
}

/// The router over `store` (any [`EventStore`]: a backend, an `Arc` of
/// one, a test double).
pub async fn serve(store: impl EventStore + 'static) -> TestServer {
    spawn_with(AppState::new(Arc::new(store))).await
}

/// The router over `state` on `127.0.0.1:0`.
pub async fn spawn_with(state: AppState) -> TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(state.clone());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    TestServer {
        api: Api::new(&format!("http://{addr}")),
        state,
        task,
    }
}

/// A client of the API at one base URL.
#[derive(Clone, Debug)]
pub struct Api {
    /// The base URL, without a trailing slash.
    pub base: String,
    /// The HTTP client (no redirects followed, 70 s timeout).
    pub client: reqwest::Client,
    /// Sent as `Authorization: Bearer` with every request, when set.
    pub bearer: Option<String>,
}

/// An answer: status, headers and body text.
pub struct Answer {
    /// The status code.
    pub status: StatusCode,
    /// The headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body as text.
    pub text: String,
}

impl Answer {
    /// The body as JSON (panics when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {:?}", self.status, self.text))
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a JSON error answer with this status and code, with a
    /// request id in the body equal to the `x-request-id` header.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        let body = self.json();
        assert_eq!(body["code"], code, "body: {}", self.text);
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{}",
            self.text
        );
        let id = body["requestId"].as_str().expect("requestId");
        assert!(!id.is_empty());
        assert_eq!(self.header("x-request-id"), Some(id));
        assert!(
            self.header("content-type")
                .unwrap()
                .starts_with("application/json"),
            "content-type {:?}",
            self.header("content-type")
        );
        body
    }

    /// Asserts the status and an `x-request-id`; the body as JSON.
    #[track_caller]
    pub fn assert_status(&self, status: u16) -> Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        assert!(self.header("x-request-id").is_some());
        self.json()
    }
}

impl Api {
    /// A client of `base`.
    pub fn new(base: &str) -> Api {
        Api {
            base: base.trim_end_matches('/').to_owned(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(std::time::Duration::from_secs(70))
                .build()
                .unwrap(),
            bearer: None,
        }
    }

    /// The same client, sending `key` as `Authorization: Bearer`.
    pub fn with_bearer(mut self, key: &str) -> Api {
        self.bearer = Some(key.to_owned());
        self
    }

    /// The same client without an API key.
    pub fn without_bearer(&self) -> Api {
        Api {
            bearer: None,
            ..self.clone()
        }
    }

    /// The URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// One request with an optional JSON body and extra headers.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut req = self.client.request(method, self.url(path));
        if let Some(key) = &self.bearer {
            req = req.bearer_auth(key);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        Answer {
            status,
            headers,
            text,
        }
    }

    /// GET.
    pub async fn get(&self, path: &str) -> Answer {
        self.request(Method::GET, path, None, &[]).await
    }

    /// POST with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.request(Method::POST, path, Some(body), &[]).await
    }

    /// PUT with a JSON body.
    pub async fn put(&self, path: &str, body: &Value) -> Answer {
        self.request(Method::PUT, path, Some(body), &[]).await
    }

    /// Sends raw bytes with a content type (or none).
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Answer {
        let mut req = self.client.request(method, self.url(path)).body(body);
        if let Some(key) = &self.bearer {
            req = req.bearer_auth(key);
        }
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        Answer {
            status,
            headers,
            text,
        }
    }

    /// Creates a stream of `stream_type` with one event; returns its id.
    pub async fn create(&self, stream_type: &str, payload: Value) -> String {
        let a = self
            .post(
                &format!("/streams/{stream_type}"),
                &json!({"initialEvent": {"eventType": "created", "payload": payload}}),
            )
            .await;
        let body = a.assert_status(201);
        body["stream"]["streamId"].as_str().unwrap().to_owned()
    }

    /// Appends `n` events with `"any"`; returns the answer body.
    pub async fn append_n(&self, stream_type: &str, id: &str, n: usize) -> Value {
        let events: Vec<Value> = (0..n)
            .map(|i| json!({"eventType": "tick", "payload": {"i": i}}))
            .collect();
        self.post(
            &format!("/streams/{stream_type}/{id}/events"),
            &json!({"expectedRevision": "any", "events": events}),
        )
        .await
        .assert_status(201)
    }

    /// The stream's events (all of them, forward).
    pub async fn events(&self, stream_type: &str, id: &str) -> Vec<Value> {
        let body = self
            .get(&format!("/streams/{stream_type}/{id}/events?limit=1000"))
            .await
            .assert_status(200);
        body["eventPage"]["events"].as_array().unwrap().clone()
    }

    /// `GET /streams` as a value.
    pub async fn stream_types(&self) -> Value {
        self.get("/streams").await.assert_status(200)["streamTypes"].clone()
    }
}
