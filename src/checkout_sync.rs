//! The use case behind the checkout-sync route: the user is back from Stripe Checkout
//! before the webhook. Read the session from Stripe and, when it is this user's,
//! complete and has a customer, link them under the same ordering rules as the events
//! (see `webhooks`).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    auth::EndUser,
    db::{
        DbError,
        events::{self, Action, Change},
        portal::{PortalLookup, find_portal_targets},
    },
    metrics::Metrics,
    rate_limit::{self, RateLimiter},
    secrets::{EncryptionKeys, SecretError},
    stripe::{self, StripeClient, StripeError},
    validation::{FromJson, ValidationIssue, at, object},
};

const SESSION_ID_PATTERN: &str = "^cs_[A-Za-z0-9_]+$";
const SESSION_ID_MAX_CHARS: usize = 255;

/// The checkout sync's body: the session the user came back from.
#[derive(Debug, ToSchema)]
#[schema(as = CheckoutSyncBody)]
pub struct CheckoutSyncRequest {
    /// The Checkout Session the user came back from (Stripe fills it into the success
    /// URL when that has `session_id={CHECKOUT_SESSION_ID}`).
    #[schema(pattern = "^cs_[A-Za-z0-9_]+$", max_length = 255, example = "cs_test_a1B2c3D4e5F6g7H8")]
    pub session_id: String,
}

/// In Pydantic terms: `session_id: constr(pattern=..., max_length=255)`. Unknown fields
/// are ignored. The pattern keeps anything but a session ID out of Stripe's URL.
impl FromJson for CheckoutSyncRequest {
    fn from_json(value: Value, loc: &[Value], issues: &mut Vec<ValidationIssue>) -> Option<Self> {
        let mut fields = object(value, loc).map_err(|issue| issues.push(issue)).ok()?;
        let loc = at(loc, "session_id");
        let issue = match fields.remove("session_id") {
            None => ValidationIssue::missing(loc, Value::Object(fields)),
            Some(Value::String(id)) if id.chars().count() > SESSION_ID_MAX_CHARS => {
                ValidationIssue::string_too_long(loc, json!(id), SESSION_ID_MAX_CHARS)
            }
            Some(Value::String(id)) if is_session_id(&id) => return Some(Self { session_id: id }),
            Some(Value::String(id)) => {
                ValidationIssue::string_pattern_mismatch(loc, json!(id), SESSION_ID_PATTERN)
            }
            Some(other) => ValidationIssue::string_type(loc, other),
        };
        issues.push(issue);
        None
    }
}

fn is_session_id(id: &str) -> bool {
    id.strip_prefix("cs_")
        .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
}

/// What a sync needs; built once at start-up.
pub struct CheckoutSync {
    pub db: PgPool,
    pub stripe: StripeClient,
    /// The portal's: a sync is a call to Stripe, counted in the same quotas and budget.
    pub rate_limiter: Arc<RateLimiter>,
    pub metrics: Arc<Metrics>,
    pub encryption_keys: Option<EncryptionKeys>,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckoutSyncError {
    #[error("rate limited")]
    RateLimited { retry_after: Duration },
    /// No such project, or no usable Stripe key for the mode.
    #[error("project not found or Stripe not configured")]
    ProjectNotFound,
    /// Stripe does not know the session, or it is another user's: one answer for both.
    #[error("checkout session not found for user")]
    SessionNotFound,
    #[error("checkout session is not complete")]
    Incomplete,
    /// A complete session without a customer (a guest checkout): nothing to link.
    #[error("checkout session has no customer")]
    NoCustomer,
    #[error("project {project}'s Stripe key: {error}")]
    StoredKey { project: Uuid, error: SecretError },
    #[error(transparent)]
    Stripe(StripeError),
    #[error(transparent)]
    Database(#[from] DbError),
}

impl From<sqlx::Error> for CheckoutSyncError {
    fn from(err: sqlx::Error) -> Self {
        CheckoutSyncError::Database(err.into())
    }
}

impl CheckoutSync {
    /// Links `user` to the customer of their completed session `session_id`.
    pub async fn sync(
        &self,
        user: &EndUser,
        livemode: bool,
        request: CheckoutSyncRequest,
    ) -> Result<(), CheckoutSyncError> {
        let session_id = request.session_id.as_str();
        let quota = rate_limit::Request {
            project_id: user.project_id,
            user_id: &user.user_id,
            livemode,
            stripe_calls: 1,
        };
        self.rate_limiter
            .check(&quota)
            .await
            .map_err(|retry_after| CheckoutSyncError::RateLimited { retry_after })?;
        let key = self.stripe_key(user, livemode).await?;
        let started = Instant::now();
        let session = self.stripe.retrieve_checkout_session(&key, session_id).await;
        let outcome = session.as_ref().map_or_else(StripeError::outcome, |_| "ok");
        self.metrics.observe_stripe("retrieve_checkout_session", outcome, started.elapsed());
        let session = session.map_err(|e| match e {
            StripeError::Rejected { status: 404, .. } | StripeError::SubscriptionNotFound { .. } => {
                CheckoutSyncError::SessionNotFound
            }
            other => CheckoutSyncError::Stripe(other),
        })?;
        if session.user_id() != Some(user.user_id.as_str()) {
            tracing::warn!(checkout_session = %session.id, "refused to sync another user's checkout session");
            return Err(CheckoutSyncError::SessionNotFound);
        }
        if session.status.as_deref() != Some("complete") {
            return Err(CheckoutSyncError::Incomplete);
        }
        let customer_id = session.customer_id().ok_or(CheckoutSyncError::NoCustomer)?;
        let change = Change {
            project_id: user.project_id,
            livemode,
            event_id: None,
            event_type: None,
            created: session.created,
            action: Action::Link { user_id: &user.user_id, customer_id },
        };
        let outcome = events::apply_change(&self.db, &change).await?;
        let span = tracing::Span::current();
        span.record("livemode", livemode);
        span.record("outcome", outcome.as_str());
        Ok(())
    }

    /// The project's Stripe key for the mode, as the portal finds it.
    async fn stripe_key(&self, user: &EndUser, livemode: bool) -> Result<SecretString, CheckoutSyncError> {
        let lookup = PortalLookup { project_id: user.project_id, user_id: user.user_id.clone(), livemode };
        let target = find_portal_targets(&self.db, &[lookup])
            .await?
            .pop()
            .flatten()
            .ok_or(CheckoutSyncError::ProjectNotFound)?;
        stripe::usable_key(self.encryption_keys.as_ref(), target.secret_key, user.project_id, livemode)
            .map_err(|error| CheckoutSyncError::StoredKey { project: user.project_id, error })?
            .ok_or(CheckoutSyncError::ProjectNotFound)
    }
}
