//! JSON values kept byte for byte as the client sent them.
//!
//! Payloads are user data: the store returns them unchanged (key order,
//! number spelling and all), so they are held as validated raw JSON text
//! rather than parsed into a tree.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// Why a piece of JSON was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JsonError {
    /// The text is not JSON.
    #[error("invalid JSON: {0}")]
    Invalid(String),
    /// The value is JSON but not an object.
    #[error("expected a JSON object")]
    NotAnObject,
}

/// Any JSON value, stored as its validated text.
#[derive(Clone)]
pub struct JsonValue(Box<RawValue>);

impl JsonValue {
    /// Validates `text` as one JSON value.
    pub fn from_text(text: impl Into<String>) -> Result<Self, JsonError> {
        RawValue::from_string(text.into())
            .map(Self)
            .map_err(|e| JsonError::Invalid(e.to_string()))
    }

    /// Serializes a value.
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T) -> Result<Self, JsonError> {
        serde_json::value::to_raw_value(value)
            .map(Self)
            .map_err(|e| JsonError::Invalid(e.to_string()))
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// Size of the JSON text in bytes.
    pub fn len(&self) -> usize {
        self.0.get().len()
    }

    /// Never true: a JSON value has at least one character.
    pub fn is_empty(&self) -> bool {
        self.0.get().is_empty()
    }

    /// Parses into a tree (for tests and display, not for storage).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(self.0.get()).expect("validated JSON")
    }

    /// Whether this is a JSON object.
    pub fn is_object(&self) -> bool {
        self.get().trim_start().starts_with('{')
    }
}

impl PartialEq for JsonValue {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}
impl Eq for JsonValue {}

impl fmt::Debug for JsonValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

impl fmt::Display for JsonValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

impl From<serde_json::Value> for JsonValue {
    fn from(value: serde_json::Value) -> Self {
        Self(serde_json::value::to_raw_value(&value).expect("a Value always serializes"))
    }
}

impl Serialize for JsonValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for JsonValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(d).map(Self)
    }
}

/// A JSON object (used for event metadata), stored as its validated text.
#[derive(Clone, PartialEq, Eq)]
pub struct JsonObject(JsonValue);

impl JsonObject {
    /// The empty object `{}`.
    pub fn empty() -> Self {
        Self(JsonValue::from_text("{}").expect("valid"))
    }

    /// Accepts `value` if it is a JSON object.
    pub fn new(value: JsonValue) -> Result<Self, JsonError> {
        if value.is_object() {
            Ok(Self(value))
        } else {
            Err(JsonError::NotAnObject)
        }
    }

    /// Validates `text` as a JSON object.
    pub fn from_text(text: impl Into<String>) -> Result<Self, JsonError> {
        Self::new(JsonValue::from_text(text)?)
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// Size of the JSON text in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never true: `{}` has two characters.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The object as a [`JsonValue`].
    pub fn as_value(&self) -> &JsonValue {
        &self.0
    }
}

impl fmt::Debug for JsonObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

impl Serialize for JsonObject {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for JsonObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = JsonValue::deserialize(d)?;
        Self::new(value).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_text_is_kept_verbatim() {
        let text = r#"{"z":1,"a":[1.50,"x"],"big":123456789012345678901234567890}"#;
        let v = JsonValue::from_text(text).unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), text);
    }

    #[test]
    fn metadata_must_be_an_object() {
        assert!(JsonObject::from_text("{}").is_ok());
        assert!(JsonObject::from_text("[]").is_err());
        assert!(JsonObject::from_text("\"x\"").is_err());
        assert!(serde_json::from_str::<JsonObject>("3").is_err());
    }

    #[test]
    fn invalid_json_is_rejected() {
        assert!(JsonValue::from_text("{").is_err());
        assert!(JsonValue::from_text("1 2").is_err());
    }
}
