//! Admin commands: set up projects and link customers without writing SQL.
//!
//! Stripe keys are checked by prefix before anything is written, encrypted when
//! `SECRETS_ENCRYPTION_KEY` is set, and never printed back whole. Output goes to the
//! writer given, so tests read exactly what a person sees.

use std::io::{BufRead, Write};

use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    cli::{CustomerCommand, ProjectCommand},
    db::{customers, projects},
    secrets::{self, EncryptionKeys},
    stripe::StripeClient,
};

mod encrypt;
mod error;
mod settings;
mod stripe_keys;
mod webhooks;

pub use encrypt::{EncryptAllError, encrypt_all};
pub use error::AdminError;
use error::Result;
use settings::{Clears, Settings};
use stripe_keys::{check_key, is_id_with_prefix, mask};

pub struct Admin<'a> {
    pub db: &'a PgPool,
    pub secrets: Option<&'a EncryptionKeys>,
    /// For `project webhook-setup`.
    pub stripe: &'a StripeClient,
    pub stdin: &'a mut dyn BufRead,
    pub out: &'a mut dyn Write,
    /// Warnings, such as a key stored in plaintext.
    pub err: &'a mut dyn Write,
}

impl Admin<'_> {
    pub async fn project(&mut self, command: ProjectCommand) -> Result<()> {
        match command {
            ProjectCommand::Add { id, keys, settings } => {
                let id = id.unwrap_or_else(Uuid::new_v4);
                let test = self.key_arg(keys.test_key, false)?;
                let live = self.key_arg(keys.live_key, true)?;
                let settings = Settings::parse(settings, Clears::default())?;
                let test = test.map(|key| self.seal(&key, id, false));
                let live = live.map(|key| self.seal(&key, id, true));
                let mut tx = self.db.begin().await?;
                if !projects::insert_project(&mut *tx, id, test.as_deref(), live.as_deref()).await? {
                    return Err(AdminError::Refused(format!(
                        "project {id} already exists; change it with `project set-keys` or `project set`"
                    )));
                }
                settings.apply(&mut tx, id).await?;
                tx.commit().await?;
                writeln!(self.out, "{id}")?;
            }
            ProjectCommand::SetKeys { project, keys, clear_test_key, clear_live_key, webhook_secrets } => {
                let changes = [
                    (false, self.key_arg(keys.test_key, false)?, clear_test_key),
                    (true, self.key_arg(keys.live_key, true)?, clear_live_key),
                ];
                let secret_changes = self.webhook_secret_changes(webhook_secrets, project)?;
                if changes.iter().all(|(_, key, clear)| key.is_none() && !clear) && secret_changes.is_empty()
                {
                    return Err(AdminError::Invalid(
                        "nothing to change: give --test-key, --live-key, --clear-test-key or --clear-live-key \
                         (or a --…-webhook-secret flag)"
                            .into(),
                    ));
                }
                let mut tx = self.db.begin().await?;
                for (livemode, key, clear) in changes {
                    if key.is_none() && !clear {
                        continue;
                    }
                    let sealed = key.map(|key| self.seal(&key, project, livemode));
                    if !projects::set_project_key(&mut *tx, project, livemode, sealed.as_deref()).await? {
                        return Err(no_such_project(project));
                    }
                }
                Self::apply_webhook_secrets(&mut tx, project, secret_changes).await?;
                tx.commit().await?;
                self.show_project(project).await?;
            }
            ProjectCommand::Set {
                project,
                settings,
                clear_allowed_origins,
                clear_test_portal_configuration,
                clear_live_portal_configuration,
                clear_default_locale,
            } => {
                let clears = Clears {
                    allowed_origins: clear_allowed_origins,
                    test_configuration: clear_test_portal_configuration,
                    live_configuration: clear_live_portal_configuration,
                    default_locale: clear_default_locale,
                };
                let settings = Settings::parse(settings, clears)?;
                if settings.is_empty() {
                    return Err(AdminError::Invalid("nothing to change: see `project set --help`".into()));
                }
                let mut tx = self.db.begin().await?;
                if projects::find_project(&mut *tx, project).await?.is_none() {
                    return Err(no_such_project(project));
                }
                settings.apply(&mut tx, project).await?;
                tx.commit().await?;
                self.show_project(project).await?;
            }
            ProjectCommand::Show { project } => self.show_project(project).await?,
            ProjectCommand::WebhookSetup { project, live, public_url } => {
                self.webhook_setup(project, live, &public_url).await?;
            }
        }
        Ok(())
    }

    pub async fn customer(&mut self, command: CustomerCommand) -> Result<()> {
        match command {
            CustomerCommand::Link { project, user, customer, live } => {
                let user = user_id(&user)?;
                if !is_id_with_prefix(&customer, "cus_") {
                    return Err(AdminError::Invalid(format!(
                        "--customer: expected a Stripe customer ID like cus_NffrFeUfNV2Hib, got {customer:?}"
                    )));
                }
                let mut tx = self.db.begin().await?;
                if projects::find_project(&mut *tx, project).await?.is_none() {
                    return Err(no_such_project(project));
                }
                customers::link_customer(&mut *tx, project, user, live, &customer).await?;
                tx.commit().await?;
                writeln!(
                    self.out,
                    "linked user {user:?} of project {project} to {customer} ({})",
                    mode(live)
                )?;
            }
            CustomerCommand::Unlink { project, user, live } => {
                let user = user_id(&user)?;
                match customers::unlink_customer(self.db, project, user, live).await? {
                    Some(customer) => writeln!(
                        self.out,
                        "unlinked user {user:?} of project {project} from {customer} ({})",
                        mode(live)
                    )?,
                    None => {
                        return Err(AdminError::Refused(format!(
                            "user {user:?} of project {project} has no {} customer",
                            mode(live)
                        )));
                    }
                }
            }
            CustomerCommand::Show { project, user } => {
                let user = user_id(&user)?;
                if projects::find_project(self.db, project).await?.is_none() {
                    return Err(no_such_project(project));
                }
                let customers = customers::customers_of(self.db, project, user).await?;
                for livemode in [false, true] {
                    let customer = customers.iter().find(|(live, _)| *live == livemode).map(|(_, id)| id);
                    writeln!(
                        self.out,
                        "{:<10} {}",
                        mode(livemode),
                        customer.map_or("(none)", String::as_str)
                    )?;
                }
            }
        }
        Ok(())
    }

    async fn show_project(&mut self, project: Uuid) -> Result<()> {
        let row = projects::find_project(self.db, project).await?.ok_or_else(|| no_such_project(project))?;
        let origins = match row.allowed_origins.as_deref() {
            Some(list) if !list.is_empty() => list.join(", "),
            _ => "(any https origin; http://localhost in test mode)".into(),
        };
        let lines = [
            ("project", row.id.to_string()),
            ("test key", self.describe_key(row.test_key, row.id, false)),
            ("live key", self.describe_key(row.live_key, row.id, true)),
            ("return_url origins", origins),
            ("test portal config", row.test_configuration.unwrap_or_else(|| "(Stripe's default)".into())),
            ("live portal config", row.live_configuration.unwrap_or_else(|| "(Stripe's default)".into())),
            ("default locale", row.default_locale.unwrap_or_else(|| "(Stripe's choice)".into())),
            (
                "customers",
                format!("{} in test mode, {} in live mode", row.test_customers, row.live_customers),
            ),
        ];
        let webhook_lines = self.webhook_secret_lines(project).await?;
        for (label, value) in lines.into_iter().chain(webhook_lines) {
            writeln!(self.out, "{label:<19} {value}")?;
        }
        Ok(())
    }

    /// A key given on the command line or, for `-`, read from stdin; checked for its mode.
    fn key_arg(&mut self, arg: Option<String>, livemode: bool) -> Result<Option<String>> {
        let Some(mut key) = arg else { return Ok(None) };
        if key == "-" {
            key.clear();
            self.stdin.read_line(&mut key)?;
        }
        let key = key.trim().to_owned();
        check_key(&key, livemode)?;
        Ok(Some(key))
    }

    /// The form the key is stored in: encrypted when there is a key ring.
    fn seal(&mut self, key: &str, project: Uuid, livemode: bool) -> String {
        match self.secrets {
            Some(ring) => ring.encrypt(key, project, livemode),
            None => {
                let _ = writeln!(
                    self.err,
                    "warning: the {} key is stored in plaintext; set SECRETS_ENCRYPTION_KEY to encrypt keys at rest",
                    mode(livemode)
                );
                key.to_owned()
            }
        }
    }

    fn describe_key(&self, stored: Option<String>, project: Uuid, livemode: bool) -> String {
        let Some(stored) = stored.filter(|s| !s.is_empty()) else { return "(not set)".into() };
        if !secrets::is_encrypted(&stored) {
            return format!("{} (plaintext)", mask(&stored));
        }
        let key_id = stored.split(':').nth(2).unwrap_or("?");
        match secrets::reveal(self.secrets, stored.clone(), project, livemode) {
            Ok(key) => format!("{} (encrypted with key {key_id})", mask(&key)),
            Err(e) => format!("encrypted with key {key_id}; cannot decrypt: {e}"),
        }
    }
}

fn user_id(user: &str) -> Result<&str> {
    if user.trim().is_empty() {
        return Err(AdminError::Invalid("--user: must not be empty".into()));
    }
    Ok(user)
}

fn mode(livemode: bool) -> &'static str {
    if livemode { "live mode" } else { "test mode" }
}

fn no_such_project(project: Uuid) -> AdminError {
    AdminError::Refused(format!("project {project} does not exist; create it with `project add`"))
}
