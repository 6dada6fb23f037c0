//! What handlers take from a request: the signed-in [`EndUser`], and the `test_mode`
//! query with a JSON body, validated as FastAPI with Pydantic v2 would validate them; and
//! a Stripe webhook delivery, whose raw body is read only when the handler asks.
//! Handlers never read headers or bytes themselves.

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::{FromRef, FromRequest, FromRequestParts, Path, Request},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    auth::{AuthError, Authenticator, EndUser},
    error::ApiError,
    validation::{FromJson, ValidationIssue, parse_bool},
};

impl<S> FromRequestParts<S> for EndUser
where
    S: Send + Sync,
    Arc<Authenticator>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers)?;
        Ok(Arc::<Authenticator>::from_ref(state).verify(token).await?)
    }
}

/// The credentials of a single `Authorization: Bearer <token>` header, as FastAPI's
/// `HTTPBearer` reads it: scheme case-insensitive, one space, a non-empty token.
fn bearer_token(headers: &HeaderMap) -> Result<&str, AuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next().ok_or(AuthError::Missing)?;
    if values.next().is_some() {
        return Err(AuthError::Invalid("more than one Authorization header".into()));
    }
    let value = value.to_str().map_err(|_| AuthError::Missing)?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(token.trim())
        }
        _ => Err(AuthError::Missing),
    }
}

/// A Stripe route's `?test_mode=` and its JSON body `T`, both valid.
#[derive(Debug)]
pub struct ModeAndBody<T> {
    pub test_mode: bool,
    pub body: T,
}

impl<S: Send + Sync, T: FromJson> FromRequest<S> for ModeAndBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let test_mode = test_mode(req.uri().query());
        let is_json = req.headers().get(header::CONTENT_TYPE).is_none_or(is_json_content_type);
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BodyUnreadable
            }
        })?;
        // As in FastAPI, malformed JSON is reported alone; other errors are gathered:
        // the query's first, then the body's fields in the model's order.
        let body = parse_json(&bytes, is_json).map_err(|issue| ApiError::Validation(vec![issue]))?;
        let mut issues = Vec::new();
        let test_mode = test_mode.map_err(|issue| issues.push(issue)).ok();
        let body = match body {
            Value::Null => {
                issues.push(ValidationIssue::missing(vec![json!("body")], Value::Null));
                None
            }
            body => T::from_json(body, &[json!("body")], &mut issues),
        };
        match (test_mode, body) {
            (Some(test_mode), Some(body)) if issues.is_empty() => Ok(ModeAndBody { test_mode, body }),
            _ => Err(ApiError::Validation(issues)),
        }
    }
}

/// A Stripe webhook delivery. Nothing here refuses it: the handler answers in the order
/// the route documents, and reads the body (up to the route's limit) when it gets there.
pub struct StripeDelivery {
    /// `None` when the path's project is not a UUID.
    pub project_id: Option<Uuid>,
    pub test_mode: Result<bool, ValidationIssue>,
    /// The `Stripe-Signature` header, when there is one in ASCII.
    pub signature: Option<String>,
    request: Request,
}

impl StripeDelivery {
    /// The raw body, exactly as sent: the signature covers these bytes.
    pub async fn body(self) -> Result<Bytes, ApiError> {
        Bytes::from_request(self.request, &()).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BodyUnreadable
            }
        })
    }
}

impl<S: Send + Sync> FromRequest<S> for StripeDelivery {
    type Rejection = std::convert::Infallible;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let project_id = Path::<String>::from_request_parts(&mut parts, state)
            .await
            .ok()
            .and_then(|Path(id)| id.parse().ok());
        let test_mode = test_mode(parts.uri.query());
        let signature =
            parts.headers.get("stripe-signature").and_then(|v| v.to_str().ok()).map(str::to_owned);
        Ok(Self { project_id, test_mode, signature, request: Request::from_parts(parts, body) })
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

/// The body as JSON (`Null` when empty). FastAPI validates a non-JSON body as the raw
/// text, which no object model accepts.
fn parse_json(bytes: &[u8], is_json: bool) -> Result<Value, ValidationIssue> {
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    let text = String::from_utf8_lossy(bytes);
    if is_json {
        serde_json::from_str(&text).map_err(|_| ValidationIssue::json_invalid(&text))
    } else {
        Ok(Value::String(text.into_owned()))
    }
}
