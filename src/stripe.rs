//! A small client for the one Stripe call we make, with the retry rule of Stripe's own
//! SDKs: retry what Stripe says is safe, with one idempotency key, inside one deadline.

use std::{sync::Arc, time::Duration};

use reqwest::{RequestBuilder, StatusCode, header::HeaderMap};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, de::DeserializeOwned};
use thread_local::ThreadLocal;
use tokio::time::Instant;
use url::Url;

use uuid::Uuid;

use crate::{
    config::StripeConfig,
    secrets::{self, EncryptionKeys, SecretError},
};

mod checkout;
mod flow;
mod webhook_endpoints;

pub use checkout::CheckoutSession;
pub use flow::{AfterCompletion, Flow, ReturnUrl, SubscriptionId};
pub use webhook_endpoints::WebhookEndpoint;

/// The API version every request pins, so Stripe's answers keep the shape we parse.
pub const API_VERSION: &str = "2026-10-28.endive";

/// The portal's languages at `API_VERSION` (the `locale` enum of `POST
/// /v1/billing_portal/sessions`); `auto` lets Stripe pick the customer's or browser's.
pub const PORTAL_LOCALES: &[&str] = &[
    "auto", "bg", "cs", "da", "de", "el", "en", "en-AU", "en-CA", "en-GB", "en-IE", "en-IN", "en-NZ",
    "en-SG", "es", "es-419", "et", "fi", "fil", "fr", "fr-CA", "hr", "hu", "id", "it", "ja", "ko", "lt",
    "lv", "ms", "mt", "nb", "nl", "pl", "pt", "pt-BR", "ro", "ru", "sk", "sl", "sv", "th", "tr", "vi", "zh",
    "zh-HK", "zh-TW",
];

/// Exact match: Stripe rejects `EN` or `en_GB`, so we do too, before calling it.
pub fn is_portal_locale(locale: &str) -> bool {
    PORTAL_LOCALES.contains(&locale)
}

/// A project's stored key for the mode as a usable key: decrypted when encrypted; `None`
/// when none is stored or it is of the other mode (a project not configured for the mode).
pub fn usable_key(
    encryption_keys: Option<&EncryptionKeys>,
    stored: Option<String>,
    project: Uuid,
    livemode: bool,
) -> Result<Option<SecretString>, SecretError> {
    let Some(stored) = stored.filter(|stored| !stored.is_empty()) else { return Ok(None) };
    let key = secrets::reveal(encryption_keys, stored, project, livemode)?;
    if !key_fits_mode(&key, livemode) {
        if !key.is_empty() {
            tracing::warn!(project_id = %project, livemode, "project's Stripe key does not match the mode");
        }
        return Ok(None);
    }
    Ok(Some(SecretString::from(key)))
}

/// Whether a secret (`sk_`) or restricted (`rk_`) key is for the mode: a test-mode
/// request must never be served with a live key, nor the reverse.
pub fn key_fits_mode(key: &str, livemode: bool) -> bool {
    let prefixes = if livemode { ["sk_live_", "rk_live_"] } else { ["sk_test_", "rk_test_"] };
    prefixes.iter().any(|p| key.starts_with(p))
}

/// Cheap to clone: every clone shares the same connections.
///
/// Each thread has connections of its own: a connection belongs to the runtime that
/// opened it, and a request sent on another thread's connection costs a wake-up of
/// that thread each way. With one runtime per thread (`server::serve_on_threads`), a
/// request and its Stripe call then stay on one thread.
#[derive(Clone, Debug)]
pub struct StripeClient {
    clients: Arc<ThreadLocal<reqwest::Client>>,
    connect_timeout: Duration,
    api_base: Url,
    sessions_url: Url,
    timeout: Duration,
    retry: RetryPolicy,
}

#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

/// What `POST /v1/billing_portal/sessions` is asked for; `form` is what is sent.
#[derive(Debug)]
pub struct PortalSessionRequest<'a> {
    pub customer: &'a str,
    pub return_url: &'a str,
    /// A portal configuration (`bpc_...`); Stripe's default when `None`.
    pub configuration: Option<&'a str>,
    pub locale: Option<&'a str>,
    pub flow: Option<&'a Flow>,
}

impl PortalSessionRequest<'_> {
    /// The form fields, in the order Stripe's docs list them.
    pub fn form(&self) -> Vec<(&'static str, &str)> {
        let mut form = vec![("customer", self.customer), ("return_url", self.return_url)];
        form.extend(self.configuration.map(|id| ("configuration", id)));
        form.extend(self.locale.map(|locale| ("locale", locale)));
        if let Some(flow) = self.flow {
            flow.form(&mut form);
        }
        form
    }
}

#[derive(Debug, Deserialize)]
pub struct PortalSession {
    pub id: String,
    pub url: String,
}

/// The part of a subscription we read: whose it is.
#[derive(Debug, Deserialize)]
pub struct Subscription {
    pub id: String,
    pub customer: String,
}

/// Stripe's error body: `{"error": {"type": ..., "code": ..., "param": ..., "message": ...}}`.
#[derive(Debug, Default, Deserialize)]
struct StripeErrorBody {
    #[serde(default)]
    error: StripeErrorDetail,
}

#[derive(Debug, Default, Deserialize)]
struct StripeErrorDetail {
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<String>,
    param: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    #[error("no such customer (request {request_id:?})")]
    CustomerNotFound { request_id: Option<String> },
    #[error("no such subscription (request {request_id:?})")]
    SubscriptionNotFound { request_id: Option<String> },
    /// The portal configuration does not offer the flow, or the flow does not apply.
    #[error("flow refused: code={code:?} param={param:?} (request {request_id:?})")]
    FlowRefused { code: Option<String>, param: Option<String>, request_id: Option<String> },
    #[error("no such portal configuration (request {request_id:?})")]
    ConfigurationNotFound { request_id: Option<String> },
    #[error("answered {status} type={kind:?} code={code:?} (request {request_id:?})")]
    Rejected { status: u16, kind: Option<String>, code: Option<String>, request_id: Option<String> },
    #[error("rate limited")]
    RateLimited { retry_after: Duration },
    #[error("unreachable: {0}")]
    Unreachable(#[source] reqwest::Error),
    #[error("no answer within the deadline")]
    Timeout,
    #[error("unreadable answer: {reason} (request {request_id:?})")]
    InvalidResponse { reason: String, request_id: Option<String> },
}

impl StripeError {
    /// Logged once per failed request; the key is never part of any variant.
    pub fn log(&self) {
        match self {
            StripeError::CustomerNotFound { request_id } => {
                tracing::info!(stripe_request_id = ?request_id, "stripe has no such customer")
            }
            StripeError::SubscriptionNotFound { request_id } => {
                tracing::info!(stripe_request_id = ?request_id, "stripe has no such subscription")
            }
            // The integrator's to fix, not ours: a warning, not an error.
            StripeError::FlowRefused { .. } | StripeError::ConfigurationNotFound { .. } => {
                tracing::warn!(error = %self, "stripe refused the portal settings")
            }
            _ => tracing::error!(error = %self, "stripe call failed"),
        }
    }

    /// A short, fixed name for metrics labels.
    pub fn outcome(&self) -> &'static str {
        match self {
            StripeError::CustomerNotFound { .. } => "customer_not_found",
            StripeError::SubscriptionNotFound { .. } => "subscription_not_found",
            StripeError::FlowRefused { .. } => "flow_refused",
            StripeError::ConfigurationNotFound { .. } => "configuration_not_found",
            StripeError::Rejected { .. } => "rejected",
            StripeError::RateLimited { .. } => "rate_limited",
            StripeError::Unreachable(_) => "unreachable",
            StripeError::Timeout => "timeout",
            StripeError::InvalidResponse { .. } => "invalid_response",
        }
    }
}

fn http_client(connect_timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .user_agent(concat!("customer-portal/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// One failed attempt, and whether Stripe's rules allow another.
struct Failure {
    error: StripeError,
    retryable: bool,
    retry_after: Option<Duration>,
}

impl StripeClient {
    pub fn new(config: &StripeConfig) -> Result<Self, reqwest::Error> {
        // Built once here so a client that cannot be built stops start-up.
        let clients = Arc::new(ThreadLocal::new());
        clients.get_or_try(|| http_client(config.connect_timeout))?;
        let sessions_url =
            config.api_base.join("v1/billing_portal/sessions").expect("a fixed relative path joins");
        Ok(Self {
            clients,
            connect_timeout: config.connect_timeout,
            api_base: config.api_base.clone(),
            sessions_url,
            timeout: config.timeout,
            retry: RetryPolicy {
                max_retries: config.max_retries,
                initial_backoff: config.retry_initial_backoff,
                max_backoff: Duration::from_secs(5),
            },
        })
    }

    /// This thread's HTTP client.
    fn http(&self) -> &reqwest::Client {
        // The same settings built once at start-up, so building it again does not fail.
        self.clients.get_or(|| http_client(self.connect_timeout).expect("built once at start-up"))
    }

    /// Creates a billing-portal session, retrying within the configured deadline.
    pub async fn create_portal_session(
        &self,
        key: &SecretString,
        request: &PortalSessionRequest<'_>,
    ) -> Result<PortalSession, StripeError> {
        // One key for every attempt, so a retry can never open a second session.
        let idempotency_key = uuid::Uuid::new_v4().to_string();
        let form = request.form();
        self.call(key, || {
            self.http()
                .post(self.sessions_url.clone())
                .header("Idempotency-Key", &idempotency_key)
                .form(&form)
        })
        .await
    }

    /// Reads a subscription, to check whose it is before opening a flow on it.
    pub async fn retrieve_subscription(
        &self,
        key: &SecretString,
        id: &str,
    ) -> Result<Subscription, StripeError> {
        let url = self.api_url(&["v1", "subscriptions", id])?;
        self.call(key, || self.http().get(url.clone())).await
    }

    /// `{api_base}/segments…`, each segment percent-encoded, so no ID can reach another path.
    fn api_url(&self, segments: &[&str]) -> Result<url::Url, StripeError> {
        let mut url = self.api_base.clone();
        url.path_segments_mut()
            .map_err(|()| StripeError::InvalidResponse {
                reason: "API base cannot be a base".into(),
                request_id: None,
            })?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// Sends `request()` until it succeeds, fails for good, or the deadline passes.
    async fn call<T: DeserializeOwned>(
        &self,
        key: &SecretString,
        request: impl Fn() -> RequestBuilder,
    ) -> Result<T, StripeError> {
        let deadline = Instant::now() + self.timeout;
        let mut retries = 0;
        loop {
            let attempt = self.attempt(key, request());
            let failure = match tokio::time::timeout_at(deadline, attempt).await {
                Err(_) => return Err(StripeError::Timeout),
                Ok(Ok(session)) => return Ok(session),
                Ok(Err(failure)) => failure,
            };
            if !failure.retryable || retries >= self.retry.max_retries {
                return Err(failure.error);
            }
            let delay = self.retry.backoff(retries).max(failure.retry_after.unwrap_or_default());
            if Instant::now() + delay >= deadline {
                return Err(failure.error);
            }
            tracing::warn!(error = %failure.error, retry = retries + 1, ?delay, "retrying stripe call");
            tokio::time::sleep(delay).await;
            retries += 1;
        }
    }

    async fn attempt<T: DeserializeOwned>(
        &self,
        key: &SecretString,
        request: RequestBuilder,
    ) -> Result<T, Failure> {
        let response = request
            // bearer_auth marks the header sensitive, so reqwest never prints it.
            .bearer_auth(key.expose_secret())
            .header("Stripe-Version", API_VERSION)
            .send()
            .await
            .map_err(|e| Failure {
                error: StripeError::Unreachable(e),
                retryable: true,
                retry_after: None,
            })?;

        let status = response.status();
        // What the headers say, read before the body consumes the response.
        let headers = response.headers();
        let request_id = header_str(headers, "request-id").map(str::to_owned);
        let should_retry = match header_str(headers, "stripe-should-retry") {
            Some("true") => Some(true),
            Some("false") => Some(false),
            _ => None,
        };
        let retry_after = header_str(headers, "retry-after")
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64);
        let body = response.bytes().await.map_err(|e| Failure {
            error: StripeError::Unreachable(e),
            retryable: true,
            retry_after: None,
        })?;

        if status.is_success() {
            return serde_json::from_slice::<T>(&body).map_err(|e| Failure {
                error: StripeError::InvalidResponse { reason: e.to_string(), request_id },
                retryable: false,
                retry_after: None,
            });
        }

        let detail = serde_json::from_slice::<StripeErrorBody>(&body).unwrap_or_default().error;
        let retryable = should_retry.unwrap_or(
            status == StatusCode::CONFLICT
                || status == StatusCode::TOO_MANY_REQUESTS
                || status.is_server_error(),
        );

        let missing = detail.code.as_deref() == Some("resource_missing");
        let param = detail.param.as_deref().unwrap_or_default();
        let error = if missing && param == "customer" {
            StripeError::CustomerNotFound { request_id }
        } else if missing && (param == "id" || param.ends_with("[subscription]")) {
            // `id` is the subscription read by `retrieve_subscription`.
            StripeError::SubscriptionNotFound { request_id }
        } else if missing && param == "configuration" {
            StripeError::ConfigurationNotFound { request_id }
        } else if status == StatusCode::BAD_REQUEST && param.starts_with("flow_data") {
            StripeError::FlowRefused { code: detail.code, param: detail.param, request_id }
        } else if status == StatusCode::TOO_MANY_REQUESTS {
            StripeError::RateLimited { retry_after: retry_after.unwrap_or(Duration::from_secs(1)) }
        } else {
            StripeError::Rejected {
                status: status.as_u16(),
                kind: detail.kind,
                code: detail.code,
                request_id,
            }
        };
        Err(Failure { error, retryable, retry_after })
    }
}

impl RetryPolicy {
    /// Exponential backoff with jitter, as Stripe's SDKs do: a random point in the
    /// upper half of the doubled delay, so many clients do not retry in step.
    fn backoff(&self, retries: u32) -> Duration {
        let full = self.initial_backoff.saturating_mul(2u32.saturating_pow(retries)).min(self.max_backoff);
        full.mul_f64(0.5 + fastrand::f64() / 2.0).max(self.initial_backoff / 2)
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}
