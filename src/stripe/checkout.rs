//! `GET /v1/checkout/sessions/{id}`: what the checkout sync reads.

use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{StripeClient, StripeError};

/// The part of a Checkout Session the sync reads: whose it is, whether it is done, and
/// its customer.
#[derive(Debug, Deserialize)]
pub struct CheckoutSession {
    pub id: String,
    /// Unix seconds; the link is ordered by it, as an event's `created` orders its change.
    pub created: i64,
    /// `open`, `complete` or `expired`.
    pub status: Option<String>,
    /// A `cus_` ID, or the customer object when expanded; absent for guest checkouts.
    #[serde(default)]
    pub customer: Option<Value>,
    pub client_reference_id: Option<String>,
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

impl CheckoutSession {
    /// The app's user: `client_reference_id`, else `metadata.user_id`.
    pub fn user_id(&self) -> Option<&str> {
        let non_empty = |s: &&str| !s.trim().is_empty();
        self.client_reference_id
            .as_deref()
            .filter(non_empty)
            .or_else(|| self.metadata.get("user_id").and_then(Value::as_str).filter(non_empty))
    }

    /// The customer's ID, whether Stripe sent it as an ID or expanded.
    pub fn customer_id(&self) -> Option<&str> {
        let id = match self.customer.as_ref()? {
            Value::String(id) => id.as_str(),
            Value::Object(customer) => customer.get("id")?.as_str()?,
            _ => return None,
        };
        id.starts_with("cus_").then_some(id)
    }
}

impl StripeClient {
    /// Reads a Checkout Session with the project's key.
    pub async fn retrieve_checkout_session(
        &self,
        key: &SecretString,
        id: &str,
    ) -> Result<CheckoutSession, StripeError> {
        let url = self.api_url(&["v1", "checkout", "sessions", id])?;
        self.call(key, || self.http().get(url.clone())).await
    }
}
