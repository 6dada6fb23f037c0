//! The use case behind the portal route: open a Stripe billing-portal session for the
//! token's user. Quota, lookup, the project's key for the mode, the origin policy, the
//! subscription's owner, the language, and the timed Stripe calls, in that order.

mod request;

pub use request::PortalRequest;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use secrecy::SecretString;
use serde_json::json;
use url::Url;
use uuid::Uuid;

use crate::{
    auth::EndUser,
    lookup::{LookupError, Lookups},
    metrics::Metrics,
    rate_limit::{self, RateLimiter},
    secrets::{EncryptionKeys, SecretError},
    stripe::{self, Flow, PortalSessionRequest, StripeClient, StripeError, is_portal_locale},
    validation::ValidationIssue,
};

/// What opening a session needs; built once at start-up.
pub struct Portal {
    pub lookups: Lookups,
    pub stripe: StripeClient,
    /// Shared with the checkout sync: its Stripe calls count in the same budgets.
    pub rate_limiter: Arc<RateLimiter>,
    pub metrics: Arc<Metrics>,
    pub encryption_keys: Option<EncryptionKeys>,
    /// `RETURN_URL_ALLOWED_ORIGINS`, as `scheme://host[:port]`.
    pub allowed_origins: Vec<String>,
}

/// An open session: where to send the user's browser.
#[derive(Debug)]
pub struct PortalSession {
    pub url: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    /// This user or project is over its quota, or the project over its budget of calls
    /// to Stripe.
    #[error("rate limited")]
    RateLimited { retry_after: Duration },
    /// No such project, or no usable Stripe key for the mode.
    #[error("project not found or Stripe not configured")]
    ProjectNotFound,
    #[error("no Stripe customer for user")]
    CustomerNotFound,
    /// The flow's subscription does not exist or is another customer's: one answer for
    /// both, so nothing about other customers' subscriptions can be learned.
    #[error("subscription not found for user")]
    SubscriptionNotFound,
    /// A return URL is not on an allowed origin: one issue per URL, as a 422 lists them.
    #[error("return URL not on an allowed origin")]
    OriginNotAllowed(Vec<ValidationIssue>),
    #[error("project {project}'s Stripe key: {error}")]
    StoredKey { project: Uuid, error: SecretError },
    #[error(transparent)]
    Lookup(#[from] LookupError),
    #[error(transparent)]
    Stripe(#[from] StripeError),
}

impl Portal {
    pub async fn open_session(
        &self,
        user: &EndUser,
        livemode: bool,
        request: PortalRequest,
    ) -> Result<PortalSession, PortalError> {
        // A subscription flow reads the subscription first: two calls to Stripe.
        let stripe_calls = 1 + u32::from(request.flow.as_ref().and_then(Flow::subscription).is_some());
        let quota = rate_limit::Request {
            project_id: user.project_id,
            user_id: &user.user_id,
            livemode,
            stripe_calls,
        };
        self.rate_limiter
            .check(&quota)
            .await
            .map_err(|retry_after| PortalError::RateLimited { retry_after })?;
        let target = self
            .lookups
            .find(user.project_id, &user.user_id, livemode)
            .await?
            .ok_or(PortalError::ProjectNotFound)?;
        let key =
            stripe::usable_key(self.encryption_keys.as_ref(), target.secret_key, user.project_id, livemode)
                .map_err(|error| PortalError::StoredKey { project: user.project_id, error })?
                .ok_or(PortalError::ProjectNotFound)?;
        let project_origins = target.allowed_origins.unwrap_or_default();
        let refused: Vec<ValidationIssue> = request
            .return_urls()
            .filter(|r| !self.return_url_allowed(&r.url, &project_origins, livemode))
            .map(|r| {
                let name = r.loc.last().and_then(|l| l.as_str()).unwrap_or("return_url");
                ValidationIssue::value_error(
                    r.loc.clone(),
                    json!(r.input),
                    &format!("{name} is not on an allowed origin"),
                )
            })
            .collect();
        if !refused.is_empty() {
            return Err(PortalError::OriginNotAllowed(refused));
        }
        let customer = target.customer_id.ok_or(PortalError::CustomerNotFound)?;

        let flow = request.flow.as_ref();
        if let Some(subscription) = flow.and_then(Flow::subscription) {
            self.check_subscription_owner(&key, subscription, &customer).await?;
        }
        let locale = request
            .locale
            .as_deref()
            .or_else(|| project_locale(target.default_locale.as_deref(), user.project_id));
        let session_request = PortalSessionRequest {
            customer: &customer,
            return_url: request.return_url.url.as_str(),
            configuration: target.configuration.as_deref(),
            locale,
            flow,
        };
        let started = Instant::now();
        let session = self.stripe.create_portal_session(&key, &session_request).await;
        self.metrics.observe_stripe("create_session", outcome(&session), started.elapsed());
        let session = session?;
        // The request's log line carries what was done.
        let span = tracing::Span::current();
        span.record("livemode", livemode);
        span.record("flow", flow.map(Flow::name));
        span.record("stripe_session", session.id.as_str());
        Ok(PortalSession { url: session.url })
    }

    /// Where a `return_url` may send the user back to: an origin on the global list or
    /// the project's; with neither list, any https origin, and loopback http in test mode
    /// only, so a live portal can never hand the user to an unencrypted page.
    fn return_url_allowed(&self, url: &Url, project: &[String], livemode: bool) -> bool {
        if self.allowed_origins.is_empty() && project.is_empty() {
            let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
            return url.scheme() == "https" || (!livemode && loopback);
        }
        let origin = url.origin().ascii_serialization();
        self.allowed_origins.contains(&origin)
            || project.iter().filter_map(|o| crate::config::parse_origin(o).ok()).any(|o| o == origin)
    }

    /// A flow may only act on the user's own subscription. Stripe's session call does not
    /// promise to check that a subscription belongs to `customer`, so we read it first; a
    /// missing subscription and another customer's get the same 404, so nothing leaks.
    async fn check_subscription_owner(
        &self,
        key: &SecretString,
        subscription: &str,
        customer: &str,
    ) -> Result<(), PortalError> {
        let started = Instant::now();
        let found = self.stripe.retrieve_subscription(key, subscription).await;
        self.metrics.observe_stripe("retrieve_subscription", outcome(&found), started.elapsed());
        match found {
            Ok(found) if found.customer == customer => Ok(()),
            Ok(found) => {
                tracing::warn!(subscription = %found.id, "refused a flow on another customer's subscription");
                Err(PortalError::SubscriptionNotFound)
            }
            Err(StripeError::SubscriptionNotFound { .. }) => Err(PortalError::SubscriptionNotFound),
            Err(e) => Err(e.into()),
        }
    }
}

/// The project's default locale, unless another service stored one Stripe would refuse.
fn project_locale(stored: Option<&str>, project: Uuid) -> Option<&str> {
    let locale = stored.filter(|l| !l.is_empty())?;
    if is_portal_locale(locale) {
        return Some(locale);
    }
    tracing::warn!(project_id = %project, locale, "ignoring the project's default locale: not a Stripe locale");
    None
}

/// A Stripe call's outcome, for the metrics.
fn outcome<T>(result: &Result<T, StripeError>) -> &'static str {
    result.as_ref().map_or_else(StripeError::outcome, |_| "ok")
}
