//! The `customer-portal` binary: wires configuration, logs, the database and the HTTP
//! server together. Behaviour lives in the library.

use std::{process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use customer_portal::{AppState, app, config::Config, db, serve, telemetry};
use tokio::net::TcpListener;

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
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init();
    if let Err(e) = dotenvy::dotenv()
        && !e.not_found()
    {
        tracing::error!("cannot read .env: {e}");
        return ExitCode::from(2);
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

async fn run_server(config: Config, migrate: bool) -> Result<(), Box<dyn std::error::Error>> {
    let pool = db::pool(&config.database);
    if migrate {
        tokio::select! {
            result = db::migrate_when_ready(&pool) => result?,
            () = shutdown_signal() => return Ok(()),
        }
    }
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
