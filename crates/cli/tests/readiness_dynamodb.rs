//! Readiness of `serve --backend dynamodb` (built binary, AWS emulator):
//! `/readiness-check` answers 503 while the table is missing and 200 again
//! once it is back, and `/metrics` says the same in `eventstore_ready`.
//!
//! Needs `.venv` with moto (`scripts/moto/setup.sh`), or `AWS_ENDPOINT_URL`
//! pointing at a running emulator.

use std::time::{Duration, Instant};

use eventstore_testkit::moto;
use eventstore_testkit::process::Server;

fn command(args: &[&str]) -> std::process::Command {
    let env = moto::aws_env();
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.extend([("RUST_LOG", "info"), ("RUST_BACKTRACE", "0")]);
    eventstore_testkit::process::command(env!("CARGO_BIN_EXE_event-store"), args, &env)
}

fn create_table(name: &str) {
    let out = command(&["dynamodb", "create-table", name])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Polls readiness until it answers `status` (at most 30 s); its body.
async fn ready_becomes(base: &str, status: u16) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let r = reqwest::get(format!("{base}/readiness-check"))
            .await
            .unwrap();
        if r.status().as_u16() == status {
            return r.json().await.unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "readiness never became {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn ready_gauge(base: &str) -> String {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with("eventstore_ready "))
        .unwrap_or("")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_is_503_while_the_table_is_missing_and_200_once_it_is_back() {
    let table = moto::table_name("ready");
    create_table(&table);
    let server = Server::spawn(command(&[
        "serve",
        "--backend",
        "dynamodb",
        "--table",
        &table,
        "--no-relay",
        "--port",
        "0",
    ]))
    .unwrap_or_else(|(s, e)| panic!("server did not start ({s:?}): {e}"));
    let base = server.url.clone();
    ready_becomes(&base, 200).await;
    assert_eq!(ready_gauge(&base).await, "eventstore_ready 1");

    let client = aws_sdk_dynamodb::Client::new(&moto::sdk_config().await);
    client
        .delete_table()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let body = ready_becomes(&base, 503).await;
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("does not exist"), "{body}");
    assert_eq!(ready_gauge(&base).await, "eventstore_ready 0");
    let live = reqwest::get(format!("{base}/liveness-check"))
        .await
        .unwrap();
    assert_eq!(live.status(), 200, "liveness keeps its shape");

    create_table(&table);
    ready_becomes(&base, 200).await;
    assert_eq!(ready_gauge(&base).await, "eventstore_ready 1");
    server.stop();
}
