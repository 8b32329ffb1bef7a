//! The HTTP contract suite (`eventstore_testkit::contract`) against the
//! Lambda API function under the local Lambda emulator (`cargo lambda
//! watch`, serving its Function URL), on DynamoDB in the AWS emulator
//! (moto). The feeds and listings are written by the relay, here polling
//! the table's stream from the test process as the relay function's event
//! source mapping would feed it; the profile says so
//! (`feed_is_eventually_consistent`). Two instances of the function take
//! requests, as Lambda runs one request per instance at a time and a long
//! poll holds its instance.
//!
//! Needs `.venv` with moto (`scripts/moto/setup.sh`) and cargo-lambda
//! (`scripts/setup-tools.sh`).

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use eventstore_dynamodb::{DynamoStore, PollerHandle, Relay, spawn_poller};
use eventstore_testkit::contract::{Profile, Target};
use eventstore_testkit::moto;

const API: &str = "event-store-api";

/// A child process killed when the test ends, however it ends.
struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The emulator must be told its port: one no other process can be
/// handed meanwhile.
fn free_port() -> u16 {
    eventstore_testkit::process::port_for_a_child()
}

/// `cargo lambda watch` serving only the Lambda APIs on `port`.
fn start_emulator(port: u16) -> Proc {
    let venv = moto::root().join(".venv/bin");
    assert!(
        venv.join("cargo-lambda").exists(),
        "cargo-lambda is missing: run scripts/setup-tools.sh"
    );
    let path = format!(
        "{}:{}",
        venv.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let child = Command::new("cargo")
        .args([
            "lambda",
            "watch",
            "--only-lambda-apis",
            "-A",
            "127.0.0.1",
            "-P",
        ])
        .arg(port.to_string())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start cargo lambda watch");
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "cargo lambda watch did not listen"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Proc(child)
}

/// One instance of the API function attached to the emulator.
fn start_function(port: u16, table: &str, log: &Path) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_event-store-api"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "AWS_LAMBDA_RUNTIME_API",
            format!("http://127.0.0.1:{port}/.rt/{API}"),
        )
        .env("AWS_LAMBDA_FUNCTION_NAME", API)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_LOG_LEVEL", "WARN")
        .env("EVENT_STORE_TABLE_NAME", table)
        .envs(moto::aws_env())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(log).unwrap())
        .stderr(Stdio::inherit());
    Proc(cmd.spawn().expect("start the API function"))
}

/// The function on a fresh table, the emulator, and the relay.
async fn lambda() -> Target {
    let sdk = moto::sdk_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let table = moto::table_name("lambda");
    eventstore_dynamodb::create_table(&dynamo, &table)
        .await
        .expect("create the table");
    let relay = Relay::new(DynamoStore::new(dynamo, table.clone()));
    let poller: PollerHandle = spawn_poller(
        aws_sdk_dynamodbstreams::Client::new(&sdk),
        relay,
        Duration::from_millis(50),
    );
    let port = free_port();
    let emulator = start_emulator(port);
    let logs = tempfile::tempdir().unwrap();
    let functions: Vec<Proc> = (0..2)
        .map(|i| start_function(port, &table, &logs.path().join(format!("api-{i}.log"))))
        .collect();
    let base = format!("http://127.0.0.1:{port}/lambda-url/{API}");
    Target::new(
        &base,
        Profile::relayed("lambda", None),
        (poller, functions, emulator, logs),
    )
}

/// One test per case, each on a fresh table with its own emulator. (All
/// cases on one table in turn: `crates/cli/tests/contract.rs`,
/// `dynamodb_all_cases_on_one_table`.)
mod suite {
    eventstore_testkit::contract_suite!(super::lambda);
}

/// Differential fuzzing (`eventstore_testkit::difffuzz`): random operation
/// sequences on the function and on the reference model agree. A few
/// sequences here; `scripts/difffuzz.sh MINUTES lambda` runs longer.
#[test]
fn difffuzz_lambda_agrees_with_the_reference_model() {
    use eventstore_testkit::difffuzz::{Settings, run};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let target = rt.block_on(lambda());
    run(&rt, &target, &Settings::from_env(3, 10));
}
