//! The AWS emulator (moto) for tests.
//!
//! The endpoint is `EVENT_STORE_TEST_DYNAMODB_ENDPOINT` or `AWS_ENDPOINT_URL`
//! when set; otherwise `scripts/moto/server.py` is started once per test
//! binary from the project's `.venv` (made by `scripts/moto/setup.sh`) on a
//! free loopback port, and exits with the test process (it watches its
//! stdin, which this process holds).
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};

static SERVER: OnceLock<(String, Mutex<Option<Child>>)> = OnceLock::new();

/// The workspace's root directory.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The emulator's endpoint URL, starting it if needed.
pub fn endpoint() -> String {
    for var in ["EVENT_STORE_TEST_DYNAMODB_ENDPOINT", "AWS_ENDPOINT_URL"] {
        if let Ok(v) = std::env::var(var)
            && !v.is_empty()
        {
            return v;
        }
    }
    SERVER
        .get_or_init(|| {
            let python = root().join(".venv/bin/python");
            assert!(
                python.exists(),
                "the AWS emulator is not installed: run scripts/moto/setup.sh \
                 (creates .venv with moto[server]) or set AWS_ENDPOINT_URL"
            );
            let mut child = Command::new(python)
                .arg(root().join("scripts/moto/server.py"))
                .arg("0")
                .arg("--exit-with-stdin")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("start scripts/moto/server.py");
            let mut line = String::new();
            BufReader::new(child.stdout.take().expect("stdout"))
                .read_line(&mut line)
                .expect("read the emulator's port");
            let port = line
                .trim()
                .strip_prefix("port=")
                .unwrap_or_else(|| panic!("unexpected emulator output {line:?}"))
                .to_string();
            (format!("http://127.0.0.1:{port}"), Mutex::new(Some(child)))
        })
        .0
        .clone()
}

/// One request to the fidelity layer's control API of
/// `scripts/moto/server.py` (`/__fidelity/faults/NAME`); the answer's body.
/// Panics when the emulator has no fidelity layer (an external endpoint).
pub fn fidelity(method: &str, name: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let endpoint = endpoint();
    let host = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut conn = std::net::TcpStream::connect(&host)
        .unwrap_or_else(|e| panic!("connect to the emulator at {host}: {e}"));
    write!(
        conn,
        "{method} /__fidelity/faults/{name} HTTP/1.0\r\nHost: {host}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send to the fidelity layer");
    let mut answer = String::new();
    conn.read_to_string(&mut answer)
        .expect("read the fidelity layer's answer");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "the emulator at {endpoint} refused the fault rules (is it scripts/moto/server.py?): \
         {head} {body}"
    );
    body.to_string()
}

/// The environment a process needs to reach the emulator as AWS: its
/// endpoint, a region and dummy credentials.
pub fn aws_env() -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ]
}

/// AWS settings for the emulator: its endpoint, a region and dummy
/// credentials ([`eventstore_aws::config::for_emulator`]; feature `aws`).
#[cfg(feature = "aws")]
pub async fn sdk_config() -> aws_config::SdkConfig {
    eventstore_aws::config::for_emulator(&endpoint()).await
}

/// A unique table name with a tag (DynamoDB: 3–255 characters).
pub fn table_name(tag: &str) -> String {
    format!("es-{tag}-{}", uuid::Uuid::now_v7().simple())
}
