//! Settings, read once at start from flags and `EVENT_STORE_*` variables
//! (flags win), into typed structs.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use eventstore_http::CorsPolicy;

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
    /// Admin key: accepted wherever an API key is, and once any is given,
    /// the only keys that may delete or truncate streams (others get 403).
    /// Repeat for several; the variable takes a comma-separated list.
    #[arg(
        long = "admin-api-key",
        env = "EVENT_STORE_ADMIN_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub admin_api_keys: Vec<String>,
    /// Storage backend: `embedded` (durable, in --data-dir), `memory`
    /// (nothing is kept after the process ends; for demos and tests) or
    /// `dynamodb` (the table named by --table).
    #[arg(long, env = "EVENT_STORE_BACKEND", value_enum, default_value_t = Backend::Embedded)]
    pub backend: Backend,
    /// Embedded store: write the index's in-memory delta to disk (a
    /// checkpoint) once it holds this many events. It bounds the delta's
    /// memory (about 150 bytes an event, twice while a checkpoint is
    /// written) and how much of the log open replays.
    #[arg(
        long,
        env = "EVENT_STORE_CHECKPOINT_EVENTS",
        default_value_t = 100_000,
        value_name = "N"
    )]
    pub checkpoint_events: u64,
    /// Embedded store: also checkpoint events older than this many seconds.
    #[arg(
        long,
        env = "EVENT_STORE_CHECKPOINT_INTERVAL",
        default_value_t = 10,
        value_name = "SECONDS"
    )]
    pub checkpoint_interval: u64,
    /// Embedded store: memory for the cache of index blocks read from disk,
    /// in MiB.
    #[arg(
        long,
        env = "EVENT_STORE_INDEX_CACHE_MIB",
        default_value_t = 64,
        value_name = "MIB"
    )]
    pub index_cache_mib: usize,
    #[command(flatten)]
    pub dynamodb: DynamoArgs,
    #[command(flatten)]
    pub protection: ProtectionArgs,
}

/// Limits and timeouts that keep slow or hostile clients from starving
/// the server, and its CORS policy.
#[derive(Debug, Clone, clap::Args)]
pub struct ProtectionArgs {
    /// Seconds a connection has to send a complete request head, counted
    /// from when the server starts waiting for it (after accepting it, or
    /// after answering the previous request); then it is closed.
    #[arg(
        long,
        env = "EVENT_STORE_HEADER_TIMEOUT",
        default_value_t = 10,
        value_name = "SECS",
        help_heading = "Limits"
    )]
    pub header_timeout: u64,
    /// Seconds a request body may pause between two of its chunks before
    /// the request is answered 408.
    #[arg(
        long,
        env = "EVENT_STORE_BODY_TIMEOUT",
        default_value_t = 10,
        value_name = "SECS",
        help_heading = "Limits"
    )]
    pub body_timeout: u64,
    /// Seconds within which every request must be answered, upload
    /// included (408 otherwise); long polls answer before it.
    #[arg(
        long,
        env = "EVENT_STORE_REQUEST_TIMEOUT",
        default_value_t = 60,
        value_name = "SECS",
        help_heading = "Limits"
    )]
    pub request_timeout: u64,
    /// Seconds an idle kept-alive connection stays open after an answer
    /// while no new request arrives (0: no keep-alive, one request per
    /// connection).
    #[arg(
        long,
        env = "EVENT_STORE_KEEP_ALIVE_TIMEOUT",
        default_value_t = 5,
        value_name = "SECS",
        help_heading = "Limits"
    )]
    pub keep_alive_timeout: u64,
    /// Most connections served at once; further ones wait, unanswered, in
    /// the listen queue until one closes.
    #[arg(
        long,
        env = "EVENT_STORE_MAX_CONNECTIONS",
        default_value_t = 1024,
        value_name = "N",
        help_heading = "Limits"
    )]
    pub max_connections: usize,
    /// Most feed requests held waiting for events (`wait` > 0) at once;
    /// one more that would wait is answered 503 with `Retry-After`.
    #[arg(
        long,
        env = "EVENT_STORE_MAX_LONG_POLLS",
        default_value_t = 512,
        value_name = "N",
        help_heading = "Limits"
    )]
    pub max_long_polls: usize,
    /// Seconds that requests in flight get to finish after SIGINT/SIGTERM;
    /// then their connections are dropped, the store is closed and the
    /// process exits.
    #[arg(
        long,
        env = "EVENT_STORE_SHUTDOWN_TIMEOUT",
        default_value_t = 10,
        value_name = "SECS",
        help_heading = "Limits"
    )]
    pub shutdown_timeout: u64,
    /// Browser origin allowed to call the API from another site, as
    /// `scheme://host[:port]` (repeat for several; the variable takes a
    /// comma-separated list); `*` allows every origin. Without any, CORS
    /// is off: only the same-origin web UI and API page can call it from
    /// a browser.
    #[arg(
        long = "cors-origin",
        env = "EVENT_STORE_CORS_ORIGINS",
        value_delimiter = ',',
        value_name = "ORIGIN",
        help_heading = "Limits"
    )]
    pub cors_origins: Vec<String>,
}

/// The server's limits and timeouts, validated.
#[derive(Debug, Clone)]
pub struct Protection {
    /// Time to send a complete request head.
    pub header_timeout: Duration,
    /// Longest pause within a request body.
    pub body_timeout: Duration,
    /// Time to answer a request.
    pub request_timeout: Duration,
    /// Idle time of a kept-alive connection; `None`: no keep-alive.
    pub keep_alive_timeout: Option<Duration>,
    /// Connections served at once.
    pub max_connections: usize,
    /// Long polls held at once.
    pub max_long_polls: usize,
    /// Time in-flight requests get at shutdown.
    pub shutdown_timeout: Duration,
    /// Which origins may call the API cross-site.
    pub cors: CorsPolicy,
}

impl Protection {
    fn from_args(args: ProtectionArgs) -> anyhow::Result<Self> {
        let positive = |name: &str, secs: u64| {
            if secs == 0 {
                anyhow::bail!("--{name} must be at least 1 second");
            }
            Ok(Duration::from_secs(secs))
        };
        if args.max_connections == 0 {
            anyhow::bail!("--max-connections must be at least 1");
        }
        Ok(Self {
            header_timeout: positive("header-timeout", args.header_timeout)?,
            body_timeout: positive("body-timeout", args.body_timeout)?,
            request_timeout: positive("request-timeout", args.request_timeout)?,
            keep_alive_timeout: (args.keep_alive_timeout > 0)
                .then(|| Duration::from_secs(args.keep_alive_timeout)),
            max_connections: args.max_connections,
            max_long_polls: args.max_long_polls,
            shutdown_timeout: positive("shutdown-timeout", args.shutdown_timeout)?,
            cors: CorsPolicy::from_origins(&args.cors_origins)
                .map_err(|e| anyhow::anyhow!("--cors-origin: {e}"))?,
        })
    }
}

/// Options of the DynamoDB backend.
#[derive(Debug, Clone, clap::Args)]
pub struct DynamoArgs {
    /// DynamoDB table of the `dynamodb` backend (create it with
    /// `event-store dynamodb create-table NAME`). AWS settings come from the
    /// usual AWS variables (`AWS_REGION`, credentials, and
    /// `AWS_ENDPOINT_URL` for an emulator such as moto).
    #[arg(long, env = "EVENT_STORE_TABLE", help_heading = "DynamoDB backend")]
    pub table: Option<String>,
    /// Do not run the feed relay in this process. By default the server
    /// polls the table's DynamoDB Stream and fills the global feed and the
    /// stream listings itself, so a stream appears in listings and feeds
    /// within seconds. Use this when a relay function (the relay Lambda of
    /// the AWS deployment) does that work: this server then only appends
    /// and reads.
    #[arg(long, env = "EVENT_STORE_NO_RELAY", help_heading = "DynamoDB backend")]
    pub no_relay: bool,
    /// Accepted for compatibility and ignored: the relay runs in this
    /// process unless --no-relay is given.
    #[arg(
        long,
        env = "EVENT_STORE_RELAY",
        hide = true,
        conflicts_with = "no_relay"
    )]
    pub relay: bool,
    /// SNS topic to which the in-process relay publishes one notification
    /// per append (not with --no-relay).
    #[arg(
        long,
        env = "EVENT_STORE_SNS_TOPIC_ARN",
        help_heading = "DynamoDB backend"
    )]
    pub sns_topic_arn: Option<String>,
    /// Record every DynamoDB request this server makes and, when it stops,
    /// print per client (`api`, `relay`) one JSON line to stdout: requests
    /// by operation and the WCU/RCU they consume by DynamoDB's published
    /// rules, computed from item sizes (for benchmarks on an emulator,
    /// which reports no realistic consumed capacity).
    #[arg(
        long,
        env = "EVENT_STORE_COST_REPORT",
        help_heading = "DynamoDB backend"
    )]
    pub cost_report: bool,
}

/// Where the server keeps events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// The durable embedded store in `--data-dir`.
    Embedded,
    /// In memory only; lost when the process ends.
    Memory,
    /// A DynamoDB table (`--table`).
    Dynamodb,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Embedded => "embedded",
            Backend::Memory => "memory",
            Backend::Dynamodb => "dynamodb",
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
    /// API keys (empty, with no admin keys either: authentication off).
    pub api_keys: Vec<String>,
    /// Admin keys: the only keys that may delete or truncate, when any.
    pub admin_api_keys: Vec<String>,
    /// Storage backend.
    pub backend: Backend,
    /// Checkpoints and cache of the embedded store's index.
    pub embedded: EmbeddedSettings,
    /// Settings of the `dynamodb` backend (`Some` exactly when it is chosen).
    pub dynamodb: Option<DynamoSettings>,
    /// Limits, timeouts and CORS.
    pub protection: Protection,
}

/// Checkpoints and cache of the embedded store's index, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddedSettings {
    /// Events in the index's delta that start a checkpoint.
    pub checkpoint_events: u64,
    /// Age of the delta that starts a checkpoint.
    pub checkpoint_interval: Duration,
    /// Bytes of the index's block cache.
    pub index_cache_bytes: usize,
}

impl EmbeddedSettings {
    fn from_args(args: &ServeArgs) -> anyhow::Result<Self> {
        if args.checkpoint_events == 0 {
            anyhow::bail!("--checkpoint-events must be at least 1");
        }
        if args.checkpoint_interval == 0 {
            anyhow::bail!("--checkpoint-interval must be at least 1 second");
        }
        Ok(Self {
            checkpoint_events: args.checkpoint_events,
            checkpoint_interval: Duration::from_secs(args.checkpoint_interval),
            index_cache_bytes: args.index_cache_mib.saturating_mul(1 << 20),
        })
    }
}

/// Settings of the DynamoDB backend, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamoSettings {
    /// The table.
    pub table: String,
    /// Whether the feed relay runs in this process.
    pub relay: bool,
    /// SNS topic the in-process relay publishes to.
    pub sns_topic_arn: Option<String>,
    /// Whether to print the requests' cost at shutdown.
    pub cost_report: bool,
}

impl DynamoSettings {
    /// Validates the DynamoDB options for `backend`: `None` unless it is
    /// `dynamodb`, and then a table is required.
    fn from_args(backend: Backend, args: DynamoArgs) -> anyhow::Result<Option<Self>> {
        let table = args
            .table
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        let topic = args
            .sns_topic_arn
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        if backend != Backend::Dynamodb {
            if args.relay || args.no_relay || topic.is_some() || args.cost_report {
                anyhow::bail!(
                    "--relay, --no-relay, --sns-topic-arn and --cost-report need --backend dynamodb"
                );
            }
            return Ok(None);
        }
        let Some(table) = table else {
            anyhow::bail!("the dynamodb backend needs a table: --table NAME or EVENT_STORE_TABLE");
        };
        check_table_name(&table)?;
        if let Some(arn) = &topic {
            if args.no_relay {
                anyhow::bail!(
                    "--sns-topic-arn needs the in-process relay (it publishes the \
                     notifications): drop --no-relay"
                );
            }
            if !(arn.starts_with("arn:") && arn.contains(":sns:")) {
                anyhow::bail!("--sns-topic-arn: {arn:?} is not an SNS topic ARN");
            }
        }
        Ok(Some(Self {
            table,
            relay: !args.no_relay,
            sns_topic_arn: topic,
            cost_report: args.cost_report,
        }))
    }
}

/// Trimmed, non-empty keys; each printable ASCII without spaces.
fn keys(given: Vec<String>) -> anyhow::Result<Vec<String>> {
    let keys: Vec<String> = given
        .into_iter()
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty())
        .collect();
    if let Some(bad) = keys
        .iter()
        .find(|k| !k.bytes().all(|b| b.is_ascii_graphic()))
    {
        anyhow::bail!(
            "an API key must be printable ASCII without spaces (got one of {} characters)",
            bad.len()
        );
    }
    Ok(keys)
}

impl ServeSettings {
    /// Validates the parsed options.
    pub fn from_args(args: ServeArgs) -> anyhow::Result<Self> {
        let embedded = EmbeddedSettings::from_args(&args)?;
        let api_keys = keys(args.api_keys)?;
        let admin_api_keys = keys(args.admin_api_keys)?;
        let dynamodb = DynamoSettings::from_args(args.backend, args.dynamodb)?;
        let protection = Protection::from_args(args.protection)?;
        Ok(Self {
            bind: args.bind,
            port: args.port,
            data_dir: args.data_dir,
            api_keys,
            admin_api_keys,
            backend: args.backend,
            embedded,
            dynamodb,
            protection,
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
            .field(
                "admin_api_keys",
                &format_args!("[{} hidden]", self.admin_api_keys.len()),
            )
            .field("backend", &self.backend)
            .field("embedded", &self.embedded)
            .field("dynamodb", &self.dynamodb)
            .field("protection", &self.protection)
            .finish()
    }
}

/// Checks a table name against DynamoDB's rule (3 to 255 characters of
/// `a-z A-Z 0-9 _ - .`), so that a typo fails before any request.
pub fn check_table_name(table: &str) -> anyhow::Result<()> {
    if !(3..=255).contains(&table.len())
        || !table
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
    {
        anyhow::bail!(
            "invalid table name {table:?}: 3 to 255 characters of a-z, A-Z, 0-9, '_', '-', '.'"
        );
    }
    Ok(())
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
    /// Also export the server's spans (request, handler, store call and
    /// the DynamoDB calls under it) to this OpenTelemetry collector, by
    /// OTLP over HTTP (protobuf), e.g. `http://127.0.0.1:4318`. Off unless
    /// given.
    #[arg(long, env = "EVENT_STORE_OTLP_ENDPOINT", global = true)]
    pub otlp_endpoint: Option<String>,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}
