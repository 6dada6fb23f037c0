//! `POST /api/v1/payments/stripe/customer-portal`: a Stripe billing-portal session for
//! the signed-in user of the token's project. The use case is `crate::portal`.

use std::sync::Arc;

use axum::{
    Json,
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    auth::EndUser,
    error::{ApiError, ErrorBody, ValidationErrorBody},
    portal::{Portal, PortalRequest},
    routes::extract::ModeAndBody,
};

pub const PATH: &str = "/api/v1/payments/stripe/customer-portal";

#[derive(Serialize, ToSchema)]
pub struct PortalResponse {
    /// The Stripe-hosted portal session; send the user's browser there. It is a bearer
    /// credential for the customer's billing: do not log or store it.
    #[schema(format = "uri", example = "https://billing.stripe.com/p/session/test_YWNjdF8xTUZ")]
    portal_url: String,
}

/// Opens a Stripe billing-portal session for the token's user and answers its URL.
///
/// The project is the token's `project_id`; the Stripe customer is the one linked to
/// (project, `sub`, mode). Unknown body fields are ignored.
#[utoipa::path(
    post,
    path = PATH,
    tag = "payments",
    operation_id = "create_customer_portal_session",
    params(
        ("test_mode" = Option<bool>, Query,
            description = "Stripe test mode (default `true`): the project's test key and test-mode \
                customer; `false` for live. Accepts Pydantic's spellings: `true/false/1/0/yes/no/on/off/t/f/y/n`, \
                any case."),
    ),
    request_body(content = PortalRequest, content_type = "application/json"),
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
    State(portal): State<Arc<Portal>>,
    user: EndUser,
    ModeAndBody { test_mode, body }: ModeAndBody<PortalRequest>,
) -> Result<Response, ApiError> {
    let session = portal.open_session(&user, !test_mode, body).await?;
    let mut response = Json(PortalResponse { portal_url: session.url }).into_response();
    // The URL is a bearer credential for the customer's billing: no cache may keep it.
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
