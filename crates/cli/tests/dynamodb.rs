//! Black-box tests of the DynamoDB backend through the built binary:
//! `event-store dynamodb create-table`, then `event-store serve --backend
//! dynamodb` against the AWS emulator (moto, started once per test binary
//! by the same launcher as the DynamoDB crate's tests), driven over HTTP.
//!
//! Needs `.venv` with moto (`scripts/moto/setup.sh`), or `AWS_ENDPOINT_URL`
//! pointing at a running emulator.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use eventstore_testkit::moto;
use eventstore_testkit::process::Server;
use eventstore_testkit::sns::Messaging;
use reqwest::Method as M;
use serde_json::{Value, json};

/// The binary with a clean environment: dummy AWS credentials, a region,
/// the emulator's endpoint, and none of the caller's `EVENT_STORE_*`.
fn command(args: &[&str]) -> Command {
    let env = moto::aws_env();
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.extend([("RUST_LOG", "info"), ("RUST_BACKTRACE", "0")]);
    eventstore_testkit::process::command(env!("CARGO_BIN_EXE_event-store"), args, &env)
}

fn run(args: &[&str]) -> Output {
    command(args)
        .stdin(Stdio::null())
        .output()
        .expect("run event-store")
}

fn table_name(tag: &str) -> String {
    format!("cli-{tag}-{}", uuid::Uuid::now_v7().simple())
}

/// `event-store dynamodb create-table NAME`, which must succeed.
fn create_table(name: &str) {
    let out = run(&["dynamodb", "create-table", name]);
    assert!(
        out.status.success(),
        "create-table failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("created table {name}")
    );
}

/// `event-store ARGS`, running until it listens.
fn start(args: &[&str]) -> Server {
    Server::spawn(command(args))
        .unwrap_or_else(|(status, err)| panic!("server did not start ({status:?}): {err}"))
}

async fn send(base: &str, method: M, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(method, format!("{base}{path}"));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// GETs `path` until `done` holds for the body (the relay fills feeds and
/// listings asynchronously), at most 30 s; returns the last body.
async fn poll(base: &str, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (s, body) = send(base, M::GET, path, None).await;
        assert_eq!(s, 200, "GET {path}: {body}");
        if done(&body) || Instant::now() > deadline {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A new user who runs `serve --backend dynamodb --table T`, knowing
/// nothing of relays, sees a stream they create listed and in the feeds
/// within seconds (issue 10: without `--relay` both stayed empty forever).
#[tokio::test(flavor = "multi_thread")]
async fn a_created_stream_is_listed_and_in_the_feed_within_seconds_by_default() {
    let table = table_name("default");
    create_table(&table);
    let server = start(&[
        "serve",
        "--backend",
        "dynamodb",
        "--table",
        &table,
        "--port",
        "0",
    ]);
    let base = server.url.clone();
    let (s, created) = send(
        &base,
        M::POST,
        "/streams/order",
        Some(json!({"initialEvent": {"eventType": "placed", "payload": {"n": 1}}})),
    )
    .await;
    assert_eq!(s, 201, "{created}");
    let id = created["stream"]["streamId"].as_str().unwrap().to_owned();
    let started = std::time::Instant::now();
    let list = poll(&base, "/streams/order", |b| {
        b["streamPage"]["streams"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    })
    .await;
    assert_eq!(list["streamPage"]["streams"][0]["streamId"], json!(id));
    let feed = poll(&base, "/events", |b| {
        b["eventPage"]["events"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    })
    .await;
    assert_eq!(feed["eventPage"]["events"][0]["streamId"], json!(id));
    let typed = poll(&base, "/streams/order/events", |b| {
        b["eventPage"]["events"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    })
    .await;
    assert_eq!(typed["eventPage"]["events"][0]["streamId"], json!(id));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "listed and in the feeds after {:?}",
        started.elapsed()
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_relay_feeds_wait_for_a_relay_which_catches_up_later() {
    let table = table_name("norelay");
    create_table(&table);
    let server = start(&[
        "serve",
        "--backend",
        "dynamodb",
        "--table",
        &table,
        "--no-relay",
        "--port",
        "0",
    ]);
    let base = server.url.clone();
    let (s, body) = send(
        &base,
        M::POST,
        "/streams/order/o-1/events",
        Some(json!({"expectedRevision": "no-stream", "events": [
            {"eventType": "placed", "payload": {"n": 1}},
            {"eventType": "paid", "payload": {"n": 2}}
        ]})),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let (s, page) = send(&base, M::GET, "/streams/order/o-1/events", None).await;
    assert_eq!(s, 200);
    assert_eq!(page["eventPage"]["events"].as_array().unwrap().len(), 2);
    // Nothing relays here: the feed and the listing stay empty.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, feed) = send(&base, M::GET, "/events", None).await;
    assert_eq!(feed["eventPage"]["events"], json!([]), "{feed}");
    let (_, list) = send(&base, M::GET, "/streams/order", None).await;
    assert_eq!(list["streamPage"]["streams"], json!([]), "{list}");
    server.stop();

    // A server with the relay (the default) reads the table's stream from
    // its start.
    let server = start(&[
        "serve",
        "--port",
        "0",
        "--backend",
        "dynamodb",
        "--table",
        &table,
    ]);
    let base = server.url.clone();
    let feed = poll(&base, "/events", |b| {
        b["eventPage"]["events"]
            .as_array()
            .is_some_and(|a| a.len() >= 2)
    })
    .await;
    let revisions: Vec<Value> = feed["eventPage"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["revision"].clone())
        .collect();
    assert_eq!(revisions, vec![json!(1), json!(2)], "{feed}");
    let list = poll(&base, "/streams/order", |b| {
        b["streamPage"]["streams"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    })
    .await;
    assert_eq!(list["streamPage"]["streams"][0]["streamId"], "o-1");
    server.stop();
}

#[test]
fn table_commands_and_settings_fail_clearly() {
    let table = table_name("admin");
    create_table(&table);
    // A second create of the same table fails.
    let out = run(&["dynamodb", "create-table", &table]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&table),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Serving a table that does not exist names the command that makes it.
    let missing = table_name("missing");
    let out = run(&[
        "serve",
        "--port",
        "0",
        "--backend",
        "dynamodb",
        "--table",
        &missing,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("event-store dynamodb create-table {missing}")),
        "{err}"
    );
    // Settings that cannot work are refused before any request.
    for (args, env, says) in [
        (vec!["--backend", "dynamodb"], vec![], "needs a table"),
        (
            vec!["--backend", "dynamodb", "--table", "x"],
            vec![],
            "invalid table name",
        ),
        (
            vec!["--backend", "memory", "--relay"],
            vec![],
            "--backend dynamodb",
        ),
        (
            vec!["--backend", "dynamodb", "--table", "t-1", "--no-relay"],
            vec![("EVENT_STORE_SNS_TOPIC_ARN", "arn:aws:sns:us-east-1:1:t")],
            "drop --no-relay",
        ),
        (
            vec!["--backend", "memory", "--no-relay"],
            vec![],
            "--backend dynamodb",
        ),
    ] {
        let mut cmd = command(&[&["serve", "--port", "0"][..], &args].concat());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.stdin(Stdio::null()).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // The settings also come from the environment.
    let mut cmd = command(&["serve", "--port", "0"]);
    cmd.env("EVENT_STORE_BACKEND", "dynamodb")
        .env("EVENT_STORE_TABLE", &missing)
        .env("EVENT_STORE_RELAY", "true");
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("table {missing} not found")), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_in_process_relay_publishes_one_notification_per_append_to_sns() {
    let messaging = Messaging::on_emulator().await;
    let tag = uuid::Uuid::now_v7().simple().to_string();
    let (topic, queue) = messaging.topic_with_queue(&format!("appends-{tag}")).await;

    let table = table_name("sns");
    create_table(&table);
    let server = start(&[
        "serve",
        "--port",
        "0",
        "--backend",
        "dynamodb",
        "--table",
        &table,
        "--relay",
        "--sns-topic-arn",
        &topic,
    ]);
    let base = server.url.clone();
    for (stream, body) in [
        (
            "cart/c-1",
            json!({"expectedRevision": "no-stream", "events": [
                {"eventType": "opened", "payload": {}},
                {"eventType": "item-added", "payload": {"sku": "A"}}]}),
        ),
        (
            "order/o-7",
            json!({"expectedRevision": "any", "events": [
                {"eventType": "placed", "payload": {"total": 3}}]}),
        ),
    ] {
        let (s, b) = send(
            &base,
            M::POST,
            &format!("/streams/{stream}/events"),
            Some(body),
        )
        .await;
        assert_eq!(s, 201, "{b}");
    }

    let mut got: Vec<(Value, Option<String>)> = messaging
        .receive(&queue.url, 2, Duration::from_secs(30))
        .await
        .into_iter()
        .map(|m| {
            let attr = m.attributes.get("StreamType").map(|(_, v)| v.clone());
            (m.body, attr)
        })
        .collect();
    got.sort_by_key(|(b, _)| b["StreamType"].as_str().unwrap_or_default().to_owned());
    assert_eq!(got.len(), 2, "{got:?}");
    let (cart, cart_attr) = &got[0];
    assert_eq!(cart["StreamId"], "c-1");
    assert_eq!(cart["StreamRevision"], "2");
    assert_eq!(cart["FirstRevision"], "1");
    assert_eq!(cart["EventTypes"], json!(["opened", "item-added"]));
    assert!(cart["Position"].as_str().is_some(), "{cart}");
    assert_eq!(cart_attr.as_deref(), Some("cart"));
    let (order, order_attr) = &got[1];
    assert_eq!(order["StreamId"], "o-7");
    assert_eq!(order["StreamRevision"], "1");
    assert_eq!(order["EventTypes"], json!(["placed"]));
    assert_eq!(order_attr.as_deref(), Some("order"));
    server.stop();
}

/// A DynamoDB failure reaches the client only as a 5xx with a request id:
/// the SDK's detail (operation, error code, table) stays in the log.
#[tokio::test(flavor = "multi_thread")]
async fn a_dynamodb_failure_is_a_5xx_with_a_request_id_and_its_detail_only_in_the_log() {
    let table = table_name("throttled");
    create_table(&table);
    let server = start(&[
        "serve",
        "--backend",
        "dynamodb",
        "--table",
        &table,
        "--no-relay",
        "--port",
        "0",
    ]);
    let base = server.url.clone();
    // Every read of this table is throttled, on every retry (a stream's
    // state is one `Query`).
    moto::fidelity(
        "PUT",
        &table,
        &format!(
            r#"{{"rules":[{{"op":"Query","fault":"throttle","probability":1,"match":"\"{table}\""}}]}}"#
        ),
    );
    let (s, body) = send(&base, M::GET, "/streams/order/o-1/details", None).await;
    moto::fidelity("DELETE", &table, "");
    assert!((500..600).contains(&s), "{s} {body}");
    assert_eq!(s, 503, "throttling is 'retry later': {body}");
    let request_id = body["requestId"].as_str().unwrap_or_default().to_owned();
    assert!(!request_id.is_empty(), "{body}");
    let text = body.to_string();
    for secret in ["Throttling", "Query", table.as_str(), "dynamodb"] {
        assert!(
            !text.contains(secret),
            "{secret:?} leaked to the client: {text}"
        );
    }
    let log = server.stop();
    assert!(
        log.contains("ThrottlingException"),
        "the detail is logged: {log}"
    );
    assert!(
        log.contains(&request_id),
        "the log names the request id: {log}"
    );
}
