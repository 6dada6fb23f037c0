//! The one error type of the HTTP API: each variant is a status and a FastAPI-shaped
//! body. Internal causes are logged here, once, and never sent to the client.

use std::time::Duration;

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    auth::AuthError, checkout_sync::CheckoutSyncError, db::DbError, lookup::LookupError, portal::PortalError,
    stripe::StripeError, validation::ValidationIssue, webhooks::WebhookError,
};

/// Every error except a validation error: `{"detail": "..."}`.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"detail": "No Stripe customer found for user"}))]
pub struct ErrorBody {
    pub detail: &'static str,
}

/// A 422: one item per problem, in Pydantic v2's shape.
#[derive(Serialize, ToSchema)]
pub struct ValidationErrorBody {
    pub detail: Vec<ValidationIssue>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No usable bearer credentials were sent.
    #[error("not authenticated")]
    NotAuthenticated,
    /// A token was sent but refused; the reason stays in the log.
    #[error("invalid token: {0}")]
    InvalidToken(String),
    #[error("token expired")]
    TokenExpired,
    #[error("request validation failed")]
    Validation(Vec<ValidationIssue>),
    #[error("request body over the limit")]
    PayloadTooLarge,
    /// The body could not be read at all (the client broke the stream).
    #[error("request body unreadable")]
    BodyUnreadable,
    #[error("project not found or Stripe not configured")]
    ProjectNotFound,
    #[error("no Stripe customer for user")]
    CustomerNotFound,
    /// Missing or another customer's: one answer for both (see `PortalError`).
    #[error("subscription not found for user")]
    SubscriptionNotFound,
    #[error("rate limited")]
    RateLimited { retry_after: Duration },
    /// Too many requests in flight; shed before the process would fall over.
    #[error("overloaded")]
    Overloaded,
    #[error("route not found")]
    RouteNotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("invalid Stripe signature")]
    WebhookSignature,
    #[error("invalid event payload")]
    WebhookPayload,
    #[error("event mode does not match test_mode")]
    WebhookModeMismatch,
    #[error("webhooks are not configured for this project")]
    WebhooksNotConfigured,
    /// The session is unknown to Stripe or another user's: one answer for both.
    #[error("checkout session not found for user")]
    CheckoutSessionNotFound,
    #[error("checkout session is not complete")]
    CheckoutSessionIncomplete,
    #[error("stripe: {0}")]
    Stripe(#[from] StripeError),
    #[error("database unavailable: {0}")]
    DatabaseUnavailable(String),
    /// Readiness said no: expected while the database is down, so not logged as an error.
    #[error("not ready")]
    NotReady,
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Missing => ApiError::NotAuthenticated,
            AuthError::Invalid(reason) => ApiError::InvalidToken(reason),
            AuthError::Expired => ApiError::TokenExpired,
        }
    }
}

impl From<DbError> for ApiError {
    fn from(err: DbError) -> Self {
        match err {
            DbError::Unavailable(cause) => ApiError::DatabaseUnavailable(cause),
            failed @ DbError::Failed(_) => ApiError::Internal(failed.to_string()),
        }
    }
}

impl From<LookupError> for ApiError {
    fn from(err: LookupError) -> Self {
        match err {
            LookupError::Database(err) => err.into(),
            stopped @ LookupError::Stopped => ApiError::Internal(stopped.to_string()),
        }
    }
}

impl From<PortalError> for ApiError {
    fn from(err: PortalError) -> Self {
        match err {
            PortalError::RateLimited { retry_after } => ApiError::RateLimited { retry_after },
            PortalError::ProjectNotFound => ApiError::ProjectNotFound,
            PortalError::CustomerNotFound => ApiError::CustomerNotFound,
            PortalError::SubscriptionNotFound => ApiError::SubscriptionNotFound,
            PortalError::OriginNotAllowed(issues) => ApiError::Validation(issues),
            key @ PortalError::StoredKey { .. } => ApiError::Internal(key.to_string()),
            PortalError::Lookup(err) => err.into(),
            PortalError::Stripe(err) => ApiError::Stripe(err),
        }
    }
}

impl From<WebhookError> for ApiError {
    fn from(err: WebhookError) -> Self {
        match err {
            WebhookError::NotConfigured => ApiError::WebhooksNotConfigured,
            WebhookError::Signature(_) => ApiError::WebhookSignature,
            WebhookError::InvalidPayload(_) => ApiError::WebhookPayload,
            WebhookError::ModeMismatch => ApiError::WebhookModeMismatch,
            key @ WebhookError::StoredSecret { .. } => ApiError::Internal(key.to_string()),
            WebhookError::Database(e) => e.into(),
        }
    }
}

impl From<CheckoutSyncError> for ApiError {
    fn from(err: CheckoutSyncError) -> Self {
        match err {
            CheckoutSyncError::RateLimited { retry_after } => ApiError::RateLimited { retry_after },
            CheckoutSyncError::ProjectNotFound => ApiError::ProjectNotFound,
            CheckoutSyncError::SessionNotFound => ApiError::CheckoutSessionNotFound,
            CheckoutSyncError::Incomplete => ApiError::CheckoutSessionIncomplete,
            CheckoutSyncError::NoCustomer => ApiError::CustomerNotFound,
            key @ CheckoutSyncError::StoredKey { .. } => ApiError::Internal(key.to_string()),
            CheckoutSyncError::Stripe(e) => ApiError::Stripe(e),
            CheckoutSyncError::Database(e) => e.into(),
        }
    }
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::NotAuthenticated | ApiError::InvalidToken(_) | ApiError::TokenExpired => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::BodyUnreadable
            | ApiError::WebhookSignature
            | ApiError::WebhookPayload
            | ApiError::WebhookModeMismatch => StatusCode::BAD_REQUEST,
            ApiError::ProjectNotFound
            | ApiError::CustomerNotFound
            | ApiError::SubscriptionNotFound
            | ApiError::WebhooksNotConfigured
            | ApiError::CheckoutSessionNotFound
            | ApiError::RouteNotFound => StatusCode::NOT_FOUND,
            ApiError::CheckoutSessionIncomplete => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Stripe(
                StripeError::CustomerNotFound { .. } | StripeError::SubscriptionNotFound { .. },
            ) => StatusCode::NOT_FOUND,
            // The project's portal settings do not allow what was asked: the team can fix
            // it, so it is not a 502, and the request itself was well formed, so not a 422.
            ApiError::Stripe(StripeError::FlowRefused { .. } | StripeError::ConfigurationNotFound { .. }) => {
                StatusCode::CONFLICT
            }
            ApiError::Stripe(StripeError::Rejected { .. } | StripeError::InvalidResponse { .. }) => {
                StatusCode::BAD_GATEWAY
            }
            ApiError::Stripe(StripeError::Unreachable(_) | StripeError::RateLimited { .. }) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Stripe(StripeError::Timeout) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::DatabaseUnavailable(_) | ApiError::NotReady | ApiError::Overloaded => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn detail(&self) -> &'static str {
        match self {
            ApiError::NotAuthenticated => "Not authenticated",
            ApiError::InvalidToken(_) => "Could not validate credentials",
            ApiError::TokenExpired => "Token has expired",
            ApiError::Validation(_) => "Validation error",
            ApiError::PayloadTooLarge => "Request body too large",
            ApiError::RateLimited { .. } => "Too many requests; retry later",
            ApiError::BodyUnreadable => "There was an error parsing the body",
            ApiError::ProjectNotFound => "Project not found or Stripe not configured",
            ApiError::WebhookSignature => "Invalid Stripe signature",
            ApiError::WebhookPayload => "Invalid event payload",
            ApiError::WebhookModeMismatch => "Event mode does not match test_mode",
            ApiError::WebhooksNotConfigured => "Webhooks are not configured for this project",
            ApiError::CheckoutSessionNotFound => "Checkout session not found for user",
            ApiError::CheckoutSessionIncomplete => "Checkout session is not complete",
            ApiError::CustomerNotFound | ApiError::Stripe(StripeError::CustomerNotFound { .. }) => {
                "No Stripe customer found for user"
            }
            ApiError::SubscriptionNotFound | ApiError::Stripe(StripeError::SubscriptionNotFound { .. }) => {
                "Subscription not found for user"
            }
            ApiError::Stripe(StripeError::FlowRefused { .. }) => {
                "Stripe refused the requested flow: enable it in the Customer Portal configuration the project \
                 uses (Stripe Dashboard, Settings, Billing, Customer portal), or check that it applies to this \
                 subscription"
            }
            ApiError::Stripe(StripeError::ConfigurationNotFound { .. }) => {
                "The project's Stripe portal configuration does not exist in this mode: set an existing bpc_ ID \
                 with `customer-portal project set`, or clear it to use Stripe's default"
            }
            ApiError::RouteNotFound => "Not Found",
            ApiError::MethodNotAllowed => "Method Not Allowed",
            ApiError::Stripe(StripeError::Rejected { .. } | StripeError::InvalidResponse { .. }) => {
                "Stripe rejected the request"
            }
            ApiError::Stripe(StripeError::Unreachable(_)) => "Stripe is unreachable",
            ApiError::Stripe(StripeError::RateLimited { .. }) => {
                "Stripe is rate limiting requests; retry later"
            }
            ApiError::Stripe(StripeError::Timeout) => "Stripe did not answer in time",
            ApiError::DatabaseUnavailable(_) | ApiError::NotReady => "Database unavailable",
            ApiError::Overloaded => "Service overloaded; retry later",
            ApiError::Internal(_) => "Internal Server Error",
        }
    }

    fn log(&self) {
        match self {
            ApiError::InvalidToken(reason) => tracing::debug!(%reason, "token refused"),
            ApiError::Stripe(err) => err.log(),
            ApiError::DatabaseUnavailable(err) => tracing::error!(error = %err, "database unavailable"),
            ApiError::Internal(cause) => tracing::error!(%cause, "internal error"),
            ApiError::Overloaded => tracing::warn!("shedding load: too many requests in flight"),
            _ => {}
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Stripe(StripeError::RateLimited { retry_after }) => Some(*retry_after),
            ApiError::Overloaded => Some(Duration::from_secs(1)),
            ApiError::RateLimited { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log();
        let status = self.status();
        let retry_after = self.retry_after();
        let mut response = match self {
            ApiError::Validation(detail) => (status, Json(ValidationErrorBody { detail })).into_response(),
            other => (status, Json(ErrorBody { detail: other.detail() })).into_response(),
        };
        let headers = response.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(after) = retry_after {
            // Whole seconds, rounded up, so a client never retries too early.
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}
