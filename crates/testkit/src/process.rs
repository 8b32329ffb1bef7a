//! A server binary started on port 0, its address read from its first
//! `listening on URL` line on stdout; stderr and the later stdout lines are
//! collected for the test to read. The process is killed when the handle
//! is dropped, however the test ends.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running server process.
pub struct Server {
    /// The process.
    pub child: Child,
    /// Its base URL, `http://127.0.0.1:PORT` (no trailing slash).
    pub url: String,
    /// Everything it wrote to stderr so far.
    pub stderr: Arc<Mutex<String>>,
    /// The lines it wrote to stdout after `listening on`.
    pub stdout: Arc<Mutex<Vec<String>>>,
}

/// `bin` with `args`, and an environment without the caller's
/// `EVENT_STORE_*`, `AWS_*` and `RUST_LOG` settings (so a developer's shell
/// cannot change what a test sees), plus `env`.
pub fn command(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("EVENT_STORE_") || k.starts_with("AWS_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

impl Server {
    /// Starts `bin` with `args` and `env` (see [`command`]); panics when it
    /// exits before it listens.
    pub fn start(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Server {
        Self::try_start(bin, args, env).unwrap_or_else(|(status, err)| {
            panic!("server exited before listening ({status:?}): {err}")
        })
    }

    /// [`Server::start`], or the exit status and stderr of a process that
    /// exited before it listened.
    pub fn try_start(
        bin: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Server, (Option<ExitStatus>, String)> {
        Self::spawn(command(bin, args, env))
    }

    /// Starts a prepared command (stdio is set here).
    pub fn spawn(mut cmd: Command) -> Result<Server, (Option<ExitStatus>, String)> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start the server binary");
        let stderr = Arc::new(Mutex::new(String::new()));
        {
            let mut pipe = child.stderr.take().expect("stderr");
            let sink = stderr.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    sink.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(
                Instant::now() < deadline,
                "server did not report its address"
            );
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(url) = line.trim().strip_prefix("listening on ") {
                        let url = url.trim().trim_end_matches('/').to_owned();
                        let stdout = Arc::new(Mutex::new(Vec::new()));
                        let sink = stdout.clone();
                        std::thread::spawn(move || {
                            for line in lines.map_while(Result::ok) {
                                sink.lock().unwrap().push(line);
                            }
                        });
                        return Ok(Server {
                            child,
                            url,
                            stderr,
                            stdout,
                        });
                    }
                }
                _ => {
                    let status = child.wait().ok();
                    std::thread::sleep(Duration::from_millis(100));
                    let err = stderr.lock().unwrap().clone();
                    return Err((status, err));
                }
            }
        }
    }

    /// Sends SIGTERM.
    pub fn terminate(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Sends SIGTERM and waits (at most 30 s) for a clean exit; returns
    /// stderr.
    pub fn stop(self) -> String {
        self.stop_with_output().0
    }

    /// [`Server::stop`], also returning the stdout lines after
    /// `listening on`.
    pub fn stop_with_output(mut self) -> (String, Vec<String>) {
        self.terminate();
        let status = wait_with_timeout(&mut self.child, Duration::from_secs(30));
        assert!(status.success(), "exit status {status:?}");
        std::thread::sleep(Duration::from_millis(100));
        (
            self.stderr.lock().unwrap().clone(),
            self.stdout.lock().unwrap().clone(),
        )
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for `child` to exit, at most `limit` (then panics).
pub fn wait_with_timeout(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the process did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A free loopback port for a program that must be told its port (it
/// cannot bind port 0 and report it), chosen below the kernel's ephemeral
/// range: a port the kernel hands out for port 0 (the emulator's, another
/// test's server) is never chosen, so another process cannot take it
/// between this check and the program's bind.
pub fn port_for_a_child() -> u16 {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (from, to) = (10_000u16, low.max(10_001));
    let seed = u64::from(std::process::id())
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
    let mut x = seed | 1;
    loop {
        // xorshift64: a different sequence per process and call.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let port = from + (x % u64::from(to - from)) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
