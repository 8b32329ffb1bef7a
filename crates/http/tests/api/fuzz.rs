//! Random strings in path segments and query values never cause a 5xx.

use std::sync::OnceLock;

use proptest::prelude::*;
use reqwest::Url;

use crate::support::{TestServer, spawn};

struct Shared {
    runtime: tokio::runtime::Runtime,
    server: TestServer,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = runtime.block_on(async {
            let s = spawn().await;
            s.create("order", serde_json::json!({"n": 1})).await;
            s
        });
        Shared { runtime, server }
    })
}

const TEMPLATES: &[(&str, &str)] = &[
    ("GET", "/streams/{a}"),
    ("POST", "/streams/{a}"),
    ("GET", "/streams/{a}/events"),
    ("GET", "/streams/{a}/{b}/details"),
    ("GET", "/streams/{a}/{b}/events"),
    ("POST", "/streams/{a}/{b}/events"),
    ("PUT", "/streams/{a}/{b}/events/{c}"),
    ("GET", "/events"),
    ("GET", "/streams"),
    ("GET", "/ui/{a}"),
    ("GET", "/{a}"),
];

const QUERY_NAMES: &[&str] = &[
    "after-revision",
    "before-revision",
    "direction",
    "limit",
    "after-position",
    "wait",
    "updated-after",
    "next-page-key",
    "x",
];

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,20}",
        "[a-zA-Z0-9_.:@-]{1,130}",
        "[0-9]{1,25}",
        Just("-1".to_owned()),
        Just("..".to_owned()),
        Just("%".to_owned()),
        any::<String>(),
    ]
}

fn query_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,30}",
        "[0-9]{1,25}",
        Just("0".to_owned()),
        // keep `wait` short: small digits only through this arm
        Just("2025-01-25T10:11:12Z".to_owned()),
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn random_segments_and_queries_never_cause_a_5xx(
        template in 0..TEMPLATES.len(),
        a in segment(),
        b in segment(),
        c in segment(),
        query in proptest::collection::vec((0..QUERY_NAMES.len(), query_value()), 0..4),
        with_body in any::<bool>(),
    ) {
        let shared = shared();
        let s = &shared.server;
        let (method, template) = TEMPLATES[template];
        let mut url = Url::parse(&s.base).unwrap();
        {
            let mut segments = url.path_segments_mut().unwrap();
            segments.clear();
            for part in template.trim_start_matches('/').split('/') {
                let value = match part {
                    "{a}" => a.as_str(),
                    "{b}" => b.as_str(),
                    "{c}" => c.as_str(),
                    literal => literal,
                };
                segments.push(value);
            }
        }
        {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in &query {
                let name = QUERY_NAMES[*name];
                // A numeric wait would hold the request; cap it.
                let value = if name == "wait" && value.parse::<u64>().is_ok() { "0" } else { value };
                pairs.append_pair(name, value);
            }
        }
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let (status, request_id, text) = shared.runtime.block_on(async {
            let mut req = s.client.request(method, url.clone());
            if with_body {
                req = req.json(&serde_json::json!({
                    "initialEvent": {"eventType": "x", "payload": a.clone()},
                    "event": {"eventType": "x", "payload": b.clone()},
                    "expectedRevision": "any",
                    "events": [{"eventType": "x", "payload": c.clone()}],
                }));
            }
            let resp = req.send().await.unwrap();
            let status = resp.status();
            let id = resp.headers().get("x-request-id").map(|v| v.to_str().unwrap().to_owned());
            (status, id, resp.text().await.unwrap())
        });
        prop_assert!(!status.is_server_error(), "{} {} -> {} {}", template, url, status, text);
        prop_assert!(request_id.is_some());
        if status.is_client_error() {
            let body: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| TestCaseError::fail(format!("{url}: not JSON: {e}: {text}")))?;
            prop_assert!(body["code"].is_string(), "{}", text);
            prop_assert!(body["requestId"].is_string(), "{}", text);
        }
    }
}
