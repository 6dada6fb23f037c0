//! The portal route's JSON body. Its type is the one description from which the OpenAPI
//! schema (derived) and the Pydantic-exact 422s ([`FromJson`]) both come; the `flow`
//! field's types, with their Stripe form fields, are in `stripe::flow`.

use serde_json::Value;
use utoipa::ToSchema;

use crate::{
    stripe::{Flow, PORTAL_LOCALES, ReturnUrl, is_portal_locale},
    validation::{FromJson, ValidationIssue, at, object, optional},
};

/// The JSON body, for the OpenAPI document. `PortalRequest` parses it by hand, to answer
/// each mistake exactly as FastAPI would.
#[derive(Debug, ToSchema)]
#[schema(as = PortalRequestBody)]
pub struct PortalRequest {
    /// Where the portal's return link sends the user: an absolute `http`/`https` URL on an
    /// allowed origin (see `RETURN_URL_ALLOWED_ORIGINS` and the project's own list).
    #[schema(value_type = String, format = "uri", min_length = 1, example = "https://app.example.com/account")]
    pub return_url: ReturnUrl,
    /// Open the portal on one task instead of its home page (a deep link).
    pub flow: Option<Flow>,
    /// The portal's language (one of Stripe's locales; `auto` lets Stripe choose). Wins
    /// over the project's default locale.
    #[schema(example = "fr")]
    pub locale: Option<String>,
}

impl PortalRequest {
    /// Every URL the user may be sent back to, for the origin check.
    pub fn return_urls(&self) -> impl Iterator<Item = &ReturnUrl> {
        std::iter::once(&self.return_url).chain(self.flow.as_ref().and_then(Flow::return_url))
    }
}

/// In Pydantic terms: `return_url: str` (an absolute http/https URL), `flow: Flow | None`
/// (a union tagged by `type`), `locale: Literal[...] | None`. Unknown fields are ignored.
impl FromJson for PortalRequest {
    fn from_json(value: Value, loc: &[Value], issues: &mut Vec<ValidationIssue>) -> Option<Self> {
        let mut fields = object(value, loc).map_err(|issue| issues.push(issue)).ok()?;
        let return_url =
            ReturnUrl::required(&mut fields, loc, "return_url").map_err(|issue| issues.push(issue)).ok();
        let flow = optional(&mut fields, loc, "flow", issues);
        let locale = match fields.remove("locale") {
            None | Some(Value::Null) => Some(None),
            Some(Value::String(locale)) if is_portal_locale(&locale) => Some(Some(locale)),
            Some(other) => {
                issues.push(ValidationIssue::literal_error(at(loc, "locale"), other, PORTAL_LOCALES));
                None
            }
        };
        Some(PortalRequest { return_url: return_url?, flow: flow?, locale: locale? })
    }
}
