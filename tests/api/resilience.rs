//! The database going away and coming back, start-up order, and load.

use std::time::Duration;

use customer_portal::db::{MIGRATOR, migrate_when_ready};
use serde_json::json;
use sqlx::PgPool;
use wiremock::{Mock, matchers};

use crate::support::*;

async fn status_of(app: &TestApp, path: &str) -> u16 {
    app.http.get(app.url(path)).send().await.map_or(0, |r| r.status().as_u16())
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn readiness_follows_the_database_down_and_back_up_without_a_restart(db: PgPool) {
    let proxy = CuttableProxy::start(upstream_of(&db), true).await;
    let app = TestApp::spawn(proxy.pool_for(&db)).await;
    assert_eq!(status_of(&app, "/readyz").await, 200);

    proxy.cut();
    assert!(eventually(Duration::from_secs(5), || async { status_of(&app, "/readyz").await == 503 }).await);
    assert_eq!(status_of(&app, "/healthz").await, 200);

    proxy.restore();
    assert!(eventually(Duration::from_secs(5), || async { status_of(&app, "/readyz").await == 200 }).await);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn portal_answers_503_while_the_database_is_cut_and_200_after(db: PgPool) {
    let proxy = CuttableProxy::start(upstream_of(&db), true).await;
    let app = TestApp::spawn(proxy.pool_for(&db)).await;
    let project = app.seed("user_1").await;
    app.stripe_creates_sessions().await;
    let token = token(project, "user_1");

    proxy.cut();
    let response = app.post_portal(Some(&token), "", json!({ "return_url": RETURN_URL })).await;
    assert_eq!(response.status(), 503);
    assert_eq!(body(response).await, json!({ "detail": "Database unavailable" }));

    proxy.restore();
    let response = app.post_portal(Some(&token), "", json!({ "return_url": RETURN_URL })).await;
    assert_eq!(response.status(), 200);
}

#[sqlx::test(migrations = false)]
async fn migrations_wait_for_a_database_that_comes_up_late(db: PgPool) {
    let proxy = CuttableProxy::start(upstream_of(&db), false).await;
    let pool = proxy.pool_for(&db);
    let migrating = tokio::spawn(async move { migrate_when_ready(&pool).await });

    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!migrating.is_finished(), "still waiting for the database");
    proxy.restore();

    let result =
        tokio::time::timeout(Duration::from_secs(15), migrating).await.expect("finishes").expect("joined");
    assert!(result.is_ok(), "{result:?}");
    sqlx::query("SELECT 1 FROM projects LIMIT 1").execute(&db).await.expect("tables exist");
}

#[sqlx::test(migrations = false)]
async fn concurrent_start_ups_apply_each_migration_once(db: PgPool) {
    let (a, b, c) = tokio::join!(migrate_when_ready(&db), migrate_when_ready(&db), migrate_when_ready(&db));
    assert!(a.is_ok() && b.is_ok() && c.is_ok(), "{a:?} {b:?} {c:?}");
    let applied: i64 =
        sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations").fetch_one(&db).await.expect("count");
    assert_eq!(applied, MIGRATOR.iter().count() as i64);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn sheds_load_with_503_when_too_many_requests_are_in_flight(db: PgPool) {
    let app = TestApp::spawn_with(db, &[("MAX_IN_FLIGHT", "1")]).await;
    let project = app.seed("user_1").await;
    Mock::given(matchers::path(SESSIONS_PATH))
        .respond_with(session_created().set_delay(Duration::from_millis(800)))
        .mount(&app.stripe)
        .await;
    let token = token(project, "user_1");
    let first = {
        let (http, url, token) = (app.http.clone(), app.url(crate::support::PORTAL_ROUTE), token.clone());
        tokio::spawn(async move {
            http.post(url).bearer_auth(token).json(&json!({ "return_url": RETURN_URL })).send().await
        })
    };
    assert!(eventually(Duration::from_secs(5), || async { !app.stripe_requests().await.is_empty() }).await);

    let shed = app.post_portal(Some(&token), "", json!({ "return_url": RETURN_URL })).await;
    assert_eq!(shed.status(), 503);
    assert_eq!(shed.headers()["retry-after"], "1");
    assert_eq!(body(shed).await, json!({ "detail": "Service overloaded; retry later" }));
    assert_eq!(status_of(&app, "/healthz").await, 200, "health answers under load");

    assert_eq!(first.await.expect("joined").expect("answered").status(), 200);
}
