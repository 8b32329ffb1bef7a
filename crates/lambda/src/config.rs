//! Settings of the two functions, read from the environment once per cold
//! start. The CDK stack sets them (`_infrastructure/aws-event-store`).

use crate::LambdaError;

/// Environment variable with the DynamoDB table name.
pub const TABLE_NAME_VAR: &str = "EVENT_STORE_TABLE_NAME";
/// Environment variable with the IAM principals (ARNs, comma-separated)
/// that may delete and truncate streams through the API function. When set,
/// every other caller gets 403 on those routes.
pub const ADMIN_PRINCIPALS_VAR: &str = "EVENT_STORE_ADMIN_PRINCIPALS";
/// Environment variable with the SNS topic ARN (relay function only).
pub const TOPIC_ARN_VAR: &str = "EVENT_STORE_TOPIC_ARN";

fn required(
    name: &'static str,
    get: &impl Fn(&str) -> Option<String>,
) -> Result<String, LambdaError> {
    get(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .ok_or(LambdaError::MissingSetting(name))
}

/// The API function's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// The DynamoDB table.
    pub table_name: String,
    /// Who may delete and truncate streams ([`ADMIN_PRINCIPALS_VAR`]);
    /// empty: every caller the Function URL admits.
    pub admin_principals: Vec<String>,
}

impl ApiConfig {
    /// From the process environment.
    pub fn from_env() -> Result<Self, LambdaError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// From any lookup (tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, LambdaError> {
        let admin_principals = get(ADMIN_PRINCIPALS_VAR)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect();
        Ok(Self {
            table_name: required(TABLE_NAME_VAR, &get)?,
            admin_principals,
        })
    }
}

/// The relay function's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// The DynamoDB table (the feed is written into it).
    pub table_name: String,
    /// The SNS topic notifications are published to.
    pub topic_arn: String,
}

impl RelayConfig {
    /// From the process environment.
    pub fn from_env() -> Result<Self, LambdaError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// From any lookup (tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, LambdaError> {
        Ok(Self {
            table_name: required(TABLE_NAME_VAR, &get)?,
            topic_arn: required(TOPIC_ARN_VAR, &get)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_or_blank_settings_are_named() {
        let none = |_: &str| None;
        assert!(matches!(
            ApiConfig::from_lookup(none),
            Err(LambdaError::MissingSetting(TABLE_NAME_VAR))
        ));
        let blank_topic = |k: &str| {
            (k == TABLE_NAME_VAR)
                .then(|| "t".to_string())
                .or(Some(" ".into()))
        };
        assert!(matches!(
            RelayConfig::from_lookup(blank_topic),
            Err(LambdaError::MissingSetting(TOPIC_ARN_VAR))
        ));
        let all = |k: &str| Some(format!("{k}-value"));
        assert_eq!(
            RelayConfig::from_lookup(all).unwrap(),
            RelayConfig {
                table_name: "EVENT_STORE_TABLE_NAME-value".into(),
                topic_arn: "EVENT_STORE_TOPIC_ARN-value".into()
            }
        );
    }
}
