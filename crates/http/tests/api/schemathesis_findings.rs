//! Regression tests of what schemathesis (`scripts/schemathesis.sh`) found:
//! the OpenAPI document must state every rule the server enforces, so that
//! data valid by the document is accepted and invalid data is a 4xx JSON
//! error.

use serde_json::{Value, json};
use utoipa::OpenApi;

use crate::support::spawn;

fn doc() -> Value {
    serde_json::to_value(eventstore_http::ApiDoc::openapi()).unwrap()
}

fn parameter<'a>(doc: &'a Value, path: &str, method: &str, name: &str) -> &'a Value {
    doc["paths"][path][method]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{method} {path} has parameter {name}"))
}

/// Found: an event type with a control character or edge white space was
/// valid by the document (only its length was stated) and a 400 from the
/// server.
#[tokio::test]
async fn event_type_rule_is_in_the_document() {
    let doc = doc();
    let schema = &doc["components"]["schemas"]["EventType"];
    assert_eq!(
        schema["pattern"],
        eventstore_core::openapi::EVENT_TYPE_PATTERN
    );
    assert_eq!(schema["minLength"], 1);
    assert_eq!(schema["maxLength"], 200);
    let pattern = schema["pattern"].as_str().unwrap();
    // Control characters anywhere, white space (what `str::trim` removes)
    // at the ends.
    for class in [
        r"\u0000-\u001f",
        r"\u007f-\u009f",
        r"\u2000-\u200a",
        r"\u3000",
    ] {
        assert!(pattern.contains(class), "{class} in {pattern}");
    }

    let s = spawn().await;
    for bad in [
        " x",
        "x ",
        "x\u{85}",
        "\u{3000}x",
        "x\u{a0}",
        "a\u{7f}b",
        "a\tb",
    ] {
        s.post(
            "/streams/order",
            &json!({"initialEvent": {"eventType": bad, "payload": {}}}),
        )
        .await
        .assert_error(400, "bad-request");
    }
    for good in [
        "x y",
        "\u{1f600}",
        "a\u{200b}b",
        "Ünïcödé-type.v2",
        "\u{feff}x",
    ] {
        s.post(
            "/streams/order",
            &json!({"initialEvent": {"eventType": good, "payload": {}}}),
        )
        .await
        .assert_status(201);
    }
}

/// Found: `events: []` was valid by the document and a 400 from the
/// server; the count is now stated (1-100, more is a 413).
#[tokio::test]
async fn batch_event_count_is_in_the_document() {
    let doc = doc();
    let events = &doc["components"]["schemas"]["BatchAppendBody"]["properties"]["events"];
    assert_eq!(events["minItems"], 1);
    assert_eq!(events["maxItems"], 100);

    let s = spawn().await;
    s.post(
        "/streams/order/s1/events",
        &json!({"expectedRevision": 0, "events": []}),
    )
    .await
    .assert_error(400, "bad-request");
    let many: Vec<Value> = (0..101)
        .map(|i| json!({"eventType": "x", "payload": i}))
        .collect();
    s.post(
        "/streams/order/s1/events",
        &json!({"expectedRevision": 0, "events": many}),
    )
    .await
    .assert_error(413, "payload-too-large");
}

/// Found: `after-revision` with `direction=backward`, or `before-revision`
/// on a forward read, is a 400; OpenAPI cannot state a dependency between
/// parameters, so the parameters' descriptions do (and the schemathesis run
/// sends only the combinations that apply as valid data).
#[tokio::test]
async fn read_direction_parameters_say_when_they_apply() {
    let doc = doc();
    let path = "/streams/{streamType}/{streamId}/events";
    for name in ["after-revision", "before-revision"] {
        let d = parameter(&doc, path, "get", name)["description"]
            .as_str()
            .unwrap();
        assert!(d.contains("only") && d.contains("400"), "{name}: {d}");
    }
    let s = spawn().await;
    let id = s.create("order", json!({})).await;
    s.get(&format!(
        "/streams/order/{id}/events?direction=forward&before-revision=0"
    ))
    .await
    .assert_error(400, "bad-request");
    s.get(&format!(
        "/streams/order/{id}/events?direction=backward&after-revision=0"
    ))
    .await
    .assert_error(400, "bad-request");
}

/// Found: any text was a valid `next-page-key` by the document; keys are
/// opaque, and the document now says that anything but a key the server
/// gave for this listing is a 400.
#[tokio::test]
async fn page_keys_are_documented_as_opaque() {
    let doc = doc();
    let d = parameter(&doc, "/streams/{streamType}", "get", "next-page-key")["description"]
        .as_str()
        .unwrap();
    assert!(d.contains("opaque") && d.contains("400"), "{d}");
    let s = spawn().await;
    // Not base64; a key with a bad time; a key of another listing.
    for key in ["x!", "czEKb3JkZXIKeAphYmM", "czEKb3RoZXIKMQphYmM"] {
        s.get(&format!("/streams/order?next-page-key={key}"))
            .await
            .assert_error(400, "bad-request");
    }
}

/// Found: `"expectedRevision": 143.0` is an integer by JSON Schema (the
/// document says `integer`) and was a 400; an integral number is now taken
/// as that integer, a fractional or negative one is still a 400.
#[tokio::test]
async fn expected_revision_may_be_an_integral_float() {
    let s = spawn().await;
    let batch = |expected: Value| json!({"expectedRevision": expected, "events": [{"eventType": "x", "payload": 1}]});
    s.post("/streams/order/s1/events", &batch(json!(0.0)))
        .await
        .assert_status(201);
    let body = s
        .raw(
            reqwest::Method::POST,
            "/streams/order/s1/events",
            Some("application/json"),
            br#"{"expectedRevision": 1.0, "events": [{"eventType": "x", "payload": 2}]}"#.to_vec(),
        )
        .await
        .assert_status(201);
    assert_eq!(body["lastRevision"], 2);
    let conflict = s
        .post("/streams/order/s1/events", &batch(json!(143.0)))
        .await
        .assert_error(409, "wrong-expected-revision");
    assert_eq!(conflict["details"]["actualRevision"], 2);
    for bad in [json!(2.5), json!(-1.0), json!(-1), json!(1e20)] {
        s.post("/streams/order/s1/events", &batch(bad))
            .await
            .assert_error(400, "bad-request");
    }
}
