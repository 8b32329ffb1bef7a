//! The AWS emulator (moto) for tests, std only so that any crate's tests
//! can include this file (`#[path]`).
//!
//! The endpoint is `EVENT_STORE_TEST_DYNAMODB_ENDPOINT` or `AWS_ENDPOINT_URL`
//! when set; otherwise `scripts/moto/server.py` is started once per test
//! binary from the project's `.venv` (made by `scripts/moto/setup.sh`) on a
//! free loopback port, and exits with the test process (it watches its
//! stdin, which this process holds).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};

static SERVER: OnceLock<(String, Mutex<Option<Child>>)> = OnceLock::new();

fn root() -> PathBuf {
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
