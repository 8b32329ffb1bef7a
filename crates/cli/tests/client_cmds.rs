//! Black-box tests of the client commands: the built `event-store` binary
//! against `event-store serve` processes on port 0, each with a fresh data
//! directory.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use serde_json::Value;

use eventstore_client::{
    Client, EventType, Expectation, FeedOptions, JsonObject, JsonValue, NewEvent, RecordedEvent,
    StreamId, StreamType,
};

const BIN: &str = env!("CARGO_BIN_EXE_event-store");

/// A running `event-store serve` (the test kit's spawner) with its own
/// fresh data directory.
struct Server {
    /// Kills the process when dropped.
    _process: eventstore_testkit::process::Server,
    url: String,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_str().unwrap().to_owned();
        let mut args = vec!["serve", "--port", "0", "--data-dir", &data];
        args.extend_from_slice(extra);
        let inner = eventstore_testkit::process::Server::start(BIN, &args, &[("RUST_LOG", "warn")]);
        let url = inner.url.clone();
        Server {
            _process: inner,
            url,
            _dir: dir,
        }
    }

    fn client(&self) -> Client {
        Client::new(&self.url).unwrap()
    }
}

/// Runs a client command against `url` with `stdin`.
fn cli(url: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env("EVENT_STORE_URL", url)
        .env_remove("EVENT_STORE_API_KEY")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited normally")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn json_lines(o: &Output) -> Vec<Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn append_read_and_list_with_documented_exit_codes() {
    let server = Server::start(&[]);
    let url = server.url.as_str();

    // Shorthand form.
    let o = cli(
        url,
        &[
            "append",
            "order",
            "o-1",
            "--type",
            "placed",
            "--payload",
            r#"{"total":42}"#,
            "--metadata",
            r#"{"by":"me"}"#,
            "--expected-revision",
            "no-stream",
            "--json",
        ],
        "",
    );
    assert_eq!(code(&o), 0, "{o:?}");
    assert_eq!(json_lines(&o)[0]["lastRevision"], 1);
    // NDJSON on stdin, with an exact expectation.
    let o = cli(
        url,
        &["append", "order", "o-1", "--expected-revision", "1"],
        "{\"eventType\":\"paid\",\"payload\":\"cash\"}\n{\"eventType\":\"shipped\",\"payload\":[1,2]}\n",
    );
    assert_eq!(code(&o), 0, "{o:?}");
    assert!(stdout(&o).contains("revisions 2..3"), "{}", stdout(&o));

    // Read it back: forward, from a revision, backward with a limit.
    let o = cli(url, &["read", "order", "o-1", "--json"], "");
    let events = json_lines(&o);
    assert_eq!(events.len(), 3);
    assert_eq!(events[0]["payload"], serde_json::json!({"total":42}));
    assert_eq!(events[0]["metadata"], serde_json::json!({"by":"me"}));
    assert_eq!(events[2]["eventType"], "shipped");
    let o = cli(url, &["read", "order", "o-1", "--from", "2", "--json"], "");
    assert_eq!(
        json_lines(&o)
            .iter()
            .map(|e| e["revision"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [2, 3]
    );
    let o = cli(
        url,
        &[
            "read",
            "order",
            "o-1",
            "--backward",
            "--limit",
            "2",
            "--json",
        ],
        "",
    );
    assert_eq!(
        json_lines(&o)
            .iter()
            .map(|e| e["revision"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [3, 2]
    );
    let o = cli(url, &["read", "order", "o-1"], "");
    let table = stdout(&o);
    assert!(table.starts_with("REV"), "{table}");
    assert_eq!(table.lines().count(), 4);

    // Listings.
    cli(
        url,
        &[
            "append",
            "invoice",
            "i-1",
            "--type",
            "issued",
            "--payload",
            "1",
        ],
        "",
    );
    let o = cli(url, &["streams", "--json"], "");
    let types: Vec<_> = json_lines(&o)
        .iter()
        .map(|t| {
            (
                t["streamType"].as_str().unwrap().to_owned(),
                t["streams"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(types, [("invoice".into(), 1), ("order".into(), 1)]);
    let o = cli(url, &["streams", "order"], "");
    assert!(stdout(&o).contains("o-1"), "{}", stdout(&o));

    // Exit codes.
    let o = cli(
        url,
        &[
            "append",
            "order",
            "o-1",
            "--type",
            "x",
            "--payload",
            "1",
            "--expected-revision",
            "1",
        ],
        "",
    );
    assert_eq!(code(&o), 3, "conflict: {o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("revision 3"));
    let o = cli(url, &["read", "order", "missing"], "");
    assert_eq!(code(&o), 4, "not found: {o:?}");
    let o = cli(url, &["read", "bad type!", "x"], "");
    assert_eq!(code(&o), 2, "usage: {o:?}");
    let o = cli(url, &["append", "order", "o-2"], "not json");
    assert_eq!(code(&o), 2, "usage: {o:?}");
    let o = cli(url, &["read", "order"], "");
    assert_eq!(code(&o), 2, "clap usage: {o:?}");
    let o = cli("http://127.0.0.1:1", &["streams", "--timeout", "2"], "");
    assert_eq!(code(&o), 5, "unreachable: {o:?}");
    let help = stdout(&cli(url, &["--help"], ""));
    assert!(
        help.contains("Exit codes:") && help.contains("6  unauthorized"),
        "{help}"
    );
}

#[test]
fn api_key_is_sent_and_missing_key_exits_6() {
    let server = Server::start(&["--api-key", "s3cret"]);
    let o = cli(&server.url, &["streams"], "");
    assert_eq!(code(&o), 6, "{o:?}");
    let o = cli(
        &server.url,
        &["streams", "--api-key", "s3cret", "--json"],
        "",
    );
    assert_eq!(code(&o), 0, "{o:?}");
}

#[test]
fn tail_follows_new_events_live() {
    let server = Server::start(&[]);
    let c = server.client();
    let t = StreamType::parse("live").unwrap();
    let rt = rt();
    let event = |n: u32| {
        NewEvent::new(
            EventType::parse("e").unwrap(),
            JsonValue::from_text(n.to_string()).unwrap(),
        )
    };
    rt.block_on(c.append(
        &t,
        &StreamId::parse("before").unwrap(),
        Expectation::Any,
        // Enough earlier events that finding the end of the feed bisects.
        (0..37).map(|_| event(0)).collect(),
    ))
    .unwrap();
    let mut tail = Command::new(BIN)
        .args([
            "tail",
            "--count",
            "3",
            "--json",
            "--wait",
            "2",
            "--url",
            &server.url,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    for n in 1..=3 {
        rt.block_on(c.append(
            &t,
            &StreamId::parse("s").unwrap(),
            Expectation::Any,
            vec![event(n)],
        ))
        .unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while tail.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "tail did not stop after 3 events"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut out = String::new();
    tail.stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let payloads: Vec<_> = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["payload"].clone())
        .collect();
    assert_eq!(payloads, [1, 2, 3], "only new events, once, in order");
}

/// Writes `streams` streams with `per_stream` events each, interleaved in
/// short runs, with varied payloads and metadata.
fn populate(c: &Client, streams: usize, per_stream: usize) {
    let rt = rt();
    let mut next = vec![0usize; streams];
    let mut k = 0usize;
    rt.block_on(async {
        while next.iter().any(|&n| n < per_stream) {
            let s = k % streams;
            k += 1;
            if next[s] >= per_stream {
                continue;
            }
            let run = (1 + k % 3).min(per_stream - next[s]);
            let t = StreamType::parse(if s.is_multiple_of(4) {
                "account"
            } else {
                "order"
            })
            .unwrap();
            let id = StreamId::parse(format!("s-{s}")).unwrap();
            let events: Vec<_> = (0..run)
                .map(|i| {
                    let n = next[s] + i;
                    let mut e = NewEvent::new(
                        EventType::parse(format!("type-{}", n % 5)).unwrap(),
                        JsonValue::from_text(format!(
                            r#"{{"s":{s},"n":{n}, "f":1.50,"t":"x\u00e9"}}"#
                        ))
                        .unwrap(),
                    );
                    e.metadata = JsonObject::from_text(format!(r#"{{"k":{k}}}"#)).unwrap();
                    e
                })
                .collect();
            let exp = Expectation::Exact(eventstore_client::Revision::new(next[s] as u64));
            c.append(&t, &id, exp, events).await.unwrap();
            next[s] += run;
        }
    });
}

fn feed(c: &Client) -> Vec<RecordedEvent> {
    rt().block_on(
        c.feed(FeedOptions::from_start().page_size(1000))
            .try_collect(),
    )
    .unwrap()
}

/// What must survive an export/import: everything but times and positions.
fn essence(events: &[RecordedEvent]) -> Vec<(String, String, u64, String, String, String, String)> {
    events
        .iter()
        .map(|e| {
            (
                e.stream_type.to_string(),
                e.stream_id.to_string(),
                e.revision.get(),
                e.event_id.to_string(),
                e.event_type.to_string(),
                e.payload.get().to_owned(),
                e.metadata.get().to_owned(),
            )
        })
        .collect()
}

fn export_file(url: &str, path: &Path) {
    let o = cli(url, &["export", "--output", path.to_str().unwrap()], "");
    assert_eq!(code(&o), 0, "{o:?}");
}

#[test]
fn export_then_import_into_an_empty_store_gives_the_same_events() {
    let source = Server::start(&[]);
    populate(&source.client(), 12, 25);
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.ndjson");
    export_file(&source.url, &first);
    assert_eq!(
        std::fs::read_to_string(&first).unwrap().lines().count(),
        300
    );

    let target = Server::start(&[]);
    let o = cli(
        &target.url,
        &["import", first.to_str().unwrap(), "--json"],
        "",
    );
    assert_eq!(code(&o), 0, "{o:?}");
    let summary = &json_lines(&o)[0];
    assert_eq!(
        (summary["events"].as_u64(), summary["written"].as_u64()),
        (Some(300), Some(300))
    );

    let second = dir.path().join("second.ndjson");
    export_file(&target.url, &second);
    let read = |p: &Path| -> Vec<RecordedEvent> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let (a, b) = (read(&first), read(&second));
    assert_eq!(
        essence(&a),
        essence(&b),
        "same events, same ids, same order"
    );
    assert_eq!(
        essence(&feed(&source.client())),
        essence(&feed(&target.client()))
    );

    // Importing the same file again writes nothing; so does importing one
    // type's export from stdin with another batch size.
    let o = cli(
        &target.url,
        &["import", first.to_str().unwrap(), "--json"],
        "",
    );
    assert_eq!(json_lines(&o)[0]["alreadyPresent"], 300, "{o:?}");
    let accounts = cli(&source.url, &["export", "--type", "account"], "");
    let o = cli(
        &target.url,
        &["import", "--batch-size", "7", "--json"],
        &stdout(&accounts),
    );
    assert_eq!(code(&o), 0, "{o:?}");
    assert_eq!(json_lines(&o)[0]["written"], 0);
    assert_eq!(feed(&target.client()).len(), 300);
}

#[test]
fn an_import_killed_half_way_and_run_again_stores_every_event_exactly_once() {
    // Enough small interleaved runs that the import takes a while.
    let source = Server::start(&[]);
    populate(&source.client(), 40, 100);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("export.ndjson");
    export_file(&source.url, &input);
    let expected = feed(&source.client());
    assert_eq!(expected.len(), 4000);

    let target = Server::start(&[]);
    let tc = target.client();
    let mut import = Command::new(BIN)
        .args(["import", input.to_str().unwrap(), "--url", &target.url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once part of the input is stored.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stored = feed(&tc).len();
        if stored >= 300 {
            break;
        }
        assert!(
            import.try_wait().unwrap().is_none(),
            "the import finished before it could be killed"
        );
        assert!(Instant::now() < deadline, "the import made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    import.kill().unwrap(); // SIGKILL
    let status = import.wait().unwrap();
    assert!(!status.success(), "killed, not finished");
    let partial = feed(&tc).len();
    assert!(partial < 4000, "killed half-way, {partial} stored");

    let o = cli(
        &target.url,
        &["import", input.to_str().unwrap(), "--json"],
        "",
    );
    assert_eq!(code(&o), 0, "{o:?}");
    let summary = &json_lines(&o)[0];
    assert_eq!(summary["events"], 4000);
    assert!(summary["alreadyPresent"].as_u64().unwrap() >= partial as u64);

    let got = feed(&tc);
    assert_eq!(got.len(), 4000, "every event exactly once");
    let mut ids: Vec<_> = got.iter().map(|e| e.event_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4000, "no duplicate");
    // Per stream, the same events in the same order.
    let per_stream = |events: &[RecordedEvent]| {
        let mut m = std::collections::BTreeMap::<String, Vec<_>>::new();
        for e in essence(events) {
            m.entry(format!("{}/{}", e.0, e.1)).or_default().push(e);
        }
        m
    };
    assert_eq!(per_stream(&got), per_stream(&expected));
}
