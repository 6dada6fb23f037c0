//! `/v1/webhook_endpoints`: what `project webhook-setup` creates and updates.

use secrecy::SecretString;
use serde::Deserialize;

use super::{API_VERSION, StripeClient, StripeError};

/// A webhook endpoint as Stripe answers it. `secret` comes only with the creation.
#[derive(Debug, Deserialize)]
pub struct WebhookEndpoint {
    pub id: String,
    pub url: String,
    #[serde(default)]
    pub enabled_events: Vec<String>,
    pub secret: Option<String>,
}

#[derive(Debug, Deserialize)]
struct EndpointList {
    data: Vec<WebhookEndpoint>,
    #[serde(default)]
    has_more: bool,
}

/// Stripe's form encoding of a list: `name[0]=…&name[1]=…`.
fn events_form<'a>(events: &'a [&'a str]) -> Vec<(String, &'a str)> {
    events.iter().enumerate().map(|(i, event)| (format!("enabled_events[{i}]"), *event)).collect()
}

impl StripeClient {
    /// The account's endpoint whose URL is exactly `url`, if there is one (all pages read).
    pub async fn find_webhook_endpoint(
        &self,
        key: &SecretString,
        url: &str,
    ) -> Result<Option<WebhookEndpoint>, StripeError> {
        let list_url = self.api_url(&["v1", "webhook_endpoints"])?;
        let mut starting_after: Option<String> = None;
        loop {
            let mut query = vec![("limit", "100".to_owned())];
            query.extend(starting_after.clone().map(|id| ("starting_after", id)));
            let page: EndpointList =
                self.call(key, || self.http().get(list_url.clone()).query(&query)).await?;
            starting_after = page.data.last().map(|e| e.id.clone());
            if let Some(found) = page.data.into_iter().find(|e| e.url == url) {
                return Ok(Some(found));
            }
            if !page.has_more || starting_after.is_none() {
                return Ok(None);
            }
        }
    }

    /// Creates an endpoint for `url` sending exactly `events`, at the API version the
    /// service parses.
    pub async fn create_webhook_endpoint(
        &self,
        key: &SecretString,
        url: &str,
        events: &[&str],
        description: &str,
    ) -> Result<WebhookEndpoint, StripeError> {
        let endpoint = self.api_url(&["v1", "webhook_endpoints"])?;
        let mut form: Vec<(String, &str)> = vec![
            ("url".into(), url),
            ("api_version".into(), API_VERSION),
            ("description".into(), description),
        ];
        form.extend(events_form(events));
        // One key for every attempt, so a retry can never create a second endpoint.
        let idempotency_key = uuid::Uuid::new_v4().to_string();
        self.call(key, || {
            self.http().post(endpoint.clone()).header("Idempotency-Key", &idempotency_key).form(&form)
        })
        .await
    }

    /// Sets an existing endpoint's events to exactly `events`, and enables it.
    pub async fn update_webhook_endpoint(
        &self,
        key: &SecretString,
        id: &str,
        events: &[&str],
    ) -> Result<WebhookEndpoint, StripeError> {
        let endpoint = self.api_url(&["v1", "webhook_endpoints", id])?;
        let mut form: Vec<(String, &str)> = vec![("disabled".into(), "false")];
        form.extend(events_form(events));
        self.call(key, || self.http().post(endpoint.clone()).form(&form)).await
    }
}
