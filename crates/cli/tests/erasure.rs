//! Erasure checked as a user would, through the built binary: events whose
//! payload and metadata hold a unique marker are appended over HTTP, the
//! stream is deleted (or truncated) over HTTP, and then no byte of any file
//! under the data directory holds the marker: after the running server
//! erased by itself, or after `event-store compact` on a store whose server
//! was killed right after answering.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{BIN, Server};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_event-store"));
    c.env_remove("EVENT_STORE_DATA_DIR").env_remove("RUST_LOG");
    c
}

fn marker() -> String {
    format!("MARKER-{}", uuid::Uuid::new_v4().simple())
}

/// Whether any file under `dir` holds `marker`.
fn directory_holds(dir: &Path, marker: &str) -> bool {
    std::fs::read_dir(dir).unwrap().any(|entry| {
        let path = entry.unwrap().path();
        if path.is_dir() {
            directory_holds(&path, marker)
        } else {
            std::fs::read(&path)
                .map(|b| b.windows(marker.len()).any(|w| w == marker.as_bytes()))
                .unwrap_or(false)
        }
    })
}

/// Creates a stream whose events hold `marker`; returns its id.
async fn create_secret(c: &reqwest::Client, url: &str, t: &str, marker: &str, n: usize) -> String {
    let r = c
        .post(format!("{url}/streams/{t}"))
        .json(&json!({"initialEvent": {
            "eventType": "Registered",
            "payload": {"name": marker},
            "metadata": {"by": marker}
        }}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    let id = body["stream"]["streamId"].as_str().unwrap().to_owned();
    let events: Vec<Value> = (1..n)
        .map(|i| json!({"eventType": "Moved", "payload": {"i": i, "address": marker}, "metadata": {"by": marker}}))
        .collect();
    let r = c
        .post(format!("{url}/streams/{t}/{id}/events"))
        .json(&json!({"expectedRevision": "any", "events": events}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_streams_marker_leaves_the_data_directory_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_string();
    let server = Server::start(BIN, &["serve", "--port", "0", "--data-dir", &data], &[]);
    let c = reqwest::Client::new();
    let url = server.url.clone();
    let m = marker();
    let id = create_secret(&c, &url, "person", &m, 5).await;
    let kept = create_secret(&c, &url, "person", "kept-person", 2).await;
    assert!(directory_holds(dir.path(), &m), "the marker is on disk");

    let r = c
        .delete(format!("{url}/streams/person/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = c
        .get(format!("{url}/streams/person/{id}/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 410);

    // The server erases by itself; wait for it (generously, on a loaded
    // machine: it normally takes milliseconds).
    let deadline = Instant::now() + Duration::from_secs(60);
    while directory_holds(dir.path(), &m) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !directory_holds(dir.path(), &m),
        "erased by the running server"
    );
    let r = c
        .get(format!("{url}/streams/person/{kept}/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    server.stop();
    let out = bin().args(["check", "--data-dir", &data]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compact_erases_a_truncated_range_after_the_server_was_killed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_string();
    let server = Server::start(BIN, &["serve", "--port", "0", "--data-dir", &data], &[]);
    let c = reqwest::Client::new();
    let url = server.url.clone();
    let m = marker();
    let id = create_secret(&c, &url, "person", &m, 4).await;
    let r = c
        .post(format!("{url}/streams/person/{id}/events"))
        .json(&json!({"expectedRevision": 4, "events": [{"eventType": "Snapshot", "payload": {"kept": true}}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = c
        .post(format!("{url}/streams/person/{id}/truncate"))
        .json(&json!({"beforeRevision": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    server.kill();

    let out = bin()
        .args(["compact", "--data-dir", &data])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("nothing is left to erase"), "{text}");
    assert!(!directory_holds(dir.path(), &m), "erased by compact");

    // The kept event still reads, at its revision.
    let server = Server::start(BIN, &["serve", "--port", "0", "--data-dir", &data], &[]);
    let r: Value = c
        .get(format!("{}/streams/person/{id}/events", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let events = r["eventPage"]["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 1, "{r}");
    assert_eq!(events[0]["revision"], json!(5));
    server.stop();

    // A locked directory is refused with exit code 1.
    let server = Server::start(BIN, &["serve", "--port", "0", "--data-dir", &data], &[]);
    let out = bin()
        .args(["compact", "--data-dir", &data])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    server.stop();
}
