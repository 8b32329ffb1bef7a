//! The serverless shape end to end, with no AWS account: moto emulates
//! DynamoDB, DynamoDB Streams, SNS and SQS; `cargo lambda watch` emulates the
//! Lambda Runtime API, the Invoke API and Function URLs; the two function
//! binaries run against it exactly as on Lambda. The relay is invoked the way
//! Lambda's event source mapping would: with the records read from the
//! table's stream in moto, wrapped in a (tumbling-window) DynamoDB event.
//!
//! Needs `.venv` with moto (`scripts/moto/setup.sh`) and cargo-lambda
//! (`scripts/setup-tools.sh`).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use eventstore_testkit::lambda_event;
use eventstore_testkit::sns::{Delivery, Messaging};
use serde_json::{Value, json};

const API: &str = "event-store-api";
const RELAY: &str = "event-store-relay";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A child process killed when the test ends, however it ends.
struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The emulator must be told its port: one no other process can be
/// handed meanwhile.
fn free_port() -> u16 {
    eventstore_testkit::process::port_for_a_child()
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on port {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn venv_tool(name: &str) -> PathBuf {
    let path = root().join(".venv/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/moto/setup.sh and scripts/setup-tools.sh",
        path.display()
    );
    path
}

fn start_moto() -> (Proc, String) {
    let mut child = Command::new(venv_tool("python"))
        .arg(root().join("scripts/moto/server.py"))
        .args(["0", "--exit-with-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start scripts/moto/server.py");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("port=")
        .expect("moto prints port=N")
        .to_string();
    (Proc(child), format!("http://127.0.0.1:{port}"))
}

/// `cargo lambda watch` serving only the Lambda APIs; the functions are the
/// binaries this test was built with, attached to it below.
fn start_emulator(port: u16) -> Proc {
    venv_tool("cargo-lambda");
    let path = format!(
        "{}:{}",
        root().join(".venv/bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let child = Command::new("cargo")
        .args([
            "lambda",
            "watch",
            "--only-lambda-apis",
            "-A",
            "127.0.0.1",
            "-P",
        ])
        .arg(port.to_string())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start cargo lambda watch");
    wait_for_port(port, "cargo lambda watch");
    Proc(child)
}

fn start_function(binary: &str, name: &str, port: u16, env: &[(&str, &str)], log: &Path) -> Proc {
    let mut cmd = Command::new(binary);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "AWS_LAMBDA_RUNTIME_API",
            format!("http://127.0.0.1:{port}/.rt/{name}"),
        )
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_LOG_LEVEL", "INFO")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(log).unwrap())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Proc(
        cmd.spawn()
            .unwrap_or_else(|e| panic!("start {binary}: {e}")),
    )
}

/// Reads the table's stream in moto, as Lambda's event source mapping does,
/// and hands the new records to the relay function as one windowed event per shard.
struct StreamReader {
    client: aws_sdk_dynamodbstreams::Client,
    arn: String,
    iterators: HashMap<String, Option<String>>,
}

impl StreamReader {
    async fn new(
        sdk: &aws_config::SdkConfig,
        dynamo: &aws_sdk_dynamodb::Client,
        table: &str,
    ) -> Self {
        let arn = dynamo
            .describe_table()
            .table_name(table)
            .send()
            .await
            .unwrap()
            .table()
            .and_then(|t| t.latest_stream_arn())
            .expect("the table has a stream")
            .to_string();
        Self {
            client: aws_sdk_dynamodbstreams::Client::new(sdk),
            arn,
            iterators: HashMap::new(),
        }
    }

    /// One Lambda event per shard with records not read yet.
    async fn next_events(&mut self) -> Vec<Value> {
        let desc = self
            .client
            .describe_stream()
            .stream_arn(&self.arn)
            .send()
            .await
            .unwrap();
        for shard in desc.stream_description().unwrap().shards() {
            let id = shard.shard_id().unwrap().to_string();
            if !self.iterators.contains_key(&id) {
                let it = self
                    .client
                    .get_shard_iterator()
                    .stream_arn(&self.arn)
                    .shard_id(&id)
                    .shard_iterator_type(ShardIteratorType::TrimHorizon)
                    .send()
                    .await
                    .unwrap();
                self.iterators
                    .insert(id, it.shard_iterator().map(str::to_string));
            }
        }
        let mut events = Vec::new();
        for (shard, iterator) in self.iterators.iter_mut() {
            let Some(it) = iterator.clone() else { continue };
            let out = self
                .client
                .get_records()
                .shard_iterator(it)
                .send()
                .await
                .unwrap();
            *iterator = out.next_shard_iterator().map(str::to_string);
            if !out.records().is_empty() {
                events.push(lambda_event::windowed(&self.arn, shard, out.records()));
            }
        }
        events
    }
}

/// Every message the queue holds now (bodies and attributes), deleted.
async fn drain(
    messaging: &Messaging,
    url: &str,
) -> Vec<(Value, HashMap<String, (String, String)>)> {
    messaging
        .drain(url, 1)
        .await
        .into_iter()
        .map(|m| (m.body, m.attributes))
        .collect()
}

struct Http {
    client: reqwest::Client,
    base: String,
}

impl Http {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

async fn invoke_relay(http: &reqwest::Client, port: u16, event: &Value) -> Value {
    let res = http
        .post(format!(
            "http://127.0.0.1:{port}/2015-03-31/functions/{RELAY}/invocations"
        ))
        .json(event)
        .send()
        .await
        .unwrap();
    assert!(
        res.status().is_success(),
        "relay invocation failed: {}",
        res.status()
    );
    res.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_through_the_function_url_are_relayed_and_announced() {
    let (_moto, endpoint) = start_moto();
    let sdk = eventstore_aws::config::for_emulator(&endpoint).await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let messaging = Messaging::new(&sdk);

    let table = format!("es-e2e-{}", std::process::id());
    eventstore_dynamodb::create_table(&dynamo, &table)
        .await
        .expect("create the table");
    let topic = messaging.topic("es-e2e").await;
    let filtered = |policy| Delivery {
        raw: true,
        filter_policy: Some(policy),
    };
    let orders = messaging
        .subscribed_queue(&topic, "orders", filtered(r#"{"StreamType":["order"]}"#))
        .await
        .url;
    let paid = messaging
        .subscribed_queue(&topic, "paid", filtered(r#"{"EventTypes":["OrderPaid"]}"#))
        .await
        .url;
    let everything = messaging
        .subscribed_queue(&topic, "everything", Delivery::default())
        .await
        .url;

    let port = free_port();
    let _emulator = start_emulator(port);
    let log_dir = tempfile::tempdir().unwrap();
    let logs = log_dir.path();
    let aws_env = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("EVENT_STORE_TABLE_NAME", table.as_str()),
    ];
    let mut api_fn = start_function(
        env!("CARGO_BIN_EXE_event-store-api"),
        API,
        port,
        &aws_env,
        &logs.join("api.log"),
    );
    let mut relay_env = aws_env.to_vec();
    relay_env.push(("EVENT_STORE_TOPIC_ARN", topic.as_str()));
    let mut relay_fn = start_function(
        env!("CARGO_BIN_EXE_event-store-relay"),
        RELAY,
        port,
        &relay_env,
        &logs.join("relay.log"),
    );

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let api = Http {
        client: client.clone(),
        base: format!("http://127.0.0.1:{port}/lambda-url/{API}"),
    };
    let mut stream = StreamReader::new(&sdk, &dynamo, &table).await;
    let mut relay_all = async || {
        let mut responses = Vec::new();
        let mut events = Vec::new();
        for event in stream.next_events().await {
            responses.push(invoke_relay(&client, port, &event).await);
            events.push(event);
        }
        (events, responses)
    };

    // Both functions are up (a cold start builds their clients once).
    std::thread::sleep(Duration::from_millis(500));
    for (name, f) in [(API, &mut api_fn), (RELAY, &mut relay_fn)] {
        assert!(
            f.0.try_wait().unwrap().is_none(),
            "the {name} function exited at start"
        );
    }

    // Liveness through the Function URL.
    let (status, body) = api
        .call(reqwest::Method::GET, "/liveness-check", None)
        .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));

    // Create a stream: the `order` queue hears of it.
    let (status, body) = api
        .call(
            reqwest::Method::POST,
            "/streams/order",
            Some(json!({"initialEvent": {"eventType": "OrderPlaced", "payload": {"total": 42}}})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["stream"]["streamId"].as_str().unwrap().to_string();
    let (_, responses) = relay_all().await;
    for r in &responses {
        assert_eq!(r["batchItemFailures"], json!([]), "{r}");
        assert!(
            r.get("state").is_some(),
            "a windowed response must carry state: {r}"
        );
    }
    let got = drain(&messaging, &orders).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        got[0].0,
        json!({"StreamId": id, "StreamType": "order", "StreamRevision": "1", "FirstRevision": "1",
               "EventTypes": ["OrderPlaced"], "Position": got[0].0["Position"]})
    );
    let first_position: u64 = got[0].0["Position"].as_str().unwrap().parse().unwrap();

    // Append revision 2: another notification, and the event-type filter matches it alone.
    let (status, body) = api
        .call(
            reqwest::Method::PUT,
            &format!("/streams/order/{id}/events/2"),
            Some(json!({"event": {"eventType": "OrderPaid", "payload": "cash"}})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["stream"]["revision"], 2);
    let (events_2, _) = relay_all().await;
    let got = drain(&messaging, &orders).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0["StreamRevision"], "2");
    assert_eq!(got[0].0["FirstRevision"], "2");
    assert_eq!(got[0].0["EventTypes"], json!(["OrderPaid"]));
    assert_eq!(
        got[0].1.get("StreamType"),
        Some(&("String".to_string(), "order".to_string()))
    );
    assert_eq!(
        got[0].1.get("EventTypes").map(|a| a.0.as_str()),
        Some("String.Array")
    );
    let paid_msgs = drain(&messaging, &paid).await;
    assert_eq!(
        paid_msgs.len(),
        1,
        "only the OrderPaid append matches: {paid_msgs:?}"
    );
    assert_eq!(paid_msgs[0].0["StreamRevision"], "2");

    // Reads, details and listings through the Function URL are the
    // contract suite's (tests/contract.rs); this test follows the
    // notifications.

    // A stream of another type: published (the unfiltered queue gets it, with
    // its attributes in the SNS envelope), but nothing on the `order` queue.
    let (status, _) = api
        .call(
            reqwest::Method::POST,
            "/streams/invoice",
            Some(json!({"initialEvent": {"eventType": "InvoiceIssued", "payload": {}}})),
        )
        .await;
    assert_eq!(status, 201);
    relay_all().await;
    assert!(
        drain(&messaging, &orders).await.is_empty(),
        "the filter policy keeps other types out"
    );
    let all = drain(&messaging, &everything).await;
    assert_eq!(all.len(), 3, "every append was published once: {all:?}");
    let invoice = all
        .iter()
        .find(|(m, _)| m["Message"].as_str().is_some_and(|b| b.contains("invoice")))
        .expect("invoice notification");
    assert_eq!(
        invoice.0["MessageAttributes"]["StreamType"]["Value"],
        "invoice"
    );
    assert_eq!(
        invoice.0["MessageAttributes"]["EventTypes"]["Type"],
        "String.Array"
    );

    // The global feed holds each event once, in positions.
    let (_, feed) = api.call(reqwest::Method::GET, "/events", None).await;
    let positions: Vec<u64> = feed["eventPage"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions.len(), 3, "{feed}");
    assert_eq!(positions[0], first_position);

    // A batch delivered twice after its appends were announced (a clean
    // redelivery: the first delivery published and acknowledged them):
    // nothing is added to the feed and nothing is published again.
    assert!(!events_2.is_empty());
    for event in &events_2 {
        let r = invoke_relay(&client, port, event).await;
        assert_eq!(r["batchItemFailures"], json!([]), "{r}");
    }
    let (_, feed_after) = api.call(reqwest::Method::GET, "/events", None).await;
    assert_eq!(
        feed_after["eventPage"]["events"],
        feed["eventPage"]["events"]
    );
    assert!(
        drain(&messaging, &everything).await.is_empty(),
        "a clean redelivery announces nothing twice"
    );
    assert!(drain(&messaging, &orders).await.is_empty());

    // Deleting the order stream through the Function URL: the relay puts
    // one `$stream-deleted` entry into the feed and announces it with the
    // attributes of an append, so filter policies select it (by its event
    // type as by its stream type) and keep it from the others.
    let deletions = messaging
        .subscribed_queue(
            &topic,
            "deletions",
            filtered(r#"{"EventTypes":["$stream-deleted"]}"#),
        )
        .await
        .url;
    let (status, body) = api
        .call(
            reqwest::Method::DELETE,
            &format!("/streams/order/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let (_, responses) = relay_all().await;
    assert!(!responses.is_empty(), "the deletion reaches the relay");
    for r in &responses {
        assert_eq!(r["batchItemFailures"], json!([]), "{r}");
    }
    let deleted = drain(&messaging, &deletions).await;
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    assert_eq!(
        deleted[0].0,
        json!({"StreamId": id, "StreamType": "order", "StreamRevision": "3", "FirstRevision": "3",
               "EventTypes": ["$stream-deleted"], "Position": deleted[0].0["Position"]})
    );
    assert_eq!(
        deleted[0].1.get("StreamType"),
        Some(&("String".to_string(), "order".to_string()))
    );
    assert_eq!(
        deleted[0].1.get("EventTypes"),
        Some(&(
            "String.Array".to_string(),
            r#"["$stream-deleted"]"#.to_string()
        ))
    );
    let by_type = drain(&messaging, &orders).await;
    assert_eq!(by_type.len(), 1, "the order queue hears of it: {by_type:?}");
    assert_eq!(by_type[0].0["EventTypes"], json!(["$stream-deleted"]));
    assert!(drain(&messaging, &paid).await.is_empty());
    assert_eq!(drain(&messaging, &everything).await.len(), 1);
    let (_, feed) = api.call(reqwest::Method::GET, "/events", None).await;
    let of_order: Vec<&Value> = feed["eventPage"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["streamId"] == json!(id))
        .collect();
    assert_eq!(of_order.len(), 1, "only the deletion entry: {feed}");
    assert_eq!(of_order[0]["eventType"], "$stream-deleted");
    let (status, _) = api
        .call(
            reqwest::Method::GET,
            &format!("/streams/order/{id}/events"),
            None,
        )
        .await;
    assert_eq!(status, 410);

    // A delivery that writes the feed but cannot publish (the topic is gone
    // for a while; the same as a relay dying after the feed write): the
    // function reports the batch from its first record, so Lambda delivers
    // it again. The retry adds nothing to the feed and announces every
    // append of the batch; a further redelivery announces nothing.
    messaging
        .sns
        .delete_topic()
        .topic_arn(&topic)
        .send()
        .await
        .unwrap();
    let mut parcels = Vec::new();
    for n in 0..2 {
        let (status, body) = api
            .call(
                reqwest::Method::POST,
                "/streams/parcel",
                Some(json!({"initialEvent": {"eventType": "Sent", "payload": {"n": n}}})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        parcels.push(body["stream"]["streamId"].as_str().unwrap().to_string());
    }
    let parcel_events = stream.next_events().await;
    assert!(!parcel_events.is_empty());
    for event in &parcel_events {
        let r = invoke_relay(&client, port, event).await;
        let first = event["Records"][0]["dynamodb"]["SequenceNumber"].clone();
        assert_eq!(
            r["batchItemFailures"],
            json!([{"itemIdentifier": first}]),
            "an unpublished batch is reported whole: {r}"
        );
    }
    // The topic is back (same name, same ARN), with the unfiltered queue.
    let again = messaging.topic("es-e2e").await;
    assert_eq!(again, topic);
    let everything = messaging
        .subscribed_queue(&topic, "everything", Delivery::default())
        .await
        .url;
    let (_, feed_crashed) = api.call(reqwest::Method::GET, "/events", None).await;
    let feed_crashed = feed_crashed["eventPage"]["events"]
        .as_array()
        .unwrap()
        .clone();
    // The invoice, the order stream's deletion entry (its events left the
    // feed with it), the two parcels.
    assert_eq!(
        feed_crashed.len(),
        4,
        "the parcels are in the feed: {feed_crashed:?}"
    );
    assert!(
        drain(&messaging, &everything).await.is_empty(),
        "nothing was published"
    );
    for event in &parcel_events {
        let r = invoke_relay(&client, port, event).await;
        assert_eq!(r["batchItemFailures"], json!([]), "{r}");
    }
    let (_, feed_retried) = api.call(reqwest::Method::GET, "/events", None).await;
    assert_eq!(
        feed_retried["eventPage"]["events"].as_array().unwrap(),
        &feed_crashed,
        "the retry adds nothing to the feed"
    );
    let got = drain(&messaging, &everything).await;
    let announced: Vec<(String, String)> = got
        .iter()
        .map(|(m, _)| {
            let n: Value = serde_json::from_str(m["Message"].as_str().unwrap()).unwrap();
            (
                n["StreamId"].as_str().unwrap().to_string(),
                n["Position"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let in_feed: Vec<(String, String)> = feed_crashed[2..]
        .iter()
        .map(|e| {
            (
                e["streamId"].as_str().unwrap().to_string(),
                e["position"].as_u64().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        announced, in_feed,
        "each parcel announced once by the retry, with its feed position"
    );
    assert_eq!(
        announced.iter().map(|a| a.0.clone()).collect::<Vec<_>>(),
        parcels
    );
    for event in &parcel_events {
        let r = invoke_relay(&client, port, event).await;
        assert_eq!(r["batchItemFailures"], json!([]), "{r}");
    }
    assert!(
        drain(&messaging, &everything).await.is_empty(),
        "once announced and acknowledged, a redelivery announces nothing"
    );

    // One record the relay cannot handle (a corrupt image) in the middle of a
    // batch: it is reported alone; the records before it are relayed and
    // announced once, the retry from it announces nothing twice, and once
    // Lambda gives up on it (to the failure queue) the records after it flow.
    let mut audit_ids = Vec::new();
    for n in 0..3 {
        let (status, body) = api
            .call(
                reqwest::Method::POST,
                "/streams/audit",
                Some(json!({"initialEvent": {"eventType": "Checked", "payload": {"n": n}}})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        audit_ids.push(body["stream"]["streamId"].as_str().unwrap().to_string());
    }
    let mut events = stream.next_events().await;
    assert_eq!(events.len(), 1, "moto's table stream has one shard");
    let mut event = events.remove(0);
    let records = event["Records"].as_array().unwrap().clone();
    // Every append record of the middle stream (its append item's) becomes
    // unreadable.
    let image_of = |r: &Value, id: &str| {
        let image = &r["dynamodb"]["NewImage"];
        image.get("n").is_some() && image["p"]["S"].as_str().is_some_and(|p| p.ends_with(id))
    };
    let bad: Vec<usize> = (0..records.len())
        .filter(|&i| image_of(&records[i], &audit_ids[1]))
        .collect();
    assert!(!bad.is_empty());
    let mut corrupt = records.clone();
    for &i in &bad {
        corrupt[i]["dynamodb"]["NewImage"]["l"] = json!({"S": "not a revision"});
    }
    let seq = |i: usize| corrupt[i]["dynamodb"]["SequenceNumber"].clone();
    // Lambda's side: deliver from `from`; on a reported failure retry once
    // from that record, then give up on it (it goes to the failure queue)
    // and go on after it.
    let mut from = 0;
    let mut reported = Vec::new();
    while from < corrupt.len() {
        event["Records"] = Value::Array(corrupt[from..].to_vec());
        let r = invoke_relay(&client, port, &event).await;
        let failures = r["batchItemFailures"].as_array().unwrap().clone();
        if failures.is_empty() {
            break;
        }
        assert_eq!(failures.len(), 1, "one failure is reported: {r}");
        let id = failures[0]["itemIdentifier"].clone();
        let at = (from..corrupt.len())
            .find(|&i| seq(i) == id)
            .expect("a record of the batch");
        event["Records"] = Value::Array(corrupt[at..].to_vec());
        let retry = invoke_relay(&client, port, &event).await;
        assert_eq!(
            retry["batchItemFailures"],
            json!([{"itemIdentifier": id}]),
            "{retry}"
        );
        reported.push(at);
        from = at + 1;
    }
    assert_eq!(reported, bad, "exactly the unreadable records are reported");
    let got = drain(&messaging, &everything).await;
    let announced: Vec<String> = got
        .iter()
        .map(|(m, _)| {
            let n: Value = serde_json::from_str(m["Message"].as_str().unwrap()).unwrap();
            n["StreamId"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        announced,
        [audit_ids[0].clone(), audit_ids[2].clone()],
        "the records around the bad ones are announced once each, in order"
    );
    let (_, feed) = api.call(reqwest::Method::GET, "/events", None).await;
    let feed_events = feed["eventPage"]["events"].as_array().unwrap();
    let keys: Vec<(String, u64)> = feed_events
        .iter()
        .map(|e| {
            (
                e["streamId"].as_str().unwrap().to_string(),
                e["revision"].as_u64().unwrap(),
            )
        })
        .collect();
    let unique: std::collections::HashSet<_> = keys.iter().collect();
    assert_eq!(
        unique.len(),
        keys.len(),
        "no event twice in the feed: {keys:?}"
    );
    assert_eq!(
        keys.len(),
        6,
        "the invoice, the order stream's deletion entry, the two parcels, audit A and \
         audit C: {keys:?}"
    );
    assert!(
        !keys.iter().any(|(id, _)| id == &audit_ids[1]),
        "the bad record went to the failure queue"
    );

    // The interactive API page and a client error, through the Function URL.
    let page = client
        .get(format!("{}/openapi/", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.text()
            .await
            .unwrap()
            .to_lowercase()
            .contains("swagger")
    );
    let (status, body) = api
        .call(
            reqwest::Method::GET,
            "/streams/order/x/events?after-revision=nope",
            None,
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad-request")));

    // The page's files, binary and gzip-encoded ones included, arrive through
    // the Function URL byte for byte as the router serves them locally.
    let local = eventstore_http::router(eventstore_http::AppState::new(std::sync::Arc::new(
        eventstore_core::MemoryStore::new(),
    )));
    for file in [
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "favicon-32x32.png",
    ] {
        use tower::ServiceExt as _;
        let path = format!("/openapi/{file}");
        let want = local
            .clone()
            .oneshot(
                axum::http::Request::get(&path)
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(want.status(), 200, "{path}");
        let want_headers = want.headers().clone();
        let want_body = axum::body::to_bytes(want.into_body(), usize::MAX)
            .await
            .unwrap();
        let got = client
            .get(format!("{}{path}", api.base))
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), 200, "{path}");
        for h in ["content-type", "content-encoding"] {
            assert_eq!(
                got.headers()
                    .get(h)
                    .map(|v| v.to_str().unwrap().to_string()),
                want_headers.get(h).map(|v| v.to_str().unwrap().to_string()),
                "{path}: {h}"
            );
        }
        assert!(
            got.bytes().await.unwrap() == want_body,
            "{path}: the same bytes"
        );
    }

    // Logs: JSON lines carrying the Lambda request id and the API request id.
    let log = std::fs::read_to_string(logs.join("api.log")).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(!lines.is_empty(), "the API function logs JSON lines: {log}");
    let finished: Vec<&Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "request finished")
        .collect();
    assert!(!finished.is_empty(), "{log}");
    for l in finished {
        let spans = l["spans"].as_array().expect("span list");
        let lambda_id = spans.iter().find_map(|s| s["lambda_request_id"].as_str());
        let api_id = spans.iter().find_map(|s| s["request_id"].as_str());
        assert!(
            lambda_id.is_some_and(|id| !id.is_empty() && id != "-")
                && api_id.is_some_and(|id| !id.is_empty()),
            "a request's log line names the Lambda and the API request ids: {l}"
        );
    }
    assert!(!log.contains("\"total\""), "payloads are not logged");
    let relay_log = std::fs::read_to_string(logs.join("relay.log")).unwrap();
    assert!(
        relay_log
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|l| {
                l["fields"]["message"] == "batch relayed"
                    && l["fields"]["published"] == 1
                    && l["spans"]
                        .as_array()
                        .is_some_and(|s| s.iter().any(|s| s["lambda_request_id"].is_string()))
            }),
        "the relay logs each batch with its Lambda request id: {relay_log}"
    );
}
