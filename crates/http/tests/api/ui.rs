//! The web UI's files, redirects, and no CORS unless configured (what the
//! contract suite does not cover: it runs on hosts with other settings).

use crate::support::spawn;

#[tokio::test]
async fn pages_redirects_ui_and_no_cors_by_default() {
    let s = spawn().await;
    let root = s.get("/").await;
    assert!(root.status.is_redirection());
    let expected = if eventstore_http::ui_available() {
        "ui/"
    } else {
        "openapi/"
    };
    assert_eq!(root.header("location"), Some(expected));
    let ui = s.get("/ui").await;
    assert!(ui.status.is_redirection());
    assert_eq!(ui.header("location"), Some("ui/"));

    let index = s.get("/ui/").await;
    assert_eq!(index.status, 200);
    assert!(
        index
            .header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(index.text.contains("<html"));
    let etag = index.header("etag").unwrap().to_owned();
    let again = s
        .request(
            reqwest::Method::GET,
            "/ui/index.html",
            None,
            &[("if-none-match", &etag)],
        )
        .await;
    assert_eq!(again.status, 304);
    if eventstore_http::ui_available() {
        let css = s.get("/ui/style.css").await;
        assert_eq!(css.status, 200);
        assert!(css.header("content-type").unwrap().starts_with("text/css"));
    }
    s.get("/ui/no-such-file.js")
        .await
        .assert_error(404, "not-found");

    let bare = s.get("/openapi").await;
    assert!(bare.status.is_redirection());
    assert_eq!(bare.header("location"), Some("openapi/"));
    let swagger = s.get("/openapi/").await;
    assert_eq!(swagger.status, 200);
    assert!(
        swagger
            .header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let spec = s.get("/openapi/openapi-spec.json").await.assert_status(200);
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    let init = s.get("/openapi/swagger-initializer.js").await;
    assert_eq!(init.status, 200);
    assert!(init.text.contains("openapi-spec.json"));

    // CORS is off by default: no preflight answer, no allow-origin header
    // (the pages above are same-origin and need none).
    let pre = s
        .request(
            reqwest::Method::OPTIONS,
            "/streams/x",
            None,
            &[
                ("origin", "http://example.test"),
                ("access-control-request-method", "POST"),
            ],
        )
        .await;
    assert!(!pre.status.is_success(), "{}", pre.status);
    assert_eq!(pre.header("access-control-allow-origin"), None);
    let get = s
        .request(
            reqwest::Method::GET,
            "/streams",
            None,
            &[("origin", "http://example.test")],
        )
        .await;
    assert_eq!(get.status, 200);
    assert_eq!(get.header("access-control-allow-origin"), None);
}
