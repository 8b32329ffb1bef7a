//! How a command reaches the store: URL, auth, timeouts.

use std::time::Duration;

use eventstore_client::Client;

use super::exit::usage;

/// Connection options shared by every client command.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnArgs {
    /// The store's base URL (a local server or a Lambda Function URL).
    #[arg(long, env = "EVENT_STORE_URL", default_value = eventstore_client::DEFAULT_URL)]
    pub url: String,
    /// API key sent as `Authorization: Bearer <key>`.
    #[arg(long, env = "EVENT_STORE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Sign requests with AWS SigV4 (Function URL with AWS_IAM auth), using
    /// the default AWS credential chain.
    #[arg(long, conflicts_with = "api_key")]
    pub sigv4: bool,
    /// AWS region for --sigv4.
    #[arg(long, env = "AWS_REGION", requires = "sigv4")]
    pub region: Option<String>,
    /// Seconds allowed for one request (long polls get their wait on top).
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub timeout: u64,
    /// Seconds allowed to connect.
    #[arg(long, default_value_t = 5, value_name = "SECS")]
    pub connect_timeout: u64,
}

impl ConnArgs {
    /// Builds the client.
    pub async fn client(&self) -> anyhow::Result<Client> {
        let mut builder = Client::builder(&self.url)
            .request_timeout(Duration::from_secs(self.timeout.max(1)))
            .connect_timeout(Duration::from_secs(self.connect_timeout.max(1)));
        if let Some(key) = &self.api_key {
            builder = builder.api_key(key);
        }
        if self.sigv4 {
            builder = self.with_sigv4(builder).await?;
        }
        builder.build().map_err(|e| usage(e.to_string()))
    }

    #[cfg(feature = "sigv4")]
    async fn with_sigv4(
        &self,
        builder: eventstore_client::ClientBuilder,
    ) -> anyhow::Result<eventstore_client::ClientBuilder> {
        let Some(region) = &self.region else {
            return Err(usage("--sigv4 needs --region (or AWS_REGION)"));
        };
        let signer = eventstore_client::SigV4Signer::from_default_chain(region.clone()).await;
        Ok(builder.sigv4(signer))
    }

    #[cfg(not(feature = "sigv4"))]
    async fn with_sigv4(
        &self,
        _builder: eventstore_client::ClientBuilder,
    ) -> anyhow::Result<eventstore_client::ClientBuilder> {
        Err(usage(
            "this build has no SigV4 support (cargo feature `sigv4`)",
        ))
    }
}
