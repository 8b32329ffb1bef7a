//! The OpenAPI document, generated from the handlers' annotations and the
//! wire types' schemas.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{handlers, ui};

/// The API's OpenAPI document: `ApiDoc::openapi()`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Event Store",
        description = "An event store: append-only event streams with gapless revisions, optimistic \
concurrency through expected revisions, idempotent retries by event id, and global and per-type \
feeds that can be followed live with long polling.\n\n\
Streams are identified by `(streamType, streamId)`; the first event of a stream has revision 1. \
Every error answer is JSON (`ErrorBody`) with a machine-readable `code` and the `requestId` that \
is also sent in the `x-request-id` header.\n\n\
When the server is started with API keys, every data route needs `Authorization: Bearer <key>`; \
the liveness and readiness checks, this document and the web pages do not.\n\n\
A 503 answer with a `Retry-After` header (seconds) means the server is busy (a full write \
queue, or as many long polls waiting as it allows): retry after that delay.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        handlers::liveness,
        handlers::readiness,
        handlers::create_stream,
        handlers::list_streams,
        handlers::stream_details,
        handlers::delete_stream,
        handlers::truncate_stream,
        handlers::append_event,
        handlers::append_events,
        handlers::read_stream,
        handlers::read_feed,
        handlers::read_type_feed,
        handlers::stream_types,
        crate::metrics::metrics,
        ui::root,
        ui::ui_index,
        ui::ui_asset,
        ui::openapi_spec,
        ui::swagger_index,
        ui::swagger_asset,
    ),
    modifiers(&BearerAuth),
    security(("bearer" = []), ()),
    tags(
        (name = "streams", description = "Create, list and inspect streams."),
        (name = "events", description = "Append to and read one stream."),
        (name = "feeds", description = "Every event in global order, optionally held open (long polling)."),
        (name = "meta", description = "Liveness, readiness, metrics, this document and the web pages."),
    )
)]
pub struct ApiDoc;

/// Adds the optional bearer API-key scheme.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key configured on the server (`--api-key`), only when keys are configured.",
                    ))
                    .build(),
            ),
        );
    }
}
