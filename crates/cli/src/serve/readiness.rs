//! Readiness of the DynamoDB backend: a background probe asks DynamoDB for
//! the table (`DescribeTable`) every few seconds and records its verdict
//! in the [`GatedStore`] the router serves, which then answers
//! `/readiness-check` with 503 while the table is missing, not `ACTIVE`,
//! or DynamoDB cannot be reached. Every call still reaches the store.

use std::sync::Arc;
use std::time::Duration;

use eventstore_core::GatedStore;

/// How often the table is probed.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// How long one probe may take before the table counts as unreachable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// One probe: `None` when the table is `ACTIVE`.
async fn probe(client: &aws_sdk_dynamodb::Client, table: &str) -> Option<String> {
    let call = client.describe_table().table_name(table).send();
    match tokio::time::timeout(PROBE_TIMEOUT, call).await {
        Err(_) => Some(format!(
            "DynamoDB did not answer about table {table} in time"
        )),
        Ok(Err(e)) => {
            let missing = e
                .as_service_error()
                .is_some_and(|se| se.is_resource_not_found_exception());
            Some(if missing {
                format!("table {table} does not exist")
            } else {
                format!("DynamoDB cannot be reached for table {table}")
            })
        }
        Ok(Ok(out)) => {
            let status = out.table().and_then(|t| t.table_status()).cloned();
            match status {
                Some(aws_sdk_dynamodb::types::TableStatus::Active) | None => None,
                Some(other) => Some(format!("table {table} is {}", other.as_str())),
            }
        }
    }
}

/// Starts probing `table` (first probe at once; the store counts as ready
/// until it answers, as opening just found the table), recording each
/// verdict in `gate`. The probe stops when the gate is dropped. `sdk` is
/// the configuration the store was opened with.
pub fn start_probe(gate: &Arc<GatedStore>, sdk: &aws_config::SdkConfig, table: String) {
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(sdk)
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1))
            .build(),
    );
    let weak = Arc::downgrade(gate);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PROBE_INTERVAL);
        loop {
            tick.tick().await;
            let found = probe(&client, &table).await;
            let Some(gate) = weak.upgrade() else { break };
            let before = gate.set_not_ready(found.clone());
            if before != found {
                match &found {
                    Some(reason) => tracing::warn!(%reason, "not ready"),
                    None => tracing::info!(table = %table, "table reachable again: ready"),
                }
            }
        }
    });
}
