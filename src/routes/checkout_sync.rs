//! `POST /api/v1/payments/stripe/checkout-sync`: links the signed-in user to the
//! customer of the Checkout Session they just completed, before the webhook arrives.
//! The use case is `crate::checkout_sync`.

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
    checkout_sync::{CheckoutSync, CheckoutSyncRequest},
    error::{ApiError, ErrorBody, ValidationErrorBody},
    routes::extract::ModeAndBody,
};

pub const PATH: &str = "/api/v1/payments/stripe/checkout-sync";

#[derive(Serialize, ToSchema)]
pub struct CheckoutSyncResponse {
    /// Always `true`: the user is linked to the session's customer (also on a repeat).
    #[schema(example = true)]
    linked: bool,
}

/// Links the token's user to the customer of their completed Checkout Session.
///
/// Reads the session from Stripe with the project's key for the mode; it must name the
/// token's user (`client_reference_id`, else `metadata.user_id`), be `complete` and have
/// a customer. The link follows the webhook's ordering rules, so a newer link (from an
/// event or another service) is kept.
#[utoipa::path(
    post,
    path = PATH,
    tag = "payments",
    operation_id = "sync_checkout_session",
    params(
        ("test_mode" = Option<bool>, Query, description = "Stripe test mode (default `true`), as for the portal."),
    ),
    request_body(content = CheckoutSyncRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Linked.", body = CheckoutSyncResponse),
        (status = 401, description = "Missing or invalid token, as for the portal. Checked before anything else.",
            body = ErrorBody, headers(("WWW-Authenticate" = String, description = "`Bearer`")),
            example = json!({"detail": "Not authenticated"})),
        (status = 404, description = "`Checkout session not found for user` (Stripe does not know it, or it is \
            another user's), `No Stripe customer found for user` (a guest checkout), or \
            `Project not found or Stripe not configured`.",
            body = ErrorBody, example = json!({"detail": "Checkout session not found for user"})),
        (status = 409, description = "The session is still open, or expired.", body = ErrorBody,
            example = json!({"detail": "Checkout session is not complete"})),
        (status = 413, description = "The body is over the limit.", body = ErrorBody),
        (status = 422, description = "Invalid query or body, in Pydantic v2's shape.", body = ValidationErrorBody,
            example = json!({"detail": [{"type": "missing", "loc": ["body", "session_id"], "msg": "Field required", "input": {}}]})),
        (status = 429, description = "This user or project is over its rate limit.", body = ErrorBody),
        (status = 502, description = "Stripe refused the request (e.g. a revoked key).", body = ErrorBody),
        (status = 503, description = "The database or Stripe is unreachable.", body = ErrorBody),
        (status = 504, description = "Stripe did not answer within the deadline.", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn sync(
    State(checkout_sync): State<Arc<CheckoutSync>>,
    user: EndUser,
    ModeAndBody { test_mode, body }: ModeAndBody<CheckoutSyncRequest>,
) -> Result<Response, ApiError> {
    checkout_sync.sync(&user, !test_mode, body).await?;
    let mut response = Json(CheckoutSyncResponse { linked: true }).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
