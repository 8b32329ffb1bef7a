//! Cost bounds of the item design, from the requests the backend really
//! sends: an SDK interceptor records each request's items, and capacity is
//! computed from their sizes by DynamoDB's published rules (moto reports no
//! realistic consumed capacity). Prints the benchmark table of
//! `docs/dynamodb.md`.

mod support;

use eventstore_core::{
    AppendRequest, EventStore, EventType, Expectation, JsonValue, NewEvent, Revision, StreamId,
    StreamKey, StreamType,
};
use eventstore_dynamodb::cost::{RecordedRequest, Recorder};
use eventstore_dynamodb::{DynamoStore, Relay, create_table};
use futures::future::join_all;

/// A small event: 39 bytes of payload, no metadata (about 75 bytes stored).
fn small_event(i: usize) -> NewEvent {
    NewEvent::new(
        EventType::parse("ItemAdded").unwrap(),
        JsonValue::from_text(format!(r#"{{"sku":"SKU-{i:04}","qty":3,"price":1999}}"#)).unwrap(),
    )
}

#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    requests: u64,
    wcu: u64,
    rcu: u64,
    max_wcu: u64,
}

fn totals(reqs: &[RecordedRequest]) -> Totals {
    let mut t = Totals::default();
    for r in reqs {
        t.requests += 1;
        t.wcu += r.wcu;
        t.rcu += r.rcu;
        t.max_wcu = t.max_wcu.max(r.wcu);
        for s in &r.written_sizes {
            assert!(*s < 400 * 1024, "no item reaches DynamoDB's 400 KB limit");
        }
    }
    t
}

struct Scenario {
    name: &'static str,
    events: u64,
    append: Totals,
    relay: Totals,
}

impl Scenario {
    fn per_event(&self, x: u64) -> f64 {
        x as f64 / self.events as f64
    }
    fn row(&self) -> String {
        let k = 1000.0 / self.events as f64;
        format!(
            "| {} | {:.0} + {:.0} | {:.0} + {:.0} | {:.0} + {:.0} | {:.2} | {:.2} |",
            self.name,
            self.append.requests as f64 * k,
            self.relay.requests as f64 * k,
            self.append.wcu as f64 * k,
            self.relay.wcu as f64 * k,
            self.append.rcu as f64 * k,
            self.relay.rcu as f64 * k,
            self.per_event(self.append.wcu),
            self.per_event(self.append.wcu + self.relay.wcu),
        )
    }
}

async fn run(name: &'static str, clients: usize, appends: usize, batch: usize) -> Scenario {
    run_with(name, clients, appends, batch, false).await
}

/// [`run`]; with `any`, every append expects `any` instead of the exact
/// revision (and so writes its append-id item, docs/dynamodb.md).
async fn run_with(
    name: &'static str,
    clients: usize,
    appends: usize,
    batch: usize,
    any: bool,
) -> Scenario {
    let store_rec = Recorder::new();
    let relay_rec = Recorder::new();
    let store_client = support::client(Some(&store_rec)).await;
    let relay_client = support::client(Some(&relay_rec)).await;
    let table = support::table_name("cost");
    create_table(&store_client, &table).await.unwrap();
    store_rec.clear();
    let store = DynamoStore::new(store_client.clone(), table.clone());
    join_all((0..clients).map(|c| {
        let store = &store;
        async move {
            let key = StreamKey::new(
                StreamType::parse("cart").unwrap(),
                StreamId::parse(format!("c-{c}")).unwrap(),
            );
            for a in 0..appends {
                let events = (0..batch).map(|i| small_event(a * batch + i)).collect();
                let expected = if any {
                    Expectation::Any
                } else {
                    Expectation::Exact(Revision::new((a * batch) as u64))
                };
                store
                    .append(AppendRequest::new(key.clone(), expected, events).unwrap())
                    .await
                    .unwrap();
            }
        }
    }))
    .await;
    let append = totals(&store_rec.requests());
    // The relay, handed the stream in batches of 100 records (the Lambda
    // event source mapping's default batch size), acknowledging each
    // batch's notifications as the relay function does once published.
    let relay = Relay::new(DynamoStore::new(relay_client, table.clone()));
    for records in support::stream_batches(&store_client, &table, 100).await {
        let out = relay.process(&records).await.unwrap();
        relay.acknowledge(&out).await.unwrap();
    }
    let relay = totals(&relay_rec.requests());
    Scenario {
        name,
        events: (clients * appends * batch) as u64,
        append,
        relay,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_and_relay_stay_within_the_cost_targets() {
    let single = run("1 client, single events", 1, 200, 1).await;
    let many = run("64 clients, single events", 64, 8, 1).await;
    let batches = run("64 clients, batches of 10", 64, 3, 10).await;
    println!(
        "| scenario | requests / 1000 events (append + relay) | WCU / 1000 events (append + relay) | RCU / 1000 events (append + relay) | append WCU / event | all WCU / event |"
    );
    println!("|---|---|---|---|---|---|");
    for s in [&single, &many, &batches] {
        println!("{}", s.row());
    }
    println!(
        "append requests per append: single {:.2}, batches {:.2}; largest single request {} WCU",
        single.append.requests as f64 / 200.0,
        batches.append.requests as f64 / (64.0 * 3.0),
        single.append.max_wcu
    );
    // Targets of the design (docs/dynamodb.md), amortized per event.
    assert!(
        single.per_event(single.append.wcu) <= 2.0,
        "single events: at most 2 WCU each"
    );
    assert!(many.per_event(many.append.wcu) <= 2.0);
    assert!(
        batches.per_event(batches.append.wcu) <= 0.5,
        "batches of 10: at most 0.5 WCU per event"
    );
    assert!(
        single.per_event(single.append.wcu + single.relay.wcu) <= 3.0,
        "with the relay: at most 3"
    );
    assert!(
        batches.per_event(batches.append.wcu + batches.relay.wcu) <= 0.6,
        "with the relay: at most 0.6"
    );
    // One round trip per append when nothing races: no read before the write.
    assert_eq!(
        single.append.rcu, 0,
        "no read on the append path of a lone writer"
    );
}

/// Appends expecting `any`/`exists` pay for promise 6: a read of the tip
/// and one transaction with the append-id item. They must still cost less
/// than the original design (~6 WCU, 1 RCU, 2 round trips per event).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_appends_cost_less_than_the_original_design() {
    let single = run_with("1 client, single events, `any`", 1, 200, 1, true).await;
    let batches = run_with("64 clients, batches of 10, `any`", 64, 3, 10, true).await;
    for s in [&single, &batches] {
        println!("{}", s.row());
        println!(
            "{}: append requests per append {:.2}, RCU per event {:.2}",
            s.name,
            s.append.requests as f64
                / (s.events as f64
                    / if s.name.contains("batches") {
                        10.0
                    } else {
                        1.0
                    }),
            s.per_event(s.append.rcu + s.relay.rcu)
        );
    }
    assert!(single.per_event(single.append.wcu + single.relay.wcu) < 6.0);
    assert!(batches.per_event(batches.append.wcu + batches.relay.wcu) < 6.0);
}
