//! The API function: the event store's HTTP API behind a Lambda Function URL.

use eventstore_lambda::{api, config::ApiConfig, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    telemetry::init();
    eventstore_lambda::emf::install("api");
    let config = ApiConfig::from_env()?;
    // Clients and router are built once per cold start, then reused.
    let app = api::function_router_with_admins(
        api::dynamodb_state(&config).await,
        config.admin_principals.clone(),
    );
    lambda_http::run(app).await
}
