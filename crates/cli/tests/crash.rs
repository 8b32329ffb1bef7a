//! Crash test through the front door: many clients append over HTTP while the
//! server process is killed with SIGKILL at random moments. After every
//! restart, every acknowledged event is present exactly once and every
//! stream's revisions are gapless.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

const KILLS: usize = 10;
const CLIENTS: usize = 16;
const STREAMS: usize = 24;

mod support;

use support::{BIN, Server};

fn start(data_dir: &std::path::Path) -> Server {
    let dir = data_dir.to_str().expect("utf-8 temp path");
    Server::start(BIN, &["serve", "--port", "0", "--data-dir", dir], &[])
}

/// A small xorshift generator: the seed is printed so a failure can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Acknowledged event ids per stream.
type Acked = Arc<Mutex<HashMap<String, Vec<String>>>>;

async fn writer(http: reqwest::Client, url: String, client: usize, acked: Acked, seed: u64) {
    let mut rng = Rng(seed | 1);
    loop {
        let stream = format!("s{}", rng.below(STREAMS as u64));
        let n = 1 + rng.below(3) as usize;
        let ids: Vec<String> = (0..n).map(|_| uuid::Uuid::now_v7().to_string()).collect();
        let events: Vec<Value> = ids
            .iter()
            .map(|id| json!({"eventId": id, "eventType": "tick", "payload": {"client": client}}))
            .collect();
        let res = http
            .post(format!("{url}/streams/crash/{stream}/events"))
            .json(&json!({"expectedRevision": "any", "events": events}))
            .send()
            .await;
        match res {
            Ok(r) if r.status().is_success() => {
                acked.lock().unwrap().entry(stream).or_default().extend(ids);
            }
            Ok(r) => panic!("append answered {}", r.status()),
            // The server was killed: stop this writer.
            Err(_) => return,
        }
    }
}

async fn read_stream(http: &reqwest::Client, url: &str, stream: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page: Value = http
            .get(format!(
                "{url}/streams/crash/{stream}/events?after-revision={after}&limit=1000"
            ))
            .send()
            .await
            .expect("read")
            .json()
            .await
            .expect("json");
        let page = &page["eventPage"];
        events.extend(page["events"].as_array().expect("events").iter().cloned());
        after = page["lastEvaluatedRevision"].as_u64().expect("revision");
        if page["hasMore"] != Value::Bool(true) {
            return events;
        }
    }
}

async fn verify(http: &reqwest::Client, url: &str, acked: &Acked) -> usize {
    let acked = acked.lock().unwrap().clone();
    let mut total = 0;
    for s in 0..STREAMS {
        let stream = format!("s{s}");
        let resp = http
            .get(format!("{url}/streams/crash/{stream}/details"))
            .send()
            .await
            .expect("details");
        let expected = acked.get(&stream).cloned().unwrap_or_default();
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            assert!(
                expected.is_empty(),
                "stream {stream} lost: {} acknowledged events",
                expected.len()
            );
            continue;
        }
        let events = read_stream(http, url, &stream).await;
        let mut seen = HashSet::new();
        for (i, e) in events.iter().enumerate() {
            assert_eq!(
                e["revision"].as_u64(),
                Some(i as u64 + 1),
                "{stream}: revisions gapless"
            );
            let id = e["eventId"].as_str().expect("event id").to_owned();
            assert!(seen.insert(id), "{stream}: an event is stored twice");
        }
        for id in &expected {
            assert!(seen.contains(id), "{stream}: acknowledged event {id} lost");
        }
        total += expected.len();
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_appends_survive_sigkill() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    println!("crash test seed {seed}");
    let mut rng = Rng(seed | 1);
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let acked: Acked = Arc::default();

    for round in 0..KILLS {
        let server = start(dir.path());
        // Everything acknowledged before the previous kill is still there.
        let checked = verify(&http, &server.url, &acked).await;
        let writers: Vec<_> = (0..CLIENTS)
            .map(|c| {
                tokio::spawn(writer(
                    http.clone(),
                    server.url.clone(),
                    c,
                    Arc::clone(&acked),
                    rng.next(),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(150 + rng.below(600))).await;
        server.kill(); // Child::kill sends SIGKILL on Unix.
        for w in writers {
            w.await.expect("writer task");
        }
        println!("round {round}: {checked} acknowledged events verified before this kill");
    }
    let server = start(dir.path());
    let total = verify(&http, &server.url, &acked).await;
    assert!(
        total > 0,
        "the writers acknowledged nothing: the test proved nothing"
    );
    println!("final: {total} acknowledged events present exactly once");
    server.kill();
}
