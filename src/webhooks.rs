//! Use case: apply a verified Stripe event to the customer links, exactly once and in
//! the order of the events' `created`, whatever order they arrive in.
//!
//! Knows nothing of HTTP: the route hands it the project, the mode, the signature header
//! and the raw body, and maps what comes back.

pub mod signature;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use serde::Deserialize;
use serde_json::{Map, Value};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    db::{
        DbError,
        events::{self, Action, Change},
        held::HeldConnections,
        webhook_secrets,
    },
    secrets::{self, EncryptionKeys, SecretError},
};

pub use signature::SignatureError;

/// The event types the service acts on; `project webhook-setup` subscribes to exactly these.
pub const EVENT_TYPES: [&str; 4] =
    ["checkout.session.completed", "customer.created", "customer.updated", "customer.deleted"];

/// Event records and tombstones are kept this long (Stripe retries for three days).
pub const RETENTION_DAYS: i32 = 30;

/// How long a project's secrets, once read, are used without reading them again. A
/// delivery that none of them verifies reads them again at once, so a new secret works
/// immediately; a cleared one is still accepted for at most this long.
const SECRETS_TTL: Duration = Duration::from_secs(2);

/// What receiving events needs; built once at start-up.
pub struct Webhooks {
    db: PgPool,
    /// Where events are applied: a few connections, each one event at a time.
    writers: Arc<HeldConnections>,
    encryption_keys: Option<EncryptionKeys>,
    secrets: Mutex<HashMap<(Uuid, bool), CachedSecrets>>,
}

/// A project's decrypted secrets for one mode, and when they were read.
type CachedSecrets = (Instant, Arc<Vec<String>>);

/// Why a delivery was not applied. Every variant but `StoredSecret` and `Database` is
/// the sender's fault, and nothing was written for any of them.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("webhooks are not configured for this project and mode")]
    NotConfigured,
    #[error("signature refused: {0}")]
    Signature(#[from] SignatureError),
    #[error("invalid event payload: {0}")]
    InvalidPayload(String),
    #[error("event mode does not match test_mode")]
    ModeMismatch,
    #[error("project {project}'s webhook secret: {error}")]
    StoredSecret { project: Uuid, error: SecretError },
    #[error(transparent)]
    Database(#[from] DbError),
}

impl From<sqlx::Error> for WebhookError {
    fn from(err: sqlx::Error) -> Self {
        WebhookError::Database(err.into())
    }
}

impl WebhookError {
    /// The `outcome` label of `stripe_webhook_events_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            WebhookError::NotConfigured => "not_configured",
            WebhookError::Signature(_) => "bad_signature",
            WebhookError::InvalidPayload(_) => "invalid_payload",
            WebhookError::ModeMismatch => "mode_mismatch",
            WebhookError::StoredSecret { .. } | WebhookError::Database(_) => "error",
        }
    }
}

/// What became of an event that was verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Its change was made.
    Applied,
    /// It had been received before; nothing changed.
    Duplicate,
    /// A newer change to the same link or customer was already applied; recorded, ignored.
    Stale,
    /// A type the service does not use, or one without a user or customer; recorded.
    Ignored,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Duplicate => "duplicate",
            Outcome::Stale => "stale",
            Outcome::Ignored => "ignored",
        }
    }

    fn parse(outcome: &str) -> Self {
        match outcome {
            "applied" => Outcome::Applied,
            "duplicate" => Outcome::Duplicate,
            "stale" => Outcome::Stale,
            _ => Outcome::Ignored,
        }
    }
}

/// A verified event's identity and what became of it, for the log line and the metric.
#[derive(Debug)]
pub struct Received {
    pub event_id: String,
    pub event_type: String,
    pub outcome: Outcome,
}

impl Webhooks {
    /// `writers`: how many events may be applied at once. Must be called on a runtime.
    pub fn new(db: PgPool, writers: usize, encryption_keys: Option<EncryptionKeys>) -> Self {
        let writers = HeldConnections::new(db.clone(), writers);
        Self { db, writers, encryption_keys, secrets: Mutex::default() }
    }

    /// Verifies one delivery and applies the event it holds: the project's secrets for
    /// the mode at `now` (read at most every `SECRETS_TTL`), the signature over the raw
    /// `body`, then the event, recorded and applied in one statement.
    pub async fn receive(
        &self,
        project_id: Uuid,
        livemode: bool,
        signature: Option<&str>,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Received, WebhookError> {
        let key = (project_id, livemode);
        let cached = self.cached_secrets(key);
        let verified = cached.as_ref().map(|secrets| verify(signature, body, secrets, now));
        if !matches!(verified, Some(Ok(()))) {
            let fresh = self.secrets_for(project_id, livemode, now).await?;
            self.secrets
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key, (Instant::now(), fresh.clone()));
            verify(signature, body, &fresh, now)?;
        }
        let event: Event =
            serde_json::from_slice(body).map_err(|e| WebhookError::InvalidPayload(e.to_string()))?;
        if event.livemode.is_some_and(|live| live != livemode) {
            return Err(WebhookError::ModeMismatch);
        }
        let change = Change {
            project_id,
            livemode,
            event_id: Some(&event.id),
            event_type: Some(&event.kind),
            created: event.created,
            action: action(&event.kind, &event.data.object),
        };
        let mut connection = self.writers.acquire().await?;
        let outcome = match events::apply_change(&mut *connection, &change).await {
            Ok(outcome) => outcome,
            // PostgreSQL refused the statement: the connection itself is fine.
            Err(e @ sqlx::Error::Database(_)) => {
                connection.sound();
                return Err(e.into());
            }
            Err(e) => return Err(e.into()),
        };
        connection.sound();
        let outcome = Outcome::parse(&outcome);
        Ok(Received { event_id: event.id, event_type: event.kind, outcome })
    }

    fn cached_secrets(&self, key: (Uuid, bool)) -> Option<Arc<Vec<String>>> {
        let cache = self.secrets.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(&key).filter(|(read, _)| read.elapsed() < SECRETS_TTL).map(|(_, secrets)| secrets.clone())
    }

    /// The secrets deliveries for `project_id` in this mode may be signed with at `now`:
    /// the current one and, for 24 hours after a change, the one before.
    async fn secrets_for(
        &self,
        project_id: Uuid,
        livemode: bool,
        now: SystemTime,
    ) -> Result<Arc<Vec<String>>, WebhookError> {
        let stored = webhook_secrets::find(&self.db, project_id, livemode, unix_seconds(now) as f64)
            .await?
            .ok_or(WebhookError::NotConfigured)?;
        let Some(current) = stored.current.filter(|s| !s.is_empty()) else {
            return Err(WebhookError::NotConfigured);
        };
        let context = secrets::webhook_context(project_id, livemode);
        let reveal = |stored: String| {
            secrets::reveal_in(self.encryption_keys.as_ref(), stored, &context)
                .map_err(|error| WebhookError::StoredSecret { project: project_id, error })
        };
        let mut all = vec![reveal(current)?];
        if let Some(previous) = stored.previous.filter(|s| !s.is_empty()) {
            all.push(reveal(previous)?);
        }
        Ok(Arc::new(all))
    }
}

fn verify(
    signature: Option<&str>,
    body: &[u8],
    secrets: &[String],
    now: SystemTime,
) -> Result<(), SignatureError> {
    let candidates: Vec<&str> = secrets.iter().map(String::as_str).collect();
    signature::verify(signature, body, &candidates, now)
}

/// The fields of an event the service reads; anything else in the payload is ignored.
#[derive(Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    created: i64,
    livemode: Option<bool>,
    data: EventData,
}

#[derive(Deserialize)]
struct EventData {
    object: Map<String, Value>,
}

/// What an event asks for: `Ignore` for other types, or an event without a user or customer.
fn action<'a>(kind: &str, object: &'a Map<String, Value>) -> Action<'a> {
    let customer_id =
        |field: &str| object.get(field).and_then(Value::as_str).filter(|id| id.starts_with("cus_"));
    let metadata_user = || non_empty(object.get("metadata").and_then(|m| m.get("user_id")));
    let (user_id, customer_id) = match kind {
        "checkout.session.completed" => {
            (non_empty(object.get("client_reference_id")).or_else(metadata_user), customer_id("customer"))
        }
        "customer.created" | "customer.updated" => (metadata_user(), customer_id("id")),
        "customer.deleted" => {
            return customer_id("id").map_or(Action::Ignore, |customer_id| Action::Delete { customer_id });
        }
        _ => return Action::Ignore,
    };
    match (user_id, customer_id) {
        (Some(user_id), Some(customer_id)) => Action::Link { user_id, customer_id },
        _ => Action::Ignore,
    }
}

fn non_empty(value: Option<&Value>) -> Option<&str> {
    value.and_then(Value::as_str).filter(|s| !s.trim().is_empty())
}

/// The metric label for an event type: the types the service uses by name, the rest
/// as `other`, so no sender can grow the number of series.
pub fn type_label(kind: &str) -> &'static str {
    EVENT_TYPES.iter().find(|t| **t == kind).copied().unwrap_or("other")
}

fn unix_seconds(now: SystemTime) -> i64 {
    now.duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Prunes event records and tombstones past `RETENTION_DAYS` every `every`, in small
/// batches, for as long as the process runs. Failures are logged and retried next time.
pub fn spawn_pruning(db: PgPool, every: Duration) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
    runtime.spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            loop {
                match events::prune(&db, RETENTION_DAYS, 1_000).await {
                    Ok(0) => break,
                    Ok(pruned) => tracing::debug!(pruned, "pruned old Stripe event records"),
                    Err(e) => {
                        tracing::warn!(error = %e, "pruning old Stripe event records failed; retrying later");
                        break;
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().expect("an object")
    }

    #[test]
    fn a_completed_checkout_links_its_reference_else_its_metadata_user() {
        let session =
            object(json!({"client_reference_id": "u1", "metadata": {"user_id": "u2"}, "customer": "cus_1"}));
        assert!(matches!(
            action("checkout.session.completed", &session),
            Action::Link { user_id: "u1", customer_id: "cus_1" }
        ));
        let session =
            object(json!({"client_reference_id": null, "metadata": {"user_id": "u2"}, "customer": "cus_1"}));
        assert!(matches!(action("checkout.session.completed", &session), Action::Link { user_id: "u2", .. }));
    }

    #[test]
    fn events_without_a_user_or_a_customer_change_nothing() {
        let guest = object(json!({"client_reference_id": "u1", "customer": null}));
        assert!(matches!(action("checkout.session.completed", &guest), Action::Ignore));
        let anonymous = object(json!({"id": "cus_1", "metadata": {}}));
        assert!(matches!(action("customer.updated", &anonymous), Action::Ignore));
        assert!(matches!(action("invoice.paid", &anonymous), Action::Ignore));
    }

    #[test]
    fn only_the_types_used_are_metric_labels() {
        assert_eq!(type_label("customer.deleted"), "customer.deleted");
        assert_eq!(type_label("invoice.paid"), "other");
    }
}
