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

/// [`function_router`] where only the IAM principals `admins` may delete
/// and truncate streams (others get 403): the caller's identity is the one
/// the Function URL's `AWS_IAM` auth verified (`requestContext.authorizer.iam`).
/// With no admins, every caller the Function URL admits may.
pub fn function_router_with_admins(state: AppState, admins: Vec<String>) -> Router {
    if admins.is_empty() {
        return function_router(state);
    }
    let admins = Arc::new(admins);
    router(state.with_admin_granted_by_host())
        .layer(axum::middleware::from_fn(
            move |mut req: Request, next: Next| {
                let admins = admins.clone();
                async move {
                    if caller_arn(&req).is_some_and(|arn| is_admin(&arn, &admins)) {
                        eventstore_http::grant_admin(&mut req);
                    }
                    next.run(req).await
                }
            },
        ))
        .layer(axum::middleware::from_fn(lambda_context))
}

/// The ARN of the IAM principal that signed the request, as the Function
/// URL's `AWS_IAM` auth verified it.
fn caller_arn(req: &Request) -> Option<String> {
    match req.request_context_ref()? {
        // Function URL events have the HTTP API's (payload 2.0) shape.
        lambda_http::request::RequestContext::ApiGatewayV2(ctx) => {
            ctx.authorizer.as_ref()?.iam.as_ref()?.user_arn.clone()
        }
        _ => None,
    }
}

/// Whether `caller` is one of `admins`: the same ARN, or a session of an
/// admin role (`arn:aws:sts::A:assumed-role/R/S` for the role
/// `arn:aws:iam::A:role/[PATH/]R`).
fn is_admin(caller: &str, admins: &[String]) -> bool {
    let session_of = |admin: &str| -> bool {
        let (Some(role), Some(session)) = (
            admin.strip_prefix("arn:aws:iam::"),
            caller.strip_prefix("arn:aws:sts::"),
        ) else {
            return false;
        };
        let (Some((account, role_path)), Some((caller_account, rest))) = (
            role.split_once(":role/"),
            session.split_once(":assumed-role/"),
        ) else {
            return false;
        };
        let role_name = role_path.rsplit('/').next().unwrap_or(role_path);
        account == caller_account
            && rest
                .split_once('/')
                .is_some_and(|(name, session)| name == role_name && !session.is_empty())
    };
    admins.iter().any(|a| a == caller || session_of(a))
}

#[cfg(test)]
mod tests {
    use super::is_admin;

    #[test]
    fn admins_match_by_arn_or_by_a_session_of_their_role() {
        let admins = vec![
            "arn:aws:iam::111122223333:user/ops".to_string(),
            "arn:aws:iam::111122223333:role/ops/EventStoreAdmin".to_string(),
        ];
        assert!(is_admin("arn:aws:iam::111122223333:user/ops", &admins));
        assert!(is_admin(
            "arn:aws:sts::111122223333:assumed-role/EventStoreAdmin/alice",
            &admins
        ));
        for caller in [
            "arn:aws:iam::111122223333:user/dev",
            "arn:aws:sts::444455556666:assumed-role/EventStoreAdmin/alice",
            "arn:aws:sts::111122223333:assumed-role/EventStoreAdminX/alice",
            "arn:aws:sts::111122223333:assumed-role/EventStoreAdmin/",
            "arn:aws:iam::111122223333:user/ops-other",
        ] {
            assert!(!is_admin(caller, &admins), "{caller}");
        }
    }
}
