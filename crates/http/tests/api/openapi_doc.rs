//! The generated OpenAPI document describes every route the router serves.

use std::collections::BTreeSet;

use serde_json::Value;
use utoipa::OpenApi;

use crate::support::spawn;

fn doc() -> Value {
    serde_json::to_value(eventstore_http::ApiDoc::openapi()).unwrap()
}

fn documented_operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "delete", "patch", "head", "options"] {
            if item.get(method).is_some() {
                ops.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

#[test]
fn every_route_of_the_router_is_documented_and_nothing_else() {
    let doc = doc();
    let documented = documented_operations(&doc);
    let served: BTreeSet<(String, String)> = eventstore_http::routes()
        .into_iter()
        .filter_map(|r| r.openapi_path.map(|p| (r.method.to_string(), p.to_owned())))
        .collect();
    assert_eq!(served, documented);
    // Every API endpoint of the contract is among them.
    for (m, p) in [
        ("GET", "/liveness-check"),
        ("POST", "/streams/{streamType}"),
        ("GET", "/streams/{streamType}"),
        ("GET", "/streams/{streamType}/{streamId}/details"),
        (
            "PUT",
            "/streams/{streamType}/{streamId}/events/{streamRevision}",
        ),
        ("POST", "/streams/{streamType}/{streamId}/events"),
        ("GET", "/streams/{streamType}/{streamId}/events"),
        ("GET", "/events"),
        ("GET", "/streams/{streamType}/events"),
        ("GET", "/streams"),
        ("GET", "/openapi/openapi-spec.json"),
        ("GET", "/openapi/"),
        ("GET", "/"),
    ] {
        assert!(
            documented.contains(&(m.into(), p.into())),
            "{m} {p} is documented"
        );
    }
}

#[test]
fn operations_describe_parameters_and_error_answers() {
    let doc = doc();
    assert!(
        doc["info"]["title"]
            .as_str()
            .unwrap()
            .contains("Event Store")
    );
    assert!(doc["info"]["description"].as_str().unwrap().len() > 100);
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "ErrorBody",
        "ErrorCode",
        "Stream",
        "Event",
        "NewEvent",
        "StreamType",
        "StreamId",
        "Revision",
        "Position",
        "BatchAppendBody",
        "ExpectedRevision",
        "FeedPageEnvelope",
    ] {
        assert!(schemas.contains_key(name), "schema {name}");
    }
    let error_codes = &schemas["ErrorCode"]["enum"];
    for code in [
        "bad-request",
        "not-found",
        "wrong-expected-revision",
        "duplicate-event",
        "payload-too-large",
        "unsupported-media-type",
        "unauthorized",
        "internal",
    ] {
        assert!(
            error_codes.as_array().unwrap().iter().any(|c| c == code),
            "{code}"
        );
    }
    assert_eq!(schemas["StreamType"]["maxLength"], 100);
    assert!(schemas["StreamType"]["pattern"].is_string());
    assert_eq!(schemas["StreamId"]["maxLength"], 128);

    for (path, item) in doc["paths"].as_object().unwrap() {
        let template_params: BTreeSet<String> = path
            .split('/')
            .filter(|s| s.starts_with('{'))
            .map(|s| s.trim_matches(|c| c == '{' || c == '}').to_owned())
            .collect();
        for (method, op) in item.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            let what = format!("{method} {path}");
            assert!(
                op["summary"].is_string() || op["description"].is_string(),
                "{what} described"
            );
            assert!(op["operationId"].is_string(), "{what} has an operationId");
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let path_params: BTreeSet<String> = params
                .iter()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap().to_owned())
                .collect();
            assert_eq!(path_params, template_params, "{what}: path parameters");
            for p in &params {
                assert!(
                    p["description"].is_string(),
                    "{what}: parameter {} described",
                    p["name"]
                );
                assert!(
                    p["schema"].is_object(),
                    "{what}: parameter {} has a schema",
                    p["name"]
                );
            }
            let responses = op["responses"].as_object().unwrap();
            assert!(!responses.is_empty(), "{what}");
            for (status, r) in responses {
                assert!(r["description"].is_string(), "{what} {status}");
                if status.starts_with('4') || status.starts_with('5') {
                    let schema = &r["content"]["application/json"]["schema"]["$ref"];
                    assert_eq!(schema, "#/components/schemas/ErrorBody", "{what} {status}");
                }
            }
            let tags = op["tags"].as_array().unwrap();
            if tags[0] != "meta" {
                for status in ["400", "401", "500"] {
                    if what == "get /streams" && status == "400" {
                        continue;
                    }
                    assert!(responses.contains_key(status), "{what} documents {status}");
                }
                if op.get("requestBody").is_some() {
                    for status in ["413", "415"] {
                        assert!(responses.contains_key(status), "{what} documents {status}");
                    }
                }
            }
        }
    }
}

#[tokio::test]
async fn every_documented_route_is_answered_by_the_router() {
    let s = spawn().await;
    let doc = doc();
    for (method, path) in documented_operations(&doc) {
        let concrete = path
            .replace("{streamType}", "order")
            .replace("{streamId}", "s1")
            .replace("{streamRevision}", "2")
            .replace(
                "{path}",
                if path.starts_with("/ui") {
                    "index.html"
                } else {
                    "swagger-ui.css"
                },
            );
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let a = s.request(m, &concrete, None, &[]).await;
        assert_ne!(a.status.as_u16(), 405, "{method} {path}");
        if a.status == 404 {
            let body = a.json();
            assert_ne!(
                body["message"], "no such route",
                "{method} {path} is routed"
            );
        }
    }
    // The served document is the generated one.
    let served = s.get("/openapi/openapi-spec.json").await.assert_status(200);
    assert_eq!(served, doc);
}
