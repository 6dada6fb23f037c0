//! Per-user and per-project quotas: one user or one script cannot burn a project's
//! Stripe rate limit.

use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::*;

async fn post(app: &TestApp, project: Uuid, user: &str) -> reqwest::Response {
    app.post_portal(Some(&token(project, user)), "", json!({ "return_url": RETURN_URL })).await
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn answers_429_with_retry_after_when_a_user_exceeds_their_quota(db: PgPool) {
    let app =
        TestApp::spawn_with(db, &[("RATE_LIMIT_USER_PER_MINUTE", "2"), ("RATE_LIMIT_USER_BURST", "2")]).await;
    let project = app.seed("user_1").await;
    app.stripe_creates_sessions().await;

    assert_eq!(post(&app, project, "user_1").await.status(), 200);
    assert_eq!(post(&app, project, "user_1").await.status(), 200);
    let limited = post(&app, project, "user_1").await;

    assert_eq!(limited.status(), 429);
    let retry_after: u64 =
        limited.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    assert_eq!(body(limited).await, json!({ "detail": "Too many requests; retry later" }));
    assert_eq!(app.stripe_requests().await.len(), 2, "the limited request never reached Stripe");
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn one_users_quota_does_not_limit_another_user(db: PgPool) {
    let app =
        TestApp::spawn_with(db, &[("RATE_LIMIT_USER_PER_MINUTE", "1"), ("RATE_LIMIT_USER_BURST", "1")]).await;
    let project = app.seed("user_1").await;
    insert_customer(&app.db, project, "user_2", false, "cus_two").await;
    app.stripe_creates_sessions().await;

    assert_eq!(post(&app, project, "user_1").await.status(), 200);
    assert_eq!(post(&app, project, "user_1").await.status(), 429);
    assert_eq!(post(&app, project, "user_2").await.status(), 200);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn answers_429_when_a_project_exceeds_its_quota_across_users(db: PgPool) {
    let app = TestApp::spawn_with(
        db,
        &[
            ("RATE_LIMIT_USER_PER_MINUTE", "0"),
            ("RATE_LIMIT_PROJECT_PER_MINUTE", "3"),
            ("RATE_LIMIT_PROJECT_BURST", "3"),
        ],
    )
    .await;
    let project = app.seed("user_1").await;
    let other_project = app.seed("user_1").await;
    app.stripe_creates_sessions().await;

    for user in ["a", "b", "c"] {
        assert_ne!(post(&app, project, user).await.status(), 429, "{user}");
    }
    assert_eq!(post(&app, project, "d").await.status(), 429);
    assert_eq!(post(&app, other_project, "user_1").await.status(), 200, "other projects are unaffected");
}
