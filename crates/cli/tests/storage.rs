//! The built binary on a damaged data directory: `serve` refuses it with the
//! damage named and a non-zero exit, `check` reports it (exit 2), `repair`
//! keeps every intact event at its position and names what was lost, and
//! the repaired store serves again without reusing a lost position.

mod support;

use std::process::Command;

use serde_json::{Value, json};
use support::{BIN, Server};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_event-store"));
    c.env_remove("EVENT_STORE_DATA_DIR").env_remove("RUST_LOG");
    c
}

async fn create(c: &reqwest::Client, url: &str, t: &str, marker: &str) -> Value {
    let r = c
        .post(format!("{url}/streams/{t}"))
        .json(&json!({"initialEvent": {"eventType": "Created", "payload": {"marker": marker}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

async fn feed(c: &reqwest::Client, url: &str) -> Vec<Value> {
    let r: Value = c
        .get(format!("{url}/events?limit=100"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["eventPage"]["events"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_bit_is_refused_named_checked_and_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_string();
    let args = ["serve", "--port", "0", "--data-dir", &data];
    let c = reqwest::Client::new();
    // No checkpoint of the index (an hour apart, and the process is killed
    // rather than stopped): open replays, and so checks, the whole log.
    // Damage under a checkpoint is `check`'s to find (below).
    let server = Server::start(
        BIN,
        &[
            "serve",
            "--port",
            "0",
            "--data-dir",
            &data,
            "--checkpoint-interval",
            "3600",
        ],
        &[],
    );
    let url = server.url.clone();
    create(&c, &url, "alpha", "AAAA-first").await;
    create(&c, &url, "beta", "BBBB-second").await;
    create(&c, &url, "gamma", "CCCC-third").await;
    assert_eq!(feed(&c, &url).await.len(), 3);
    server.kill();

    // Flip one bit inside B's payload.
    let log = dir.path().join("events.log");
    let mut bytes = std::fs::read(&log).unwrap();
    let at = bytes
        .windows(11)
        .position(|w| w == b"BBBB-second")
        .expect("B's payload in the log");
    bytes[at + 2] ^= 0x01;
    std::fs::write(&log, &bytes).unwrap();

    // serve refuses, naming the damage, and exits non-zero.
    let refused = Server::try_start(BIN, &args, &[]);
    let Err((status, stderr)) = refused else {
        panic!("serve must refuse a damaged store")
    };
    assert!(status.is_some_and(|s| !s.success()), "{status:?}");
    assert!(stderr.contains("is damaged at byte"), "{stderr}");
    assert!(stderr.contains("positions 2–2"), "{stderr}");
    assert!(
        stderr.contains("gamma/"),
        "the streams after it are named: {stderr}"
    );
    assert_eq!(std::fs::read(&log).unwrap(), bytes, "nothing was cut");

    // check reports the damage and exits 2.
    let out = bin().args(["check", "--data-dir", &data]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("DAMAGE"), "{text}");
    assert!(text.contains("positions 2–2 lost"), "{text}");

    // repair keeps A and C, names B's position, keeps the original.
    let out = bin()
        .args(["repair", "--data-dir", &data])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("positions 2–2 lost"), "{text}");
    assert!(text.contains("beta/"), "the lost stream is named: {text}");
    let kept: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("damaged"))
        .collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(std::fs::read(kept[0].path()).unwrap(), bytes);
    let out = bin().args(["check", "--data-dir", &data]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));

    // The repaired store serves A at 1 and C at 3, and never gives 2 again.
    let server = Server::start(BIN, &args, &[]);
    let url = server.url.clone();
    let events = feed(&c, &url).await;
    let positions: Vec<u64> = events
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions, vec![1, 3]);
    assert_eq!(events[1]["payload"]["marker"], "CCCC-third");
    create(&c, &url, "delta", "DDDD").await;
    let events = feed(&c, &url).await;
    assert_eq!(events.last().unwrap()["position"], 4);
    server.stop();

    // The stop checkpointed the index; check verifies it against the log.
    let out = bin().args(["check", "--data-dir", &data]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("checkpoint at position 4"), "{text}");

    // Damage under the checkpoint: open does not read that part of the log
    // again, check finds it (exit 2) and repair repairs the log and
    // rebuilds the index.
    let mut bytes = std::fs::read(&log).unwrap();
    let at = bytes
        .windows(4)
        .position(|w| w == b"DDDD")
        .expect("D's payload in the log");
    bytes[at + 1] ^= 0x01;
    std::fs::write(&log, &bytes).unwrap();
    let out = bin().args(["check", "--data-dir", &data]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("positions 4–"), "{text}");
    let out = bin()
        .args(["repair", "--data-dir", &data])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("index was rebuilt"), "{text}");
    let out = bin().args(["check", "--data-dir", &data]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn check_of_a_missing_or_locked_store_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_string();
    let out = bin().args(["check", "--data-dir", &data]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let server = Server::start(BIN, &["serve", "--port", "0", "--data-dir", &data], &[]);
    let out = bin()
        .args(["repair", "--data-dir", &data])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("in use"),
        "{out:?}"
    );
    server.stop();
}
