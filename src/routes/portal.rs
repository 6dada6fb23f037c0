//! `POST /api/v1/payments/stripe/customer-portal`: a Stripe billing-portal session for
//! the signed-in user of the token's project.

use std::time::Instant;

use axum::{
    Json,
    body::Bytes,
    extract::{FromRequest, Request, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use secrecy::SecretString;
use serde::Serialize;
use serde_json::{Value, json};
use url::Url;
use utoipa::ToSchema;

use crate::{
    AppState,
    auth::EndUser,
    config::Origin,
    db,
    error::ApiError,
    routes::openapi::{ErrorBody, ValidationErrorBody},
    secrets,
    stripe::PortalSessionRequest,
    validation::{ValidationIssue, parse_bool},
};

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
        (status = 404, description = "`No Stripe customer found for user`, or `Project not found or Stripe not configured`.",
            body = ErrorBody, example = json!({"detail": "No Stripe customer found for user"})),
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
    let target = db::find_portal_target(&state.db, user.project_id, &user.user_id, livemode)
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
    if !return_url_allowed(
        &request.return_url,
        &state.config.return_url_allowed_origins,
        &project_origins,
        livemode,
    ) {
        return Err(ApiError::Validation(vec![ValidationIssue::value_error(
            vec![json!("body"), json!("return_url")],
            json!(request.return_url_input),
            "return_url is not on an allowed origin",
        )]));
    }
    let customer = target.customer_id.ok_or(ApiError::CustomerNotFound)?;

    let started = Instant::now();
    let session = state
        .stripe
        .create_portal_session(
            &SecretString::from(key),
            &PortalSessionRequest { customer: &customer, return_url: request.return_url.as_str() },
        )
        .await;
    state.metrics.observe_stripe(&session, started.elapsed());
    let session = session?;
    tracing::info!(stripe_session = %session.id, livemode, "portal session created");

    let mut response = (StatusCode::OK, Json(PortalResponse { portal_url: session.url })).into_response();
    // The URL is a bearer credential for the customer's billing: no cache may keep it.
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
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

/// The validated query and body.
#[derive(Debug)]
pub struct PortalRequest {
    pub test_mode: bool,
    pub return_url: Url,
    /// As the caller wrote it, for echoing in a 422.
    pub return_url_input: String,
}

impl FromRequest<AppState> for PortalRequest {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let test_mode = test_mode(req.uri().query());
        let is_json = req.headers().get(header::CONTENT_TYPE).is_none_or(is_json_content_type);
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BodyUnreadable
            }
        })?;
        // As in FastAPI, malformed JSON is reported alone; other errors are gathered.
        let body = parse_body(&bytes, is_json).map_err(|issue| ApiError::Validation(vec![issue]))?;
        match (test_mode, return_url(body)) {
            (Ok(test_mode), Ok((return_url, return_url_input))) => {
                Ok(PortalRequest { test_mode, return_url, return_url_input })
            }
            (test_mode, return_url) => {
                Err(ApiError::Validation(test_mode.err().into_iter().chain(return_url.err()).collect()))
            }
        }
    }
}

/// `test_mode`, defaulting to true; repeated, the last one counts, as in FastAPI.
fn test_mode(query: Option<&str>) -> Result<bool, ValidationIssue> {
    let raw = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(name, _)| name == "test_mode")
        .last()
        .map(|(_, value)| value);
    match raw {
        None => Ok(true),
        Some(value) => parse_bool(&value)
            .ok_or_else(|| ValidationIssue::bool_parsing(vec![json!("query"), json!("test_mode")], &value)),
    }
}

/// FastAPI reads a body as JSON when it has no content type or a JSON one.
fn is_json_content_type(value: &HeaderValue) -> bool {
    let Ok(value) = value.to_str() else { return false };
    let mime = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// The body as a JSON value; `Null` when there is none.
fn parse_body(bytes: &[u8], is_json: bool) -> Result<Value, ValidationIssue> {
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    let text = String::from_utf8_lossy(bytes);
    if !is_json {
        // FastAPI validates a non-JSON body as the raw text, which no object model accepts.
        return Ok(Value::String(text.into_owned()));
    }
    serde_json::from_str(&text).map_err(|_| ValidationIssue::json_invalid(&text))
}

/// The body's `return_url`, parsed, and as written.
fn return_url(body: Value) -> Result<(Url, String), ValidationIssue> {
    let loc = || vec![json!("body"), json!("return_url")];
    let mut fields = match body {
        Value::Null => return Err(ValidationIssue::missing(vec![json!("body")], Value::Null)),
        Value::Object(fields) => fields,
        other => return Err(ValidationIssue::model_attributes_type(other)),
    };
    let value = match fields.remove("return_url") {
        None => return Err(ValidationIssue::missing(loc(), Value::Object(fields))),
        Some(Value::String(value)) => value,
        Some(other) => return Err(ValidationIssue::string_type(loc(), other)),
    };
    if value.is_empty() {
        return Err(ValidationIssue::string_too_short(loc(), json!(value), 1));
    }
    let url = Url::parse(&value)
        .ok()
        .filter(|url| {
            matches!(url.scheme(), "http" | "https") && url.host().is_some() && value.trim() == value
        })
        .ok_or_else(|| {
            ValidationIssue::value_error(
                loc(),
                json!(value),
                "return_url must be an absolute http or https URL",
            )
        })?;
    Ok((url, value))
}
