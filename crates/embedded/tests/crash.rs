//! Crashes that really crash: a child process appends in a loop and prints
//! every acknowledged append; it is killed with SIGKILL at random moments,
//! several times over the same directory; then the store is reopened and
//! every acknowledged event must be there exactly once, revisions gapless.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{events, key, read_all, read_feed_all};
use eventstore_core::{
    AppendRequest, EventId, EventStore, Expectation, FeedFilter, Revision, StreamKey,
};
use eventstore_embedded::EmbeddedStore;

const CHILD_DIR: &str = "EVENTSTORE_CRASH_CHILD_DIR";
const SHARED_STREAMS: usize = 5;
const WRITERS: usize = 8;

fn stream_of(writer: usize, n: u64) -> StreamKey {
    if writer < WRITERS / 2 {
        key("crash", &format!("shared-{}", n as usize % SHARED_STREAMS))
    } else {
        key("crash", &format!("own-{writer}"))
    }
}

/// The child: appends forever from several tasks, half with `Any` to shared
/// streams, half with exact expectations to their own stream, and prints
/// `ACK <stream id> <first revision> <event ids...>` for each success.
#[test]
#[ignore = "the child process of crash_at_random_moments_loses_no_acknowledged_append"]
fn crash_child_process() {
    let dir = std::env::var(CHILD_DIR).expect("run by the crash test only");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store = std::sync::Arc::new(EmbeddedStore::open(&dir).expect("open"));
        let tasks = (0..WRITERS).map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut n: u64 = w as u64 * 7919;
                let own = stream_of(w, 0);
                let mut revision = store
                    .stream_info(&own)
                    .await
                    .unwrap()
                    .map_or(Revision::ZERO, |i| i.revision);
                loop {
                    n = n
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let k = stream_of(w, n >> 33);
                    let batch = events(1 + (n >> 40) as usize % 4);
                    let expectation = if w < WRITERS / 2 {
                        Expectation::Any
                    } else {
                        Expectation::Exact(revision)
                    };
                    let request = AppendRequest::new(k.clone(), expectation, batch).unwrap();
                    let ids = request.event_ids();
                    let out = store.append(request).await.expect("append");
                    revision = out.last_revision;
                    let ids: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
                    let line = format!(
                        "ACK {} {} {}\n",
                        k.stream_id,
                        out.first_revision,
                        ids.join(" ")
                    );
                    let mut stdout = std::io::stdout().lock();
                    stdout.write_all(line.as_bytes()).unwrap();
                    stdout.flush().unwrap();
                }
            })
        });
        futures::future::join_all(tasks).await;
    });
}

struct Ack {
    stream: String,
    first_revision: u64,
    ids: Vec<EventId>,
}

fn parse_ack(line: &str) -> Option<Ack> {
    let mut parts = line.strip_prefix("ACK ")?.split(' ');
    let stream = parts.next()?.to_string();
    let first_revision = parts.next()?.parse().ok()?;
    let ids = parts
        .map(EventId::parse)
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    (!ids.is_empty()).then_some(Ack {
        stream,
        first_revision,
        ids,
    })
}

#[test]
fn crash_at_random_moments_loses_no_acknowledged_append() {
    let dir = tempfile::tempdir().unwrap();
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut acks = Vec::new();
    for round in 0..6 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child_process", "--ignored", "--nocapture"])
            .arg("--test-threads=1")
            .env(CHILD_DIR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| parse_ack(&l))
                .collect::<Vec<_>>()
        });
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let wait = Duration::from_millis(300 + seed % 700);
        std::thread::sleep(wait);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let round_acks = reader.join().unwrap();
        eprintln!(
            "round {round}: killed after {wait:?}, {} acknowledged appends",
            round_acks.len()
        );
        acks.extend(round_acks);
    }
    assert!(
        acks.len() > 50,
        "the child must have made progress ({} acks)",
        acks.len()
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = EmbeddedStore::open(dir.path()).expect("reopen after the crashes");
        let mut streams: BTreeMap<String, Vec<eventstore_core::RecordedEvent>> = BTreeMap::new();
        let mut total = 0;
        for w in 0..WRITERS {
            for n in 0..SHARED_STREAMS as u64 {
                let k = stream_of(w, n);
                if streams.contains_key(k.stream_id.as_str()) {
                    continue;
                }
                let events = if store.stream_info(&k).await.unwrap().is_some() {
                    read_all(&store, &k).await
                } else {
                    Vec::new()
                };
                for (i, e) in events.iter().enumerate() {
                    assert_eq!(e.revision.get(), i as u64 + 1, "{k}: revisions are gapless");
                }
                total += events.len();
                streams.insert(k.stream_id.to_string(), events);
            }
        }
        for (stream, events) in &streams {
            let mut seen = HashMap::new();
            for e in events {
                assert!(
                    seen.insert(e.event_id, e.revision).is_none(),
                    "{stream}: id twice"
                );
            }
        }
        for ack in &acks {
            let events = &streams[&ack.stream];
            for (i, id) in ack.ids.iter().enumerate() {
                let e = events
                    .iter()
                    .find(|e| e.event_id == *id)
                    .unwrap_or_else(|| panic!("acknowledged event {id} of {} is lost", ack.stream));
                assert_eq!(
                    e.revision.get(),
                    ack.first_revision + i as u64,
                    "acknowledged revision"
                );
            }
        }
        let feed = read_feed_all(&store, &FeedFilter::All).await;
        assert_eq!(feed.len(), total, "the feed has every stored event");
        for (i, e) in feed.iter().enumerate() {
            assert_eq!(
                e.position.unwrap().get(),
                i as u64 + 1,
                "positions are gapless"
            );
        }
        store.close().await;
    });
}
