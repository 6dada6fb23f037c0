//! The portal route's query and body, validated as FastAPI with Pydantic v2 would
//! validate them, so every mistake gets the 422 item a FastAPI client expects.
//!
//! The body model, in Pydantic terms:
//! `return_url: str` (an absolute http/https URL), `flow: Flow | None` (a union tagged by
//! `type`), `locale: Literal[...] | None`. Unknown fields are ignored.

use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
    http::{HeaderValue, StatusCode, header},
};
use serde_json::{Map, Value, json};
use url::Url;

use crate::{
    AppState,
    error::ApiError,
    stripe::{AfterCompletion, Flow, FlowKind, PORTAL_LOCALES, is_portal_locale},
    validation::{ValidationIssue, parse_bool},
};

/// Stripe IDs are a prefix and letters and digits; anything else never reaches Stripe.
const SUBSCRIPTION_PATTERN: &str = "^sub_[A-Za-z0-9]+$";
/// Stripe's limit on `after_completion.hosted_confirmation.custom_message`.
const MESSAGE_MAX_CHARS: usize = 500;

/// The validated query and body.
#[derive(Debug)]
pub struct PortalRequest {
    pub test_mode: bool,
    pub return_url: Url,
    pub flow: Option<Flow>,
    pub locale: Option<String>,
    /// Every URL the user may be sent back to, for the per-project origin check.
    pub return_urls: Vec<ReturnUrl>,
}

/// A URL from the body, with where it was and how it was written, for a 422.
#[derive(Debug)]
pub struct ReturnUrl {
    pub url: Url,
    pub input: String,
    pub loc: Vec<Value>,
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
        // As in FastAPI, malformed JSON is reported alone; other errors are gathered:
        // the query's first, then the body's fields in the model's order.
        let body = parse_body(&bytes, is_json).map_err(|issue| ApiError::Validation(vec![issue]))?;
        let mut issues = Vec::new();
        let test_mode = test_mode.map_err(|issue| issues.push(issue)).ok();
        let body =
            body.map_err(|issue| issues.push(issue)).ok().and_then(|fields| body_fields(fields, &mut issues));
        match (test_mode, body) {
            (Some(test_mode), Some(body)) if issues.is_empty() => Ok(PortalRequest {
                test_mode,
                return_url: body.return_url.url.clone(),
                flow: body.flow,
                locale: body.locale,
                return_urls: std::iter::once(body.return_url).chain(body.redirect).collect(),
            }),
            _ => Err(ApiError::Validation(issues)),
        }
    }
}

struct Body {
    return_url: ReturnUrl,
    flow: Option<Flow>,
    redirect: Option<ReturnUrl>,
    locale: Option<String>,
}

/// The body's fields; `None` when any is invalid, with why in `issues`.
fn body_fields(mut fields: Map<String, Value>, issues: &mut Vec<ValidationIssue>) -> Option<Body> {
    let return_url = url_field(&mut fields, vec![json!("body"), json!("return_url")], true)
        .map_err(|issue| issues.push(issue))
        .ok()
        .flatten();
    let flow = match fields.remove("flow") {
        None | Some(Value::Null) => Some(None),
        Some(value) => flow(value, issues).map(Some),
    };
    let locale = match fields.remove("locale") {
        None | Some(Value::Null) => Some(None),
        Some(value) => locale(value).map_err(|issue| issues.push(issue)).ok().map(Some),
    };
    let (flow, redirect) = flow?.unzip();
    Some(Body { return_url: return_url?, flow, redirect: redirect.flatten(), locale: locale? })
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

/// The body as JSON, then as the object the model needs.
fn parse_body(
    bytes: &[u8],
    is_json: bool,
) -> Result<Result<Map<String, Value>, ValidationIssue>, ValidationIssue> {
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        let text = String::from_utf8_lossy(bytes);
        if is_json {
            serde_json::from_str(&text).map_err(|_| ValidationIssue::json_invalid(&text))?
        } else {
            // FastAPI validates a non-JSON body as the raw text, which no object model accepts.
            Value::String(text.into_owned())
        }
    };
    Ok(match value {
        Value::Null => Err(ValidationIssue::missing(vec![json!("body")], Value::Null)),
        Value::Object(fields) => Ok(fields),
        other => Err(ValidationIssue::model_attributes_type(vec![json!("body")], other)),
    })
}

/// A URL field at `loc`: a non-empty string holding an absolute http/https URL.
/// `Ok(None)` when it is absent and not `required`.
fn url_field(
    fields: &mut Map<String, Value>,
    loc: Vec<Value>,
    required: bool,
) -> Result<Option<ReturnUrl>, ValidationIssue> {
    let name = loc.last().and_then(Value::as_str).unwrap_or_default().to_owned();
    let value = match fields.remove(&name) {
        None if required => return Err(ValidationIssue::missing(loc, Value::Object(fields.clone()))),
        None => return Ok(None),
        Some(Value::String(value)) => value,
        Some(other) => return Err(ValidationIssue::string_type(loc, other)),
    };
    if value.is_empty() {
        return Err(ValidationIssue::string_too_short(loc, json!(value), 1));
    }
    let url = Url::parse(&value).ok().filter(|url| {
        matches!(url.scheme(), "http" | "https") && url.host().is_some() && value.trim() == value
    });
    match url {
        Some(url) => Ok(Some(ReturnUrl { url, input: value, loc })),
        None => Err(ValidationIssue::value_error(
            loc,
            json!(value),
            &format!("{name} must be an absolute http or https URL"),
        )),
    }
}

/// `flow`, a union tagged by `type`; with the redirect URL it carries, if any.
fn flow(value: Value, issues: &mut Vec<ValidationIssue>) -> Option<(Flow, Option<ReturnUrl>)> {
    let base = vec![json!("body"), json!("flow")];
    let tags = ["payment_method_update", "subscription_cancel", "subscription_update"];
    let (tag, mut fields) = tagged(value, &base, &tags).map_err(|issue| issues.push(issue)).ok()?;
    let at = |path: &[&str]| {
        let mut loc = base.clone();
        loc.push(json!(tag));
        loc.extend(path.iter().map(|p| json!(p)));
        loc
    };
    let kind = match tag {
        "payment_method_update" => Some(FlowKind::PaymentMethodUpdate),
        _ => {
            let subscription =
                subscription(&mut fields, at(&["subscription"])).map_err(|i| issues.push(i)).ok();
            subscription.map(|subscription| match tag {
                "subscription_cancel" => FlowKind::SubscriptionCancel { subscription },
                _ => FlowKind::SubscriptionUpdate { subscription },
            })
        }
    };
    let after_completion = match fields.remove("after_completion") {
        None | Some(Value::Null) => Some(None),
        Some(value) => {
            after_completion(value, at(&["after_completion"])).map_err(|i| issues.push(i)).ok().map(Some)
        }
    };
    let (after_completion, redirect) = match after_completion? {
        Some((after, redirect)) => (Some(after), redirect),
        None => (None, None),
    };
    Some((Flow { kind: kind?, after_completion }, redirect))
}

fn subscription(fields: &mut Map<String, Value>, loc: Vec<Value>) -> Result<String, ValidationIssue> {
    match fields.remove("subscription") {
        None => Err(ValidationIssue::missing(loc, Value::Object(fields.clone()))),
        Some(Value::String(id)) if is_subscription_id(&id) => Ok(id),
        Some(Value::String(id)) => {
            Err(ValidationIssue::string_pattern_mismatch(loc, json!(id), SUBSCRIPTION_PATTERN))
        }
        Some(other) => Err(ValidationIssue::string_type(loc, other)),
    }
}

fn is_subscription_id(id: &str) -> bool {
    id.strip_prefix("sub_")
        .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// `after_completion`, a union tagged by `type`.
fn after_completion(
    value: Value,
    base: Vec<Value>,
) -> Result<(AfterCompletion, Option<ReturnUrl>), ValidationIssue> {
    let (tag, mut fields) = tagged(value, &base, &["hosted_confirmation", "portal_homepage", "redirect"])?;
    let mut loc = base;
    loc.push(json!(tag));
    match tag {
        "portal_homepage" => Ok((AfterCompletion::PortalHomepage, None)),
        "redirect" => {
            loc.push(json!("return_url"));
            let url = url_field(&mut fields, loc, true)?.expect("required");
            Ok((AfterCompletion::Redirect { return_url: url.url.clone() }, Some(url)))
        }
        _ => {
            loc.push(json!("message"));
            let message = match fields.remove("message") {
                None | Some(Value::Null) => None,
                Some(Value::String(m)) if m.chars().count() > MESSAGE_MAX_CHARS => {
                    return Err(ValidationIssue::string_too_long(loc, json!(m), MESSAGE_MAX_CHARS));
                }
                Some(Value::String(m)) => Some(m),
                Some(other) => return Err(ValidationIssue::string_type(loc, other)),
            };
            Ok((AfterCompletion::HostedConfirmation { message }, None))
        }
    }
}

/// An object of a union tagged by its `type` field: the tag, and the other fields.
fn tagged<'t>(
    value: Value,
    loc: &[Value],
    tags: &[&'t str],
) -> Result<(&'t str, Map<String, Value>), ValidationIssue> {
    let Value::Object(fields) = value else {
        return Err(ValidationIssue::model_attributes_type(loc.to_vec(), value));
    };
    let Some(tag) = fields.get("type") else {
        return Err(ValidationIssue::union_tag_not_found(loc.to_vec(), Value::Object(fields), "type"));
    };
    let name = tag.as_str().map_or_else(|| tag.to_string(), str::to_owned);
    match tags.iter().find(|t| **t == name) {
        // `type` stays in: Pydantic echoes the whole object as the input of a later error.
        Some(tag) => Ok((tag, fields)),
        None => {
            Err(ValidationIssue::union_tag_invalid(loc.to_vec(), Value::Object(fields), "type", &name, tags))
        }
    }
}

/// `locale`: one of Stripe's portal locales, spelled exactly.
fn locale(value: Value) -> Result<String, ValidationIssue> {
    match value {
        Value::String(locale) if is_portal_locale(&locale) => Ok(locale),
        other => {
            Err(ValidationIssue::literal_error(vec![json!("body"), json!("locale")], other, PORTAL_LOCALES))
        }
    }
}
