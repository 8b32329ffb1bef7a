//! Model-based property test: random sequences of appends (random
//! expectations, retries, reused ids, batches, concurrent groups that share
//! a group commit, reopens) go to the embedded store and to the reference
//! `MemoryStore`; answers and read-backs must agree (times aside).

mod common;

use common::{TempStore, key};
use eventstore_core::{
    AppendOutcome, AppendRequest, EventStore, EventType, Expectation, FeedFilter, JsonObject,
    JsonValue, MemoryStore, NewEvent, Position, RecordedEvent, Revision, StoreError, StreamKey,
    StreamRead, StreamType,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Exp {
    Exact(u64),
    NoStream,
    Exists,
    Any,
}

#[derive(Debug, Clone)]
enum Events {
    Fresh(usize),
    /// The events of an earlier attempt, unchanged.
    Retry(usize),
    /// An earlier attempt's events with a fresh one added.
    RetryPlusOne(usize),
    /// Fresh events and one id taken from an earlier attempt.
    ReuseOneId(usize, usize),
}

#[derive(Debug, Clone)]
struct Attempt {
    stream: usize,
    expectation: Exp,
    events: Events,
}

#[derive(Debug, Clone)]
enum Op {
    Append(Attempt),
    /// Appends submitted together, so they share group commits.
    Group(Vec<Attempt>),
    Read {
        stream: usize,
        backward: bool,
        from: Option<u64>,
        limit: usize,
    },
    Feed {
        by_type: bool,
        after: u64,
        limit: usize,
    },
    Reopen,
}

fn exp() -> impl Strategy<Value = Exp> {
    prop_oneof![
        (0u64..6).prop_map(Exp::Exact),
        Just(Exp::NoStream),
        Just(Exp::Exists),
        Just(Exp::Any),
    ]
}

fn events_spec() -> impl Strategy<Value = Events> {
    prop_oneof![
        3 => (1usize..5).prop_map(Events::Fresh),
        2 => any::<usize>().prop_map(Events::Retry),
        1 => any::<usize>().prop_map(Events::RetryPlusOne),
        1 => (any::<usize>(), 1usize..3).prop_map(|(i, n)| Events::ReuseOneId(i, n)),
    ]
}

fn attempt() -> impl Strategy<Value = Attempt> {
    (0usize..4, exp(), events_spec()).prop_map(|(stream, expectation, events)| Attempt {
        stream,
        expectation,
        events,
    })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => attempt().prop_map(Op::Append),
        3 => prop::collection::vec(attempt(), 2..6).prop_map(Op::Group),
        2 => (0usize..4, any::<bool>(), prop::option::of(0u64..10), 1usize..5).prop_map(
            |(stream, backward, from, limit)| Op::Read { stream, backward, from, limit }
        ),
        1 => (any::<bool>(), 0u64..30, 1usize..6)
            .prop_map(|(by_type, after, limit)| Op::Feed { by_type, after, limit }),
        1 => Just(Op::Reopen),
    ]
}

fn stream_key(i: usize) -> StreamKey {
    // Two types, so that per-type feeds and listings differ from the global ones.
    if i < 2 {
        key("alpha", &format!("s{i}"))
    } else {
        key("beta", &format!("s{i}"))
    }
}

fn fresh(counter: &mut usize) -> NewEvent {
    *counter += 1;
    let mut e = NewEvent::new(
        EventType::parse(format!("type-{}", *counter % 3)).unwrap(),
        JsonValue::from_text(format!(r#"{{"n":{counter}, "s":"é"}}"#)).unwrap(),
    );
    if counter.is_multiple_of(2) {
        e.metadata = JsonObject::from_text(format!(r#"{{"m":{counter}}}"#)).unwrap();
    }
    e
}

/// Turns an attempt into a request; `history` holds earlier attempts' events.
fn request(a: &Attempt, history: &mut Vec<Vec<NewEvent>>, counter: &mut usize) -> AppendRequest {
    let pick = |i: usize| (!history.is_empty()).then(|| history[i % history.len()].clone());
    let events = match &a.events {
        Events::Fresh(n) => (0..*n).map(|_| fresh(counter)).collect(),
        Events::Retry(i) => pick(*i).unwrap_or_else(|| vec![fresh(counter)]),
        Events::RetryPlusOne(i) => {
            let mut e = pick(*i).unwrap_or_default();
            e.push(fresh(counter));
            e
        }
        Events::ReuseOneId(i, n) => {
            let mut e: Vec<NewEvent> = (0..*n).map(|_| fresh(counter)).collect();
            if let Some(old) = pick(*i) {
                let mut reused = fresh(counter);
                reused.event_id = old[0].event_id;
                e.push(reused);
            }
            e
        }
    };
    history.push(events.clone());
    let expectation = match a.expectation {
        Exp::Exact(r) => Expectation::Exact(Revision::new(r)),
        Exp::NoStream => Expectation::NoStream,
        Exp::Exists => Expectation::Exists,
        Exp::Any => Expectation::Any,
    };
    AppendRequest::new(stream_key(a.stream), expectation, events).unwrap()
}

/// An answer without times.
fn outcome(r: Result<AppendOutcome, StoreError>) -> String {
    match r {
        Ok(o) => format!(
            "ok {}..{} already={} at {:?} stream={} rev={}",
            o.first_revision,
            o.last_revision,
            o.already_appended,
            o.first_position,
            o.stream.key(),
            o.stream.revision
        ),
        Err(StoreError::WrongExpectedRevision(f)) => format!("wrong {} {}", f.expected, f.actual),
        Err(StoreError::DuplicateEvent { event_id }) => format!("duplicate {event_id}"),
        Err(e) => format!("other error {e}"),
    }
}

/// An event without its time.
fn strip(e: &RecordedEvent) -> String {
    format!(
        "{} {} {} {} {} {} {:?}",
        e.stream_key(),
        e.revision,
        e.event_id,
        e.event_type,
        e.payload,
        e.metadata.get(),
        e.position
    )
}

async fn observe(store: &dyn EventStore) -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..4 {
        let k = stream_key(i);
        out.push(format!(
            "{k}: {:?}",
            store
                .stream_info(&k)
                .await
                .unwrap()
                .map(|s| (s.key(), s.revision))
        ));
        if let Ok(slice) = store
            .read_stream(&k, StreamRead::forward_after(Revision::ZERO, 1000))
            .await
        {
            out.extend(slice.events.iter().map(strip));
        }
    }
    for filter in [
        FeedFilter::All,
        FeedFilter::StreamType(StreamType::parse("alpha").unwrap()),
        FeedFilter::StreamType(StreamType::parse("beta").unwrap()),
    ] {
        let page = store
            .read_feed(&filter, Position::ZERO, 1000)
            .await
            .unwrap();
        out.push(format!(
            "feed {filter:?}: {:?} {}",
            page.last_position, page.has_more
        ));
        out.extend(page.events.iter().map(strip));
    }
    for t in store.stream_types().await.unwrap() {
        out.push(format!("type {} {}", t.stream_type, t.streams));
        let page = store
            .list_streams(&t.stream_type, None, None, 100)
            .await
            .unwrap();
        out.push(format!(
            "listing {:?}",
            page.streams
                .iter()
                .map(|s| s.stream_id.to_string())
                .collect::<Vec<_>>()
        ));
    }
    out
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let model = MemoryStore::new();
    let mut store = TempStore::new();
    let mut history = Vec::new();
    let mut counter = 0;
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Append(a) => {
                let r = request(&a, &mut history, &mut counter);
                let expected = outcome(model.append(r.clone()).await);
                let got = outcome(store.append(r).await);
                prop_assert_eq!(got, expected, "step {}: {:?}", step, a);
            }
            Op::Group(attempts) => {
                let requests: Vec<AppendRequest> = attempts
                    .iter()
                    .map(|a| request(a, &mut history, &mut counter))
                    .collect();
                let mut expected = Vec::new();
                for r in &requests {
                    expected.push(outcome(model.append(r.clone()).await));
                }
                // Submitted in order: the writer takes them in this order.
                let got: Vec<String> =
                    futures::future::join_all(requests.into_iter().map(|r| store.append(r)))
                        .await
                        .into_iter()
                        .map(outcome)
                        .collect();
                prop_assert_eq!(got, expected, "step {}: group {:?}", step, attempts);
            }
            Op::Read {
                stream,
                backward,
                from,
                limit,
            } => {
                let read = StreamRead {
                    direction: if backward {
                        eventstore_core::Direction::Backward
                    } else {
                        eventstore_core::Direction::Forward
                    },
                    from: from.map(Revision::new),
                    limit,
                };
                let k = stream_key(stream);
                let show = |r: Result<eventstore_core::StreamSlice, StoreError>| match r {
                    Ok(s) => format!(
                        "{:?} more={} last={}",
                        s.events.iter().map(strip).collect::<Vec<_>>(),
                        s.has_more,
                        s.last_evaluated_revision
                    ),
                    Err(e) => format!("error {e}"),
                };
                let expected = show(model.read_stream(&k, read).await);
                let got = show(store.read_stream(&k, read).await);
                prop_assert_eq!(got, expected, "step {}: read {:?}", step, read);
            }
            Op::Feed {
                by_type,
                after,
                limit,
            } => {
                let filter = if by_type {
                    FeedFilter::StreamType(StreamType::parse("beta").unwrap())
                } else {
                    FeedFilter::All
                };
                let show = |p: eventstore_core::FeedPage| {
                    format!(
                        "{:?} more={} last={}",
                        p.events.iter().map(strip).collect::<Vec<_>>(),
                        p.has_more,
                        p.last_position
                    )
                };
                let after = Position::new(after);
                let expected = show(model.read_feed(&filter, after, limit).await.unwrap());
                let got = show(store.read_feed(&filter, after, limit).await.unwrap());
                prop_assert_eq!(got, expected, "step {}: feed", step);
            }
            Op::Reopen => {
                store = store.reopen().await;
                prop_assert_eq!(
                    observe(&store.store).await,
                    observe(&model).await,
                    "after reopen at step {}",
                    step
                );
            }
        }
    }
    prop_assert_eq!(
        observe(&store.store).await,
        observe(&model).await,
        "at the end"
    );
    store.store.close().await;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn embedded_store_agrees_with_the_model(ops in prop::collection::vec(op(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(run(ops))?;
    }
}
