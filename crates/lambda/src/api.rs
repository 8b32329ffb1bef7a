//! The API function: [`eventstore_http::router`] over the DynamoDB backend,
//! served by `lambda_http` (Function URL events), with the Lambda request id
//! in every log line of the request.

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use eventstore_dynamodb::DynamoStore;
use eventstore_http::{AppState, router};
use lambda_http::RequestExt;
use tracing::Instrument;

use crate::config::ApiConfig;
use crate::telemetry::lambda_span;

/// The router's state over the configured table; clients from the Lambda
/// environment. Called once per cold start.
pub async fn dynamodb_state(config: &ApiConfig) -> AppState {
    let sdk = eventstore_aws::config::load().await;
    let client = eventstore_aws::config::dynamodb_client(&sdk);
    AppState::new(Arc::new(DynamoStore::new(
        client,
        config.table_name.clone(),
    )))
}

/// The service the function runs: the shared router plus a layer that opens
/// the invocation's span (Lambda request id) around the router's own span
/// (API request id).
pub fn function_router(state: AppState) -> Router {
    router(state).layer(axum::middleware::from_fn(lambda_context))
}

async fn lambda_context(req: Request, next: Next) -> Response {
    let id = req
        .lambda_context_ref()
        .map(|c| c.request_id.clone())
        .unwrap_or_else(|| "-".to_string());
    let response = next.run(req).instrument(lambda_span("api", &id)).await;
    crate::emf::flush();
    response
}
