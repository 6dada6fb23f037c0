//! The database: the pool, migrations, and the one rule for what a failure means. The
//! queries live in the submodules, each a small function taking any executor, so a
//! pool, a connection or a transaction all fit.

pub(crate) mod customers;
pub(crate) mod events;
pub(crate) mod held;
pub(crate) mod portal;
pub mod projects;
pub(crate) mod webhook_secrets;

use std::time::Duration;

use sqlx::{PgExecutor, PgPool, migrate::Migrator, postgres::PgPoolOptions};

use crate::config::DatabaseConfig;

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// A pool that connects on first use, so the service can start before the database.
/// PostgreSQL itself cancels any statement running longer than the query timeout, so a
/// query stuck behind a lock frees its backend and its connection (migrations lift it).
///
/// Through PgBouncer in transaction mode (`DATABASE_PGBOUNCER`), no startup option is
/// sent (PgBouncer refuses those it does not know) and no statement is cached, since the
/// next transaction may run on another server connection; the lookup sets the timeout
/// per transaction instead.
pub fn pool(config: &DatabaseConfig) -> PgPool {
    let options = if config.pgbouncer {
        config.connect_options.clone().statement_cache_capacity(0).extra_float_digits(None)
    } else {
        let statement_timeout = format!("{}ms", config.query_timeout.as_millis());
        config.connect_options.clone().options([("statement_timeout", statement_timeout)])
    };
    PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(config.acquire_timeout)
        .connect_lazy_with(options)
}

/// A pool with sessions of its own, for migrations (an advisory lock) and start-up
/// checks: `DATABASE_DIRECT_URL` when set, else the service's own pool.
pub fn session_pool(config: &DatabaseConfig, pool: &PgPool) -> PgPool {
    match &config.direct_connect_options {
        Some(direct) => {
            let session = DatabaseConfig {
                connect_options: direct.clone(),
                pgbouncer: false,
                max_connections: 2,
                ..config.clone()
            };
            self::pool(&session)
        }
        None => pool.clone(),
    }
}

/// True when the database answers a trivial query within `within`. A simple query (no
/// statement to prepare), so it works the same through PgBouncer.
pub async fn is_ready(db: impl PgExecutor<'_>, within: Duration) -> bool {
    let ping = sqlx::raw_sql("SELECT 1").execute(db);
    matches!(tokio::time::timeout(within, ping).await, Ok(Ok(_)))
}

/// Applies pending migrations, waiting for the database to come up first. Migrations
/// take a Postgres advisory lock, so replicas starting together apply them once.
pub async fn migrate_when_ready(db: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    let mut delay = Duration::from_millis(250);
    loop {
        match migrate(db).await {
            Ok(()) => return Ok(()),
            Err(sqlx::migrate::MigrateError::Execute(e)) if is_unavailable(&e) => {
                tracing::warn!(error = %e, retry_in = ?delay, "database not reachable yet; waiting");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Migrations may take longer than the pool's statement timeout allows a query: they run
/// with it lifted on their connection, restored before the connection goes back.
async fn migrate(db: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    let mut connection = db.acquire().await?;
    sqlx::query("SET statement_timeout = 0").execute(&mut *connection).await?;
    MIGRATOR.run_direct(&mut *connection).await?;
    sqlx::query("RESET statement_timeout").execute(&mut *connection).await?;
    Ok(())
}

/// A failed database call, sorted once by what it means for a caller: the database is
/// not there right now (worth a 503 and a retry), or anything else (a bug, a 500).
/// Messages rather than the error itself, so one failure can answer many requests.
#[derive(Clone, Debug, thiserror::Error)]
pub enum DbError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database: {0}")]
    Failed(String),
}

impl From<&sqlx::Error> for DbError {
    fn from(err: &sqlx::Error) -> Self {
        if is_unavailable(err) {
            DbError::Unavailable(err.to_string())
        } else {
            DbError::Failed(err.to_string())
        }
    }
}

impl From<sqlx::Error> for DbError {
    fn from(err: sqlx::Error) -> Self {
        DbError::from(&err)
    }
}

/// Errors that mean "the database is not there right now", as opposed to a bad query.
fn is_unavailable(err: &sqlx::Error) -> bool {
    use sqlx::Error::*;
    match err {
        PoolTimedOut | PoolClosed | Io(_) | Tls(_) | Protocol(_) | WorkerCrashed => true,
        // Class 08 connection exception, 53 insufficient resources, 57 operator
        // intervention (shutting down, too many clients).
        Database(db) => {
            db.code().is_some_and(|c| ["08", "53", "57"].iter().any(|class| c.starts_with(class)))
        }
        _ => false,
    }
}
