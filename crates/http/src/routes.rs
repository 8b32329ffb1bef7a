//! The table of routes the router serves, with the path each has in the
//! OpenAPI document (tests check that the two agree).

use axum::http::Method;
use axum::routing::{MethodRouter, delete, get, post, put};

use crate::state::AppState;
use crate::{handlers, ui};

/// One route: its method, its axum path and its OpenAPI path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// The HTTP method.
    pub method: Method,
    /// The path pattern as the router has it (`{*rest}` for a tail).
    pub axum_path: &'static str,
    /// The path in the OpenAPI document, or `None` for a bare redirect
    /// that only adds a trailing slash.
    pub openapi_path: Option<&'static str>,
}

pub(crate) struct Route {
    pub info: RouteInfo,
    pub handler: MethodRouter<AppState>,
}

fn route(
    method: Method,
    axum_path: &'static str,
    openapi_path: Option<&'static str>,
    handler: MethodRouter<AppState>,
) -> Route {
    Route {
        info: RouteInfo {
            method,
            axum_path,
            openapi_path,
        },
        handler,
    }
}

pub(crate) fn table() -> Vec<Route> {
    use Method as M;
    let documented =
        |method: Method, path: &'static str, handler| route(method, path, Some(path), handler);
    vec![
        documented(M::GET, "/liveness-check", get(handlers::liveness)),
        documented(M::GET, "/readiness-check", get(handlers::readiness)),
        documented(M::GET, "/metrics", get(crate::metrics::metrics)),
        documented(
            M::POST,
            "/streams/{streamType}",
            post(handlers::create_stream),
        ),
        documented(M::GET, "/streams/{streamType}", get(handlers::list_streams)),
        documented(
            M::GET,
            "/streams/{streamType}/{streamId}/details",
            get(handlers::stream_details),
        ),
        documented(
            M::DELETE,
            "/streams/{streamType}/{streamId}",
            delete(handlers::delete_stream),
        ),
        documented(
            M::POST,
            "/streams/{streamType}/{streamId}/truncate",
            post(handlers::truncate_stream),
        ),
        documented(
            M::PUT,
            "/streams/{streamType}/{streamId}/events/{streamRevision}",
            put(handlers::append_event),
        ),
        documented(
            M::POST,
            "/streams/{streamType}/{streamId}/events",
            post(handlers::append_events),
        ),
        documented(
            M::GET,
            "/streams/{streamType}/{streamId}/events",
            get(handlers::read_stream),
        ),
        documented(M::GET, "/events", get(handlers::read_feed)),
        documented(
            M::GET,
            "/streams/{streamType}/events",
            get(handlers::read_type_feed),
        ),
        documented(M::GET, "/streams", get(handlers::stream_types)),
        documented(M::GET, "/", get(ui::root)),
        documented(M::GET, "/openapi/openapi-spec.json", get(ui::openapi_spec)),
        route(M::GET, "/openapi", None, get(ui::openapi_redirect)),
        documented(M::GET, "/openapi/", get(ui::swagger_index)),
        route(
            M::GET,
            "/openapi/{*path}",
            Some("/openapi/{path}"),
            get(ui::swagger_asset),
        ),
        route(M::GET, "/ui", None, get(ui::ui_redirect)),
        documented(M::GET, "/ui/", get(ui::ui_index)),
        route(M::GET, "/ui/{*path}", Some("/ui/{path}"), get(ui::ui_asset)),
    ]
}

/// Every route the router serves, with its OpenAPI path.
pub fn routes() -> Vec<RouteInfo> {
    table().into_iter().map(|r| r.info).collect()
}
