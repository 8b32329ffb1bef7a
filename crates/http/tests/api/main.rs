//! Black-box tests of the router over a real TCP listener on 127.0.0.1:0,
//! backed by `MemoryStore`.

mod auth;
mod errors;
mod feeds;
mod fuzz;
mod lifecycle;
mod openapi_doc;
mod original_schema;
mod protection;
mod schemathesis_findings;
mod support;
mod ui;
