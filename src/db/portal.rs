//! The portal's hot-path lookup: a project's key and settings and a user's customer,
//! for a whole batch of requests in one statement.

use sqlx::PgExecutor;
use uuid::Uuid;

/// Whose portal a request opens: the token's project and user, and the mode.
#[derive(Clone, Debug)]
pub struct PortalLookup {
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

/// The targets of many requests in one statement, in the order of `lookups`; `None` where
/// the project does not exist.
pub async fn find_portal_targets(
    db: impl PgExecutor<'_>,
    lookups: &[PortalLookup],
) -> sqlx::Result<Vec<Option<PortalTarget>>> {
    let project_ids: Vec<Uuid> = lookups.iter().map(|k| k.project_id).collect();
    let user_ids: Vec<&str> = lookups.iter().map(|k| k.user_id.as_str()).collect();
    let livemodes: Vec<bool> = lookups.iter().map(|k| k.livemode).collect();
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
    let mut targets: Vec<Option<PortalTarget>> = lookups.iter().map(|_| None).collect();
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

#[cfg(test)]
mod tests {
    use sqlx::PgPool;
    use uuid::Uuid;

    use super::*;

    const TEST_KEY: &str = "sk_test_51TESTKEYabcdefghijklmnop";
    const LIVE_KEY: &str = "sk_live_51LIVEKEYabcdefghijklmnop";

    async fn insert_project(db: &PgPool) -> Uuid {
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO projects (id, stripe_test_secret_key, stripe_live_secret_key) VALUES ($1, $2, $3)",
        )
        .bind(id)
        .bind(TEST_KEY)
        .bind(LIVE_KEY)
        .execute(db)
        .await
        .expect("insert project");
        id
    }

    async fn insert_customer(db: &PgPool, project: Uuid, user: &str, livemode: bool, customer: &str) {
        sqlx::query(
            "INSERT INTO stripe_customers (project_id, user_id, livemode, stripe_customer_id) VALUES ($1, $2, $3, $4)",
        )
        .bind(project)
        .bind(user)
        .bind(livemode)
        .bind(customer)
        .execute(db)
        .await
        .expect("insert customer");
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn a_batch_answers_in_the_order_asked_with_none_for_unknown_projects(db: PgPool) {
        let project = insert_project(&db).await;
        insert_customer(&db, project, "user_1", false, "cus_test_1").await;
        insert_customer(&db, project, "user_1", true, "cus_live_1").await;
        let key = |project_id, user: &str, livemode| PortalLookup {
            project_id,
            user_id: user.to_owned(),
            livemode,
        };

        let targets = find_portal_targets(
            &db,
            &[
                key(project, "user_1", true),
                key(Uuid::new_v4(), "user_1", false),
                key(project, "user_2", false),
                key(project, "user_1", false),
                key(project, "user_1", true),
            ],
        )
        .await
        .expect("query runs");

        let seen: Vec<Option<(Option<&str>, Option<&str>)>> = targets
            .iter()
            .map(|t| t.as_ref().map(|t| (t.secret_key.as_deref(), t.customer_id.as_deref())))
            .collect();
        assert_eq!(
            seen,
            [
                Some((Some(LIVE_KEY), Some("cus_live_1"))),
                None,
                Some((Some(TEST_KEY), None)),
                Some((Some(TEST_KEY), Some("cus_test_1"))),
                Some((Some(LIVE_KEY), Some("cus_live_1"))),
            ]
        );
    }
}
