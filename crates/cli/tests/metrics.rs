//! Black-box test of `GET /metrics`: the built binary on port 0 with a
//! fresh data directory and an API key; appends through HTTP move the
//! counters, histograms and gauges by exactly what they did, the labels
//! carry route templates (never a stream id, a payload or the key), and
//! the endpoint follows the API-key rules.

use std::time::Duration;

mod support;

use support::{BIN, Server};

const KEY: &str = "metrics-test-key-6f1d";

/// The value of the sample `name{labels}` (labels in any order, all of
/// them given), or 0 when the series is absent.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (metric, rest) = match series.split_once('{') {
            Some((m, rest)) => (m, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if metric != name {
            continue;
        }
        let mut found: Vec<(&str, &str)> = rest
            .split(',')
            .filter(|p| !p.is_empty())
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k, v.trim_matches('"')))
            .collect();
        found.sort_unstable();
        let mut wanted = labels.to_vec();
        wanted.sort_unstable();
        if found == wanted {
            return value.parse().unwrap();
        }
    }
    0.0
}

async fn scrape(c: &reqwest::Client, url: &str) -> String {
    let r = c
        .get(format!("{url}/metrics"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    r.text().await.unwrap()
}

async fn post(c: &reqwest::Client, url: String, body: &'static str) -> u16 {
    c.post(url)
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

const EVENTS_ROUTE: &str = "/streams/{streamType}/{streamId}/events";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_through_the_binary_move_the_metrics_by_exactly_what_they_did() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().display().to_string();
    let server = Server::start(
        BIN,
        &[
            "serve",
            "--port",
            "0",
            "--data-dir",
            &data,
            "--api-key",
            KEY,
        ],
        &[],
    );
    let url = server.url.clone();
    let c = reqwest::Client::new();

    // The API-key rules: no key, no metrics.
    let anonymous = c.get(format!("{url}/metrics")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);

    let before = scrape(&c, &url).await;
    let m = |name: &str, labels: &[(&str, &str)]| sample(&before, name, labels);
    assert_eq!(m("eventstore_feed_head_position", &[]), 0.0);
    assert_eq!(m("eventstore_ready", &[]), 1.0);
    let written0 = m("eventstore_appends_total", &[("outcome", "written")]);
    let syncs0 = m("eventstore_fdatasync_seconds_count", &[]);

    // Payloads of 7 bytes and empty metadata (`{}`): 9 bytes an event.
    let stream = "secret-stream-4a7c";
    let events = format!("{url}/streams/ledger/{stream}/events");
    let three = r#"{"expectedRevision":"no-stream","events":[
        {"eventId":"0193a5c8-0000-7000-8000-000000000001","eventType":"Opened","payload":{"n":1}},
        {"eventId":"0193a5c8-0000-7000-8000-000000000002","eventType":"Opened","payload":{"n":2}},
        {"eventId":"0193a5c8-0000-7000-8000-000000000003","eventType":"Opened","payload":{"n":3}}]}"#;
    assert_eq!(post(&c, events.clone(), three).await, 201, "written");
    assert_eq!(
        post(&c, events.clone(), three).await,
        200,
        "a recognised retry"
    );
    let conflict = r#"{"expectedRevision":1,"events":[
        {"eventType":"Opened","payload":{"n":4}}]}"#;
    assert_eq!(post(&c, events.clone(), conflict).await, 409, "a conflict");
    let create = r#"{"initialEvent":{"eventType":"Made","payload":{"n":5}}}"#;
    assert_eq!(post(&c, format!("{url}/streams/other"), create).await, 201);

    let after = scrape(&c, &url).await;
    let d = |name: &str, labels: &[(&str, &str)]| {
        sample(&after, name, labels) - sample(&before, name, labels)
    };
    assert_eq!(
        d("eventstore_appends_total", &[("outcome", "written")]),
        2.0
    );
    assert_eq!(
        sample(
            &after,
            "eventstore_appends_total",
            &[("outcome", "written")]
        ) - written0,
        2.0
    );
    assert_eq!(d("eventstore_appends_total", &[("outcome", "retry")]), 1.0);
    assert_eq!(
        d("eventstore_appends_total", &[("outcome", "conflict")]),
        1.0
    );
    assert_eq!(d("eventstore_events_appended_total", &[]), 4.0);
    assert_eq!(d("eventstore_appended_bytes_total", &[]), 36.0);
    assert_eq!(
        d(
            "eventstore_append_duration_seconds_count",
            &[("outcome", "written")]
        ),
        2.0
    );
    // Requests by route template and status, with their latencies.
    for (route, status, n) in [
        (EVENTS_ROUTE, "201", 1.0),
        (EVENTS_ROUTE, "200", 1.0),
        (EVENTS_ROUTE, "409", 1.0),
        ("/streams/{streamType}", "201", 1.0),
    ] {
        let labels = [("method", "POST"), ("route", route), ("status", status)];
        assert_eq!(
            d("eventstore_http_requests_total", &labels),
            n,
            "{route} {status}"
        );
        assert_eq!(
            d("eventstore_http_request_duration_seconds_count", &labels),
            n,
            "{route} {status}"
        );
        let le = [
            ("method", "POST"),
            ("route", route),
            ("status", status),
            ("le", "+Inf"),
        ];
        assert_eq!(d("eventstore_http_request_duration_seconds_bucket", &le), n);
    }
    assert_eq!(
        d(
            "eventstore_http_requests_total",
            &[("method", "GET"), ("route", "/metrics"), ("status", "200")]
        ),
        1.0,
        "the first scrape, counted once answered"
    );
    // The group commit: four appends reached the writer (the retry and
    // the conflict are decided there too); two wrote and synced.
    assert_eq!(d("eventstore_commit_appends_sum", &[]), 4.0);
    let commits = d("eventstore_commit_appends_count", &[]);
    assert!((1.0..=4.0).contains(&commits), "{commits}");
    assert_eq!(
        sample(&after, "eventstore_fdatasync_seconds_count", &[]) - syncs0,
        2.0
    );
    assert!(d("eventstore_fdatasync_seconds_sum", &[]) > 0.0);
    // The store's gauges.
    let g = |name: &str| sample(&after, name, &[]);
    assert_eq!(g("eventstore_feed_head_position"), 4.0);
    assert_eq!(g("eventstore_store_events"), 4.0);
    assert_eq!(g("eventstore_store_streams"), 2.0);
    assert_eq!(g("eventstore_writer_queue_depth"), 0.0);
    assert_eq!(g("eventstore_long_polls_open"), 0.0);
    let log = std::fs::metadata(dir.path().join("events.log"))
        .unwrap()
        .len();
    assert_eq!(g("eventstore_store_disk_bytes"), log as f64);
    // No stream id, payload or key in any label or value.
    for secret in [stream, KEY, "\"n\"", "Opened"] {
        assert!(!after.contains(secret), "{secret} leaked into /metrics");
    }
    let unmatched = format!("{url}/no/such/{stream}");
    c.get(unmatched).bearer_auth(KEY).send().await.unwrap();
    let text = scrape(&c, &url).await;
    assert!(!text.contains(stream));
    assert_eq!(
        sample(
            &text,
            "eventstore_http_requests_total",
            &[("method", "GET"), ("route", "unmatched"), ("status", "404")]
        ),
        1.0
    );

    // A long poll is counted while it waits, and no longer once answered.
    let poll = {
        let c = c.clone();
        let url = url.clone();
        tokio::spawn(async move {
            c.get(format!("{url}/events?after-position=4&wait=20"))
                .bearer_auth(KEY)
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    let mut open = 0.0;
    for _ in 0..200 {
        open = sample(&scrape(&c, &url).await, "eventstore_long_polls_open", &[]);
        if open == 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(open, 1.0, "the waiting long poll");
    assert_eq!(post(&c, format!("{url}/streams/other"), create).await, 201);
    assert_eq!(poll.await.unwrap(), 200);
    let text = scrape(&c, &url).await;
    assert_eq!(sample(&text, "eventstore_long_polls_open", &[]), 0.0);
    assert_eq!(sample(&text, "eventstore_feed_head_position", &[]), 5.0);
    server.stop();
}
