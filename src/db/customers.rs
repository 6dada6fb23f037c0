//! Links between a project's users and their Stripe customers, one per mode.

use sqlx::PgExecutor;
use uuid::Uuid;

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
