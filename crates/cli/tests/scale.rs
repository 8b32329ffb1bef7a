//! `event-store bench --scenarios scale` at a small size: it loads the
//! store, starts servers on it, reads through them, kills one with SIGKILL
//! while appends are in flight and checks that every acknowledged append is
//! there after the restart; it reports every figure. No figure's value is
//! asserted beyond its being there and plausible: timings are the
//! machine's. A second test asserts the shape at scale: open replays only
//! the log after the index's checkpoint, and the server's memory after
//! open does not grow with the events.

mod support;

use std::process::Command;

use serde_json::{Value, json};

#[test]
fn the_scale_scenario_loads_reads_and_survives_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = Command::new(env!("CARGO_BIN_EXE_event-store"))
        .env_remove("EVENT_STORE_DATA_DIR")
        .env("RUST_LOG", "warn")
        .args([
            "bench",
            "--scenarios",
            "scale",
            "--events",
            "3000",
            "--json",
        ])
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "scale scenario failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(report["scenario"], "scale");
    assert_eq!(report["events"], 3000);
    for key in [
        "loadEventsPerSecond",
        "fileMiB",
        "streams",
        "openAfterStopSeconds",
        "rssAfterOpenMiB",
        "pageP50Ms",
        "pageP99Ms",
        "feedEventsPerSecond",
        "feedPrefetchingEventsPerSecond",
        "rssAfterReadsMiB",
        "openAfterKillSeconds",
        "indexMiB",
    ] {
        let v = report[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} in {report}"));
        assert!(v > 0.0, "{key} = {v}");
    }
    assert!(report["pageP50Ms"].as_f64() <= report["pageP99Ms"].as_f64());

    // The loaded directory is left for inspection, and a second run refuses
    // it rather than loading on top of it.
    assert!(data.join("events.log").exists());
    let again = Command::new(env!("CARGO_BIN_EXE_event-store"))
        .args(["bench", "--scenarios", "scale", "--events", "10"])
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("must be empty"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

/// Runs the scale scenario at `events` events with a few reads; its report.
fn scale(events: u64) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = Command::new(env!("CARGO_BIN_EXE_event-store"))
        .env_remove("EVENT_STORE_DATA_DIR")
        .env("RUST_LOG", "warn")
        .args([
            "bench",
            "--scenarios",
            "scale",
            "--json",
            "--scale-pages",
            "100",
        ])
        .arg("--events")
        .arg(events.to_string())
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "scale scenario failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).expect("one JSON object")
}

/// The shape the on-disk index gives the store, at 150,000 and 300,000
/// events: open after a clean stop replays nothing (the index was
/// checkpointed at the stop), open after SIGKILL replays only the tail
/// written after the last checkpoint (a few hundred events here), and the
/// server's resident memory after open grows by less than 10 MiB when the
/// events double (an index held in memory would grow by about 15 MiB:
/// 100 bytes an event; the runs' fences and filters, read by a warm-up
/// beside the first requests, make the figure vary by a few MiB with the
/// machine's load: +8.1 MiB was seen under a parallel test run, −2.1 MiB
/// (46.6 then 44.5) on a quiet machine). No time is asserted.
#[test]
fn open_replays_only_the_tail_and_memory_does_not_grow_with_the_events() {
    let small = scale(150_000);
    let large = scale(300_000);
    for r in [&small, &large] {
        let events = r["events"].as_f64().unwrap();
        assert_eq!(r["openAfterStopReplayedEvents"], 0.0, "{r}");
        let tail = r["openAfterKillReplayedEvents"].as_f64().unwrap();
        assert!(tail > 0.0 && tail < events / 10.0, "{r}");
    }
    let (a, b) = (
        small["rssAfterOpenMiB"].as_f64().unwrap(),
        large["rssAfterOpenMiB"].as_f64().unwrap(),
    );
    println!("resident memory after open: {a:.1} MiB at 150,000 events, {b:.1} MiB at 300,000");
    assert!(
        b - a < 10.0,
        "memory grows with the events: {a:.1} MiB at 150,000, {b:.1} MiB at 300,000"
    );
}

/// `bench --scenarios feed` against a running server: finds the feed's
/// head, reads it with both readers (every page parsed and its positions
/// checked, the prefetching one following the `Link` headers) and reports
/// both rates; it writes nothing.
#[tokio::test]
async fn the_feed_scenario_reads_a_running_servers_feed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().display().to_string();
    let server = support::Server::start(
        support::BIN,
        &["serve", "--port", "0", "--data-dir", &data],
        &[("RUST_LOG", "warn")],
    );
    let http = reqwest::Client::new();
    for b in 0..25 {
        let events: Vec<Value> = (0..100)
            .map(|i| json!({"eventType": "fed", "payload": {"b": b, "i": i}}))
            .collect();
        let r = http
            .post(format!("{}/streams/feed/s-{}/events", server.url, b % 7))
            .json(&json!({"expectedRevision": "any", "events": events}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let out = tokio::process::Command::new(support::BIN)
        .env("RUST_LOG", "warn")
        .args(["bench", "--url", &server.url, "--scenarios", "feed"])
        .args(["--feed-events", "2500", "--json"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "feed scenario failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(reports.len(), 2, "{stdout}");
    for r in &reports {
        assert!(r["events"].as_u64().unwrap() >= 2500, "{r}");
        assert!(r["eventsPerSecond"].as_f64().unwrap() > 0.0, "{r}");
    }
    assert!(
        reports[1]["scenario"]
            .as_str()
            .unwrap()
            .contains("prefetching")
    );
    // Nothing was written.
    let head: Value = http
        .get(format!("{}/events?after-position=2499", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(head["eventPage"]["lastPosition"], 2500);
    server.stop();
}
