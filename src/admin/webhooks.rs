//! The webhook parts of the admin commands: `project set-keys --test-webhook-secret …`
//! and `project webhook-setup`, which creates (or updates) the endpoint in Stripe.

use secrecy::SecretString;
use url::Url;
use uuid::Uuid;

use super::{Admin, AdminError, EncryptAllError, Result, mode, no_such_project};
use crate::{
    cli::WebhookSecretArgs,
    db::{projects, webhook_secrets},
    secrets::{self, EncryptionKeys, webhook_context},
    stripe::StripeError,
    webhooks::EVENT_TYPES,
};

/// Secret changes, checked and sealed before anything is written: (livemode, the new
/// value, or `None` to clear).
pub(super) type SecretChanges = Vec<(bool, Option<String>)>;

impl Admin<'_> {
    pub(super) fn webhook_secret_changes(
        &mut self,
        args: WebhookSecretArgs,
        project: Uuid,
    ) -> Result<SecretChanges> {
        let mut changes = Vec::new();
        for (livemode, value, clear) in [
            (false, args.test_webhook_secret, args.clear_test_webhook_secret),
            (true, args.live_webhook_secret, args.clear_live_webhook_secret),
        ] {
            if let Some(value) = value {
                let secret = self.read_webhook_secret(value, livemode)?;
                changes.push((livemode, Some(self.seal_webhook_secret(&secret, project, livemode))));
            } else if clear {
                changes.push((livemode, None));
            }
        }
        Ok(changes)
    }

    pub(super) async fn apply_webhook_secrets(
        tx: &mut sqlx::PgConnection,
        project: Uuid,
        changes: SecretChanges,
    ) -> Result<()> {
        for (livemode, sealed) in changes {
            if !webhook_secrets::set(&mut *tx, project, livemode, sealed.as_deref()).await? {
                return Err(no_such_project(project));
            }
        }
        Ok(())
    }

    /// The `project show` lines for the two webhook secrets, masked.
    pub(super) async fn webhook_secret_lines(&self, project: Uuid) -> Result<Vec<(&'static str, String)>> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let mut lines = Vec::new();
        for (livemode, label) in [(false, "test webhook secret"), (true, "live webhook secret")] {
            let stored = webhook_secrets::find(self.db, project, livemode, now.as_secs_f64()).await?;
            let (current, previous) = stored.map_or((None, None), |s| (s.current, s.previous));
            let mut text = match current.filter(|s| !s.is_empty()) {
                None => "(not set)".to_owned(),
                Some(stored) => self.describe_webhook_secret(stored, project, livemode),
            };
            if previous.is_some() {
                text.push_str("; the previous one is still accepted (24 h after the change)");
            }
            lines.push((label, text));
        }
        Ok(lines)
    }

    fn describe_webhook_secret(&self, stored: String, project: Uuid, livemode: bool) -> String {
        if !secrets::is_encrypted(&stored) {
            return format!("{} (plaintext)", mask_secret(&stored));
        }
        let key_id = stored.split(':').nth(2).unwrap_or("?").to_owned();
        match secrets::reveal_in(self.secrets, stored, &webhook_context(project, livemode)) {
            Ok(secret) => format!("{} (encrypted with key {key_id})", mask_secret(&secret)),
            Err(e) => format!("encrypted with key {key_id}; cannot decrypt: {e}"),
        }
    }

    /// A secret given on the command line or, for `-`, read from stdin; checked for its
    /// prefix. The message never repeats it.
    fn read_webhook_secret(&mut self, mut value: String, livemode: bool) -> Result<String> {
        if value == "-" {
            value.clear();
            self.stdin.read_line(&mut value)?;
        }
        let value = value.trim().to_owned();
        let flag = if livemode { "--live-webhook-secret" } else { "--test-webhook-secret" };
        let fits = value.strip_prefix("whsec_").is_some_and(|rest| {
            rest.len() >= 8 && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
        if !fits {
            return Err(AdminError::Invalid(format!(
                "{flag}: expected a webhook signing secret like whsec_…, as Stripe shows it for the endpoint \
                 (or as `stripe listen` prints it)"
            )));
        }
        Ok(value)
    }

    fn seal_webhook_secret(&mut self, secret: &str, project: Uuid, livemode: bool) -> String {
        match self.secrets {
            Some(ring) => ring.encrypt_in(secret, &webhook_context(project, livemode)),
            None => {
                let _ = writeln!(
                    self.err,
                    "warning: the {} webhook secret is stored in plaintext; set SECRETS_ENCRYPTION_KEY to encrypt it",
                    mode(livemode)
                );
                secret.to_owned()
            }
        }
    }

    /// `project webhook-setup`: creates the project's endpoint for the mode in its Stripe
    /// account, or, when one with the same URL exists, sets its events; stores the
    /// secret of a new endpoint.
    pub(super) async fn webhook_setup(
        &mut self,
        project: Uuid,
        livemode: bool,
        public_url: &str,
    ) -> Result<()> {
        let url = endpoint_url(public_url, project, livemode)?;
        let row = projects::find_project(self.db, project).await?.ok_or_else(|| no_such_project(project))?;
        let stored = if livemode { row.live_key } else { row.test_key };
        let stored = stored.filter(|k| !k.is_empty()).ok_or_else(|| {
            AdminError::Refused(format!(
                "project {project} has no {} Stripe key; set one with `project set-keys`",
                mode(livemode)
            ))
        })?;
        let key = secrets::reveal(self.secrets, stored, project, livemode)
            .map_err(|e| AdminError::Refused(format!("the project's {} Stripe key: {e}", mode(livemode))))?;
        let key = SecretString::from(key);
        let stripe = self.stripe;
        let refused = |e: StripeError| AdminError::Refused(format!("Stripe: {e}"));

        let events = EVENT_TYPES.as_slice();
        let (verb, endpoint) =
            match stripe.find_webhook_endpoint(&key, url.as_str()).await.map_err(refused)? {
                Some(found) => (
                    "updated",
                    stripe.update_webhook_endpoint(&key, &found.id, events).await.map_err(refused)?,
                ),
                None => {
                    let description = "customer-portal: keeps customer links current";
                    (
                        "created",
                        stripe
                            .create_webhook_endpoint(&key, url.as_str(), events, description)
                            .await
                            .map_err(refused)?,
                    )
                }
            };
        let secret_line = match endpoint.secret.clone() {
            Some(secret) => {
                let secret = self.read_webhook_secret(secret, livemode)?;
                let sealed = self.seal_webhook_secret(&secret, project, livemode);
                let mut tx = self.db.begin().await?;
                Self::apply_webhook_secrets(&mut tx, project, vec![(livemode, Some(sealed))]).await?;
                tx.commit().await?;
                format!("{} stored", mask_secret(&secret))
            }
            None => "unchanged (Stripe shows an endpoint's secret only when it creates it)".to_owned(),
        };
        writeln!(self.out, "{verb} Stripe webhook endpoint {} ({})", endpoint.id, mode(livemode))?;
        writeln!(self.out, "{:<8} {url}", "url")?;
        writeln!(self.out, "{:<8} {}", "events", endpoint.enabled_events.join(", "))?;
        writeln!(self.out, "{:<8} {secret_line}", "secret")?;
        Ok(())
    }
}

/// For `encrypt-keys`: seals every plaintext webhook secret, and re-seals every one under
/// an older key, in the caller's transaction; the projects it changed.
pub(super) async fn encrypt_webhook_secrets(
    tx: &mut sqlx::PgConnection,
    keys: &EncryptionKeys,
) -> std::result::Result<Vec<Uuid>, EncryptAllError> {
    let mut changed = Vec::new();
    for row in webhook_secrets::all_for_update(&mut *tx).await? {
        let reseal = |stored: &Option<String>, livemode: bool| -> std::result::Result<_, EncryptAllError> {
            let context = webhook_context(row.id, livemode);
            match stored {
                Some(value) if !value.is_empty() && keys.needs_encrypting(value) => {
                    let plain = secrets::reveal_in(Some(keys), value.clone(), &context)
                        .map_err(|error| EncryptAllError::Secret { project: row.id, error })?;
                    Ok(Some(keys.encrypt_in(&plain, &context)))
                }
                other => Ok(other.clone()),
            }
        };
        let sealed = webhook_secrets::StoredRow {
            id: row.id,
            test: reseal(&row.test, false)?,
            test_previous: reseal(&row.test_previous, false)?,
            live: reseal(&row.live, true)?,
            live_previous: reseal(&row.live_previous, true)?,
        };
        let same = (&sealed.test, &sealed.test_previous, &sealed.live, &sealed.live_previous)
            == (&row.test, &row.test_previous, &row.live, &row.live_previous);
        if !same {
            webhook_secrets::set_stored(&mut *tx, &sealed).await?;
            changed.push(row.id);
        }
    }
    Ok(changed)
}

/// `whsec_…wxyz`: enough to tell secrets apart, not enough to use one.
fn mask_secret(secret: &str) -> String {
    let tail: String = secret.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    format!("whsec_…{tail}")
}

/// The route's URL under `public_url`, exactly as Stripe will call it.
fn endpoint_url(public_url: &str, project: Uuid, livemode: bool) -> Result<Url> {
    let base = Url::parse(public_url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .filter(|u| u.query().is_none() && u.fragment().is_none() && u.username().is_empty())
        .ok_or_else(|| {
            AdminError::Invalid(format!(
                "--public-url: expected the service's public base URL, like https://billing.example.com, got \
                 {public_url:?}"
            ))
        })?;
    let url = format!(
        "{}/api/v1/payments/stripe/webhooks/{project}?test_mode={}",
        base.as_str().trim_end_matches('/'),
        !livemode
    );
    Url::parse(&url).map_err(|e| AdminError::Invalid(format!("--public-url: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_url_is_the_route_under_the_public_url() {
        let project = Uuid::nil();
        let url = endpoint_url("https://billing.example.com/", project, false).expect("valid");
        assert_eq!(
            url.as_str(),
            "https://billing.example.com/api/v1/payments/stripe/webhooks/00000000-0000-0000-0000-000000000000?test_mode=true"
        );
        let prefixed = endpoint_url("https://example.com/billing", project, true).expect("valid");
        assert!(prefixed.as_str().starts_with("https://example.com/billing/api/v1/"));
        assert!(prefixed.as_str().ends_with("?test_mode=false"));
        assert!(endpoint_url("billing.example.com", project, false).is_err());
        assert!(endpoint_url("https://example.com/?x=1", project, false).is_err());
    }
}
