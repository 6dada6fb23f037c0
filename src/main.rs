//! The `customer-portal` binary: wires configuration, logs, the database and the HTTP
//! server together. Behaviour lives in the library.

use std::{fmt::Display, process::ExitCode, time::Duration};

use clap::Parser;
use customer_portal::{
    AppState,
    admin::{self, Admin, AdminError},
    app,
    auth::{self, EndUser},
    cli::{Cli, Command},
    config::{AdminConfig, Config, ConfigError, JwtConfig},
    db,
    secrets::EncryptionKeys,
    server,
    stripe::StripeClient,
    telemetry,
};
use uuid::Uuid;

// Requests are served on runtimes of their own (`server::serve_on_threads`); this one
// starts them, runs the other commands, and the background tasks.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // `.env` first, so RUST_LOG and LOG_FORMAT may live there too.
    let dotenv = dotenvy::dotenv();
    // Lines logged while serving are written in batches; the guard writes the last ones.
    let _flush_logs = match telemetry::init(matches!(cli.command, Command::Serve { .. })) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = dotenv
        && !e.not_found()
    {
        return failed(Audience::Log, 2, format!("cannot read .env: {e}"));
    }
    let result = match cli.command {
        Command::Serve { no_migrate } => run_server(!no_migrate).await,
        Command::Migrate { wait } => run_migrations(Duration::from_secs(wait)).await,
        Command::Project { command } => run_admin(async |admin| admin.project(command).await).await,
        Command::Customer { command } => run_admin(async |admin| admin.customer(command).await).await,
        Command::EncryptKeys => encrypt_keys().await,
        Command::Token { project, user, ttl } => print_token(project, user, ttl),
        Command::Healthcheck { url } => healthcheck(url).await,
    };
    result.unwrap_or_else(|code| code)
}

/// Who reads a command's failure: the service's own commands run under an orchestrator
/// that collects logs, so they log it; the others answer a person at a terminal.
#[derive(Clone, Copy)]
enum Audience {
    Log,
    Person,
}

fn failed(audience: Audience, code: u8, message: impl Display) -> ExitCode {
    match audience {
        Audience::Log => tracing::error!("{message}"),
        Audience::Person => eprintln!("error: {message}"),
    }
    ExitCode::from(code)
}

/// Settings, or exit code 2 with a message naming the bad one.
fn load<T>(audience: Audience, read: fn() -> Result<T, ConfigError>) -> Result<T, ExitCode> {
    read().map_err(|e| failed(audience, 2, format!("configuration error: {e}")))
}

async fn run_server(migrate: bool) -> Result<ExitCode, ExitCode> {
    let config = load(Audience::Log, Config::from_env)?;
    serve_until_signal(config, migrate).await.map_err(|e| failed(Audience::Log, 1, e))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve_until_signal(config: Config, migrate: bool) -> Result<(), Box<dyn std::error::Error>> {
    let pool = db::pool(&config.database);
    // Through PgBouncer, migrations and this check take a direct connection.
    let session = db::session_pool(&config.database, &pool);
    if migrate {
        tokio::select! {
            result = db::migrate_when_ready(&session) => result?,
            () = shutdown_signal() => return Ok(()),
        }
    }
    warn_about_plaintext_keys(&session).await;
    drop(session);
    let (listen_addr, threads) = (config.listen_addr, config.worker_threads);
    let options =
        server::ServeOptions { grace: config.shutdown_grace, header_timeout: config.header_timeout };
    let state = AppState::new(config, pool)?;
    let listeners = server::listen_on_threads(listen_addr, threads)
        .map_err(|e| format!("LISTEN_ADDR: cannot listen on {listen_addr}: {e}"))?;
    tracing::info!(addr = %listen_addr, threads, "listening");
    server::serve_on_threads(listeners, app(state), shutdown_signal(), options).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn warn_about_plaintext_keys(pool: &sqlx::PgPool) {
    if let Ok(count @ 1..) = db::projects::count_projects_with_plaintext_keys(pool).await {
        tracing::warn!(
            projects = count,
            "Stripe keys stored in plaintext; set SECRETS_ENCRYPTION_KEY and run `customer-portal encrypt-keys`"
        );
    }
}

/// Needs only DATABASE_URL, so a deploy's migrate step carries no token or Stripe settings.
async fn run_migrations(wait: Duration) -> Result<ExitCode, ExitCode> {
    let config = load(Audience::Log, AdminConfig::from_env)?;
    let pool = db::pool(&config.database);
    match tokio::time::timeout(wait, db::migrate_when_ready(&pool)).await {
        Ok(Ok(())) => {
            tracing::info!("migrations applied");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Err(e)) => Err(failed(Audience::Log, 1, e)),
        Err(_) => {
            Err(failed(Audience::Log, 1, format!("the database did not come up within {}s", wait.as_secs())))
        }
    }
}

async fn encrypt_keys() -> Result<ExitCode, ExitCode> {
    let config = load(Audience::Person, AdminConfig::from_env)?;
    let Some(keys) = EncryptionKeys::new(&config.encryption_keys) else {
        return Err(failed(Audience::Person, 2, "SECRETS_ENCRYPTION_KEY: is required to encrypt keys"));
    };
    let changed = admin::encrypt_all(&db::pool(&config.database), &keys)
        .await
        .map_err(|e| failed(Audience::Person, 1, e))?;
    println!("encrypted the Stripe keys of {changed} project(s) with key {}", keys.current_key_id());
    Ok(ExitCode::SUCCESS)
}

/// Runs one admin command with the database and encryption keys from the environment.
async fn run_admin(
    run: impl AsyncFnOnce(&mut Admin<'_>) -> Result<(), AdminError>,
) -> Result<ExitCode, ExitCode> {
    let config = load(Audience::Person, AdminConfig::from_env)?;
    let pool = db::pool(&config.database);
    let keys = EncryptionKeys::new(&config.encryption_keys);
    let stripe = StripeClient::new(&config.stripe)
        .map_err(|e| failed(Audience::Person, 1, format!("cannot build the Stripe HTTP client: {e}")))?;
    let (mut stdin, mut stdout, mut stderr) = (std::io::stdin().lock(), std::io::stdout(), std::io::stderr());
    let mut admin = Admin {
        db: &pool,
        secrets: keys.as_ref(),
        stripe: &stripe,
        stdin: &mut stdin,
        out: &mut stdout,
        err: &mut stderr,
    };
    run(&mut admin).await.map_err(|e| failed(Audience::Person, e.exit_code(), e))?;
    Ok(ExitCode::SUCCESS)
}

fn print_token(project: Uuid, user: String, ttl: u64) -> Result<ExitCode, ExitCode> {
    let config = load(Audience::Person, JwtConfig::from_env)?;
    let user = EndUser { user_id: user, project_id: project };
    let token = auth::mint_dev_token(&config, &user, Duration::from_secs(ttl))
        .map_err(|e| failed(Audience::Person, 2, e))?;
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

async fn healthcheck(url: Option<String>) -> Result<ExitCode, ExitCode> {
    let url = url.unwrap_or_else(|| {
        let port = std::env::var("LISTEN_ADDR")
            .ok()
            .and_then(|addr| addr.parse::<std::net::SocketAddr>().ok())
            .map_or(8080, |addr| addr.port());
        format!("http://127.0.0.1:{port}/healthz")
    });
    let probe = reqwest::Client::new().get(&url).timeout(Duration::from_secs(2)).send().await;
    match probe {
        Ok(response) if response.status().is_success() => Ok(ExitCode::SUCCESS),
        _ => Err(ExitCode::FAILURE),
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
