//! Stripe events and the links they change: recorded, applied and pruned.
//!
//! The ordering rules live in the `stripe_apply_change` function of the migration
//! `20261130000001_stripe_webhooks.sql`, so one change is one statement: atomic, and
//! one round trip.

use sqlx::PgExecutor;
use uuid::Uuid;

/// One change to apply, from an event or a checkout sync.
#[derive(Debug)]
pub struct Change<'a> {
    pub project_id: Uuid,
    pub livemode: bool,
    /// The event's ID, recorded so a repeat changes nothing; `None` for a checkout sync.
    pub event_id: Option<&'a str>,
    pub event_type: Option<&'a str>,
    /// When Stripe made the change (the event's `created`), in Unix seconds.
    pub created: i64,
    pub action: Action<'a>,
}

#[derive(Debug, Clone, Copy)]
pub enum Action<'a> {
    Link { user_id: &'a str, customer_id: &'a str },
    Delete { customer_id: &'a str },
    Ignore,
}

/// Applies `change`; answers `applied`, `duplicate`, `stale` or `ignored`.
pub async fn apply_change(db: impl PgExecutor<'_>, change: &Change<'_>) -> sqlx::Result<String> {
    let (action, customer_id, user_id) = match change.action {
        Action::Link { user_id, customer_id } => ("link", Some(customer_id), Some(user_id)),
        Action::Delete { customer_id } => ("delete", Some(customer_id), None),
        Action::Ignore => ("ignore", None, None),
    };
    sqlx::query_scalar!(
        r#"SELECT stripe_apply_change($1, $2, $3, $4, to_timestamp($5), $6, $7, $8) AS "outcome!""#,
        change.project_id,
        change.livemode,
        change.event_id,
        change.event_type,
        change.created as f64,
        action,
        customer_id,
        user_id,
    )
    .fetch_one(db)
    .await
}

/// Deletes up to `limit` event records and tombstones older than `days`; how many went.
/// Small batches, so pruning never holds locks long enough to slow deliveries.
pub async fn prune(db: impl PgExecutor<'_>, days: i32, limit: i64) -> sqlx::Result<u64> {
    let pruned = sqlx::query_scalar!(
        r#"
        WITH old_events AS (
            DELETE FROM stripe_webhook_events
            WHERE ctid = ANY (ARRAY(
                SELECT ctid FROM stripe_webhook_events
                WHERE received_at < now() - make_interval(days => $1) LIMIT $2))
            RETURNING 1
        ), old_customers AS (
            DELETE FROM stripe_deleted_customers
            WHERE ctid = ANY (ARRAY(
                SELECT ctid FROM stripe_deleted_customers
                WHERE deleted_at < now() - make_interval(days => $1) LIMIT $2))
            RETURNING 1
        ), old_users AS (
            DELETE FROM stripe_unlinked_users
            WHERE ctid = ANY (ARRAY(
                SELECT ctid FROM stripe_unlinked_users
                WHERE unlinked_at < now() - make_interval(days => $1) LIMIT $2))
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM old_events) + (SELECT count(*) FROM old_customers)
             + (SELECT count(*) FROM old_users) AS "pruned!"
        "#,
        days,
        limit
    )
    .fetch_one(db)
    .await?;
    Ok(u64::try_from(pruned).unwrap_or_default())
}
