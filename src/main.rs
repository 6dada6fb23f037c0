//! The `customer-portal` binary: wires configuration, logs, the database and the HTTP
//! server together. Behaviour lives in the library.

use std::{process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use customer_portal::{
    AppState,
    admin::{Admin, AdminError, CustomerCommand, ProjectCommand},
    app,
    auth::{self, EndUser},
    config::{AdminConfig, Config, JwtConfig},
    db, secrets, serve, server, telemetry,
};
use uuid::Uuid;

#[derive(Parser)]
#[command(name = "customer-portal", version, about = "Opens the Stripe Customer Portal for signed-in users")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // `.env` first, so RUST_LOG and LOG_FORMAT may live there too.
    let dotenv = dotenvy::dotenv();
    if let Err(e) = telemetry::init() {
        eprintln!("configuration error: {e}");
        return ExitCode::from(2);
    }
    if let Err(e) = dotenv
        && !e.not_found()
    {
        tracing::error!("cannot read .env: {e}");
        return ExitCode::from(2);
    }
    let command = match cli.command {
        Command::Token { project, user, ttl } => return print_token(project, user, ttl),
        Command::Healthcheck { url } => return healthcheck(url).await,
        Command::Project { command } => return admin(async |admin| admin.project(command).await).await,
        Command::Customer { command } => return admin(async |admin| admin.customer(command).await).await,
        Command::EncryptKeys => return encrypt_keys().await,
        Command::Migrate { wait } => return run_migrations(Duration::from_secs(wait)).await,
        command @ Command::Serve { .. } => command,
    };
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            tracing::error!("configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let Command::Serve { no_migrate } = command else { unreachable!("handled above") };
    let result = run_server(config, !no_migrate).await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Needs only DATABASE_URL, so a deploy's migrate step carries no token or Stripe settings.
async fn run_migrations(wait: Duration) -> ExitCode {
    let config = match AdminConfig::from_env() {
        Ok(config) => config,
        Err(e) => {
            tracing::error!("configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let pool = db::pool(&config.database);
    match tokio::time::timeout(wait, db::migrate_when_ready(&pool)).await {
        Ok(Ok(())) => {
            tracing::info!("migrations applied");
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            tracing::error!("the database did not come up within {}s", wait.as_secs());
            ExitCode::FAILURE
        }
    }
}

async fn encrypt_keys() -> ExitCode {
    let config = match AdminConfig::from_env() {
        Ok(config) => config,
        Err(e) => return fail(2, format!("configuration error: {e}")),
    };
    let Some(ring) = config.secrets.as_ref() else {
        return fail(2, "SECRETS_ENCRYPTION_KEY: is required to encrypt keys");
    };
    match secrets::encrypt_all(&db::pool(&config.database), ring).await {
        Ok(changed) => {
            println!("encrypted the Stripe keys of {changed} project(s) with key {}", ring.current_key_id());
            ExitCode::SUCCESS
        }
        Err(e) => fail(1, e),
    }
}

/// Runs one admin command with the database and secrets from the environment.
async fn admin(run: impl AsyncFnOnce(&mut Admin<'_>) -> Result<(), AdminError>) -> ExitCode {
    let config = match AdminConfig::from_env() {
        Ok(config) => config,
        Err(e) => return fail(2, format!("configuration error: {e}")),
    };
    let pool = db::pool(&config.database);
    let (mut stdin, mut stdout, mut stderr) = (std::io::stdin().lock(), std::io::stdout(), std::io::stderr());
    let mut admin = Admin {
        db: &pool,
        secrets: config.secrets.as_ref(),
        stdin: &mut stdin,
        out: &mut stdout,
        err: &mut stderr,
    };
    match run(&mut admin).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e.exit_code(), e),
    }
}

/// Admin commands report to a person at a terminal: a plain line, not a log record.
fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(code)
}

async fn run_server(config: Config, migrate: bool) -> Result<(), Box<dyn std::error::Error>> {
    let pool = db::pool(&config.database);
    if migrate {
        tokio::select! {
            result = db::migrate_when_ready(&pool) => result?,
            () = shutdown_signal() => return Ok(()),
        }
    }
    warn_about_plaintext_keys(&pool).await;
    let listen_addr = config.listen_addr;
    let limits = server::Limits { grace: config.shutdown_grace, header_timeout: config.header_timeout };
    let state = AppState::new(config, pool)?;
    let listener = server::listen(listen_addr)
        .map_err(|e| format!("LISTEN_ADDR: cannot listen on {listen_addr}: {e}"))?;
    tracing::info!(addr = %listen_addr, "listening");
    serve(listener, app(state), shutdown_signal(), limits).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn warn_about_plaintext_keys(pool: &sqlx::PgPool) {
    if let Ok(count @ 1..) = db::count_projects_with_plaintext_keys(pool).await {
        tracing::warn!(
            projects = count,
            "Stripe keys stored in plaintext; set SECRETS_ENCRYPTION_KEY and run `customer-portal encrypt-keys`"
        );
    }
}

fn print_token(project: Uuid, user: String, ttl: u64) -> ExitCode {
    let minted = JwtConfig::from_env().map_err(|e| format!("configuration error: {e}")).and_then(|config| {
        auth::mint_dev_token(
            &config,
            &EndUser { user_id: user, project_id: project },
            Duration::from_secs(ttl),
        )
    });
    match minted {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(2)
        }
    }
}

async fn healthcheck(url: Option<String>) -> ExitCode {
    let url = url.unwrap_or_else(|| {
        let port = std::env::var("LISTEN_ADDR")
            .ok()
            .and_then(|addr| addr.parse::<std::net::SocketAddr>().ok())
            .map_or(8080, |addr| addr.port());
        format!("http://127.0.0.1:{port}/healthz")
    });
    let probe = reqwest::Client::new().get(&url).timeout(Duration::from_secs(2)).send().await;
    match probe {
        Ok(response) if response.status().is_success() => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (what docker and Kubernetes send).
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}
