//! `POST /api/v1/payments/stripe/webhooks/{project_id}`: Stripe's events for one project
//! and mode. No bearer token: the `Stripe-Signature` header is the authentication.

use std::{sync::Arc, time::SystemTime};

use axum::{
    Json,
    extract::State,
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    error::{ApiError, ErrorBody, ValidationErrorBody},
    metrics::Metrics,
    routes::extract::StripeDelivery,
    webhooks::{Received, WebhookError, Webhooks, type_label},
};

pub const PATH: &str = "/api/v1/payments/stripe/webhooks/{project_id}";

/// Stripe's events are far below this; a larger body is refused unread.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Serialize, ToSchema)]
pub struct WebhookReceived {
    /// Always `true`: the event was applied, had been received before, or is not used.
    #[schema(example = true)]
    received: bool,
}

/// Receives a Stripe event for the project in the path and the mode of `test_mode`.
///
/// Verifies `Stripe-Signature` against the raw body with the project's webhook secret
/// for the mode, then applies the event once, in the order of its `created`:
/// `checkout.session.completed`, `customer.created`/`customer.updated` (with
/// `metadata.user_id`) link a user to a customer; `customer.deleted` unlinks it.
#[utoipa::path(
    post,
    path = PATH,
    tag = "webhooks",
    operation_id = "receive_stripe_webhook",
    params(
        ("project_id" = String, Path, description = "The project's ID (UUID)."),
        ("test_mode" = Option<bool>, Query,
            description = "Which of the project's webhook secrets signs the events (default `true`); \
                the event's `livemode` must agree."),
        ("Stripe-Signature" = String, Header, description = "`t=<unix>,v1=<hex HMAC-SHA256>`, as Stripe sends it."),
    ),
    request_body(content = serde_json::Value, content_type = "application/json",
        description = "A Stripe event, exactly as Stripe sent it (the signature covers the raw bytes)."),
    responses(
        (status = 200, description = "Applied, a repeat, or an event the service does not use.", body = WebhookReceived),
        (status = 400, description = "`Invalid Stripe signature` (missing, garbled, no matching `v1`, or a timestamp \
            more than 300 s away), `Invalid event payload`, or `Event mode does not match test_mode`. Nothing is written.",
            body = ErrorBody, example = json!({"detail": "Invalid Stripe signature"})),
        (status = 404, description = "Unknown project, not a UUID, or no webhook secret for the mode.",
            body = ErrorBody, example = json!({"detail": "Webhooks are not configured for this project"})),
        (status = 413, description = "The body is over 1 MiB.", body = ErrorBody,
            example = json!({"detail": "Request body too large"})),
        (status = 422, description = "A `test_mode` that is not a boolean.", body = ValidationErrorBody),
        (status = 503, description = "The database is unavailable; the event was not applied, and Stripe retries.",
            body = ErrorBody, example = json!({"detail": "Database unavailable"})),
    ),
)]
pub async fn receive(
    State(webhooks): State<Arc<Webhooks>>,
    State(metrics): State<Arc<Metrics>>,
    delivery: StripeDelivery,
) -> Result<Response, ApiError> {
    let span = tracing::Span::current();
    let result = deliver(&webhooks, delivery).await;
    let (kind, outcome) = match &result {
        Ok(received) => {
            span.record("stripe_event", received.event_id.as_str());
            span.record("event_type", received.event_type.as_str());
            (type_label(&received.event_type), received.outcome.as_str())
        }
        Err(Refused::Webhook(e)) => ("unknown", e.outcome()),
        Err(Refused::Request(_)) => ("unknown", "rejected"),
    };
    span.record("outcome", outcome);
    metrics.observe_webhook(kind, outcome);
    match result {
        Ok(_) => Ok(Json(WebhookReceived { received: true }).into_response()),
        Err(Refused::Webhook(e)) => Err(e.into()),
        Err(Refused::Request(e)) => Err(e),
    }
}

/// A delivery refused by the use case, or before it (a bad query, an unreadable body).
enum Refused {
    Webhook(WebhookError),
    Request(ApiError),
}

/// The checks in the documented order: project and query, the body (at most 1 MiB),
/// then what the use case makes of it: secret, signature, payload, mode.
async fn deliver(webhooks: &Webhooks, delivery: StripeDelivery) -> Result<Received, Refused> {
    let project_id = delivery.project_id.ok_or(Refused::Webhook(WebhookError::NotConfigured))?;
    let test_mode =
        delivery.test_mode.clone().map_err(|issue| Refused::Request(ApiError::Validation(vec![issue])))?;
    let livemode = !test_mode;
    tracing::Span::current().record("livemode", livemode);
    let signature = delivery.signature.clone();
    let body = delivery.body().await.map_err(Refused::Request)?;
    webhooks
        .receive(project_id, livemode, signature.as_deref(), &body, SystemTime::now())
        .await
        .map_err(Refused::Webhook)
}
