//! Projects: their Stripe keys and portal settings, as the admin commands read and
//! write them.

use sqlx::PgExecutor;
use uuid::Uuid;

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
