//! The API's handlers. Each one validates its input through the
//! extractors, calls the store once or a few times, and answers with the
//! wire types of `eventstore-api`. Failures are [`ApiError`]s; the status
//! of an error is chosen in [`crate::error`], never here.

use std::time::Duration;

use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::{Extension, Json};
use eventstore_api::{
    AppendEventBody, BatchAppendBody, BatchAppendResponse, CreateStreamBody, ErrorBody, EventPage,
    EventPageEnvelope, FeedPage, FeedPageEnvelope, Liveness, StreamEnvelope, StreamPage,
    StreamPageEnvelope, StreamPageKey, StreamTypeEntry, StreamTypesResponse, TruncateBody,
};
use eventstore_core::{
    AppendRequest, Expectation, ExpectationFailed, FeedFilter, Position, Revision, StoreError,
    StreamId, StreamKey, StreamRead, StreamType, Timestamp,
};
use tokio::time::Instant;

use crate::error::ApiError;
use crate::extract::{JsonBody, PathParams, QueryParams};
use crate::state::{AppState, KeyRole};

/// The `{streamType}` path segment, validated.
#[derive(Debug)]
pub(crate) struct TypeParam(pub StreamType);

impl<S: Send + Sync> FromRequestParts<S> for TypeParam {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Ok(TypeParam(
            PathParams::from_request_parts(parts, state)
                .await?
                .stream_type()?,
        ))
    }
}

/// The `{streamType}/{streamId}` path segments, validated.
#[derive(Debug)]
pub(crate) struct KeyParam(pub StreamKey);

impl<S: Send + Sync> FromRequestParts<S> for KeyParam {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Ok(KeyParam(
            PathParams::from_request_parts(parts, state)
                .await?
                .stream_key()?,
        ))
    }
}

/// Liveness check.
///
/// Answers `ok` with the server's time whenever the process serves
/// requests. Needs no API key.
#[utoipa::path(
    get,
    path = "/liveness-check",
    tag = "meta",
    operation_id = "livenessCheck",
    security(()),
    responses(
        (status = 200, description = "The server is up.", body = Liveness),
    )
)]
pub(crate) async fn liveness() -> Json<Liveness> {
    Json(Liveness {
        status: "ok".into(),
        at: Timestamp::now(),
    })
}

/// Readiness check.
///
/// Answers `ok` with the server's time when the store takes writes, and
/// 503 (`unavailable`, with the reason) when it does not: while the store
/// is still opening, after a failed disk write, while the DynamoDB table is
/// missing or unreachable, or while the server shuts down. Needs no API
/// key.
#[utoipa::path(
    get,
    path = "/readiness-check",
    tag = "meta",
    operation_id = "readinessCheck",
    security(()),
    responses(
        (status = 200, description = "The store takes writes.", body = Liveness),
        (status = 503, description = "Not ready; the message gives the reason.", body = ErrorBody),
    )
)]
pub(crate) async fn readiness(State(state): State<AppState>) -> Result<Json<Liveness>, ApiError> {
    if state.shutting_down() {
        return Err(ApiError::NotReady("the server is shutting down".into()));
    }
    state.store().readiness().map_err(ApiError::NotReady)?;
    Ok(Json(Liveness {
        status: "ok".into(),
        at: Timestamp::now(),
    }))
}

/// Create a stream with its initial event.
///
/// The server makes the stream's id (a UUIDv7); the stream starts at
/// revision 1.
#[utoipa::path(
    post,
    path = "/streams/{streamType}",
    tag = "streams",
    operation_id = "createStream",
    params(("streamType" = StreamType, Path, description = "The stream's type.")),
    request_body(content = CreateStreamBody, description = "The stream's first event.", content_type = "application/json"),
    responses(
        (status = 201, description = "The stream was created with its first event.", body = StreamEnvelope),
        (status = 400, description = "Invalid stream type, malformed JSON or missing fields.", body = ErrorBody),
        (status = 401, description = "An API key is required.", body = ErrorBody),
        (status = 413, description = "The body exceeds 1 MiB or the event's payload plus metadata exceeds 256 KiB.", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`.", body = ErrorBody),
        (status = 503, description = "The server is busy (its write queue is full) or shutting down; with `Retry-After` (seconds) when busy.", body = ErrorBody),
        (status = 500, description = "Internal error; details are in the server log under the request id.", body = ErrorBody),
    )
)]
#[tracing::instrument(level = "debug", skip(state, body))]
pub(crate) async fn create_stream(
    State(state): State<AppState>,
    TypeParam(stream_type): TypeParam,
    JsonBody(body): JsonBody<CreateStreamBody>,
) -> Result<(StatusCode, Json<StreamEnvelope>), ApiError> {
    let request = AppendRequest::create_stream(stream_type, body.initial_event.into_new_event())?;
    let outcome = crate::metrics::append(state.store(), request).await?;
    Ok((
        StatusCode::CREATED,
        Json(StreamEnvelope {
            stream: outcome.stream,
        }),
    ))
}

/// List a type's streams.
///
/// Streams of `streamType` ordered by `updatedAt` ascending, optionally
/// only those updated after a time. Follow `nextPageKey` for more.
#[utoipa::path(
    get,
    path = "/streams/{streamType}",
    tag = "streams",
    operation_id = "listStreams",
    params(
        ("streamType" = StreamType, Path, description = "The streams' type."),
        ("updated-after" = Option<Timestamp>, Query, description = "Only streams updated strictly after this time (RFC 3339)."),
        ("next-page-key" = Option<String>, Query, description = "The `nextPageKey` of the previous page of this listing, unchanged. Keys are opaque: any other text, or a key of another type's listing, is a 400."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Most streams per page (default 100)."),
    ),
    responses(
        (status = 200, description = "A page of streams.", body = StreamPageEnvelope),
        (status = 400, description = "Invalid stream type, time, page key or limit.", body = ErrorBody),
        (status = 401, description = "An API key is required.", body = ErrorBody),
        (status = 500, description = "Internal error; details are in the server log under the request id.", body = ErrorBody),
    )
)]
#[tracing::instrument(level = "debug", skip(state))]
pub(crate) async fn list_streams(
    State(state): State<AppState>,
    TypeParam(stream_type): TypeParam,
    query: QueryParams,
) -> Result<Json<StreamPageEnvelope>, ApiError> {
    let updated_after = query.timestamp("updated-after")?;
    let cursor = query
        .text("next-page-key")
        .map(|key| {
            StreamPageKey::decode(key, &stream_type).map_err(|_| {
                ApiError::BadRequest(format!(
                    "next-page-key {key:?} is not a page key of the listing of {stream_type}"
                ))
            })
        })
        .transpose()?;
    let limit = query.limit()?;
    let page = state
        .store()
        .list_streams(&stream_type, updated_after, cursor, limit)
        .await?;
    let next_page_key = page.next.map(|cursor| {
        StreamPageKey {
            stream_type: stream_type.clone(),
            cursor,
        }
        .encode()
    });
    Ok(Json(StreamPageEnvelope {
        stream_page: StreamPage {
            streams: page.streams,
            has_more: next_page_key.is_some(),
            next_page_key,
        },
    }))
}

/// A stream's details.
#[utoipa::path(
    get,
    path = "/streams/{streamType}/{streamId}/details",
    tag = "streams",
    operation_id = "streamDetails",
    params(
        ("streamType" = StreamType, Path, description = "The stream's type."),
        ("streamId" = StreamId, Path, description = "The stream's id."),
    ),
    responses(
        (status = 200, description = "The stream.", body = StreamEnvelope),
        (status = 400, description = "Invalid stream type or id.", body = ErrorBody),
        (status = 401, description = "An API key is required.", body = ErrorBody),
        (status = 404, description = "No such stream.", body = ErrorBody),
        (status = 410, description = "The stream was deleted (`stream-deleted`).", body = ErrorBody),
        (status = 500, description = "Internal error; details are in the server log under the request id.", body = ErrorBody),
    )
)]
#[tracing::instrument(level = "debug", skip(state))]
pub(crate) async fn stream_details(
    State(state): State<AppState>,
    KeyParam(key): KeyParam,
) -> Result<Json<StreamEnvelope>, ApiError> {
    match state.store().stream_info(&key).await? {
        Some(stream) => Ok(Json(StreamEnvelope { stream })),
        None => Err(StoreError::StreamNotFound(key).into()),
    }
}

/// Refuses a lifecycle request made with a key that is not an admin key,
/// when admin keys are configured.
fn require_admin(state: &AppState, role: Option<KeyRole>) -> Result<(), ApiError> {
    if state.admin_keys_configured() && role != Some(KeyRole::Admin) {
        return Err(ApiError::Forbidden(
            "deleting and truncating streams need an admin API key".into(),
        ));
    }
    Ok(())
}

/// Delete a stream.
///
/// The stream's events leave its reads, the feeds and its type's listing;
/// the feeds carry one `$stream-deleted` entry for it (at revision
/// `revision + 1`). From then on, reads, details and appends answer 410
/// `stream-deleted`: a deleted id is never used again. The removed payloads
/// and metadata are erased from storage (see the lifecycle document for
/// when). Deleting a deleted stream answers 204 again and does nothing.
/// When admin keys are configured, only they may delete.
#[utoipa::path(
    delete,
    path = "/streams/{streamType}/{streamId}",
    tag = "streams",
    operation_id = "deleteStream",
    params(
        ("streamType" = StreamType, Path, description = "The stream's type."),
        ("streamId" = StreamId, Path, description = "The stream's id."),
        ("expected-revision" = Option<u64>, Query, minimum = 0, maximum = 9223372036854775807u64, description = "The revision the stream must be at; 409 otherwise."),
    ),
    responses(
        (status = 204, description = "The stream is deleted (now, or already before)."),
        (status = 400, description = "Invalid stream type, id or expected revision.", body = ErrorBody),
        (status = 401, description = "An API key is required.", body = ErrorBody),
        (status = 403, description = "Admin keys are configured and this is not one.", body = ErrorBody),
        (status = 404, description = "No such stream.", body = ErrorBody),
        (status = 409, description = "The stream is not at `expected-revision` (`wrong-expected-revision`).", body = ErrorBody),
        (status = 503, description = "The server is busy or shutting down.", body = ErrorBody),
        (status = 500, description = "Internal error; details are in the server log under the request id.", body = ErrorBody),
    )
)]
#[tracing::instrument(level = "debug", skip(state, role))]
pub(crate) async fn delete_stream(
    State(state): State<AppState>,
    role: Option<Extension<KeyRole>>,
    KeyParam(key): KeyParam,
    query: QueryParams,
) -> Result<StatusCode, ApiError> {
    let expected = query.revision("expected-revision")?;
    require_admin(&state, role.map(|Extension(r)| r))?;
    state.store().delete_stream(&key, expected).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Truncate a stream.
///
/// Removes the events below `beforeRevision`. Revisions are never
/// renumbered: reads start at `beforeRevision`, appends go on at the
/// current revision, and the stream's `firstRevision` shows the first kept
/// one. The feeds no longer carry the removed events. A bound below an
/// earlier truncation's changes nothing. When admin keys are configured,
/// only they may truncate.
#[utoipa::path(
    post,
    path = "/streams/{streamType}/{streamId}/truncate",
    tag = "streams",
    operation_id = "truncateStream",
    params(
        ("streamType" = StreamType, Path, description = "The stream's type."),
        ("streamId" = StreamId, Path, description = "The stream's id."),
        ("expected-revision" = Option<u64>, Query, minimum = 0, maximum = 9223372036854775807u64, description = "The revision the stream must be at; 409 otherwise."),
    ),
    request_body(content = TruncateBody, description = "The first revision to keep.", content_type = "application/json"),
    responses(
        (status = 200, description = "The stream after the truncation.", body = StreamEnvelope),
        (status = 400, description = "Invalid stream type or id, malformed body, or `beforeRevision` below 1 or above the stream's revision.", body = ErrorBody),
        (status = 401, description = "An API key is required.", body = ErrorBody),
        (status = 403, description = "Admin keys are configured and this is not one.", body = ErrorBody),
        (status = 404, description = "No such stream.", body = ErrorBody),
        (status = 410, description = "The stream was deleted (`stream-deleted`).", body = ErrorBody),
        (status = 409, description = "The stream is not at `expected-revision` (`wrong-expected-revision`).", body = ErrorBody),
        (status = 413, description = "The body exceeds 1 MiB.", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`.", body = ErrorBody),
        (status = 503, description = "The server is busy or shutting down.", body = ErrorBody),
        (status = 500, description = "Internal error; details are in the server log under the request id.", body = ErrorBody),
    )
)]
#[tracing::instrument(level = "debug", skip(state, role, body))]
pub(crate) async fn truncate_stream(
    State(state): State<AppState>,
    role: Option<Extension<KeyRole>>,
    KeyParam(key): KeyParam,
    query: QueryParams,
    JsonBody(body): JsonBody<TruncateBody>,
) -> Result<Json<StreamEnvelope>, ApiError> {
    let expected = query.revision("expected-revision")?;
    require_admin(&state, role.map(|Extension(r)| r))?;
    let stream = state
        .store()
        .truncate_stream(&key, body.before_revision, expected)
        .await?;
    Ok(Json(StreamEnvelope { stream }))
}

/// Append one event at a revision.
///
/// `streamRevision` is the revision the new event gets: the stream's
/// current revision + 1. The stream must exist (create it with
/// `POST /streams/{streamType}`). Sending the same `eventId` again after a
/// success answers 200 without writing again.
#[utoipa::path(
    put,
    path = "/streams/{streamType}/{streamId}/events/{streamRevision}",
    tag = "events",
    operation_id = "appendEvent",
    params(
        ("streamType" = StreamType, Path, description = "The stream's type."),
        ("streamId" = StreamId, Path, description = "The stream's id."),
        ("streamRevision" = u64, Path, minimum = 1, maximum = 9223372036854775807u64, description = "The new event's revision: the stream's current revision + 1."),
    ),
    request_body(content = AppendEventBody, description = "The event to append.", content_type = "application/json"),
    responses(
        (status = 201, description = "The event was appended.", body = StreamEnvelope),
        (status = 200, description = "A retry of an append that already succeeded (same eventId); nothing was written.", body = StreamEnvelope),
        (status = 400, description = "Invalid stream type, id or revision (0 is not a valid target), malformed JSON or missing fields.", body = ErrorBody),
        (status = 401, description = "An API key is required.", body = ErrorBody),
        (status = 404, description = "No such stream.", body = ErrorBody),
        (status = 410, description = "The stream was deleted (`stream-deleted`).", body = ErrorBody),
        (status = 409, description = "The stream is not at `streamRevision` - 1 (`wrong-expected-revision`, details carry expectedRevision and actualRevision), or the eventId is already in the stream (`duplicate-event`).", body = ErrorBody),
        (status = 413, description = "The body exceeds 1 MiB or the event's payload plus metadata exceeds 256 KiB.", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`.", body = ErrorBody),
        (status = 503, description = "The server is busy (its write queue is full) or shutting down; with `Retry-After` (seconds) when busy.", body = ErrorBody),
        (status = 500, description = "Internal error; details are in the server log under the request id.", body = ErrorBody),
    )
)]
#[tracing::instrument(level = "debug", skip(state, params, body), fields(revision))]
pub(crate) async fn append_event(
    State(state): State<AppState>,
    KeyParam(key): KeyParam,
    params: PathParams,
    JsonBody(body): JsonBody<AppendEventBody>,
) -> Result<(StatusCode, Json<StreamEnvelope>), ApiError> {
    let revision = params.revision("streamRevision")?;
    tracing::Span::current().record("revision", revision.get());
    let Some(expected) = revision.get().checked_sub(1).map(Revision::new) else {
        return Err(ApiError::BadRequest(
            "streamRevision must be at least 1 (the first event of a stream has revision 1; create streams with POST /streams/{streamType})".into(),
        ));
    };
    let request = AppendRequest::new(
        key.clone(),
        Expectation::Exact(expected),
        vec![body.event.into_new_event()],
    )?;
    if expected == Revision::ZERO {
        // Revision 1 would create the stream; this endpoint only appends.
        match state.store().stream_info(&key).await? {
            None => return Err(StoreError::StreamNotFound(key).into()),
            Some(info) => {
                return Err(ApiError::WrongExpectedRevision(ExpectationFailed {
                    expected: Expectation::Exact(expected),
                    actual: info.revision,
                }));
            }
        }
    }
    match crate::metrics::append(state.store(), request).await {
        Ok(outcome) => Ok((
            success_status(outcome.already_appended),
            Json(StreamEnvelope {
                stream: outcome.stream,
            }),
        )),
        Err(StoreError::WrongExpectedRevision(failed)) if failed.actual == Revision::ZERO => {
            Err(StoreError::StreamNotFound(key).into())
        }
        Err(err) => Err(err.into()),
    }
}

fn success_status(already_appended: bool) -> StatusCode {
    if already_appended {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    }
}

/// Append events atomically under an expected revision.
///
/// All events get consecutive revisions, or none is written. A retry with
/// the same eventIds that already sit right after the expected revision
/// answers 200 with the original revisions and writes nothing.
#[utoipa::path(
    post,
    path = "/streams/{streamType}/{streamId}/events",
    tag = "events",
    operation_id = "appendEvents",
    params(
        ("streamType" = StreamType, Path, description = "The stream's type."),
        ("streamId" = StreamId, Path, description = "The stream's id."),
    ),
    request_body(content = BatchAppendBody, description = "The expectation and 1-100 events.", content_type = "application/json"),
    responses(
        (status = 201, description = "The events were appended.", body = BatchAppendResponse),
        (status = 200, description = "A retry of an append that already succeeded; nothing was written.", body = BatchAppendResponse),
        (status = 400, description = "Invalid stream type or id, malformed JSON, missing fields, no events, or an eventId twice in the request.", body = ErrorBody),
        (status = 401, description = "An API key is required.", body = ErrorBody),
        (status = 409, description = "The expectation failed (`wrong-expected-revision`, details carry expectedRevision and actualRevision), or an eventId is already in the stream (`duplicate-event`).", body = ErrorBody),
        (status = 410, description = "The stream was deleted (`stream-deleted`).", body = ErrorBody),
        (status = 413, description = "More than 100 events, an event's payload plus metadata over 256 KiB, or a body over 1 MiB.", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`.", body = ErrorBody),
        (status = 503, description = "The server is busy (its write queue is full) or shutting down; with `Retry-After` (seconds) when busy.", body = ErrorBody),
        (status = 500, description = "Internal error; details are in the server log under the request id.", body = ErrorBody),
    )
)]
#[tracing::instrument(level = "debug", skip(state, body))]
pub(crate) async fn append_events(
    State(state): State<AppState>,
    KeyParam(key): KeyParam,
    JsonBody(body): JsonBody<BatchAppendBody>,
) -> Result<(StatusCode, Json<BatchAppendResponse>), ApiError> {
    let events = body
        .events
        .into_iter()
        .map(|e| e.into_new_event())
        .collect();
    let request = AppendRequest::new(key, body.expected_revision.0, events)?;
    let outcome = crate::metrics::append(state.store(), request).await?;
    Ok((
        success_status(outcome.already_appended),
        Json(BatchAppendResponse {
            stream: outcome.stream,
            first_revision: outcome.first_revision,
            last_revision: outcome.last_revision,
        }),
    ))
}

/// Read a stream's events.
///
/// Forward (default) after `after-revision`, or backward from the end or
/// before `before-revision`. Continue with `lastEvaluatedRevision`.
#[utoipa::path(
    get,
    path = "/streams/{streamType}/{streamId}/events",
    tag = "events",
    operation_id = "readStream",
    params(
        ("streamType" = StreamType, Path, description = "The stream's type."),
        ("streamId" = StreamId, Path, description = "The stream's id."),
        ("after-revision" = Option<u64>, Query, minimum = 0, maximum = 9223372036854775807u64, description = "Forward reads only: return events after this revision (default 0). Given with `direction=backward` it is a 400."),
        ("before-revision" = Option<u64>, Query, minimum = 0, maximum = 9223372036854775807u64, description = "Backward reads only: return events before this revision (default: from the end). Given without `direction=backward` it is a 400."),
        ("direction" = Option<String>, Query, pattern = "^(forward|backward)$", description = "`forward` (default) or `backward`."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Most events per page (default 100)."),
    ),
    responses(
        (status = 200, description = "A page of the stream's events.", body = EventPageEnvelope),
        (status = 400, description = "Invalid stream type, id, revision, direction or limit.", body = ErrorBody),
        (status = 401, description = "An API key is required.", body = ErrorBody),
        (status = 404, description = "No such stream.", body = ErrorBody),
        (status = 410, description = "The stream was deleted (`stream-deleted`).", body = ErrorBody),
        (status = 500, description = "Internal error; details are in the server log under the request id.", body = ErrorBody),
    )
)]
#[tracing::instrument(level = "debug", skip(state))]
pub(crate) async fn read_stream(
    State(state): State<AppState>,
    KeyParam(key): KeyParam,
    query: QueryParams,
) -> Result<Json<EventPageEnvelope>, ApiError> {
    let after = query.revision("after-revision")?;
    let before = query.revision("before-revision")?;
    let limit = query.limit()?;
    let read = match query.text("direction") {
        None | Some("forward") => {
            if before.is_some() {
                return Err(ApiError::BadRequest(
                    "before-revision applies to direction=backward only".into(),
                ));
            }
            StreamRead::forward_after(after.unwrap_or(Revision::ZERO), limit)
        }
        Some("backward") => {
            if after.is_some() {
                return Err(ApiError::BadRequest(
                    "after-revision applies to direction=forward only; use before-revision".into(),
                ));
            }
            StreamRead::backward(before, limit)
        }
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "direction must be forward or backward, got {other:?}"
            )));
        }
    };
    let slice = state.store().read_stream(&key, read).await?;
    Ok(Json(EventPageEnvelope {
        event_page: EventPage {
            events: slice.events,
            has_more: slice.has_more,
            last_evaluated_revision: slice.last_evaluated_revision,
        },
    }))
}

/// The global feed.
///
/// Every event of every stream in feed order, after `after-position`.
/// With `wait`, an empty answer is held until an event arrives or the
/// time passes (long polling). Continue with `lastPosition`.
#[utoipa::path(
    get,
    path = "/events",
    tag = "feeds",
    operation_id = "readFeed",
    params(
        ("after-position" = Option<u64>, Query, minimum = 0, maximum = 9223372036854775807u64, description = "Return events after this position (default 0)."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Most events per page (default 100)."),
        ("wait" = Option<u32>, Query, minimum = 0, maximum = 30, description = "Seconds to hold the request while nothing is past `after-position` (default 0)."),
    ),
    responses(
        (status = 200, description = "A page of the feed.", body = FeedPageEnvelope, headers(
            ("Link" = String, description = "The next page: `<?after-position=P&limit=L[&wait=W]>; rel=\"next\"`, a reference of a query alone that resolves against the URL asked (P is `lastPosition`)."),
        )),
        (status = 400, description = "Invalid position, limit or wait.", body = ErrorBody),
        (status = 401, description = "An API key is required.", body = ErrorBody),
        (status = 503, description = "As many long polls as the server allows are already waiting (only when `wait` > 0 and nothing is past `after-position`), with `Retry-After` (seconds); or the server is shutting down.", body = ErrorBody),
        (status = 500, description = "Internal error; details are in the server log under the request id.", body = ErrorBody),
    )
)]
#[tracing::instrument(level = "debug", skip(state))]
pub(crate) async fn read_feed(
    State(state): State<AppState>,
    query: QueryParams,
) -> Result<FeedAnswer, ApiError> {
    feed(&state, FeedFilter::All, &query).await
}

/// A stream type's feed.
///
/// Like `GET /events`, only for the streams of one type.
#[utoipa::path(
    get,
    path = "/streams/{streamType}/events",
    tag = "feeds",
    operation_id = "readTypeFeed",
    params(
        ("streamType" = StreamType, Path, description = "The streams' type."),
        ("after-position" = Option<u64>, Query, minimum = 0, maximum = 9223372036854775807u64, description = "Return events after this position (default 0)."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Most events per page (default 100)."),
        ("wait" = Option<u32>, Query, minimum = 0, maximum = 30, description = "Seconds to hold the request while nothing is past `after-position` (default 0)."),
    ),
    responses(
        (status = 200, description = "A page of the type's feed.", body = FeedPageEnvelope, headers(
            ("Link" = String, description = "The next page: `<?after-position=P&limit=L[&wait=W]>; rel=\"next\"`, a reference of a query alone that resolves against the URL asked (P is `lastPosition`)."),
        )),
        (status = 400, description = "Invalid stream type, position, limit or wait.", body = ErrorBody),
        (status = 401, description = "An API key is required.", body = ErrorBody),
        (status = 503, description = "As many long polls as the server allows are already waiting (only when `wait` > 0 and nothing is past `after-position`), with `Retry-After` (seconds); or the server is shutting down.", body = ErrorBody),
        (status = 500, description = "Internal error; details are in the server log under the request id.", body = ErrorBody),
    )
)]
#[tracing::instrument(level = "debug", skip(state))]
pub(crate) async fn read_type_feed(
    State(state): State<AppState>,
    TypeParam(stream_type): TypeParam,
    query: QueryParams,
) -> Result<FeedAnswer, ApiError> {
    feed(&state, FeedFilter::StreamType(stream_type), &query).await
}

/// A feed page, with a `Link` header naming the next page.
type FeedAnswer = (
    [(axum::http::HeaderName, String); 1],
    Json<FeedPageEnvelope>,
);

async fn feed(
    state: &AppState,
    filter: FeedFilter,
    query: &QueryParams,
) -> Result<FeedAnswer, ApiError> {
    let after = query.position("after-position")?.unwrap_or(Position::ZERO);
    let limit = query.limit()?;
    let wait = query.wait()?;
    let page = read_feed_waiting(state, &filter, after, limit, wait).await?;
    Ok((
        [(
            axum::http::header::LINK,
            next_link(page.last_position, limit, wait),
        )],
        Json(FeedPageEnvelope {
            event_page: FeedPage {
                events: page.events,
                has_more: page.has_more,
                last_position: page.last_position,
            },
        }),
    ))
}

/// The `Link` header of a feed page (RFC 8288): the next page, as a
/// reference made of a query alone, which resolves against the URL the
/// client asked (RFC 3986, 5.2.2), whatever prefix a proxy or stage put
/// before the path. It is known when the answer's headers arrive, so a
/// reader can ask for the next page while it parses this one.
fn next_link(last: Position, limit: usize, wait: Duration) -> String {
    let wait = match wait.as_secs() {
        0 => String::new(),
        s => format!("&wait={s}"),
    };
    format!(
        "<?after-position={}&limit={limit}{wait}>; rel=\"next\"",
        last.get()
    )
}

/// Reads a feed page; while it is empty and `wait` has not passed, waits
/// for the store to announce new events of the feed and reads again.
///
/// A waiting request holds one of the state's long-poll places (503 when
/// none is free). Each turn reads only the feed asked for: a type's feed
/// waits on [`EventStore::wait_for_type_feed`](eventstore_core::EventStore::wait_for_type_feed),
/// so events of other types neither wake it (on stores that track types)
/// nor get read. A store that wakes it early anyway (the trait's default
/// waits on the global feed) is re-read at most every
/// [`MAX_EMPTY_WAKE_PAUSE`] once such empty wakes repeat.
async fn read_feed_waiting(
    state: &AppState,
    filter: &FeedFilter,
    after: Position,
    limit: usize,
    wait: Duration,
) -> Result<eventstore_core::FeedPage, ApiError> {
    let store = state.store();
    let deadline = Instant::now() + state.cap_wait(wait);
    let mut shutdown = state.shutdown_signal();
    let mut permit = None;
    let mut empty_wakes = 0u32;
    loop {
        let page = store.read_feed(filter, after, limit).await?;
        let now = Instant::now();
        if !page.events.is_empty() || now >= deadline || *shutdown.borrow_and_update() {
            return Ok(page);
        }
        if permit.is_none() {
            permit = Some((state.long_poll_permit()?, crate::metrics::LongPoll::open()));
        }
        if empty_wakes > 0 {
            let pause = (MIN_EMPTY_WAKE_PAUSE * 2u32.saturating_pow(empty_wakes - 1))
                .min(MAX_EMPTY_WAKE_PAUSE);
            tokio::select! {
                _ = tokio::time::sleep_until(deadline.min(now + pause)) => {}
                _ = shutdown.changed() => {}
            }
            if Instant::now() >= deadline || *shutdown.borrow_and_update() {
                return Ok(page);
            }
        }
        let woken = async {
            match filter {
                FeedFilter::StreamType(t) => store.wait_for_type_feed(t, after).await,
                _ => store.wait_for_feed(after).await,
            }
        };
        tokio::select! {
            woke = tokio::time::timeout_at(deadline, woken) => {
                if let Ok(result) = woke {
                    result?;
                    // If the next read finds nothing, this wake was early.
                    empty_wakes += 1;
                }
            }
            _ = shutdown.changed() => {}
        }
    }
}

/// The first pause before re-reading after a wake that found nothing.
const MIN_EMPTY_WAKE_PAUSE: Duration = Duration::from_millis(50);
/// The longest pause between two reads of a long poll woken early.
const MAX_EMPTY_WAKE_PAUSE: Duration = Duration::from_secs(1);

/// Stream types and their number of streams.
#[utoipa::path(
    get,
    path = "/streams",
    tag = "streams",
    operation_id = "listStreamTypes",
    responses(
        (status = 200, description = "Every stream type with its number of streams, ordered by type.", body = StreamTypesResponse),
        (status = 401, description = "An API key is required.", body = ErrorBody),
        (status = 500, description = "Internal error; details are in the server log under the request id.", body = ErrorBody),
    )
)]
#[tracing::instrument(level = "debug", skip(state))]
pub(crate) async fn stream_types(
    State(state): State<AppState>,
) -> Result<Json<StreamTypesResponse>, ApiError> {
    let types = state.store().stream_types().await?;
    Ok(Json(StreamTypesResponse {
        stream_types: types
            .into_iter()
            .map(|t| StreamTypeEntry {
                stream_type: t.stream_type,
                streams: t.streams,
            })
            .collect(),
    }))
}
