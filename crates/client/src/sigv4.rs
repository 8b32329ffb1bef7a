//! AWS SigV4 signing for a Lambda Function URL with `AWS_IAM` auth.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use reqwest::header::{HeaderName, HeaderValue};
use tokio::sync::Mutex;

use crate::error::{Error, Result};

/// Signs requests with AWS Signature Version 4.
///
/// Credentials come from a provider (by default the AWS default chain:
/// environment, profile files, web identity, ECS, EC2 instance metadata)
/// and are cached until five minutes before they expire.
///
/// ```no_run
/// # async fn demo() -> Result<(), eventstore_client::Error> {
/// use eventstore_client::{Client, SigV4Signer};
///
/// let signer = SigV4Signer::from_default_chain("eu-west-1").await;
/// let client = Client::builder("https://abc.lambda-url.eu-west-1.on.aws")
///     .sigv4(signer)
///     .build()?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SigV4Signer {
    region: String,
    service: String,
    payload_hash_header: bool,
    provider: SharedCredentialsProvider,
    cache: Arc<Mutex<Option<Credentials>>>,
}

impl std::fmt::Debug for SigV4Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigV4Signer")
            .field("region", &self.region)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl SigV4Signer {
    /// Signs for service `lambda` in `region`, with credentials from the
    /// AWS default credential chain.
    pub async fn from_default_chain(region: impl Into<String>) -> Self {
        let region = region.into();
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.clone()))
            .load()
            .await;
        match config.credentials_provider() {
            Some(provider) => Self::with_provider(provider, region),
            // Only when the chain is disabled; signing then reports it.
            None => Self::with_provider(NoCredentials, region),
        }
    }

    /// Signs for service `lambda` in `region` with these credentials.
    pub fn with_credentials(credentials: Credentials, region: impl Into<String>) -> Self {
        Self::with_provider(credentials, region)
    }

    /// Signs for service `lambda` in `region` with credentials from
    /// `provider`.
    pub fn with_provider(
        provider: impl ProvideCredentials + 'static,
        region: impl Into<String>,
    ) -> Self {
        Self {
            region: region.into(),
            service: "lambda".into(),
            payload_hash_header: true,
            provider: SharedCredentialsProvider::new(provider),
            cache: Arc::new(Mutex::new(None)),
        }
    }

    /// Another signing service name than `lambda`.
    #[must_use]
    pub fn service(mut self, service: impl Into<String>) -> Self {
        self.service = service.into();
        self
    }

    /// Whether to send (and sign) `x-amz-content-sha256` with the body's
    /// hash (default: yes, as Function URLs want for requests with a body).
    #[must_use]
    pub fn payload_hash_header(mut self, on: bool) -> Self {
        self.payload_hash_header = on;
        self
    }

    async fn credentials(&self) -> Result<Credentials> {
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.as_ref() {
            let fresh = c
                .expiry()
                .is_none_or(|exp| exp > SystemTime::now() + Duration::from_secs(300));
            if fresh {
                return Ok(c.clone());
            }
        }
        let c = self
            .provider
            .provide_credentials()
            .await
            .map_err(|e| Error::Signing(format!("cannot load AWS credentials: {e}")))?;
        *cache = Some(c.clone());
        Ok(c)
    }

    /// Signs `request` now.
    pub async fn sign(&self, request: &mut reqwest::Request) -> Result<()> {
        let credentials = self.credentials().await?;
        self.sign_with(request, credentials, SystemTime::now())
    }

    /// Signs `request` with the given credentials as at `time` (adds
    /// `authorization`, `x-amz-date`, and `x-amz-security-token` /
    /// `x-amz-content-sha256` where they apply). Deterministic: the same
    /// inputs give the same signature.
    pub fn sign_with(
        &self,
        request: &mut reqwest::Request,
        credentials: Credentials,
        time: SystemTime,
    ) -> Result<()> {
        let url = request.url().clone();
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => return Err(Error::Signing("the URL has no host".into())),
        };
        let mut headers: Vec<(String, String)> = Vec::new();
        if !request.headers().contains_key(reqwest::header::HOST) {
            headers.push(("host".into(), host));
        }
        for (name, value) in request.headers() {
            // The authorization header is what signing produces.
            if name == reqwest::header::AUTHORIZATION {
                continue;
            }
            let value = value
                .to_str()
                .map_err(|_| Error::Signing(format!("header {name} is not text")))?;
            headers.push((name.as_str().to_owned(), value.to_owned()));
        }
        let body: &[u8] = request
            .body()
            .and_then(|b| b.as_bytes())
            .unwrap_or_default();
        let mut settings = SigningSettings::default();
        if self.payload_hash_header {
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        }
        let identity: Identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(&self.service)
            .time(time)
            .settings(settings)
            .build()
            .map_err(|e| Error::Signing(e.to_string()))?
            .into();
        let signable = SignableRequest::new(
            request.method().as_str(),
            url.as_str(),
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(body),
        )
        .map_err(|e| Error::Signing(e.to_string()))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| Error::Signing(e.to_string()))?
            .into_parts();
        for (name, value) in instructions.headers() {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| Error::Signing(e.to_string()))?;
            let mut value =
                HeaderValue::from_str(value).map_err(|e| Error::Signing(e.to_string()))?;
            if name == reqwest::header::AUTHORIZATION || name.as_str() == "x-amz-security-token" {
                value.set_sensitive(true);
            }
            request.headers_mut().insert(name, value);
        }
        Ok(())
    }
}

#[derive(Debug)]
struct NoCredentials;

impl ProvideCredentials for NoCredentials {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::ready(Err(
            aws_credential_types::provider::error::CredentialsError::not_loaded(
                "no credentials provider is configured",
            ),
        ))
    }
}
