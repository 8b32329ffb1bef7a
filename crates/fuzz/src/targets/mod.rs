//! The fuzz targets, one module each; [`ALL`] lists them.

pub mod dynamodb_codec;
pub mod embedded_log;
pub mod http_router;
pub mod json_bodies;
pub mod page_keys;

use crate::engine::Target;

/// Every target.
pub const ALL: [&Target; 5] = [
    &embedded_log::TARGET,
    &dynamodb_codec::TARGET,
    &json_bodies::TARGET,
    &page_keys::TARGET,
    &http_router::TARGET,
];
