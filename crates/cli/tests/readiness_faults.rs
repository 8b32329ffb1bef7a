//! Readiness under the embedded store's fault injection (its simulated
//! file layer), through the real router on a real socket with the
//! server's metrics recorder: a failed `fdatasync` turns
//! `/readiness-check` to 503 and `eventstore_ready` to 0, and reopening the
//! store on the healed disk turns both back.

use std::path::PathBuf;
use std::sync::Arc;

use eventstore_embedded::vfs::{Op, SimFs};
use eventstore_embedded::{EmbeddedOptions, EmbeddedStore};
use metrics_exporter_prometheus::PrometheusBuilder;

const EIO: i32 = 5;

async fn serve(
    fs: &SimFs,
    render: eventstore_http::MetricsRenderer,
) -> (String, Arc<EmbeddedStore>, tokio::task::JoinHandle<()>) {
    let store = EmbeddedStore::open_with(
        PathBuf::from("/sim/ready"),
        EmbeddedOptions {
            fs: Arc::new(fs.clone()),
            ..EmbeddedOptions::default()
        },
    )
    .unwrap();
    let store = Arc::new(store);
    let state = eventstore_http::AppState::new(store.clone()).with_metrics(render);
    let app = eventstore_http::router(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, store, task)
}

async fn status(c: &reqwest::Client, url: &str) -> (u16, String) {
    let ready = c
        .get(format!("{url}/readiness-check"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    let metrics = c
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("eventstore_ready "))
        .unwrap_or("")
        .to_owned();
    (ready, line)
}

async fn append(c: &reqwest::Client, url: &str) -> u16 {
    c.post(format!("{url}/streams/disk"))
        .json(&serde_json::json!({"initialEvent": {"eventType": "E", "payload": 1}}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_goes_503_on_a_failed_sync_and_back_after_reopening_on_a_healed_disk() {
    let handle = PrometheusBuilder::new().install_recorder().unwrap();
    let render: eventstore_http::MetricsRenderer = Arc::new(move || handle.render());
    let c = reqwest::Client::new();
    let fs = SimFs::new(14);
    let (url, store, task) = serve(&fs, render.clone()).await;
    assert_eq!(append(&c, &url).await, 201);
    assert_eq!(status(&c, &url).await, (200, "eventstore_ready 1".into()));

    fs.fail_nth(Op::Sync, fs.count(Op::Sync), EIO);
    assert_eq!(append(&c, &url).await, 500, "the append whose sync failed");
    assert_eq!(append(&c, &url).await, 503, "fail-stop");
    assert_eq!(status(&c, &url).await, (503, "eventstore_ready 0".into()));

    task.abort();
    store.close().await;
    drop(store);
    fs.heal();
    let (url, store, task) = serve(&fs, render).await;
    assert_eq!(status(&c, &url).await, (200, "eventstore_ready 1".into()));
    assert_eq!(append(&c, &url).await, 201);
    task.abort();
    store.close().await;
}
