//! The HTTP contract suite: every endpoint of the API contract
//! (`design/API.md`), every error code, paging, feeds and long polls,
//! retries, limits and the original service's flow, driven over HTTP
//! against any base URL.
//!
//! A [`Target`] is a running server (an in-process router, the built
//! binary on a backend, the Lambda function under its emulator) with its
//! [`Profile`]: the one place that says where a shape legitimately differs
//! (feeds and listings filled by a relay after the append is acknowledged,
//! authentication left to the host). A case never skips: it checks the
//! shape the profile describes.
//!
//! Every case works with stream types of its own ([`Target::ty`]), so a
//! target can be shared by cases and by other tests; global answers (the
//! global feed, `GET /streams`) are checked for the case's own types.
//!
//! [`contract_suite!`](crate::contract_suite) makes one test per case for a
//! target factory; [`run_all`] runs every case on one target in turn.

mod cases;

use std::any::Any;
use std::time::{Duration, Instant};

use serde_json::Value;

pub use cases::*;

use crate::http::Api;

/// Where a target's shape legitimately differs from the in-process router
/// on the reference model.
#[derive(Debug, Clone)]
pub struct Profile {
    /// A name for messages.
    pub name: &'static str,
    /// The feeds, the listings by type and `GET /streams` are written by a
    /// relay after the append is acknowledged (DynamoDB): an event appears
    /// in them within [`Profile::settle`], and a stream read may show an
    /// event without its `position` until then. The suite polls until the
    /// answer is complete instead of expecting it at once.
    pub feed_is_eventually_consistent: bool,
    /// How long an eventually consistent answer may take.
    pub settle: Duration,
    /// The API key the server requires (`Authorization: Bearer`), or
    /// `None` when authentication is the host's job (a Lambda Function URL
    /// with `AWS_IAM`): then a request without a key is served.
    pub api_key: Option<String>,
}

impl Profile {
    /// A target whose every answer is complete when the append is
    /// acknowledged, with an API key.
    pub fn consistent(name: &'static str, api_key: Option<&str>) -> Profile {
        Profile {
            name,
            feed_is_eventually_consistent: false,
            settle: Duration::ZERO,
            api_key: api_key.map(str::to_owned),
        }
    }

    /// A target whose feeds and listings come from a relay.
    pub fn relayed(name: &'static str, api_key: Option<&str>) -> Profile {
        Profile {
            name,
            feed_is_eventually_consistent: true,
            settle: Duration::from_secs(30),
            api_key: api_key.map(str::to_owned),
        }
    }
}

/// A running server under test: a client of its base URL, its profile,
/// and whatever keeps it running (dropped with the target).
pub struct Target {
    /// The client; it sends the profile's API key.
    pub api: Api,
    /// How this target's shape differs.
    pub profile: Profile,
    _keep: Box<dyn Any + Send + Sync>,
}

impl Target {
    /// A target at `base` with `profile`; `keep` lives as long as it (a
    /// server handle, a temporary directory, an emulator).
    pub fn new(base: &str, profile: Profile, keep: impl Any + Send + Sync) -> Target {
        let mut api = Api::new(base);
        if let Some(key) = &profile.api_key {
            api = api.with_bearer(key);
        }
        Target {
            api,
            profile,
            _keep: Box::new(keep),
        }
    }

    /// A stream type no other case or run uses: `tag-` and 10 random hex
    /// digits.
    pub fn ty(&self, tag: &str) -> String {
        unique_type(tag)
    }

    /// GETs `path` until `done` holds for its 200 body. On a consistent
    /// target the first answer must already satisfy it; on an eventually
    /// consistent one it is asked again until [`Profile::settle`] passes.
    /// Panics with the last body when it never holds.
    pub async fn settled(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + self.profile.settle;
        loop {
            let body = self.api.get(path).await.assert_status(200);
            if done(&body) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "{}: GET {path} did not reach the expected state{}: {body}",
                self.profile.name,
                if self.profile.feed_is_eventually_consistent {
                    format!(" within {:?}", self.profile.settle)
                } else {
                    String::new()
                }
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A stream type no other case or run uses: `tag-` and 10 random hex
/// digits.
pub fn unique_type(tag: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{tag}-{}", id.chars().take(10).collect::<String>())
}

/// One test per case of the suite for a target factory: an expression
/// that is an async function (or closure) returning a [`Target`]. The
/// calling crate needs `tokio` (with the `macros` and `rt-multi-thread`
/// features) among its (dev-)dependencies.
///
/// ```ignore
/// eventstore_testkit::contract_suite!(|| async { my_target().await });
/// ```
#[macro_export]
macro_rules! contract_suite {
    ($make:expr) => {
        $crate::contract_suite!(@cases $make;
            original_flow,
            put_appends_only_to_existing_streams,
            batch_expectations,
            retries_are_answered_with_the_original_revisions,
            concurrent_writers_race,
            stream_reads_page_both_ways,
            listings_page_in_update_order,
            feeds_page_in_order_and_filter_by_type,
            long_polls_wake_and_time_out,
            stream_types_liveness_and_request_ids,
            authentication,
            unknown_routes_methods_and_media_types,
            malformed_bodies,
            invalid_path_segments_and_queries,
            limits,
            extreme_values_round_trip,
            documents_and_pages,
            deletion_and_truncation,
            deletion_races_appends,
            deletion_during_a_feed_read,
            truncation_races_appends
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let target = ($make)().await;
                $crate::contract::$case(&target).await;
            }
        )*
    };
}
