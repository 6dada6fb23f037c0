//! The command line: `serve`, `migrate`, the admin commands and the dev helpers.
//! Definitions only; `main.rs` dispatches them and `admin` carries them out.

use clap::{Args, Parser, Subcommand};
use uuid::Uuid;

#[derive(Parser)]
#[command(name = "customer-portal", version, about = "Opens the Stripe Customer Portal for signed-in users")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the HTTP service (applies pending migrations first).
    Serve {
        /// Do not apply migrations at start-up.
        #[arg(long, env = "SKIP_MIGRATIONS")]
        no_migrate: bool,
    },
    /// Apply pending migrations and exit.
    Migrate {
        /// How long to wait for the database to come up, in seconds.
        #[arg(long, default_value_t = 60)]
        wait: u64,
    },
    /// Set up and inspect projects: Stripe keys, return-URL origins, portal settings.
    Project {
        #[command(subcommand)]
        command: ProjectCommand,
    },
    /// Link users to their Stripe customers, and inspect the links.
    Customer {
        #[command(subcommand)]
        command: CustomerCommand,
    },
    /// Encrypt the Stripe keys stored in plaintext (or under an older key) with the
    /// first key of SECRETS_ENCRYPTION_KEY, in one transaction.
    EncryptKeys,
    /// Print a signed end-user token for local development (needs JWT_SECRET).
    Token {
        /// The project's ID (UUID).
        #[arg(long)]
        project: Uuid,
        /// The end user's ID.
        #[arg(long)]
        user: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
    /// Exit 0 if the local service answers GET /healthz (for container health checks).
    Healthcheck {
        /// The URL to probe; defaults to /healthz on LISTEN_ADDR's port.
        #[arg(long)]
        url: Option<String>,
    },
}

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
        #[command(flatten)]
        webhook_secrets: WebhookSecretArgs,
    },
    /// Create the project's webhook endpoint in its Stripe account (or update the one
    /// with the same URL) for the events the service uses, and store its secret.
    WebhookSetup {
        #[arg(long)]
        project: Uuid,
        /// The live-mode endpoint (default: test mode).
        #[arg(long)]
        live: bool,
        /// Where Stripe reaches this service, e.g. https://billing.example.com.
        #[arg(long, value_name = "URL")]
        public_url: String,
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
    pub test_key: Option<String>,
    /// Stripe live-mode secret or restricted key (sk_live_… or rk_live_…), or `-` for stdin.
    #[arg(long, value_name = "KEY")]
    pub live_key: Option<String>,
}

/// Webhook signing secrets, like keys: `-` reads one from stdin.
#[derive(Debug, Args)]
pub struct WebhookSecretArgs {
    /// The test-mode webhook signing secret (whsec_…), or `-` for stdin. The one it
    /// replaces is still accepted for 24 hours.
    #[arg(long, value_name = "SECRET", conflicts_with = "clear_test_webhook_secret")]
    pub test_webhook_secret: Option<String>,
    /// The live-mode webhook signing secret (whsec_…), or `-` for stdin.
    #[arg(long, value_name = "SECRET", conflicts_with = "clear_live_webhook_secret")]
    pub live_webhook_secret: Option<String>,
    /// Remove the test-mode webhook secrets (test-mode deliveries then get a 404).
    #[arg(long)]
    pub clear_test_webhook_secret: bool,
    /// Remove the live-mode webhook secrets.
    #[arg(long)]
    pub clear_live_webhook_secret: bool,
}

#[derive(Debug, Args)]
pub struct SettingArgs {
    /// An origin every return_url must be on (repeat for several), e.g. https://app.example.com.
    #[arg(long, value_name = "ORIGIN")]
    pub allowed_origin: Vec<String>,
    /// The Stripe portal configuration (bpc_…) test-mode sessions open with.
    #[arg(long, value_name = "ID")]
    pub test_portal_configuration: Option<String>,
    /// The Stripe portal configuration (bpc_…) live-mode sessions open with.
    #[arg(long, value_name = "ID")]
    pub live_portal_configuration: Option<String>,
    /// The portal's language when a request names none (a Stripe locale: auto, en, fr, en-GB, …).
    #[arg(long, value_name = "LOCALE")]
    pub default_locale: Option<String>,
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
