//! Admin commands: set up projects and link customers without writing SQL.
//!
//! Stripe keys are checked by prefix before anything is written, encrypted when
//! `SECRETS_ENCRYPTION_KEY` is set, and never printed back whole. Output goes to the
//! writer given, so tests read exactly what a person sees.

use std::io::{BufRead, Write};

use clap::{Args, Subcommand};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    config::Origin,
    db,
    secrets::{self, KeyRing},
    stripe::is_portal_locale,
};

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Register a project and print its ID.
    Add {
        /// The project's ID; a new random one when omitted.
        #[arg(long)]
        id: Option<Uuid>,
        #[command(flatten)]
        keys: KeyArgs,
        #[command(flatten)]
        settings: SettingArgs,
    },
    /// Set or clear a project's Stripe keys.
    SetKeys {
        #[arg(long)]
        project: Uuid,
        #[command(flatten)]
        keys: KeyArgs,
        /// Remove the test-mode key.
        #[arg(long, conflicts_with = "test_key")]
        clear_test_key: bool,
        /// Remove the live-mode key.
        #[arg(long, conflicts_with = "live_key")]
        clear_live_key: bool,
    },
    /// Change a project's return-URL origins, portal configurations or default locale.
    Set {
        #[arg(long)]
        project: Uuid,
        #[command(flatten)]
        settings: SettingArgs,
        /// Forget the project's origins (any https origin is allowed again).
        #[arg(long, conflicts_with = "allowed_origin")]
        clear_allowed_origins: bool,
        /// Use Stripe's default portal configuration in test mode.
        #[arg(long, conflicts_with = "test_portal_configuration")]
        clear_test_portal_configuration: bool,
        /// Use Stripe's default portal configuration in live mode.
        #[arg(long, conflicts_with = "live_portal_configuration")]
        clear_live_portal_configuration: bool,
        /// Let Stripe pick the language (the customer's or the browser's).
        #[arg(long, conflicts_with = "default_locale")]
        clear_default_locale: bool,
    },
    /// Show a project's settings, with its keys masked.
    Show {
        #[arg(long)]
        project: Uuid,
    },
}

/// Keys on a command line end up in shell history; `-` reads the key from stdin instead.
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// Stripe test-mode secret or restricted key (sk_test_… or rk_test_…), or `-` for stdin.
    #[arg(long, value_name = "KEY")]
    test_key: Option<String>,
    /// Stripe live-mode secret or restricted key (sk_live_… or rk_live_…), or `-` for stdin.
    #[arg(long, value_name = "KEY")]
    live_key: Option<String>,
}

#[derive(Debug, Args)]
pub struct SettingArgs {
    /// An origin every return_url must be on (repeat for several), e.g. https://app.example.com.
    #[arg(long, value_name = "ORIGIN")]
    allowed_origin: Vec<String>,
    /// The Stripe portal configuration (bpc_…) test-mode sessions open with.
    #[arg(long, value_name = "ID")]
    test_portal_configuration: Option<String>,
    /// The Stripe portal configuration (bpc_…) live-mode sessions open with.
    #[arg(long, value_name = "ID")]
    live_portal_configuration: Option<String>,
    /// The portal's language when a request names none (a Stripe locale: auto, en, fr, en-GB, …).
    #[arg(long, value_name = "LOCALE")]
    default_locale: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum CustomerCommand {
    /// Link a user to their Stripe customer (replacing any earlier link in that mode).
    Link {
        #[arg(long)]
        project: Uuid,
        #[arg(long)]
        user: String,
        /// The Stripe customer ID (cus_…).
        #[arg(long)]
        customer: String,
        /// The live-mode customer (default: test mode).
        #[arg(long)]
        live: bool,
    },
    /// Remove a user's link to their Stripe customer in one mode.
    Unlink {
        #[arg(long)]
        project: Uuid,
        #[arg(long)]
        user: String,
        /// The live-mode link (default: test mode).
        #[arg(long)]
        live: bool,
    },
    /// Show a user's Stripe customers in both modes.
    Show {
        #[arg(long)]
        project: Uuid,
        #[arg(long)]
        user: String,
    },
}

/// Why an admin command stopped. Nothing was written when it returns one.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The command's input is wrong: fix the arguments (exit code 2).
    #[error("{0}")]
    Invalid(String),
    /// The input is fine but the database says no: no such project, nothing linked (exit code 1).
    #[error("{0}")]
    Refused(String),
    #[error("database: {0}")]
    Database(sqlx::Error),
    /// Reading a key from stdin or writing the answer failed.
    #[error("terminal I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl From<sqlx::Error> for AdminError {
    fn from(err: sqlx::Error) -> Self {
        // Undefined table or column: the commands run ahead of the schema.
        let behind =
            err.as_database_error().and_then(|e| e.code()).is_some_and(|c| c == "42P01" || c == "42703");
        if behind {
            return AdminError::Refused(
                "the database schema is out of date; run `customer-portal migrate` first".into(),
            );
        }
        AdminError::Database(err)
    }
}

impl AdminError {
    pub fn exit_code(&self) -> u8 {
        match self {
            AdminError::Invalid(_) => 2,
            _ => 1,
        }
    }
}

type Result<T> = std::result::Result<T, AdminError>;

pub struct Admin<'a> {
    pub db: &'a PgPool,
    pub secrets: Option<&'a KeyRing>,
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
                if !db::insert_project(&mut *tx, id, test.as_deref(), live.as_deref()).await? {
                    return Err(AdminError::Refused(format!(
                        "project {id} already exists; change it with `project set-keys` or `project set`"
                    )));
                }
                settings.apply(&mut tx, id).await?;
                tx.commit().await?;
                writeln!(self.out, "{id}")?;
            }
            ProjectCommand::SetKeys { project, keys, clear_test_key, clear_live_key } => {
                let changes = [
                    (false, self.key_arg(keys.test_key, false)?, clear_test_key),
                    (true, self.key_arg(keys.live_key, true)?, clear_live_key),
                ];
                if changes.iter().all(|(_, key, clear)| key.is_none() && !clear) {
                    return Err(AdminError::Invalid(
                        "nothing to change: give --test-key, --live-key, --clear-test-key or --clear-live-key"
                            .into(),
                    ));
                }
                let mut tx = self.db.begin().await?;
                for (livemode, key, clear) in changes {
                    if key.is_none() && !clear {
                        continue;
                    }
                    let sealed = key.map(|key| self.seal(&key, project, livemode));
                    if !db::set_project_key(&mut *tx, project, livemode, sealed.as_deref()).await? {
                        return Err(no_such_project(project));
                    }
                }
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
                if db::find_project(&mut *tx, project).await?.is_none() {
                    return Err(no_such_project(project));
                }
                settings.apply(&mut tx, project).await?;
                tx.commit().await?;
                self.show_project(project).await?;
            }
            ProjectCommand::Show { project } => self.show_project(project).await?,
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
                if db::find_project(&mut *tx, project).await?.is_none() {
                    return Err(no_such_project(project));
                }
                db::link_customer(&mut *tx, project, user, live, &customer).await?;
                tx.commit().await?;
                writeln!(
                    self.out,
                    "linked user {user:?} of project {project} to {customer} ({})",
                    mode(live)
                )?;
            }
            CustomerCommand::Unlink { project, user, live } => {
                let user = user_id(&user)?;
                match db::unlink_customer(self.db, project, user, live).await? {
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
                if db::find_project(self.db, project).await?.is_none() {
                    return Err(no_such_project(project));
                }
                let customers = db::customers_of(self.db, project, user).await?;
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
        let row = db::find_project(self.db, project).await?.ok_or_else(|| no_such_project(project))?;
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
        for (label, value) in lines {
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

/// What `project add` and `project set` change besides keys, checked before any write.
struct Settings {
    allowed_origins: Option<Option<Vec<String>>>,
    test_configuration: Option<Option<String>>,
    live_configuration: Option<Option<String>>,
    default_locale: Option<Option<String>>,
}

#[derive(Default)]
struct Clears {
    allowed_origins: bool,
    test_configuration: bool,
    live_configuration: bool,
    default_locale: bool,
}

impl Settings {
    fn parse(args: SettingArgs, clears: Clears) -> Result<Self> {
        let origins = args
            .allowed_origin
            .iter()
            .map(|o| {
                o.parse::<Origin>()
                    .map(|origin| origin.as_str().to_owned())
                    .map_err(|e| AdminError::Invalid(format!("--allowed-origin: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let configuration = |value: Option<String>, flag: &str| {
            value
                .map(|id| {
                    if is_id_with_prefix(&id, "bpc_") {
                        Ok(id)
                    } else {
                        Err(AdminError::Invalid(format!(
                            "--{flag}: expected a portal configuration ID like bpc_1MxbC4LkdIwHu7ix, got {id:?}"
                        )))
                    }
                })
                .transpose()
        };
        let locale = args
            .default_locale
            .map(|locale| {
                if is_portal_locale(&locale) {
                    Ok(locale)
                } else {
                    Err(AdminError::Invalid(format!(
                        "--default-locale: {locale:?} is not a locale Stripe's portal supports (e.g. auto, en, fr, en-GB)"
                    )))
                }
            })
            .transpose()?;
        let set_or_clear = |value: Option<String>, clear: bool| match (value, clear) {
            (Some(v), _) => Some(Some(v)),
            (None, true) => Some(None),
            (None, false) => None,
        };
        Ok(Self {
            allowed_origins: match (origins.is_empty(), clears.allowed_origins) {
                (false, _) => Some(Some(origins)),
                (true, true) => Some(None),
                (true, false) => None,
            },
            test_configuration: set_or_clear(
                configuration(args.test_portal_configuration, "test-portal-configuration")?,
                clears.test_configuration,
            ),
            live_configuration: set_or_clear(
                configuration(args.live_portal_configuration, "live-portal-configuration")?,
                clears.live_configuration,
            ),
            default_locale: set_or_clear(locale, clears.default_locale),
        })
    }

    fn is_empty(&self) -> bool {
        self.allowed_origins.is_none()
            && self.test_configuration.is_none()
            && self.live_configuration.is_none()
            && self.default_locale.is_none()
    }

    async fn apply(&self, tx: &mut sqlx::PgConnection, project: Uuid) -> sqlx::Result<()> {
        if let Some(origins) = &self.allowed_origins {
            db::set_allowed_origins(&mut *tx, project, origins.as_deref()).await?;
        }
        if let Some(id) = &self.test_configuration {
            db::set_portal_configuration(&mut *tx, project, false, id.as_deref()).await?;
        }
        if let Some(id) = &self.live_configuration {
            db::set_portal_configuration(&mut *tx, project, true, id.as_deref()).await?;
        }
        if let Some(locale) = &self.default_locale {
            db::set_default_locale(&mut *tx, project, locale.as_deref()).await?;
        }
        Ok(())
    }
}

/// A Stripe secret or restricted key of the right mode. The message never repeats the key.
fn check_key(key: &str, livemode: bool) -> Result<()> {
    let (flag, wanted, other) =
        if livemode { ("--live-key", "live", "test") } else { ("--test-key", "test", "live") };
    let fits = ["sk", "rk"].iter().any(|kind| is_id_with_prefix(key, &format!("{kind}_{wanted}_")));
    if fits {
        return Ok(());
    }
    let hint = if key.starts_with(&format!("sk_{other}_")) || key.starts_with(&format!("rk_{other}_")) {
        format!("that is a {other}-mode key")
    } else if key.starts_with("pk_") {
        "that is a publishable key; the service needs a secret (sk_) or restricted (rk_) key".into()
    } else {
        "it does not look like a Stripe key".into()
    };
    Err(AdminError::Invalid(format!("{flag}: expected sk_{wanted}_… or rk_{wanted}_…; {hint}")))
}

/// `prefix` followed by at least 8 letters and digits, as Stripe's IDs and keys are.
fn is_id_with_prefix(value: &str, prefix: &str) -> bool {
    value
        .strip_prefix(prefix)
        .is_some_and(|rest| rest.len() >= 8 && rest.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// `sk_test_…wxyz`: enough to tell keys apart, not enough to use one.
fn mask(key: &str) -> String {
    let prefix_len = key.match_indices('_').nth(1).map_or(0, |(i, _)| i + 1);
    let tail_start = key.len().saturating_sub(4).max(prefix_len);
    format!("{}…{}", &key[..prefix_len], &key[tail_start..])
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_the_prefix_and_the_last_four_characters() {
        assert_eq!(mask("sk_test_51TESTKEYabcdefghijklmnop"), "sk_test_…mnop");
        assert_eq!(mask("rk_live_12345678"), "rk_live_…5678");
        assert_eq!(mask("short"), "…hort");
    }

    #[test]
    fn keys_are_checked_for_their_mode() {
        assert!(check_key("sk_test_51TESTKEYabcdefgh", false).is_ok());
        assert!(check_key("rk_live_51LIVEKEYabcdefgh", true).is_ok());
        let wrong = check_key("sk_live_51LIVEKEYabcdefgh", false).unwrap_err().to_string();
        assert_eq!(wrong, "--test-key: expected sk_test_… or rk_test_…; that is a live-mode key");
        let publishable = check_key("pk_test_51TESTKEYabcdefgh", false).unwrap_err().to_string();
        assert!(publishable.contains("publishable"));
        assert!(!publishable.contains("51TESTKEY"), "the key is never repeated");
    }
}
