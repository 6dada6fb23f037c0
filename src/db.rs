//! The database: migrations and the queries, each a small function taking any
//! executor, so a pool, a connection or a transaction all fit.

use std::time::Duration;

use sqlx::{PgExecutor, PgPool, migrate::Migrator, postgres::PgPoolOptions};
use uuid::Uuid;

use crate::config::DatabaseConfig;

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// A pool that connects on first use, so the service can start before the database.
/// PostgreSQL itself cancels any statement running longer than the query timeout, so a
/// query stuck behind a lock frees its backend and its connection (migrations lift it).
pub fn pool(config: &DatabaseConfig) -> PgPool {
    let statement_timeout = format!("{}ms", config.query_timeout.as_millis());
    PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(config.acquire_timeout)
        .connect_lazy_with(config.connect_options.clone().options([("statement_timeout", statement_timeout)]))
}

/// Whose portal a request opens: the token's project and user, and the mode.
#[derive(Clone, Debug)]
pub struct PortalKey {
    pub project_id: Uuid,
    pub user_id: String,
    pub livemode: bool,
}

/// What one portal request needs: the project's key and settings for the mode and the
/// user's customer in that mode.
#[derive(Debug)]
pub struct PortalTarget {
    pub secret_key: Option<String>,
    pub customer_id: Option<String>,
    pub allowed_origins: Option<Vec<String>>,
    /// The project's portal configuration (`bpc_...`) for the mode, if it chose one.
    pub configuration: Option<String>,
    pub default_locale: Option<String>,
}

/// The targets of many requests in one statement, in the order of `keys`; `None` where
/// the project does not exist.
pub async fn find_portal_targets(
    db: impl PgExecutor<'_>,
    keys: &[PortalKey],
) -> sqlx::Result<Vec<Option<PortalTarget>>> {
    let project_ids: Vec<Uuid> = keys.iter().map(|k| k.project_id).collect();
    let user_ids: Vec<&str> = keys.iter().map(|k| k.user_id.as_str()).collect();
    let livemodes: Vec<bool> = keys.iter().map(|k| k.livemode).collect();
    let rows = sqlx::query!(
        r#"
        SELECT k.position AS "position!",
               CASE WHEN k.livemode THEN p.stripe_live_secret_key ELSE p.stripe_test_secret_key END AS secret_key,
               c.stripe_customer_id AS "customer_id?",
               p.return_url_allowed_origins AS allowed_origins,
               CASE WHEN k.livemode THEN p.stripe_live_portal_configuration
                    ELSE p.stripe_test_portal_configuration END AS configuration,
               p.portal_default_locale AS default_locale
        FROM unnest($1::uuid[], $2::text[], $3::bool[]) WITH ORDINALITY AS k(project_id, user_id, livemode, position)
        -- The `ANY` lets the planner fetch only the batch's projects by index; with the
        -- join alone it hashes the whole table for every batch (bench/RESULTS.md).
        JOIN projects p ON p.id = k.project_id AND p.id = ANY($1::uuid[])
        LEFT JOIN stripe_customers c
               ON c.project_id = k.project_id AND c.user_id = k.user_id AND c.livemode = k.livemode
        "#,
        &project_ids as &[Uuid],
        &user_ids as &[&str],
        &livemodes as &[bool],
    )
    .fetch_all(db)
    .await?;
    let mut targets: Vec<Option<PortalTarget>> = keys.iter().map(|_| None).collect();
    for row in rows {
        // WITH ORDINALITY counts from 1.
        let slot = usize::try_from(row.position - 1).ok().and_then(|i| targets.get_mut(i));
        if let Some(slot) = slot {
            *slot = Some(PortalTarget {
                secret_key: row.secret_key,
                customer_id: row.customer_id,
                allowed_origins: row.allowed_origins,
                configuration: row.configuration,
                default_locale: row.default_locale,
            });
        }
    }
    Ok(targets)
}

/// True when the database answers a trivial query within `within`.
pub async fn is_ready(db: impl PgExecutor<'_>, within: Duration) -> bool {
    let ping = sqlx::query_scalar!("SELECT 1 AS \"one!\"").fetch_one(db);
    matches!(tokio::time::timeout(within, ping).await, Ok(Ok(1)))
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

/// Errors that mean "the database is not there right now", as opposed to a bad query.
pub fn is_unavailable(err: &sqlx::Error) -> bool {
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

/// A project's two stored Stripe keys, as they are in the table.
#[derive(Debug)]
pub struct StoredKeys {
    pub id: Uuid,
    pub test: Option<String>,
    pub live: Option<String>,
}

/// Every project's stored keys, locked until the transaction ends.
pub async fn project_keys_for_update(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<StoredKeys>> {
    sqlx::query_as!(
        StoredKeys,
        "SELECT id, stripe_test_secret_key AS test, stripe_live_secret_key AS live FROM projects ORDER BY id FOR UPDATE"
    )
    .fetch_all(db)
    .await
}

pub async fn set_project_keys(
    db: impl PgExecutor<'_>,
    id: Uuid,
    test: Option<&str>,
    live: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE projects SET stripe_test_secret_key = $2, stripe_live_secret_key = $3 WHERE id = $1",
        id,
        test,
        live
    )
    .execute(db)
    .await
    .map(|_| ())
}

/// How many projects still hold a Stripe key in plaintext.
pub async fn count_projects_with_plaintext_keys(db: impl PgExecutor<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM projects
           WHERE stripe_test_secret_key NOT LIKE 'enc:v1:%' OR stripe_live_secret_key NOT LIKE 'enc:v1:%'"#
    )
    .fetch_one(db)
    .await
}

// Admin commands: what `customer-portal project ...` and `customer ...` read and write.

/// Everything the admin commands show about a project, keys as stored.
#[derive(Debug)]
pub struct ProjectRow {
    pub id: Uuid,
    pub test_key: Option<String>,
    pub live_key: Option<String>,
    pub allowed_origins: Option<Vec<String>>,
    pub test_configuration: Option<String>,
    pub live_configuration: Option<String>,
    pub default_locale: Option<String>,
    pub test_customers: i64,
    pub live_customers: i64,
}

pub async fn find_project(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<ProjectRow>> {
    sqlx::query_as!(
        ProjectRow,
        r#"
        SELECT p.id,
               p.stripe_test_secret_key AS test_key,
               p.stripe_live_secret_key AS live_key,
               p.return_url_allowed_origins AS allowed_origins,
               p.stripe_test_portal_configuration AS test_configuration,
               p.stripe_live_portal_configuration AS live_configuration,
               p.portal_default_locale AS default_locale,
               (SELECT count(*) FROM stripe_customers c WHERE c.project_id = p.id AND NOT c.livemode)
                   AS "test_customers!",
               (SELECT count(*) FROM stripe_customers c WHERE c.project_id = p.id AND c.livemode)
                   AS "live_customers!"
        FROM projects p
        WHERE p.id = $1
        "#,
        id
    )
    .fetch_optional(db)
    .await
}

/// Inserts a project; false when one with this ID already exists.
pub async fn insert_project(
    db: impl PgExecutor<'_>,
    id: Uuid,
    test_key: Option<&str>,
    live_key: Option<&str>,
) -> sqlx::Result<bool> {
    let result = sqlx::query!(
        "INSERT INTO projects (id, stripe_test_secret_key, stripe_live_secret_key) VALUES ($1, $2, $3)
         ON CONFLICT (id) DO NOTHING",
        id,
        test_key,
        live_key
    )
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Sets (or, with `None`, clears) one mode's stored key; false when there is no such project.
pub async fn set_project_key(
    db: impl PgExecutor<'_>,
    id: Uuid,
    livemode: bool,
    key: Option<&str>,
) -> sqlx::Result<bool> {
    let result = sqlx::query!(
        "UPDATE projects
         SET stripe_test_secret_key = CASE WHEN $2 THEN stripe_test_secret_key ELSE $3 END,
             stripe_live_secret_key = CASE WHEN $2 THEN $3 ELSE stripe_live_secret_key END
         WHERE id = $1",
        id,
        livemode,
        key
    )
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

pub async fn set_allowed_origins(
    db: impl PgExecutor<'_>,
    id: Uuid,
    origins: Option<&[String]>,
) -> sqlx::Result<()> {
    sqlx::query!("UPDATE projects SET return_url_allowed_origins = $2 WHERE id = $1", id, origins)
        .execute(db)
        .await
        .map(|_| ())
}

pub async fn set_portal_configuration(
    db: impl PgExecutor<'_>,
    id: Uuid,
    livemode: bool,
    configuration: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE projects
         SET stripe_test_portal_configuration = CASE WHEN $2 THEN stripe_test_portal_configuration ELSE $3 END,
             stripe_live_portal_configuration = CASE WHEN $2 THEN $3 ELSE stripe_live_portal_configuration END
         WHERE id = $1",
        id,
        livemode,
        configuration
    )
    .execute(db)
    .await
    .map(|_| ())
}

pub async fn set_default_locale(db: impl PgExecutor<'_>, id: Uuid, locale: Option<&str>) -> sqlx::Result<()> {
    sqlx::query!("UPDATE projects SET portal_default_locale = $2 WHERE id = $1", id, locale)
        .execute(db)
        .await
        .map(|_| ())
}

/// Links (or re-links) a user to a Stripe customer in one mode.
pub async fn link_customer(
    db: impl PgExecutor<'_>,
    project_id: Uuid,
    user_id: &str,
    livemode: bool,
    customer_id: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO stripe_customers (project_id, user_id, livemode, stripe_customer_id)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (project_id, user_id, livemode) DO UPDATE SET stripe_customer_id = EXCLUDED.stripe_customer_id",
        project_id,
        user_id,
        livemode,
        customer_id
    )
    .execute(db)
    .await
    .map(|_| ())
}

/// Removes a user's customer in one mode; the customer ID removed, if there was one.
pub async fn unlink_customer(
    db: impl PgExecutor<'_>,
    project_id: Uuid,
    user_id: &str,
    livemode: bool,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!(
        "DELETE FROM stripe_customers WHERE project_id = $1 AND user_id = $2 AND livemode = $3
         RETURNING stripe_customer_id",
        project_id,
        user_id,
        livemode
    )
    .fetch_optional(db)
    .await
}

/// A user's customers as (livemode, customer ID), test mode first.
pub async fn customers_of(
    db: impl PgExecutor<'_>,
    project_id: Uuid,
    user_id: &str,
) -> sqlx::Result<Vec<(bool, String)>> {
    let rows = sqlx::query!(
        "SELECT livemode, stripe_customer_id FROM stripe_customers
         WHERE project_id = $1 AND user_id = $2 ORDER BY livemode",
        project_id,
        user_id
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|row| (row.livemode, row.stripe_customer_id)).collect())
}
