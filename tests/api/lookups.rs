//! Batched lookups: many requests answered by one query must each get their own
//! project's key and their own customer, and a stalled query must end in a 503.

use std::{collections::BTreeSet, time::Duration};

use customer_portal::config::DatabaseConfig;
use serde_json::json;
use sqlx::PgPool;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::support::*;

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn concurrent_requests_each_get_their_own_key_and_customer(db: PgPool) {
    // One lookup connection, so the requests queue up and share queries.
    let app = TestApp::spawn_with(db, &[("DATABASE_LOOKUP_CONNECTIONS", "1")]).await;
    app.stripe_creates_sessions().await;
    let mut expected = BTreeSet::new();
    let mut calls = Vec::new();
    for p in 0..3 {
        let (test_key, live_key) = (format!("sk_test_project{p}"), format!("sk_live_project{p}"));
        let project = insert_project(&app.db, Some(&test_key), Some(&live_key)).await;
        for u in 0..10 {
            let user = format!("user_{u}");
            let (test_customer, live_customer) = (format!("cus_t{p}u{u}"), format!("cus_l{p}u{u}"));
            insert_customer(&app.db, project, &user, false, &test_customer).await;
            insert_customer(&app.db, project, &user, true, &live_customer).await;
            expected.insert((format!("Bearer {test_key}"), test_customer));
            expected.insert((format!("Bearer {live_key}"), live_customer));
            calls.push((token(project, &user), "?test_mode=true", 200));
            calls.push((token(project, &user), "?test_mode=false", 200));
        }
        calls.push((token(project, "user_without_customer"), "", 404));
    }
    calls.push((token(Uuid::new_v4(), "user_0"), "", 404));

    let mut requests = JoinSet::new();
    for (token, query, status) in calls {
        let request = app.http.post(app.url(&format!("{PORTAL_ROUTE}{query}"))).bearer_auth(token);
        requests.spawn(async move {
            let response = request.json(&json!({ "return_url": RETURN_URL })).send().await.expect("answered");
            (response.status().as_u16(), status)
        });
    }
    while let Some(answer) = requests.join_next().await {
        let (got, want) = answer.expect("joined");
        assert_eq!(got, want);
    }

    let sent: BTreeSet<(String, String)> = app
        .stripe_requests()
        .await
        .iter()
        .map(|r| (header(r, "authorization").unwrap_or_default().to_owned(), form(r)["customer"].clone()))
        .collect();
    assert_eq!(sent, expected);
}

/// A pool of two connections, one for the loader and one for readiness, as `serve` makes it.
fn two_connection_pool(db: &PgPool, query_timeout_ms: u64) -> PgPool {
    customer_portal::db::pool(&DatabaseConfig {
        connect_options: (*db.connect_options()).clone(),
        max_connections: 2,
        acquire_timeout: Duration::from_millis(500),
        query_timeout: Duration::from_millis(query_timeout_ms),
        lookup_connections: 1,
        webhook_connections: 1,
        pgbouncer: false,
        direct_connect_options: None,
    })
}

/// Holds `projects` the way a migration would, so lookups wait on the lock.
async fn lock_projects(db: &PgPool) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut migration = db.begin().await.expect("begin");
    sqlx::query("LOCK TABLE projects IN ACCESS EXCLUSIVE MODE").execute(&mut *migration).await.expect("lock");
    migration
}

async fn backends_waiting_on_a_lock(db: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()")
        .fetch_one(db)
        .await
        .expect("pg_stat_activity")
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn portal_answers_503_when_a_lock_outlasts_the_query_timeout_and_leaves_no_backend_waiting(db: PgPool) {
    let app =
        TestApp::spawn_with(two_connection_pool(&db, 300), &[("DATABASE_LOOKUP_CONNECTIONS", "1")]).await;
    let project = app.seed("user_1").await;
    app.stripe_creates_sessions().await;
    let token = token(project, "user_1");
    let post = || app.post_portal(Some(&token), "", json!({ "return_url": RETURN_URL }));

    let migration = lock_projects(&db).await;
    for _ in 0..3 {
        let stalled = tokio::time::timeout(Duration::from_secs(10), post()).await.expect("no hang");
        assert_eq!(stalled.status(), 503);
        assert_eq!(body(stalled).await, json!({ "detail": "Database unavailable" }));
    }
    // PostgreSQL cancelled the statements: nothing piles up behind the lock.
    assert_eq!(backends_waiting_on_a_lock(&db).await, 0);
    migration.rollback().await.expect("unlock");

    assert_eq!(post().await.status(), 200);
    assert_eq!(app.stripe_requests().await.len(), 1, "Stripe saw nothing while the table was locked");
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn portal_answers_503_when_the_database_stops_answering_mid_query(db: PgPool) {
    // The test's own pool sets no statement timeout, so PostgreSQL never answers the
    // locked query: the service's own deadline must end it.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_millis(500))
        .connect_lazy_with((*db.connect_options()).clone());
    let app = TestApp::spawn_with(
        pool,
        &[("DATABASE_QUERY_TIMEOUT_MS", "300"), ("DATABASE_LOOKUP_CONNECTIONS", "1")],
    )
    .await;
    let project = app.seed("user_1").await;
    app.stripe_creates_sessions().await;
    let token = token(project, "user_1");
    let post = || app.post_portal(Some(&token), "", json!({ "return_url": RETURN_URL }));
    assert_eq!(post().await.status(), 200, "warm: the pool has a connection");

    let migration = lock_projects(&db).await;
    for _ in 0..3 {
        let stalled = tokio::time::timeout(Duration::from_secs(10), post()).await.expect("no hang");
        assert_eq!(stalled.status(), 503);
        assert_eq!(body(stalled).await, json!({ "detail": "Database unavailable" }));
    }
    // The silent connections were dropped, not handed back to the pool to wait there:
    // with the table still locked, the two-connection pool has one for readiness.
    let ready = || async { app.http.get(app.url("/readyz")).send().await.is_ok_and(|r| r.status() == 200) };
    assert!(eventually(Duration::from_secs(5), ready).await);
    migration.rollback().await.expect("unlock");

    assert!(eventually(Duration::from_secs(10), || async { post().await.status() == 200 }).await);
    assert_eq!(app.stripe_requests().await.len(), 2, "Stripe saw nothing while the database was silent");
}
