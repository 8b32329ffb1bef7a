//! The bounded fuzz run of `scripts/test`: every target for its default
//! number of inputs (or as `FUZZ_ITERS` / `FUZZ_SECONDS` say; see
//! `eventstore_fuzz::engine`). `scripts/fuzz.sh` runs them longer.

use eventstore_fuzz::engine::fuzz;
use eventstore_fuzz::targets;

#[test]
fn embedded_log() {
    fuzz(&targets::embedded_log::TARGET);
}

#[test]
fn dynamodb_codec() {
    fuzz(&targets::dynamodb_codec::TARGET);
}

#[test]
fn json_bodies() {
    fuzz(&targets::json_bodies::TARGET);
}

#[test]
fn page_keys() {
    fuzz(&targets::page_keys::TARGET);
}

#[test]
fn http_router() {
    fuzz(&targets::http_router::TARGET);
}
