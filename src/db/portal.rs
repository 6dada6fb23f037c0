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
    let (project_ids, user_ids, livemodes) = columns(lookups);
    let rows = sqlx::query_file!(
        "src/db/portal_targets.sql",
        &project_ids as &[Uuid],
        &user_ids as &[&str],
        &livemodes as &[bool],
    )
    .fetch_all(db)
    .await?;
    let rows = rows.into_iter().map(|row| {
        let target = PortalTarget {
            secret_key: row.secret_key,
            customer_id: row.customer_id,
            allowed_origins: row.allowed_origins,
            configuration: row.configuration,
            default_locale: row.default_locale,
        };
        (row.position, target)
    });
    Ok(in_order(lookups.len(), rows))
}

type Row = (i64, Option<String>, Option<String>, Option<Vec<String>>, Option<String>, Option<String>);

/// The same statement for a connection through PgBouncer in transaction mode: unnamed
/// (`persistent(false)`), so nothing outlives the transaction, which the caller must
/// open, since the statement's parse and its execution are two exchanges that PgBouncer
/// may otherwise send to two server connections.
pub async fn find_portal_targets_unprepared(
    db: impl PgExecutor<'_>,
    lookups: &[PortalLookup],
) -> sqlx::Result<Vec<Option<PortalTarget>>> {
    let (project_ids, user_ids, livemodes) = columns(lookups);
    let rows: Vec<Row> = sqlx::query_as(include_str!("portal_targets.sql"))
        .persistent(false)
        .bind(&project_ids)
        .bind(&user_ids)
        .bind(&livemodes)
        .fetch_all(db)
        .await?;
    let rows = rows.into_iter().map(
        |(position, secret_key, customer_id, allowed_origins, configuration, default_locale)| {
            (
                position,
                PortalTarget { secret_key, customer_id, allowed_origins, configuration, default_locale },
            )
        },
    );
    Ok(in_order(lookups.len(), rows))
}

/// The lookups as the statement's three array parameters.
fn columns(lookups: &[PortalLookup]) -> (Vec<Uuid>, Vec<&str>, Vec<bool>) {
    let project_ids = lookups.iter().map(|k| k.project_id).collect();
    let user_ids = lookups.iter().map(|k| k.user_id.as_str()).collect();
    let livemodes = lookups.iter().map(|k| k.livemode).collect();
    (project_ids, user_ids, livemodes)
}

/// Rows numbered from 1 (WITH ORDINALITY) into the order asked; `None` where none came.
fn in_order(asked: usize, rows: impl Iterator<Item = (i64, PortalTarget)>) -> Vec<Option<PortalTarget>> {
    let mut targets: Vec<Option<PortalTarget>> = (0..asked).map(|_| None).collect();
    for (position, target) in rows {
        let slot = usize::try_from(position - 1).ok().and_then(|i| targets.get_mut(i));
        if let Some(slot) = slot {
            *slot = Some(target);
        }
    }
    targets
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
