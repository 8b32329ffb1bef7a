//! Differential fuzzing through HTTP: proptest generates random operation
//! sequences ([`Op`]) — appends and batches of random valid events (every
//! expectation kind, the longest names, events of the largest size, 4-byte
//! UTF-8, odd JSON), retries of earlier appends, racing writers, reads in
//! both directions with random limits, feed reads, listings, and invalid
//! requests — and runs each one against a target and against the
//! reference model (the router over a fresh `MemoryStore`) in lockstep.
//! Status codes, bodies and the resulting streams must agree, except for
//! ids the server makes, times and positions ([`normalize`]).
//!
//! Each sequence works in stream types of its own, so one target serves
//! every case. Where the target's feeds and listings come from a relay
//! ([`Profile::feed_is_eventually_consistent`](crate::contract::Profile)),
//! a feed or listing answer is asked again until it agrees or the profile's
//! settle time passes.
//!
//! A failure is shrunk to a minimal sequence and reported with the seed
//! that reproduces it: `EVENT_STORE_DIFFFUZZ_SEED=<seed>`.
//! `EVENT_STORE_DIFFFUZZ_CASES` sets the number of sequences,
//! `EVENT_STORE_DIFFFUZZ_SECONDS` runs batches of new seeds for that long
//! (`scripts/difffuzz.sh MINUTES`).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use reqwest::Method;
use serde_json::{Value, json};

use crate::contract::{Target, unique_type};
use crate::http::{Answer, Api, spawn};

/// A new event as the generator made it.
#[derive(Clone)]
pub struct Ev {
    /// The event type (valid: 1–200 characters, no control characters).
    pub event_type: String,
    /// The payload as JSON text.
    pub payload: String,
    /// The metadata as JSON object text, if any.
    pub metadata: Option<String>,
    /// The client's event id, if any.
    pub id: Option<u128>,
}

impl fmt::Debug for Ev {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let short = |s: &str| {
            if s.len() > 60 {
                format!(
                    "{}…({} bytes)",
                    s.chars().take(40).collect::<String>(),
                    s.len()
                )
            } else {
                s.to_owned()
            }
        };
        write!(
            f,
            "Ev({:?}, {}, meta {:?}, id {:?})",
            short(&self.event_type),
            short(&self.payload),
            self.metadata.as_deref().map(short),
            self.id.map(|i| i % 100_000)
        )
    }
}

impl Ev {
    fn to_json_text(&self) -> String {
        let mut s = format!(
            r#"{{"eventType":{},"payload":{}"#,
            json!(self.event_type),
            self.payload
        );
        if let Some(m) = &self.metadata {
            s.push_str(&format!(r#","metadata":{m}"#));
        }
        if let Some(id) = self.id {
            s.push_str(&format!(r#","eventId":"{}""#, uuid::Uuid::from_u128(id)));
        }
        s.push('}');
        s
    }
}

/// Which stream an operation addresses.
#[derive(Debug, Clone, Copy)]
pub enum Sid {
    /// One of a few fixed ids (the last one 128 characters long).
    Named(u8),
    /// The n-th stream made by `POST /streams/{type}` (modulo their
    /// number; `Named(0)` while there is none).
    Created(u8),
}

/// An append's expectation.
#[derive(Debug, Clone, Copy)]
pub enum Exp {
    /// The stream's current revision, plus an offset (0: the right one).
    Current(i8),
    /// `"no-stream"`.
    NoStream,
    /// `"exists"`.
    Exists,
    /// `"any"`.
    Any,
}

/// One step of a sequence.
#[derive(Debug, Clone)]
pub enum Op {
    /// `POST /streams/{type}`.
    Create {
        /// Type index.
        ty: u8,
        /// The initial event.
        event: Ev,
    },
    /// `POST /streams/{type}/{id}/events`.
    Append {
        /// Type index.
        ty: u8,
        /// The stream.
        sid: Sid,
        /// The expectation.
        exp: Exp,
        /// 1–100 events.
        events: Vec<Ev>,
    },
    /// `PUT /streams/{type}/{id}/events/{current + 1 + off}`.
    Put {
        /// Type index.
        ty: u8,
        /// The stream.
        sid: Sid,
        /// Offset from the right revision.
        off: i8,
        /// The event.
        event: Ev,
    },
    /// The `n`-th earlier append or put sent again, byte for byte.
    Retry(u8),
    /// `writers` identical appends (events without ids) at once.
    Race {
        /// Type index.
        ty: u8,
        /// The stream.
        sid: Sid,
        /// The expectation.
        exp: Exp,
        /// The events.
        events: Vec<Ev>,
        /// How many writers.
        writers: u8,
    },
    /// A stream read.
    Read {
        /// Type index.
        ty: u8,
        /// The stream.
        sid: Sid,
        /// Backward (from the end, or before `from`) or forward (after `from`).
        backward: bool,
        /// `after-revision` / `before-revision`, when given.
        from: Option<u8>,
        /// `limit`, when given.
        limit: Option<u16>,
    },
    /// `GET …/details`.
    Details {
        /// Type index.
        ty: u8,
        /// The stream.
        sid: Sid,
    },
    /// The whole type feed, paged by `limit`.
    Feed {
        /// Type index.
        ty: u8,
        /// Page size.
        limit: u16,
    },
    /// The whole listing of a type, paged by `limit`.
    List {
        /// Type index.
        ty: u8,
        /// Page size.
        limit: u16,
    },
    /// `GET /streams`, for the sequence's types.
    Types,
    /// One of [`INVALID`]'s requests.
    Invalid(u8),
}

/// Requests that must be refused: method, path (`{T}` a type of the
/// sequence, `{S}` a stream id), body (`None`: no content type).
pub const INVALID: &[(&str, &str, Option<&str>)] = &[
    ("GET", "/streams/-{T}", None),
    ("GET", "/streams/{T}/a%20b/events", None),
    (
        "PUT",
        "/streams/{T}/{S}/events/0",
        Some(r#"{"event":{"eventType":"x","payload":1}}"#),
    ),
    ("GET", "/streams/{T}/{S}/events?after-revision=x", None),
    ("GET", "/streams/{T}/{S}/events?limit=0", None),
    ("GET", "/streams/{T}/{S}/events?limit=1001", None),
    ("GET", "/streams/{T}/{S}/events?before-revision=2", None),
    ("GET", "/streams/{T}/events?wait=31", None),
    ("GET", "/streams/{T}?next-page-key=nope!", None),
    ("GET", "/streams/{T}?updated-after=yesterday", None),
    ("POST", "/streams/{T}/{S}/events", Some("{")),
    (
        "POST",
        "/streams/{T}/{S}/events",
        Some(r#"{"expectedRevision":"any","events":[]}"#),
    ),
    (
        "POST",
        "/streams/{T}/{S}/events",
        Some(r#"{"expectedRevision":"any","events":[{"eventType":"","payload":1}]}"#),
    ),
    (
        "POST",
        "/streams/{T}/{S}/events",
        Some(r#"{"expectedRevision":-3,"events":[{"eventType":"x","payload":1}]}"#),
    ),
    (
        "POST",
        "/streams/{T}",
        Some(r#"{"initialEvent":{"eventType":"x"}}"#),
    ),
    ("DELETE", "/streams/{T}", None),
    ("GET", "/streams/{T}/{S}/events/1/x", None),
    ("POST", "/streams/{T}/{S}/events", None),
];

const NAMED: [&str; 3] = ["s0", "s-1:a@b.c_", "L"];

fn event_type() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z][a-zA-Z0-9._-]{0,12}",
        1 => (1usize..=200).prop_map(|n| "😀".repeat(n)),
        1 => Just("𝄞é a".repeat(50)),
        1 => "[a-z]{1,3}[ é€😀𝄞]{0,5}[a-z]{1,3}",
        1 => Just("x".repeat(200)),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(|f| json!(f)),
        "\\PC{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::from),
            prop::collection::btree_map("\\PC{0,6}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn payload() -> impl Strategy<Value = String> {
    let odd = prop::sample::select(vec![
        r#"{"z":1,"a":[1.50,"x"],"":{"":null}}"#,
        r#""\ud83d\ude00 \u0000 \"q\" \\ \u2028""#,
        "12345678901234567890",
        "-9223372036854775808",
        "-0",
        "1e300",
        "0.1",
        "[]",
        "{}",
        r#""""#,
        r#"{"b":1,"a":2,"é":"😀𝄞"}"#,
    ]);
    prop_oneof![
        6 => json_value().prop_map(|v| v.to_string()),
        3 => odd.prop_map(str::to_owned),
        // The largest payload an event may carry (no metadata).
        1 => Just(format!("\"{}\"", "🦀".repeat((256 * 1024 - 2 - 2) / 4))),
    ]
}

fn new_event() -> impl Strategy<Value = Ev> {
    (
        event_type(),
        payload(),
        prop::option::weighted(0.3, json_value().prop_map(|v| json!({"m": v}).to_string())),
        prop::option::weighted(0.7, any::<u128>()),
    )
        .prop_map(|(event_type, payload, metadata, id)| Ev {
            event_type,
            payload,
            metadata,
            id,
        })
}

fn events() -> impl Strategy<Value = Vec<Ev>> {
    prop_oneof![
        8 => prop::collection::vec(new_event(), 1..4),
        1 => prop::collection::vec(new_event(), 1..30),
    ]
    .prop_map(|mut events| {
        // At most one event of the largest size per request (1 MiB body).
        let mut big = false;
        events.retain(|e| {
            let is_big = e.payload.len() > 100_000;
            let keep = !(is_big && big);
            big |= is_big;
            keep
        });
        // No id twice in a request.
        let mut seen = std::collections::HashSet::new();
        for e in &mut events {
            if let Some(id) = e.id
                && !seen.insert(id)
            {
                e.id = None;
            }
        }
        events
    })
}

fn sid() -> impl Strategy<Value = Sid> {
    prop_oneof![
        3 => (0u8..3).prop_map(Sid::Named),
        1 => any::<u8>().prop_map(Sid::Created),
    ]
}

fn exp() -> impl Strategy<Value = Exp> {
    prop_oneof![
        3 => Just(Exp::Current(0)),
        1 => (-2i8..3).prop_map(Exp::Current),
        1 => Just(Exp::NoStream),
        1 => Just(Exp::Exists),
        2 => Just(Exp::Any),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let ty = 0u8..3;
    prop_oneof![
        2 => (ty.clone(), new_event()).prop_map(|(ty, event)| Op::Create { ty, event }),
        6 => (ty.clone(), sid(), exp(), events())
            .prop_map(|(ty, sid, exp, events)| Op::Append { ty, sid, exp, events }),
        2 => (ty.clone(), sid(), -1i8..2, new_event())
            .prop_map(|(ty, sid, off, event)| Op::Put { ty, sid, off, event }),
        3 => any::<u8>().prop_map(Op::Retry),
        1 => (ty.clone(), sid(), exp(), prop::collection::vec(new_event(), 1..3), 2u8..5)
            .prop_map(|(ty, sid, exp, events, writers)| Op::Race {
                ty,
                sid,
                exp,
                events: events
                    .into_iter()
                    .map(|e| Ev { id: None, ..e })
                    .collect(),
                writers,
            }),
        3 => (ty.clone(), sid(), any::<bool>(), prop::option::of(0u8..12),
              prop::option::of(prop_oneof![1u16..5, Just(1000u16)]))
            .prop_map(|(ty, sid, backward, from, limit)| Op::Read { ty, sid, backward, from, limit }),
        1 => (ty.clone(), sid()).prop_map(|(ty, sid)| Op::Details { ty, sid }),
        2 => (ty.clone(), prop_oneof![1u16..4, Just(1000u16)]).prop_map(|(ty, limit)| Op::Feed { ty, limit }),
        1 => (ty.clone(), prop_oneof![1u16..3, Just(1000u16)]).prop_map(|(ty, limit)| Op::List { ty, limit }),
        1 => Just(Op::Types),
        1 => (0..INVALID.len() as u8).prop_map(Op::Invalid),
    ]
}

/// A sequence of 1 to `max` operations.
pub fn sequence(max: usize) -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 1..=max)
}

/// What the fuzzer compares: one answer (or, for a race, the sorted
/// answers), normalized.
type Observation = Value;

/// Drops what legitimately differs between two servers: times, positions,
/// request ids, messages, page keys; ids the server made are replaced by
/// the order they were first seen in (`created-N`, `generated-N`).
pub fn normalize(v: &Value, names: &mut Names) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = serde_json::Map::new();
            for (k, v) in m {
                match k.as_str() {
                    "createdAt" | "updatedAt" | "at" | "position" | "lastPosition"
                    | "requestId" | "message" => {}
                    "nextPageKey" => {
                        out.insert(k.clone(), json!("<key>"));
                    }
                    "streamId" => {
                        out.insert(k.clone(), json!(names.stream(v.as_str().unwrap_or(""))));
                    }
                    "eventId" => {
                        out.insert(k.clone(), json!(names.event(v.as_str().unwrap_or(""))));
                    }
                    _ => {
                        out.insert(k.clone(), normalize(v, names));
                    }
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(|v| normalize(v, names)).collect()),
        other => other.clone(),
    }
}

/// The server-made ids one side has seen, in order.
#[derive(Default, Clone)]
pub struct Names {
    created: Vec<String>,
    generated: HashMap<String, usize>,
    client_ids: std::collections::HashSet<String>,
}

impl Names {
    fn stream(&mut self, id: &str) -> String {
        match self.created.iter().position(|c| c == id) {
            Some(i) => format!("created-{i}"),
            None => id.to_owned(),
        }
    }

    fn event(&mut self, id: &str) -> String {
        if self.client_ids.contains(id) {
            return id.to_owned();
        }
        let n = self.generated.len();
        format!(
            "generated-{}",
            self.generated.entry(id.to_owned()).or_insert(n)
        )
    }
}

/// One side of the comparison: a client and what it has learned.
struct Side {
    api: Api,
    names: Names,
    /// Requests sent so far that may be retried: method, path, body.
    sent: Vec<(Method, String, String)>,
}

struct Ctx {
    types: [String; 3],
}

impl Ctx {
    fn new() -> Ctx {
        let a = unique_type("fz");
        let long: String = format!("{a}L{}", "x".repeat(100))
            .chars()
            .take(100)
            .collect();
        Ctx {
            types: [format!("{a}a"), format!("{a}b"), long],
        }
    }

    fn ty(&self, i: u8) -> &str {
        &self.types[i as usize % 3]
    }
}

fn long_id() -> String {
    "aZ09_.-:@".repeat(15).chars().take(128).collect()
}

impl Side {
    fn sid(&self, sid: Sid) -> String {
        match sid {
            Sid::Named(2) => long_id(),
            Sid::Named(i) => NAMED[i as usize % 2].to_owned(),
            Sid::Created(k) if !self.names.created.is_empty() => {
                self.names.created[k as usize % self.names.created.len()].clone()
            }
            Sid::Created(_) => NAMED[0].to_owned(),
        }
    }

    async fn send(&self, method: Method, path: &str, body: Option<&str>) -> Answer {
        match body {
            Some(b) => {
                self.api
                    .raw(
                        method,
                        path,
                        Some("application/json"),
                        b.as_bytes().to_vec(),
                    )
                    .await
            }
            None => self.api.request(method, path, None, &[]).await,
        }
    }

    fn observe(&mut self, a: &Answer) -> Observation {
        let body: Value = serde_json::from_str(&a.text).unwrap_or(json!({"text": a.text}));
        json!({"status": a.status.as_u16(), "body": normalize(&body, &mut self.names)})
    }

    async fn revision(&self, ty: &str, id: &str) -> i64 {
        let a = self.api.get(&format!("/streams/{ty}/{id}/details")).await;
        if a.status == 200 {
            a.json()["stream"]["revision"].as_i64().unwrap()
        } else {
            0
        }
    }
}

fn expectation_text(exp: Exp, current: i64) -> String {
    match exp {
        Exp::Current(off) => (current + i64::from(off)).max(0).to_string(),
        Exp::NoStream => r#""no-stream""#.into(),
        Exp::Exists => r#""exists""#.into(),
        Exp::Any => r#""any""#.into(),
    }
}

fn batch_text(exp: &str, events: &[Ev]) -> String {
    format!(
        r#"{{"expectedRevision":{exp},"events":[{}]}}"#,
        events
            .iter()
            .map(Ev::to_json_text)
            .collect::<Vec<_>>()
            .join(",")
    )
}

/// Pages through `path` (a feed or a listing) and returns the normalized
/// pages' content.
async fn read_all(side: &mut Side, path: &str, limit: u16, feed: bool) -> Observation {
    let mut pages = Vec::new();
    let mut cursor = String::new();
    for _ in 0..200 {
        let sep = if path.contains('?') { '&' } else { '?' };
        let a = side
            .api
            .get(&format!("{path}{sep}limit={limit}{cursor}"))
            .await;
        if a.status != 200 {
            return side.observe(&a);
        }
        let body = a.json();
        let (items, more, next) = if feed {
            let p = &body["eventPage"];
            (
                p["events"].clone(),
                p["hasMore"] == true,
                format!("&after-position={}", p["lastPosition"]),
            )
        } else {
            let p = &body["streamPage"];
            (
                p["streams"].clone(),
                p["hasMore"] == true,
                format!("&next-page-key={}", p["nextPageKey"].as_str().unwrap_or("")),
            )
        };
        pages.push(items);
        if !more {
            break;
        }
        cursor = next;
    }
    let mut all: Vec<Value> = pages
        .into_iter()
        .flat_map(|p| p.as_array().cloned().unwrap_or_default())
        .collect();
    if feed {
        // Only the order within a stream is promised across backends.
        all.sort_by(|a, b| a["streamId"].as_str().cmp(&b["streamId"].as_str()));
    }
    normalize(&Value::Array(all), &mut side.names)
}

/// Runs `op` on one side; `current` is the reference model's revision of
/// the addressed stream (so both sides get the same expectation).
async fn run_op(
    side: &mut Side,
    ctx: &Ctx,
    op: &Op,
    current: &dyn Fn(&str, &str) -> i64,
) -> Observation {
    match op {
        Op::Create { ty, event } => {
            let path = format!("/streams/{}", ctx.ty(*ty));
            let body = format!(r#"{{"initialEvent":{}}}"#, event.to_json_text());
            let a = side.send(Method::POST, &path, Some(&body)).await;
            if a.status == 201 {
                let id = a.json()["stream"]["streamId"].as_str().unwrap().to_owned();
                side.names.created.push(id);
            }
            side.observe(&a)
        }
        Op::Append {
            ty,
            sid,
            exp,
            events,
        } => {
            let (t, id) = (ctx.ty(*ty), side.sid(*sid));
            let path = format!("/streams/{t}/{id}/events");
            let body = batch_text(&expectation_text(*exp, current(t, &id)), events);
            let a = side.send(Method::POST, &path, Some(&body)).await;
            side.sent.push((Method::POST, path, body));
            side.observe(&a)
        }
        Op::Put {
            ty,
            sid,
            off,
            event,
        } => {
            let (t, id) = (ctx.ty(*ty), side.sid(*sid));
            let rev = (current(t, &id) + 1 + i64::from(*off)).max(0);
            let path = format!("/streams/{t}/{id}/events/{rev}");
            let body = format!(r#"{{"event":{}}}"#, event.to_json_text());
            let a = side.send(Method::PUT, &path, Some(&body)).await;
            side.sent.push((Method::PUT, path, body));
            side.observe(&a)
        }
        Op::Retry(n) => {
            if side.sent.is_empty() {
                return json!("nothing to retry");
            }
            let (m, path, body) = side.sent[*n as usize % side.sent.len()].clone();
            let a = side.send(m, &path, Some(&body)).await;
            side.observe(&a)
        }
        Op::Race {
            ty,
            sid,
            exp,
            events,
            writers,
        } => {
            let (t, id) = (ctx.ty(*ty), side.sid(*sid));
            let path = format!("/streams/{t}/{id}/events");
            let body = batch_text(&expectation_text(*exp, current(t, &id)), events);
            let api = Arc::new(side.api.clone());
            let tasks: Vec<_> = (0..*writers)
                .map(|_| {
                    let (api, path, body) = (api.clone(), path.clone(), body.clone());
                    tokio::spawn(async move {
                        api.raw(
                            Method::POST,
                            &path,
                            Some("application/json"),
                            body.into_bytes(),
                        )
                        .await
                    })
                })
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                let a = t.await.unwrap();
                let mut o = side.observe(&a);
                // Which writer's generated ids won is not comparable.
                o["body"].as_object_mut().map(|b| b.remove("events"));
                out.push(o.to_string());
            }
            out.sort();
            json!(out)
        }
        Op::Read {
            ty,
            sid,
            backward,
            from,
            limit,
        } => {
            let (t, id) = (ctx.ty(*ty), side.sid(*sid));
            let mut q = Vec::new();
            if *backward {
                q.push("direction=backward".to_owned());
                if let Some(f) = from {
                    q.push(format!("before-revision={f}"));
                }
            } else if let Some(f) = from {
                q.push(format!("after-revision={f}"));
            }
            if let Some(l) = limit {
                q.push(format!("limit={l}"));
            }
            let a = side
                .api
                .get(&format!("/streams/{t}/{id}/events?{}", q.join("&")))
                .await;
            side.observe(&a)
        }
        Op::Details { ty, sid } => {
            let (t, id) = (ctx.ty(*ty), side.sid(*sid));
            let a = side.api.get(&format!("/streams/{t}/{id}/details")).await;
            side.observe(&a)
        }
        Op::Feed { ty, limit } => {
            read_all(
                side,
                &format!("/streams/{}/events", ctx.ty(*ty)),
                *limit,
                true,
            )
            .await
        }
        Op::List { ty, limit } => {
            read_all(side, &format!("/streams/{}", ctx.ty(*ty)), *limit, false).await
        }
        Op::Types => {
            let a = side.api.get("/streams").await;
            let mut body = a.json();
            if let Some(list) = body["streamTypes"].as_array_mut() {
                list.retain(|e| ctx.types.iter().any(|t| e["streamType"] == t.as_str()));
            }
            json!({"status": a.status.as_u16(), "body": body})
        }
        Op::Invalid(i) => {
            let (m, p, b) = INVALID[*i as usize % INVALID.len()];
            let path = p.replace("{T}", ctx.ty(0)).replace("{S}", NAMED[0]);
            let a = side
                .send(Method::from_bytes(m.as_bytes()).unwrap(), &path, b)
                .await;
            let o = side.observe(&a);
            json!({"status": o["status"], "code": o["body"]["code"]})
        }
    }
}

fn is_relayed(op: &Op) -> bool {
    matches!(op, Op::Feed { .. } | Op::List { .. } | Op::Types)
}

/// Runs `ops` on a fresh reference model and on `target` in lockstep;
/// the first disagreement is an error naming the step.
pub async fn check(target: &Target, ops: &[Op]) -> Result<(), String> {
    let model = spawn().await;
    let ctx = Ctx::new();
    let mut reference = Side {
        api: model.api.clone(),
        names: Names::default(),
        sent: Vec::new(),
    };
    let mut other = Side {
        api: target.api.clone(),
        names: Names::default(),
        sent: Vec::new(),
    };
    for op in ops {
        for e in op_events(op) {
            if let Some(id) = e.id {
                let id = uuid::Uuid::from_u128(id).to_string();
                reference.names.client_ids.insert(id.clone());
                other.names.client_ids.insert(id);
            }
        }
    }
    for (step, op) in ops.iter().enumerate() {
        // The expectation both sides get: the model's current revision of
        // the stream the op addresses (by the model's own names).
        let revisions = current_revisions(&reference, &ctx).await;
        let current = |t: &str, id: &str| {
            revisions
                .get(&(t.to_owned(), id.to_owned()))
                .copied()
                .unwrap_or(0)
        };
        let want = run_op(&mut reference, &ctx, op, &current).await;
        // The other side names created streams itself; map the model's
        // revisions onto its names by position.
        let other_revisions: HashMap<(String, String), i64> = revisions
            .iter()
            .map(|((t, id), r)| {
                let id = match reference.names.created.iter().position(|c| c == id) {
                    Some(i) => other.names.created.get(i).cloned().unwrap_or_default(),
                    None => id.clone(),
                };
                ((t.clone(), id), *r)
            })
            .collect();
        let other_current = |t: &str, id: &str| {
            other_revisions
                .get(&(t.to_owned(), id.to_owned()))
                .copied()
                .unwrap_or(0)
        };
        let deadline = Instant::now()
            + if is_relayed(op) && target.profile.feed_is_eventually_consistent {
                target.profile.settle
            } else {
                Duration::ZERO
            };
        // Names are learned from the answer that is compared last: a stale
        // read of an eventually consistent feed (some appends not relayed
        // yet) must not name the generated ids in its own order.
        let names = other.names.clone();
        loop {
            other.names = names.clone();
            let got = run_op(&mut other, &ctx, op, &other_current).await;
            if got == want {
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "step {step} ({op:?}) disagrees on {}:\n  reference model: {}\n  {}: {}",
                    target.profile.name, want, target.profile.name, got
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

fn op_events(op: &Op) -> Vec<&Ev> {
    match op {
        Op::Create { event, .. } | Op::Put { event, .. } => vec![event],
        Op::Append { events, .. } | Op::Race { events, .. } => events.iter().collect(),
        _ => vec![],
    }
}

/// The model's revision of every stream the sequence may address.
async fn current_revisions(side: &Side, ctx: &Ctx) -> HashMap<(String, String), i64> {
    let mut out = HashMap::new();
    for i in 0..3u8 {
        let t = ctx.ty(i);
        let mut ids: Vec<String> = vec![NAMED[0].into(), NAMED[1].into(), long_id()];
        ids.extend(side.names.created.iter().cloned());
        for id in ids {
            let r = side.revision(t, &id).await;
            if r > 0 {
                out.insert((t.to_owned(), id), r);
            }
        }
    }
    out
}

/// How many sequences, how long, which seed: from the environment, with
/// this target's default number of cases.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Sequences per run (`EVENT_STORE_DIFFFUZZ_CASES`).
    pub cases: u32,
    /// The longest sequence.
    pub max_ops: usize,
    /// Run batches of new seeds for this long (`EVENT_STORE_DIFFFUZZ_SECONDS`).
    pub duration: Option<Duration>,
    /// The first seed (`EVENT_STORE_DIFFFUZZ_SEED`); random otherwise.
    pub seed: Option<u64>,
    /// Shrinking steps at most (`EVENT_STORE_DIFFFUZZ_SHRINK`).
    pub max_shrink_iters: u32,
}

impl Settings {
    /// From the environment, `cases` and `max_ops` unless it says otherwise.
    pub fn from_env(cases: u32, max_ops: usize) -> Settings {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Settings {
            cases: var("EVENT_STORE_DIFFFUZZ_CASES")
                .map(|v| v.parse().expect("EVENT_STORE_DIFFFUZZ_CASES"))
                .unwrap_or(cases),
            max_ops,
            duration: var("EVENT_STORE_DIFFFUZZ_SECONDS")
                .map(|v| Duration::from_secs(v.parse().expect("EVENT_STORE_DIFFFUZZ_SECONDS"))),
            seed: var("EVENT_STORE_DIFFFUZZ_SEED")
                .map(|v| v.parse().expect("EVENT_STORE_DIFFFUZZ_SEED is a number")),
            max_shrink_iters: var("EVENT_STORE_DIFFFUZZ_SHRINK")
                .map(|v| v.parse().expect("EVENT_STORE_DIFFFUZZ_SHRINK"))
                .unwrap_or(64),
        }
    }
}

fn rng(seed: u64) -> TestRng {
    let mut bytes = [0u8; 32];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(
            &(seed
                .wrapping_add(i as u64)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .to_le_bytes(),
        );
    }
    TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
}

/// Runs the differential fuzzer against `target` (made inside `rt`) with
/// `settings`; panics with the minimal failing sequence and its seed.
pub fn run(rt: &tokio::runtime::Runtime, target: &Target, settings: &Settings) {
    run_with(
        rt,
        target,
        settings,
        None::<fn() -> std::future::Ready<Target>>,
    )
}

/// [`run`], on a fresh target from `fresh` for every sequence when given
/// (`target` then only names the target in messages): for a backend whose
/// answers slow down as its data grows, or whose state one sequence must
/// not leave to the next.
pub fn run_with<F, Fut>(
    rt: &tokio::runtime::Runtime,
    target: &Target,
    settings: &Settings,
    fresh: Option<F>,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Target>,
{
    let started = Instant::now();
    let mut seed = settings.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    let mut batches = 0;
    loop {
        let config = Config {
            cases: settings.cases,
            max_shrink_iters: settings.max_shrink_iters,
            failure_persistence: None,
            ..Config::default()
        };
        let mut runner = TestRunner::new_with_rng(config, rng(seed));
        let strategy = sequence(settings.max_ops);
        eprintln!(
            "difffuzz {}: {} sequences, seed {seed}",
            target.profile.name, settings.cases
        );
        let result = runner.run(&strategy, |ops| {
            rt.block_on(async {
                match &fresh {
                    Some(make) => check(&make().await, &ops).await,
                    None => check(target, &ops).await,
                }
            })
            .map_err(TestCaseError::fail)
        });
        match result {
            Ok(()) => {}
            Err(TestError::Fail(reason, ops)) => panic!(
                "differential fuzzing found a disagreement between {} and the reference model\n\
                 seed: {seed} (rerun: EVENT_STORE_DIFFFUZZ_SEED={seed})\n\
                 minimal sequence ({} steps):\n{:#?}\n{reason}",
                target.profile.name,
                ops.len(),
                ops
            ),
            Err(TestError::Abort(reason)) => panic!("difffuzz aborted (seed {seed}): {reason}"),
        }
        batches += 1;
        match settings.duration {
            Some(d) if started.elapsed() < d => seed = seed.wrapping_add(0x1_0000_0001),
            _ => break,
        }
    }
    eprintln!(
        "difffuzz {}: {batches} batch(es) of {} sequences agree ({:?})",
        target.profile.name,
        settings.cases,
        started.elapsed()
    );
}
