//! The `customer-portal` binary: wires configuration, logs, the database and the HTTP
//! server together. Behaviour lives in the library.

use std::{process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use customer_portal::{
    AppState, app,
    auth::{self, EndUser},
    config::{Config, JwtConfig},
    db, secrets, serve, telemetry,
};
use tokio::net::TcpListener;
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
    match cli.command {
        Command::Token { project, user, ttl } => return print_token(project, user, ttl),
        Command::Healthcheck { url } => return healthcheck(url).await,
        Command::Serve { .. } | Command::Migrate { .. } | Command::EncryptKeys => {}
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            tracing::error!("configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Serve { no_migrate } => run_server(config, !no_migrate).await,
        Command::Migrate { wait } => run_migrations(config, Duration::from_secs(wait)).await,
        Command::EncryptKeys => encrypt_keys(config).await,
        Command::Token { .. } | Command::Healthcheck { .. } => unreachable!("handled above"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn run_migrations(config: Config, wait: Duration) -> Result<(), Box<dyn std::error::Error>> {
    let pool = db::pool(&config.database);
    match tokio::time::timeout(wait, db::migrate_when_ready(&pool)).await {
        Ok(result) => result?,
        Err(_) => return Err(format!("the database did not come up within {}s", wait.as_secs()).into()),
    }
    tracing::info!("migrations applied");
    Ok(())
}

async fn encrypt_keys(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let ring = config.secrets.as_ref().ok_or("SECRETS_ENCRYPTION_KEY: is required to encrypt keys")?;
    let pool = db::pool(&config.database);
    let changed = secrets::encrypt_all(&pool, ring).await?;
    println!("encrypted the Stripe keys of {changed} project(s) with key {}", ring.current_key_id());
    Ok(())
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
    let grace = config.shutdown_grace;
    let state = AppState::new(config, pool)?;
    let listener = TcpListener::bind(listen_addr)
        .await
        .map_err(|e| format!("LISTEN_ADDR: cannot listen on {listen_addr}: {e}"))?;
    tracing::info!(addr = %listen_addr, "listening");
    serve(listener, app(state), shutdown_signal(), grace).await?;
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
