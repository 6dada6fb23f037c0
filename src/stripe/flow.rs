//! Deep links: the portal opened on one task instead of its home page. These types are
//! the one description of a request's `flow`: its OpenAPI schema (derived), its
//! Pydantic-exact validation ([`FromJson`]) and the Stripe form fields it becomes
//! ([`Flow::form`]). A new flow type is a new variant here, in all three.

use serde::{Serialize, Serializer};
use serde_json::{Map, Value, json};
use url::Url;
use utoipa::ToSchema;

use crate::validation::{FromJson, ValidationIssue, at, optional, tagged};

/// Stripe IDs are a prefix and letters and digits; anything else never reaches Stripe.
const SUBSCRIPTION_PATTERN: &str = "^sub_[A-Za-z0-9]+$";
/// Stripe's limit on `after_completion.hosted_confirmation.custom_message`.
const MESSAGE_MAX_CHARS: usize = 500;

/// `flow`: a union tagged by `type`. Subscription flows act only on the user's own subscription.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[schema(as = FlowBody)]
pub enum Flow {
    /// Update the default payment method.
    PaymentMethodUpdate { after_completion: Option<AfterCompletion> },
    /// Cancel one subscription.
    SubscriptionCancel {
        #[schema(value_type = String, pattern = "^sub_[A-Za-z0-9]+$", example = "sub_1MowQVLkdIwHu7ixeRlqHVzs")]
        subscription: SubscriptionId,
        after_completion: Option<AfterCompletion>,
    },
    /// Change one subscription's plan.
    SubscriptionUpdate {
        #[schema(value_type = String, pattern = "^sub_[A-Za-z0-9]+$", example = "sub_1MowQVLkdIwHu7ixeRlqHVzs")]
        subscription: SubscriptionId,
        after_completion: Option<AfterCompletion>,
    },
}

/// `flow.after_completion`: where the user goes once the flow is done.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[schema(as = AfterCompletionBody)]
pub enum AfterCompletion {
    /// Back to the app; the URL passes the same checks and allow-list as `return_url`.
    Redirect {
        #[schema(value_type = String, format = "uri", min_length = 1)]
        return_url: ReturnUrl,
    },
    /// The portal's home page.
    PortalHomepage,
    /// A confirmation page in the portal, with an optional message.
    HostedConfirmation {
        #[schema(max_length = 500)]
        message: Option<String>,
    },
}

/// A subscription ID, `sub_` and letters and digits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct SubscriptionId(String);

impl SubscriptionId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An absolute http(s) URL the user may be sent back to, with where it stood in the
/// request and how it was written, so a refusal can point at it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReturnUrl {
    pub url: Url,
    pub input: String,
    pub loc: Vec<Value>,
}

impl Serialize for ReturnUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.input)
    }
}

impl ReturnUrl {
    /// A required URL field of `fields`: a non-empty string holding an absolute http(s) URL.
    pub fn required(
        fields: &mut Map<String, Value>,
        loc: &[Value],
        name: &str,
    ) -> Result<Self, ValidationIssue> {
        let loc = at(loc, name);
        let value = match fields.remove(name) {
            None => return Err(ValidationIssue::missing(loc, Value::Object(fields.clone()))),
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
            Some(url) => Ok(ReturnUrl { url, input: value, loc }),
            None => Err(ValidationIssue::value_error(
                loc,
                json!(value),
                &format!("{name} must be an absolute http or https URL"),
            )),
        }
    }
}

const FLOW_TAGS: [&str; 3] = ["payment_method_update", "subscription_cancel", "subscription_update"];
const AFTER_COMPLETION_TAGS: [&str; 3] = ["hosted_confirmation", "portal_homepage", "redirect"];

impl Flow {
    /// Stripe's name for the flow, also the tag callers send as `flow.type`.
    pub fn name(&self) -> &'static str {
        match self {
            Flow::PaymentMethodUpdate { .. } => "payment_method_update",
            Flow::SubscriptionCancel { .. } => "subscription_cancel",
            Flow::SubscriptionUpdate { .. } => "subscription_update",
        }
    }

    /// The subscription the flow acts on, which must be the user's own.
    pub fn subscription(&self) -> Option<&str> {
        match self {
            Flow::PaymentMethodUpdate { .. } => None,
            Flow::SubscriptionCancel { subscription, .. } | Flow::SubscriptionUpdate { subscription, .. } => {
                Some(subscription.as_str())
            }
        }
    }

    pub fn after_completion(&self) -> Option<&AfterCompletion> {
        match self {
            Flow::PaymentMethodUpdate { after_completion }
            | Flow::SubscriptionCancel { after_completion, .. }
            | Flow::SubscriptionUpdate { after_completion, .. } => after_completion.as_ref(),
        }
    }

    /// The redirect URL the flow ends on, if any, for the origin check.
    pub fn return_url(&self) -> Option<&ReturnUrl> {
        match self.after_completion() {
            Some(AfterCompletion::Redirect { return_url }) => Some(return_url),
            _ => None,
        }
    }

    /// Stripe's `flow_data[...]` form fields, nested the way its form encoding nests.
    pub fn form<'a>(&'a self, form: &mut Vec<(&'static str, &'a str)>) {
        form.push(("flow_data[type]", self.name()));
        match self {
            Flow::PaymentMethodUpdate { .. } => {}
            Flow::SubscriptionCancel { subscription, .. } => {
                form.push(("flow_data[subscription_cancel][subscription]", subscription.as_str()));
            }
            Flow::SubscriptionUpdate { subscription, .. } => {
                form.push(("flow_data[subscription_update][subscription]", subscription.as_str()));
            }
        }
        match self.after_completion() {
            None => {}
            Some(AfterCompletion::PortalHomepage) => {
                form.push(("flow_data[after_completion][type]", "portal_homepage"));
            }
            Some(AfterCompletion::Redirect { return_url }) => {
                form.push(("flow_data[after_completion][type]", "redirect"));
                form.push(("flow_data[after_completion][redirect][return_url]", return_url.url.as_str()));
            }
            Some(AfterCompletion::HostedConfirmation { message }) => {
                form.push(("flow_data[after_completion][type]", "hosted_confirmation"));
                if let Some(message) = message {
                    form.push(("flow_data[after_completion][hosted_confirmation][custom_message]", message));
                }
            }
        }
    }
}

impl FromJson for Flow {
    fn from_json(value: Value, loc: &[Value], issues: &mut Vec<ValidationIssue>) -> Option<Self> {
        let (tag, mut fields) = tagged(value, loc, &FLOW_TAGS).map_err(|issue| issues.push(issue)).ok()?;
        let loc = at(loc, tag);
        let subscription = (tag != "payment_method_update")
            .then(|| SubscriptionId::required(&mut fields, &loc).map_err(|i| issues.push(i)).ok())
            .flatten();
        let after_completion = optional(&mut fields, &loc, "after_completion", issues)?;
        Some(match tag {
            "payment_method_update" => Flow::PaymentMethodUpdate { after_completion },
            "subscription_cancel" => {
                Flow::SubscriptionCancel { subscription: subscription?, after_completion }
            }
            _ => Flow::SubscriptionUpdate { subscription: subscription?, after_completion },
        })
    }
}

impl SubscriptionId {
    fn required(fields: &mut Map<String, Value>, loc: &[Value]) -> Result<Self, ValidationIssue> {
        let loc = at(loc, "subscription");
        match fields.remove("subscription") {
            None => Err(ValidationIssue::missing(loc, Value::Object(fields.clone()))),
            Some(Value::String(id)) if is_subscription_id(&id) => Ok(SubscriptionId(id)),
            Some(Value::String(id)) => {
                Err(ValidationIssue::string_pattern_mismatch(loc, json!(id), SUBSCRIPTION_PATTERN))
            }
            Some(other) => Err(ValidationIssue::string_type(loc, other)),
        }
    }
}

fn is_subscription_id(id: &str) -> bool {
    id.strip_prefix("sub_")
        .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric()))
}

impl FromJson for AfterCompletion {
    fn from_json(value: Value, loc: &[Value], issues: &mut Vec<ValidationIssue>) -> Option<Self> {
        let parsed = tagged(value, loc, &AFTER_COMPLETION_TAGS).and_then(|(tag, mut fields)| {
            let loc = at(loc, tag);
            match tag {
                "portal_homepage" => Ok(AfterCompletion::PortalHomepage),
                "redirect" => Ok(AfterCompletion::Redirect {
                    return_url: ReturnUrl::required(&mut fields, &loc, "return_url")?,
                }),
                _ => Ok(AfterCompletion::HostedConfirmation { message: message(&mut fields, &loc)? }),
            }
        });
        parsed.map_err(|issue| issues.push(issue)).ok()
    }
}

fn message(fields: &mut Map<String, Value>, loc: &[Value]) -> Result<Option<String>, ValidationIssue> {
    let loc = at(loc, "message");
    match fields.remove("message") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(m)) if m.chars().count() > MESSAGE_MAX_CHARS => {
            Err(ValidationIssue::string_too_long(loc, json!(m), MESSAGE_MAX_CHARS))
        }
        Some(Value::String(m)) => Ok(Some(m)),
        Some(other) => Err(ValidationIssue::string_type(loc, other)),
    }
}
