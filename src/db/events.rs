//! Stripe events and the links they change: recorded, applied and pruned.
//!
//! The ordering rules live in the `stripe_apply_change` function (migration
//! `20261130000001_stripe_webhooks.sql`; its current body is in
//! `20261201000001_webhook_duplicate_check_replanned.sql`), so one change is one
//! statement: atomic, and one round trip.

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

#[cfg(test)]
mod tests {
    use sqlx::PgPool;

    use super::*;

    async fn project(db: &PgPool) -> Uuid {
        let id = Uuid::new_v4();
        sqlx::query("INSERT INTO projects (id) VALUES ($1)").bind(id).execute(db).await.expect("project");
        id
    }

    async fn event(db: &PgPool, project: Uuid, id: &str, age_days: i32) {
        sqlx::query(
            "INSERT INTO stripe_webhook_events (project_id, livemode, event_id, event_type, created, outcome, received_at)
             VALUES ($1, false, $2, 'customer.updated', now(), 'applied', now() - make_interval(days => $3))",
        )
        .bind(project)
        .bind(id)
        .bind(age_days)
        .execute(db)
        .await
        .expect("event");
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn pruning_removes_only_records_past_the_retention(db: PgPool) {
        let project = project(&db).await;
        event(&db, project, "evt_old", 31).await;
        event(&db, project, "evt_new", 2).await;
        assert_eq!(prune(&db, 30, 1_000).await.expect("pruned"), 1);
        let left: Vec<String> = sqlx::query_scalar("SELECT event_id FROM stripe_webhook_events")
            .fetch_all(&db)
            .await
            .expect("rows");
        assert_eq!(left, ["evt_new"]);
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn pruning_works_in_batches_of_the_limit(db: PgPool) {
        let project = project(&db).await;
        for n in 0..5 {
            event(&db, project, &format!("evt_{n}"), 40).await;
        }
        assert_eq!(prune(&db, 30, 2).await.expect("pruned"), 2);
        assert_eq!(prune(&db, 30, 10).await.expect("pruned"), 3);
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn a_row_naming_only_the_contracts_columns_still_inserts_and_counts_as_changed_now(db: PgPool) {
        let project = project(&db).await;
        sqlx::query(
            "INSERT INTO stripe_customers (project_id, user_id, livemode, stripe_customer_id)
             VALUES ($1, 'u1', false, 'cus_1')",
        )
        .bind(project)
        .execute(&db)
        .await
        .expect("a contract-only row inserts");
        let older = Change {
            project_id: project,
            livemode: false,
            event_id: Some("evt_1"),
            event_type: Some("customer.updated"),
            created: 1_000,
            action: Action::Link { user_id: "u1", customer_id: "cus_2" },
        };
        assert_eq!(apply_change(&db, &older).await.expect("applied"), "stale");
        sqlx::query("UPDATE stripe_customers SET stripe_customer_id = 'cus_3', changed_at = to_timestamp(0)")
            .execute(&db)
            .await
            .expect("updated");
        sqlx::query("UPDATE stripe_customers SET stripe_customer_id = 'cus_4'")
            .execute(&db)
            .await
            .expect("updated");
        let changed: bool =
            sqlx::query_scalar("SELECT changed_at > now() - interval '1 minute' FROM stripe_customers")
                .fetch_one(&db)
                .await
                .expect("row");
        assert!(changed, "an update that does not set changed_at counts as a change now");
    }
}
