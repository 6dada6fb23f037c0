//! Each project's webhook signing secrets, per mode, as stored (encrypted or not).

use sqlx::PgExecutor;
use uuid::Uuid;

/// The secrets a delivery may be signed with: the current one and, within 24 hours of
/// being replaced, the previous one.
#[derive(Debug)]
pub struct StoredWebhookSecrets {
    pub current: Option<String>,
    pub previous: Option<String>,
}

/// The project's secrets for the mode at `now` (Unix seconds); `None` for no such project.
pub async fn find(
    db: impl PgExecutor<'_>,
    project_id: Uuid,
    livemode: bool,
    now: f64,
) -> sqlx::Result<Option<StoredWebhookSecrets>> {
    sqlx::query_as!(
        StoredWebhookSecrets,
        r#"
        SELECT CASE WHEN $2 THEN stripe_live_webhook_secret ELSE stripe_test_webhook_secret END AS current,
               CASE WHEN (CASE WHEN $2 THEN stripe_live_webhook_secret_replaced_at
                               ELSE stripe_test_webhook_secret_replaced_at END)
                         > to_timestamp($3) - interval '24 hours'
                    THEN (CASE WHEN $2 THEN stripe_live_webhook_secret_previous
                               ELSE stripe_test_webhook_secret_previous END)
               END AS previous
        FROM projects WHERE id = $1
        "#,
        project_id,
        livemode,
        now
    )
    .fetch_optional(db)
    .await
}

/// Sets one mode's secret, keeping the one it replaces valid for 24 hours; with `None`,
/// clears both. False when there is no such project.
pub async fn set(
    db: impl PgExecutor<'_>,
    project_id: Uuid,
    livemode: bool,
    secret: Option<&str>,
) -> sqlx::Result<bool> {
    let result = sqlx::query!(
        r#"
        UPDATE projects SET
            stripe_test_webhook_secret_previous = CASE WHEN $2 THEN stripe_test_webhook_secret_previous
                WHEN $3::text IS NULL THEN NULL ELSE stripe_test_webhook_secret END,
            stripe_test_webhook_secret_replaced_at = CASE WHEN $2 THEN stripe_test_webhook_secret_replaced_at
                WHEN $3::text IS NULL OR stripe_test_webhook_secret IS NULL THEN NULL ELSE now() END,
            stripe_test_webhook_secret = CASE WHEN $2 THEN stripe_test_webhook_secret ELSE $3 END,
            stripe_live_webhook_secret_previous = CASE WHEN NOT $2 THEN stripe_live_webhook_secret_previous
                WHEN $3::text IS NULL THEN NULL ELSE stripe_live_webhook_secret END,
            stripe_live_webhook_secret_replaced_at = CASE WHEN NOT $2 THEN stripe_live_webhook_secret_replaced_at
                WHEN $3::text IS NULL OR stripe_live_webhook_secret IS NULL THEN NULL ELSE now() END,
            stripe_live_webhook_secret = CASE WHEN $2 THEN $3 ELSE stripe_live_webhook_secret END
        WHERE id = $1
        "#,
        project_id,
        livemode,
        secret
    )
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// A project's four stored webhook secrets, as they are in the table.
#[derive(Debug)]
pub struct StoredRow {
    pub id: Uuid,
    pub test: Option<String>,
    pub test_previous: Option<String>,
    pub live: Option<String>,
    pub live_previous: Option<String>,
}

/// Every project's stored webhook secrets, locked until the transaction ends.
pub async fn all_for_update(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<StoredRow>> {
    sqlx::query_as!(
        StoredRow,
        r#"SELECT id,
                  stripe_test_webhook_secret AS test, stripe_test_webhook_secret_previous AS test_previous,
                  stripe_live_webhook_secret AS live, stripe_live_webhook_secret_previous AS live_previous
           FROM projects ORDER BY id FOR UPDATE"#
    )
    .fetch_all(db)
    .await
}

/// Rewrites a project's four stored secrets, leaving when each was replaced as it was.
pub async fn set_stored(db: impl PgExecutor<'_>, row: &StoredRow) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE projects SET stripe_test_webhook_secret = $2, stripe_test_webhook_secret_previous = $3,
                             stripe_live_webhook_secret = $4, stripe_live_webhook_secret_previous = $5
         WHERE id = $1",
        row.id,
        row.test,
        row.test_previous,
        row.live,
        row.live_previous
    )
    .execute(db)
    .await
    .map(|_| ())
}
