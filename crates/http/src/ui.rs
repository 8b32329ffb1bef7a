//! The web UI's static files, built into the binary, and the pages that
//! are not JSON: the root redirect and the OpenAPI document.

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use rust_embed::Embed;
use utoipa::OpenApi;
use utoipa_swagger_ui::Config;

use crate::error::ApiError;
use crate::openapi::ApiDoc;

/// The files of `crates/http/ui/`, embedded at compile time.
#[derive(Embed)]
#[folder = "ui/"]
struct UiAssets;

/// Marks the stand-in page used until a web UI is written.
const PLACEHOLDER_MARK: &str = "eventstore-ui-placeholder";

/// Whether a real web UI is built in (not just the placeholder page).
pub fn ui_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        UiAssets::get("index.html")
            .is_some_and(|f| !String::from_utf8_lossy(&f.data).contains(PLACEHOLDER_MARK))
    })
}

/// The API's entry page.
///
/// Redirects (relative `Location`) to the web UI when one is built in,
/// else to the interactive API documentation.
#[utoipa::path(
    get,
    path = "/",
    tag = "meta",
    operation_id = "root",
    security(()),
    responses(
        (status = 307, description = "Redirect to `ui/` (the web UI) or, without one, to `openapi/`.",
         headers(("location" = String, description = "`ui/` or `openapi/`, relative"))),
    )
)]
pub(crate) async fn root() -> Redirect {
    if ui_available() {
        Redirect::temporary("ui/")
    } else {
        Redirect::temporary("openapi/")
    }
}

/// `/ui` → `/ui/`, so relative links inside the UI resolve.
pub(crate) async fn ui_redirect() -> Redirect {
    Redirect::permanent("ui/")
}

/// The web UI's start page.
#[utoipa::path(
    get,
    path = "/ui/",
    tag = "meta",
    operation_id = "webUi",
    security(()),
    responses(
        (status = 200, description = "The web UI (HTML).", content_type = "text/html"),
    )
)]
pub(crate) async fn ui_index(headers: HeaderMap) -> Result<Response, ApiError> {
    asset("index.html", &headers)
}

/// A file of the web UI.
#[utoipa::path(
    get,
    path = "/ui/{path}",
    tag = "meta",
    operation_id = "webUiAsset",
    security(()),
    params(("path" = String, Path, description = "The file's path inside the UI (may contain `/`).")),
    responses(
        (status = 200, description = "The file, with its content type."),
        (status = 304, description = "Not modified (the `If-None-Match` ETag matches)."),
        (status = 404, description = "No such file.", body = eventstore_api::ErrorBody),
    )
)]
pub(crate) async fn ui_asset(
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if path.is_empty() || path.ends_with('/') {
        asset(&format!("{path}index.html"), &headers)
    } else {
        asset(&path, &headers)
    }
}

fn asset(path: &str, headers: &HeaderMap) -> Result<Response, ApiError> {
    let file = UiAssets::get(path)
        .ok_or_else(|| ApiError::NotFound(format!("no file {path:?} in the web UI")))?;
    let etag = format!(
        "\"{}\"",
        file.metadata
            .sha256_hash()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let etag = HeaderValue::from_str(&etag).map_err(|e| ApiError::Internal(e.to_string()))?;
    if headers.get(header::IF_NONE_MATCH) == Some(&etag) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    let content_type = HeaderValue::from_str(file.metadata.mimetype())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        Body::from(file.data.into_owned()),
    )
        .into_response())
}

/// The OpenAPI document of this API.
///
/// Generated from the code; it describes every route the server answers.
#[utoipa::path(
    get,
    path = "/openapi/openapi-spec.json",
    tag = "meta",
    operation_id = "openapiSpec",
    security(()),
    responses(
        (status = 200, description = "The OpenAPI document (JSON).", content_type = "application/json"),
    )
)]
pub(crate) async fn openapi_spec() -> Response {
    static SPEC: OnceLock<Vec<u8>> = OnceLock::new();
    let bytes = SPEC.get_or_init(|| {
        ApiDoc::openapi()
            .to_json()
            .map(String::into_bytes)
            .unwrap_or_default()
    });
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes.clone(),
    )
        .into_response()
}

/// `/openapi` → `/openapi/`, so the page's relative links resolve.
pub(crate) async fn openapi_redirect() -> Redirect {
    Redirect::permanent("openapi/")
}

/// The interactive API documentation (Swagger UI, built in, no CDN).
#[utoipa::path(
    get,
    path = "/openapi/",
    tag = "meta",
    operation_id = "swaggerUi",
    security(()),
    responses(
        (status = 200, description = "The Swagger UI page (HTML); it loads `openapi-spec.json` next to it.", content_type = "text/html"),
    )
)]
pub(crate) async fn swagger_index() -> Result<Response, ApiError> {
    swagger_file("")
}

/// A file of the Swagger UI page.
#[utoipa::path(
    get,
    path = "/openapi/{path}",
    tag = "meta",
    operation_id = "swaggerUiAsset",
    security(()),
    params(("path" = String, Path, description = "The file's name, e.g. `swagger-ui.css`.")),
    responses(
        (status = 200, description = "The file, with its content type."),
        (status = 404, description = "No such file.", body = eventstore_api::ErrorBody),
    )
)]
pub(crate) async fn swagger_asset(Path(path): Path<String>) -> Result<Response, ApiError> {
    swagger_file(&path)
}

fn swagger_file(path: &str) -> Result<Response, ApiError> {
    static CONFIG: OnceLock<Arc<Config<'static>>> = OnceLock::new();
    // Relative to the page, so it works under any path prefix.
    let config = CONFIG
        .get_or_init(|| Arc::new(Config::new(["openapi-spec.json"])))
        .clone();
    let file = utoipa_swagger_ui::serve(path, config)
        .map_err(|e| ApiError::Internal(format!("serving Swagger UI file {path:?}: {e}")))?
        .ok_or_else(|| ApiError::NotFound(format!("no file {path:?} in the API documentation")))?;
    let content_type = HeaderValue::from_str(&file.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let mut response = (
        [(header::CONTENT_TYPE, content_type)],
        Body::from(file.bytes.into_owned()),
    )
        .into_response();
    if file.gzpipped {
        response
            .headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    Ok(response)
}
