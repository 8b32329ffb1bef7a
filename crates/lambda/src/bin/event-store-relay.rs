//! The relay function: DynamoDB Stream batches -> global feed + SNS notifications.

use aws_lambda_events::dynamodb::TimeWindowEvent;
use eventstore_lambda::{config::RelayConfig, relay::RelayFunction, telemetry};
use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use tracing::Instrument;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    eventstore_lambda::emf::install("relay");
    let config = RelayConfig::from_env()?;
    // Clients are built once per cold start, then reused.
    let function = RelayFunction::from_config(&config).await;
    lambda_runtime::run(service_fn(|event: LambdaEvent<TimeWindowEvent>| {
        let function = function.clone();
        async move {
            let span = telemetry::lambda_span("relay", &event.context.request_id);
            let result = function
                .handle(event.payload)
                .instrument(span.clone())
                .await;
            eventstore_lambda::emf::flush();
            if let Err(e) = &result {
                span.in_scope(|| tracing::error!(error = %e, "invocation failed"));
            }
            result.map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
