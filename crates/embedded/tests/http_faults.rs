//! The embedded store over the simulated file layer behind the real HTTP
//! router on a real socket: a failed disk write answers its client with a
//! 5xx, later appends with 503 (fail-stop), `/readiness-check` turns 503
//! while `/liveness-check` keeps its shape, and a restart shows exactly what
//! was acknowledged.

use std::path::PathBuf;
use std::sync::Arc;

use eventstore_embedded::vfs::{Op, PowerCut, SimFs};
use eventstore_embedded::{EmbeddedOptions, EmbeddedStore};
use serde_json::{Value, json};

const EIO: i32 = 5;
const ENOSPC: i32 = 28;

async fn serve(fs: &SimFs) -> (String, Arc<EmbeddedStore>, tokio::task::JoinHandle<()>) {
    let store = EmbeddedStore::open_with(
        PathBuf::from("/sim/http"),
        EmbeddedOptions {
            fs: Arc::new(fs.clone()),
            ..EmbeddedOptions::default()
        },
    )
    .unwrap();
    let store = Arc::new(store);
    let app = eventstore_http::router(eventstore_http::AppState::new(store.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, store, task)
}

async fn post(c: &reqwest::Client, url: &str, n: u32) -> reqwest::Response {
    c.post(format!("{url}/streams/disk/d-1/events"))
        .json(&json!({"expectedRevision": "any", "events": [
            {"eventType": "Written", "payload": {"n": n}}
        ]}))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_or_sync_is_a_5xx_then_fail_stop_then_exactly_what_was_acknowledged() {
    let c = reqwest::Client::new();
    for (op, errno) in [
        (Op::Write, EIO),
        (Op::Write, ENOSPC),
        (Op::Sync, EIO),
        (Op::Sync, ENOSPC),
    ] {
        let what = format!("{op:?} fails with {errno}");
        let fs = SimFs::new(errno as u64);
        let (url, store, task) = serve(&fs).await;
        for n in 0..3 {
            assert_eq!(post(&c, &url, n).await.status(), 201, "{what}");
        }
        let ready = c
            .get(format!("{url}/readiness-check"))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), 200, "{what}");
        fs.fail_nth(op, fs.count(op), errno);
        let failed = post(&c, &url, 3).await;
        assert_eq!(failed.status(), 500, "{what}: the failed append's client");
        let body: Value = failed.json().await.unwrap();
        assert!(body["requestId"].is_string(), "{what}: {body}");
        let next = post(&c, &url, 4).await;
        assert_eq!(
            next.status(),
            503,
            "{what}: nothing is acknowledged after it"
        );
        let ready = c
            .get(format!("{url}/readiness-check"))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), 503, "{what}: unhealthy");
        let live = c.get(format!("{url}/liveness-check")).send().await.unwrap();
        assert_eq!(live.status(), 200, "{what}");
        let live: Value = live.json().await.unwrap();
        assert_eq!(live["status"], "ok", "{what}: liveness keeps its shape");
        task.abort();
        store.close().await;
        drop(store);
        fs.heal();
        fs.power_cut(PowerCut::TornSectors);
        let (url, store, task) = serve(&fs).await;
        let page: Value = c
            .get(format!("{url}/streams/disk/d-1/events"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let ns: Vec<i64> = page["eventPage"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["payload"]["n"].as_i64().unwrap())
            .collect();
        assert_eq!(ns, vec![0, 1, 2], "{what}: exactly what was acknowledged");
        assert_eq!(
            post(&c, &url, 5).await.status(),
            201,
            "{what}: healthy again"
        );
        task.abort();
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_writer_queue_is_a_503_with_retry_after() {
    let fs = SimFs::new(9);
    let store = EmbeddedStore::open_with(
        PathBuf::from("/sim/queue"),
        EmbeddedOptions {
            fs: Arc::new(fs.clone()),
            queue_capacity: 1,
            ..EmbeddedOptions::default()
        },
    )
    .unwrap();
    let store = Arc::new(store);
    let app = eventstore_http::router(eventstore_http::AppState::new(store.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    let c = reqwest::Client::new();
    // Many concurrent appends against a queue of one: some are refused at
    // once with 503 and Retry-After, none is lost, and every 201 is there.
    let mut tasks = Vec::new();
    for n in 0..64u32 {
        let c = c.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let r = c
                .post(format!("{url}/streams/queue"))
                .json(&json!({"initialEvent": {"eventType": "E", "payload": n}}))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.headers().get("retry-after").cloned())
        }));
    }
    let mut created = 0;
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap() {
            (201, _) => created += 1,
            (503, Some(after)) => {
                assert!(after.to_str().unwrap().parse::<u64>().is_ok());
                refused += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(created + refused, 64);
    assert!(created > 0);
    let types: Value = c
        .get(format!("{url}/streams"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = types.to_string();
    assert!(
        text.contains(&format!("\"streams\":{created}"))
            || text.contains(&format!("\"count\":{created}")),
        "every 201 is there: {text}"
    );
    println!("queue of 1, 64 concurrent appends: {created} created, {refused} refused with 503");
    task.abort();
    store.close().await;
}
