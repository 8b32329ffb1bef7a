//! `event-store bench --scenarios scale` at a small size: it loads the
//! store, starts servers on it, reads through them, kills one with SIGKILL
//! while appends are in flight and checks that every acknowledged append is
//! there after the restart; it reports every figure. No figure's value is
//! asserted beyond its being there and plausible: timings are the
//! machine's.

use std::process::Command;

use serde_json::Value;

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
        "rssAfterReadsMiB",
        "openAfterKillSeconds",
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
