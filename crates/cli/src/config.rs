//! Settings, read once at start from flags and `EVENT_STORE_*` variables
//! (flags win), into typed structs.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

/// Options of `event-store serve` (also what runs without a subcommand).
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "EVENT_STORE_BIND", default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Port to listen on; 0 picks a free one (the `listening on` line tells which).
    #[arg(long, env = "EVENT_STORE_PORT", default_value_t = 8080)]
    pub port: u16,
    /// Directory of the embedded store (created if missing).
    #[arg(long, env = "EVENT_STORE_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// API key that clients must send as `Authorization: Bearer <key>`
    /// (repeat for several; the variable takes a comma-separated list).
    /// Without any key, requests need no authentication.
    #[arg(
        long = "api-key",
        env = "EVENT_STORE_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_keys: Vec<String>,
    /// Storage backend: `embedded` (durable, in --data-dir) or `memory`
    /// (nothing is kept after the process ends; for demos and tests).
    #[arg(long, env = "EVENT_STORE_BACKEND", value_enum, default_value_t = Backend::Embedded)]
    pub backend: Backend,
}

/// Where the server keeps events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// The durable embedded store in `--data-dir`.
    Embedded,
    /// In memory only; lost when the process ends.
    Memory,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Embedded => "embedded",
            Backend::Memory => "memory",
        })
    }
}

/// The server's settings, validated.
#[derive(Clone)]
pub struct ServeSettings {
    /// Address to bind.
    pub bind: IpAddr,
    /// Port to bind (0: any free port).
    pub port: u16,
    /// Data directory of the embedded backend.
    pub data_dir: PathBuf,
    /// API keys (empty: authentication off).
    pub api_keys: Vec<String>,
    /// Storage backend.
    pub backend: Backend,
}

impl ServeSettings {
    /// Validates the parsed options.
    pub fn from_args(args: ServeArgs) -> anyhow::Result<Self> {
        let api_keys: Vec<String> = args
            .api_keys
            .into_iter()
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty())
            .collect();
        if let Some(bad) = api_keys
            .iter()
            .find(|k| !k.bytes().all(|b| b.is_ascii_graphic()))
        {
            anyhow::bail!(
                "an API key must be printable ASCII without spaces (got one of {} characters)",
                bad.len()
            );
        }
        Ok(Self {
            bind: args.bind,
            port: args.port,
            data_dir: args.data_dir,
            api_keys,
            backend: args.backend,
        })
    }
}

impl fmt::Debug for ServeSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeSettings")
            .field("bind", &self.bind)
            .field("port", &self.port)
            .field("data_dir", &self.data_dir)
            .field(
                "api_keys",
                &format_args!("[{} hidden]", self.api_keys.len()),
            )
            .field("backend", &self.backend)
            .finish()
    }
}

/// Log options, accepted before or after the subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// Log line format on stderr.
    #[arg(long, env = "EVENT_STORE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// Log filter, e.g. `info` or `eventstore_http=debug,info`.
    #[arg(long, env = "RUST_LOG", default_value = "info", global = true)]
    pub log_level: String,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}
