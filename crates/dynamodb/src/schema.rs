//! The table's schema, defined once in `table-schema.json` (also read by
//! the CDK app), and [`create_table`].

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    StreamSpecification, StreamViewType,
};
use serde::Deserialize;

use crate::error::DynamoError;

/// The schema file's text, as shipped with the crate.
pub const TABLE_SCHEMA_JSON: &str = include_str!("../table-schema.json");

/// A key attribute of the schema.
#[derive(Debug, Clone, Deserialize)]
pub struct KeyAttribute {
    /// Attribute name.
    pub name: String,
    /// `S`, `N` or `B`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// The parsed schema.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableSchema {
    /// Partition key.
    pub partition_key: KeyAttribute,
    /// Sort key.
    pub sort_key: KeyAttribute,
    /// Global secondary indexes (the design has none).
    pub global_secondary_indexes: Vec<serde_json::Value>,
    /// `PAY_PER_REQUEST` or `PROVISIONED`.
    pub billing_mode: String,
    /// The DynamoDB Stream's view type the relay needs.
    pub stream_view_type: String,
}

impl TableSchema {
    /// The schema shipped with the crate.
    pub fn load() -> Result<Self, DynamoError> {
        let schema: Self = serde_json::from_str(TABLE_SCHEMA_JSON)
            .map_err(|e| DynamoError::Schema(e.to_string()))?;
        if !schema.global_secondary_indexes.is_empty() {
            return Err(DynamoError::Schema(
                "the item design uses no global secondary index".into(),
            ));
        }
        Ok(schema)
    }
}

fn scalar(kind: &str) -> Result<ScalarAttributeType, DynamoError> {
    match kind {
        "S" => Ok(ScalarAttributeType::S),
        "N" => Ok(ScalarAttributeType::N),
        "B" => Ok(ScalarAttributeType::B),
        other => Err(DynamoError::Schema(format!(
            "unknown attribute type {other}"
        ))),
    }
}

/// Creates the table `name` with the schema of `table-schema.json` and waits
/// until it is active.
pub async fn create_table(client: &Client, name: &str) -> Result<(), DynamoError> {
    let schema = TableSchema::load()?;
    let key = |a: &KeyAttribute, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(&a.name)
            .key_type(t)
            .build()
            .map_err(|e| DynamoError::Schema(e.to_string()))
    };
    let def = |a: &KeyAttribute| -> Result<AttributeDefinition, DynamoError> {
        AttributeDefinition::builder()
            .attribute_name(&a.name)
            .attribute_type(scalar(&a.kind)?)
            .build()
            .map_err(|e| DynamoError::Schema(e.to_string()))
    };
    let stream = StreamSpecification::builder()
        .stream_enabled(true)
        .stream_view_type(StreamViewType::from(schema.stream_view_type.as_str()))
        .build()
        .map_err(|e| DynamoError::Schema(e.to_string()))?;
    client
        .create_table()
        .table_name(name)
        .key_schema(key(&schema.partition_key, KeyType::Hash)?)
        .key_schema(key(&schema.sort_key, KeyType::Range)?)
        .attribute_definitions(def(&schema.partition_key)?)
        .attribute_definitions(def(&schema.sort_key)?)
        .billing_mode(BillingMode::from(schema.billing_mode.as_str()))
        .stream_specification(stream)
        .send()
        .await
        .map_err(|e| {
            DynamoError::request(
                "CreateTable",
                aws_sdk_dynamodb::error::DisplayErrorContext(e),
            )
        })?;
    for _ in 0..600 {
        let out = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| {
                DynamoError::request(
                    "DescribeTable",
                    aws_sdk_dynamodb::error::DisplayErrorContext(e),
                )
            })?;
        if out
            .table()
            .and_then(|t| t.table_status())
            .is_some_and(|s| s.as_str() == "ACTIVE")
        {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Err(DynamoError::Schema(format!(
        "table {name} did not become active"
    )))
}
