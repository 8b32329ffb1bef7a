//! Black-box tests of the router over a real TCP listener on 127.0.0.1:0,
//! backed by `MemoryStore`.

mod auth;
mod errors;
mod feeds;
mod flow;
mod fuzz;
mod openapi_doc;
mod original_schema;
mod pages;
mod protection;
mod support;
