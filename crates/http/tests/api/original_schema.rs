//! Our answers on the original service's endpoints validate against the
//! original OpenAPI document's schemas.

use serde_json::{Value, json};

use crate::support::spawn;

fn original() -> Value {
    // A copy of the original Go service's published document.
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/original-openapi.json");
    let text = std::fs::read_to_string(path).expect("the original OpenAPI document");
    serde_json::from_str(&text).unwrap()
}

/// Checks `value` against an OpenAPI 3.0 schema: `$ref`, `type`,
/// `format` (date-time, uuid), `properties`, `required`, `items`.
fn validate(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/components/schemas/");
        let target = &doc["components"]["schemas"][name];
        assert!(!target.is_null(), "unresolved {r}");
        return validate(doc, target, value, at, errors);
    }
    if let Some(t) = schema.get("type").and_then(Value::as_str) {
        let ok = match t {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.as_i64().is_some() || value.as_u64().is_some(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            other => panic!("schema type {other} not handled"),
        };
        if !ok {
            errors.push(format!("{at}: expected {t}, got {value}"));
            return;
        }
    }
    if let (Some(f), Some(s)) = (schema.get("format").and_then(Value::as_str), value.as_str()) {
        let ok = match f {
            "date-time" => chrono_like_rfc3339(s),
            "uuid" => uuid::Uuid::parse_str(s).is_ok(),
            _ => true,
        };
        if !ok {
            errors.push(format!("{at}: {s:?} is not {f}"));
        }
    }
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for r in required {
            let r = r.as_str().unwrap();
            if value.get(r).is_none() {
                errors.push(format!("{at}: missing required {r}"));
            }
        }
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, sub) in props {
            if let Some(v) = value.get(name) {
                validate(doc, sub, v, &format!("{at}.{name}"), errors);
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), value.as_array()) {
        for (i, v) in arr.iter().enumerate() {
            validate(doc, items, v, &format!("{at}[{i}]"), errors);
        }
    }
}

fn chrono_like_rfc3339(s: &str) -> bool {
    eventstore_core::Timestamp::parse(s).is_ok()
}

/// Validates an answer against the original's response schema for
/// `path`/`method`/`status`.
#[track_caller]
fn check(doc: &Value, path: &str, method: &str, status: u16, body: &Value) {
    let response = &doc["paths"][path][method]["responses"][status.to_string()];
    assert!(
        !response.is_null(),
        "the original documents {method} {path} {status}"
    );
    let schema = &response["content"]["application/json"]["schema"];
    assert!(!schema.is_null(), "{method} {path} {status} has a schema");
    let mut errors = vec![];
    validate(doc, schema, body, "$", &mut errors);
    assert!(
        errors.is_empty(),
        "{method} {path} {status}: {errors:?}\n{body}"
    );
}

#[test]
fn the_validator_rejects_what_it_should() {
    let doc = original();
    let schema = json!({"$ref": "#/components/schemas/Stream"});
    let mut errors = vec![];
    validate(
        &doc,
        &schema,
        &json!({"streamId": "x", "revision": "1"}),
        "$",
        &mut errors,
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("missing required streamType")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("expected integer")),
        "{errors:?}"
    );
    assert!(errors.iter().any(|e| e.contains("not uuid")), "{errors:?}");
}

#[tokio::test]
async fn answers_validate_against_the_original_schemas() {
    let doc = original();
    let s = spawn().await;

    let live = s.get("/liveness-check").await.assert_status(200);
    check(&doc, "/liveness-check", "get", 200, &live);

    let created = s
        .post(
            "/streams/test-stream-type",
            &json!({"initialEvent": {"eventType": "something-important-happened", "payload": {"name": "test name"}}}),
        )
        .await
        .assert_status(201);
    check(&doc, "/streams/{streamType}", "post", 201, &created);
    let id = created["stream"]["streamId"].as_str().unwrap();

    let appended = s
        .put(
            &format!("/streams/test-stream-type/{id}/events/2"),
            &json!({"event": {"eventType": "renamed", "payload": {"name": "other"}}}),
        )
        .await
        .assert_status(201);
    check(
        &doc,
        "/streams/{streamType}/{streamId}/events/{streamRevision}",
        "put",
        201,
        &appended,
    );

    let details = s
        .get(&format!("/streams/test-stream-type/{id}/details"))
        .await
        .assert_status(200);
    check(
        &doc,
        "/streams/{streamType}/{streamId}/details",
        "get",
        200,
        &details,
    );

    for path in [
        format!("/streams/test-stream-type/{id}/events"),
        format!("/streams/test-stream-type/{id}/events?after-revision=1"),
        format!("/streams/test-stream-type/{id}/events?after-revision=2"),
    ] {
        let events = s.get(&path).await.assert_status(200);
        check(
            &doc,
            "/streams/{streamType}/{streamId}/events",
            "get",
            200,
            &events,
        );
    }

    for path in [
        "/streams/test-stream-type".to_owned(),
        "/streams/test-stream-type?updated-after=2020-01-01T00:00:00Z".to_owned(),
        "/streams/no-such-type".to_owned(),
    ] {
        let listed = s.get(&path).await.assert_status(200);
        check(&doc, "/streams/{streamType}", "get", 200, &listed);
    }
}
