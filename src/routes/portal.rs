//! `POST /api/v1/payments/stripe/customer-portal`: a Stripe billing-portal session for
//! the signed-in user of the token's project.

use std::time::Instant;

use axum::{
    Json,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use secrecy::SecretString;
use serde::Serialize;
use serde_json::json;
use url::Url;
use utoipa::ToSchema;

use crate::{
    AppState,
    auth::EndUser,
    config::Origin,
    error::ApiError,
    routes::openapi::{ErrorBody, ValidationErrorBody},
    secrets,
    stripe::{PortalSessionRequest, StripeError, is_portal_locale},
    validation::ValidationIssue,
};

mod request;

pub use request::PortalRequest;

#[derive(Serialize, ToSchema)]
pub struct PortalResponse {
    /// The Stripe-hosted portal session; send the user's browser there. It is a bearer
    /// credential for the customer's billing: do not log or store it.
    #[schema(format = "uri", example = "https://billing.stripe.com/p/session/test_YWNjdF8xTUZ")]
    portal_url: String,
}

/// The JSON body, for the OpenAPI document. `PortalRequest` parses it by hand, to answer
/// each mistake exactly as FastAPI would.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only; never constructed")]
pub struct PortalRequestBody {
    /// Where the portal's return link sends the user: an absolute `http`/`https` URL on an
    /// allowed origin (see `RETURN_URL_ALLOWED_ORIGINS` and the project's own list).
    #[schema(format = "uri", min_length = 1, example = "https://app.example.com/account")]
    return_url: String,
    /// Open the portal on one task instead of its home page (a deep link).
    flow: Option<FlowBody>,
    /// The portal's language (one of Stripe's locales; `auto` lets Stripe choose). Wins
    /// over the project's default locale.
    #[schema(example = "fr")]
    locale: Option<String>,
}

/// `flow`: a union tagged by `type`. Subscription flows act only on the user's own subscription.
#[derive(Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(dead_code, reason = "a schema only; never constructed")]
pub enum FlowBody {
    /// Update the default payment method.
    PaymentMethodUpdate { after_completion: Option<AfterCompletionBody> },
    /// Cancel one subscription.
    SubscriptionCancel {
        #[schema(pattern = "^sub_[A-Za-z0-9]+$", example = "sub_1MowQVLkdIwHu7ixeRlqHVzs")]
        subscription: String,
        after_completion: Option<AfterCompletionBody>,
    },
    /// Change one subscription's plan.
    SubscriptionUpdate {
        #[schema(pattern = "^sub_[A-Za-z0-9]+$", example = "sub_1MowQVLkdIwHu7ixeRlqHVzs")]
        subscription: String,
        after_completion: Option<AfterCompletionBody>,
    },
}

/// `flow.after_completion`: where the user goes once the flow is done.
#[derive(Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(dead_code, reason = "a schema only; never constructed")]
pub enum AfterCompletionBody {
    /// Back to the app; the URL passes the same checks and allow-list as `return_url`.
    Redirect {
        #[schema(format = "uri", min_length = 1)]
        return_url: String,
    },
    /// The portal's home page.
    PortalHomepage,
    /// A confirmation page in the portal, with an optional message.
    HostedConfirmation {
        #[schema(max_length = 500)]
        message: Option<String>,
    },
}

/// Opens a Stripe billing-portal session for the token's user and answers its URL.
///
/// The project is the token's `project_id`; the Stripe customer is the one linked to
/// (project, `sub`, mode). Unknown body fields are ignored.
#[utoipa::path(
    post,
    path = "/api/v1/payments/stripe/customer-portal",
    tag = "payments",
    operation_id = "create_customer_portal_session",
    params(
        ("test_mode" = Option<bool>, Query,
            description = "Stripe test mode (default `true`): the project's test key and test-mode \
                customer; `false` for live. Accepts Pydantic's spellings: `true/false/1/0/yes/no/on/off/t/f/y/n`, \
                any case."),
    ),
    request_body(content = PortalRequestBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The session's URL.", body = PortalResponse,
            headers(("Cache-Control" = String, description = "Always `no-store`: the URL is a credential."))),
        (status = 401, description = "Missing, malformed, expired or otherwise invalid token. Checked before anything else.",
            body = ErrorBody, headers(("WWW-Authenticate" = String, description = "`Bearer`")),
            example = json!({"detail": "Not authenticated"})),
        (status = 404, description = "`No Stripe customer found for user`, `Project not found or Stripe not configured`, \
            or, for a subscription flow, `Subscription not found for user`.",
            body = ErrorBody, example = json!({"detail": "No Stripe customer found for user"})),
        (status = 409, description = "The project's portal settings do not allow the request: the flow is not enabled \
            in its portal configuration, or the configuration does not exist. The detail says what to change.",
            body = ErrorBody),
        (status = 413, description = "The body is over the limit.", body = ErrorBody,
            example = json!({"detail": "Request body too large"})),
        (status = 422, description = "Invalid query or body, in Pydantic v2's shape.", body = ValidationErrorBody,
            example = json!({"detail": [{"type": "missing", "loc": ["body", "return_url"], "msg": "Field required", "input": {}}]})),
        (status = 429, description = "This user or project is over its rate limit.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait.")),
            example = json!({"detail": "Too many requests; retry later"})),
        (status = 502, description = "Stripe refused the request for a reason that is not the user's fault (e.g. a revoked key).",
            body = ErrorBody, example = json!({"detail": "Stripe rejected the request"})),
        (status = 503, description = "The database or Stripe is unreachable, Stripe is rate limiting, or the service is shedding load.",
            body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait, when known.")),
            example = json!({"detail": "Database unavailable"})),
        (status = 504, description = "Stripe did not answer within the deadline.", body = ErrorBody,
            example = json!({"detail": "Stripe did not answer in time"})),
    ),
    security(("bearer" = [])),
)]
pub async fn create_session(
    State(state): State<AppState>,
    user: EndUser,
    request: PortalRequest,
) -> Result<Response, ApiError> {
    state.rate_limits.check(&user).map_err(|retry_after| ApiError::RateLimited { retry_after })?;
    let livemode = !request.test_mode;
    let target = state
        .lookups
        .find(user.project_id, &user.user_id, livemode)
        .await?
        .ok_or(ApiError::ProjectNotFound)?;
    let key = target
        .secret_key
        .filter(|stored| !stored.is_empty())
        .map(|stored| secrets::reveal(state.config.secrets.as_ref(), stored, user.project_id, livemode))
        .transpose()
        .map_err(|e| ApiError::Internal(format!("project {}'s Stripe key: {e}", user.project_id)))?
        .filter(|key| key_fits_mode(key, livemode, &user))
        .ok_or(ApiError::ProjectNotFound)?;
    let project_origins = target.allowed_origins.unwrap_or_default();
    let refused: Vec<ValidationIssue> = request
        .return_urls
        .iter()
        .filter(|r| {
            !return_url_allowed(&r.url, &state.config.return_url_allowed_origins, &project_origins, livemode)
        })
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
        return Err(ApiError::Validation(refused));
    }
    let customer = target.customer_id.ok_or(ApiError::CustomerNotFound)?;
    let key = SecretString::from(key);

    let flow = request.flow.as_ref();
    if let Some(subscription) = flow.and_then(|f| f.kind.subscription()) {
        check_subscription_owner(&state, &key, subscription, &customer).await?;
    }
    let locale =
        request.locale.as_deref().or_else(|| project_locale(target.default_locale.as_deref(), &user));
    let session_request = PortalSessionRequest {
        customer: &customer,
        return_url: request.return_url.as_str(),
        configuration: target.configuration.as_deref(),
        locale,
        flow,
    };
    let started = Instant::now();
    let session = state.stripe.create_portal_session(&key, &session_request).await;
    state.metrics.observe_stripe("create_session", &session, started.elapsed());
    let session = session?;
    let span = tracing::Span::current();
    span.record("livemode", livemode);
    span.record("flow", flow.map(|f| f.kind.name()));
    span.record("stripe_session", session.id.as_str());

    let mut response = (StatusCode::OK, Json(PortalResponse { portal_url: session.url })).into_response();
    // The URL is a bearer credential for the customer's billing: no cache may keep it.
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// A flow may only act on the user's own subscription. Stripe's session call does not
/// promise to check that a subscription belongs to `customer`, so we read it first; a
/// missing subscription and another customer's get the same 404, so nothing leaks.
async fn check_subscription_owner(
    state: &AppState,
    key: &SecretString,
    subscription: &str,
    customer: &str,
) -> Result<(), ApiError> {
    let started = Instant::now();
    let found = state.stripe.retrieve_subscription(key, subscription).await;
    state.metrics.observe_stripe("retrieve_subscription", &found, started.elapsed());
    match found {
        Ok(found) if found.customer == customer => Ok(()),
        Ok(found) => {
            tracing::warn!(subscription = %found.id, "refused a flow on another customer's subscription");
            Err(ApiError::SubscriptionNotFound)
        }
        Err(StripeError::SubscriptionNotFound { .. }) => Err(ApiError::SubscriptionNotFound),
        Err(e) => Err(e.into()),
    }
}

/// The project's default locale, unless another service stored one Stripe would refuse.
fn project_locale<'a>(stored: Option<&'a str>, user: &EndUser) -> Option<&'a str> {
    let locale = stored.filter(|l| !l.is_empty())?;
    if is_portal_locale(locale) {
        return Some(locale);
    }
    tracing::warn!(project_id = %user.project_id, locale, "ignoring the project's default locale: not a Stripe locale");
    None
}

/// A test-mode request must never be served with a live key, nor the reverse; a key of
/// the wrong kind is a misconfigured project.
fn key_fits_mode(key: &str, livemode: bool, user: &EndUser) -> bool {
    let prefixes = if livemode { ["sk_live_", "rk_live_"] } else { ["sk_test_", "rk_test_"] };
    let fits = prefixes.iter().any(|p| key.starts_with(p));
    if !fits && !key.is_empty() {
        tracing::warn!(project_id = %user.project_id, livemode, "project's Stripe key does not match the mode");
    }
    fits
}

/// Where a `return_url` may send the user back to: an origin on the global list or the
/// project's; with neither list, any https origin, and loopback http in test mode only,
/// so a live portal can never hand the user to an unencrypted page.
fn return_url_allowed(url: &Url, global: &[Origin], project: &[String], livemode: bool) -> bool {
    if global.is_empty() && project.is_empty() {
        let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
        return url.scheme() == "https" || (!livemode && loopback);
    }
    let origin = Origin::of(url);
    global.contains(&origin) || project.iter().filter_map(|o| o.parse::<Origin>().ok()).any(|o| o == origin)
}
