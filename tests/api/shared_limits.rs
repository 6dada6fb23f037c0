//! Limits shared by replicas through Redis (`REDIS_URL`), the per-project budget of
//! calls to Stripe, and failing open when Redis is down or stalled. Two apps on one
//! Redis stand for two replicas; each test keys its counts under a prefix of its own.

use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::*;

async fn post(app: &TestApp, project: Uuid, user: &str) -> reqwest::Response {
    app.post_portal(Some(&token(project, user)), "", json!({ "return_url": RETURN_URL })).await
}

async fn status(app: &TestApp, project: Uuid, user: &str) -> u16 {
    post(app, project, user).await.status().as_u16()
}

async fn metrics(app: &TestApp) -> String {
    app.http.get(app.url("/metrics")).send().await.expect("sent").text().await.expect("text")
}

/// Two replicas on one Redis, with `vars` on top of REDIS_URL and a fresh prefix.
async fn replicas(db: &PgPool, vars: &[(&str, &str)]) -> (TestApp, TestApp) {
    let (url, prefix) = (redis_url(), unique_prefix());
    let mut all = vec![("REDIS_URL", url.as_str()), ("REDIS_KEY_PREFIX", prefix.as_str())];
    all.extend_from_slice(vars);
    let first = TestApp::spawn_with(db.clone(), &all).await;
    let second = TestApp::spawn_with(db.clone(), &all).await;
    (first, second)
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn a_users_quota_holds_across_replicas_sharing_redis(db: PgPool) {
    let (a, b) = replicas(&db, &[("RATE_LIMIT_USER_PER_MINUTE", "2"), ("RATE_LIMIT_USER_BURST", "2")]).await;
    let project = a.seed("user_1").await;
    a.stripe_creates_sessions().await;
    b.stripe_creates_sessions().await;

    assert_eq!(status(&a, project, "user_1").await, 200);
    assert_eq!(status(&b, project, "user_1").await, 200);
    let limited = post(&a, project, "user_1").await;
    assert_eq!(limited.status(), 429, "the second replica's request counted on the first");
    assert!(limited.headers().contains_key("retry-after"));
    assert_eq!(body(limited).await, json!({ "detail": "Too many requests; retry later" }));
    assert_eq!(status(&b, project, "user_1").await, 429);
    assert_eq!(status(&b, project, "user_2").await, 404, "another user has a quota of their own");
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn without_redis_each_replica_counts_on_its_own(db: PgPool) {
    let vars = [("RATE_LIMIT_USER_PER_MINUTE", "1"), ("RATE_LIMIT_USER_BURST", "1")];
    let a = TestApp::spawn_with(db.clone(), &vars).await;
    let b = TestApp::spawn_with(db, &vars).await;
    let project = a.seed("user_1").await;
    a.stripe_creates_sessions().await;
    b.stripe_creates_sessions().await;

    assert_eq!(status(&a, project, "user_1").await, 200);
    assert_eq!(status(&b, project, "user_1").await, 200);
    assert_eq!(status(&a, project, "user_1").await, 429);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn a_burst_on_one_project_gets_429_before_stripe_throttles_the_account(db: PgPool) {
    let app =
        TestApp::spawn_with(db, &[("STRIPE_BUDGET_TEST_PER_SECOND", "3"), ("STRIPE_BUDGET_TEST_BURST", "3")])
            .await;
    let project = app.seed("user_1").await;
    for user in ["a", "b", "c", "d"] {
        insert_customer(&app.db, project, user, false, &format!("cus_{user}")).await;
    }
    app.stripe_creates_sessions().await;

    for user in ["a", "b", "c"] {
        assert_eq!(status(&app, project, user).await, 200, "{user}");
    }
    let limited = post(&app, project, "d").await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "1");
    assert_eq!(app.stripe_requests().await.len(), 3, "Stripe never saw the fourth");
    let live_token = token(project, "user_1");
    let live =
        app.post_portal(Some(&live_token), "?test_mode=false", json!({ "return_url": RETURN_URL })).await;
    assert_eq!(live.status(), 200, "live mode has a budget of its own");
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn the_stripe_budget_is_shared_by_replicas_through_redis(db: PgPool) {
    let (a, b) =
        replicas(&db, &[("STRIPE_BUDGET_LIVE_PER_SECOND", "1"), ("STRIPE_BUDGET_LIVE_BURST", "2")]).await;
    let project = a.seed("user_1").await;
    insert_customer(&a.db, project, "user_2", true, "cus_live_2").await;
    a.stripe_creates_sessions().await;
    b.stripe_creates_sessions().await;

    // Six at once, three through each replica: the budget passes its burst of two (and
    // one more only if a second went by).
    let mut running = tokio::task::JoinSet::new();
    for (app, user) in
        [(&a, "user_1"), (&a, "user_2"), (&a, "user_1"), (&b, "user_2"), (&b, "user_1"), (&b, "user_2")]
    {
        let request = app
            .http
            .post(app.url(&format!("{PORTAL_ROUTE}?test_mode=false")))
            .bearer_auth(token(project, user))
            .json(&json!({ "return_url": RETURN_URL }));
        running.spawn(async move { request.send().await.map_or(0, |r| r.status().as_u16()) });
    }
    let statuses = running.join_all().await;
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert!((2..=3).contains(&ok) && ok + limited == 6, "{statuses:?}");
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn redis_refusing_connections_fails_open_to_this_replicas_limits(db: PgPool) {
    let url = format!("redis://127.0.0.1:{}", closed_port().await);
    let app = TestApp::spawn_with(
        db,
        &[("REDIS_URL", &url), ("RATE_LIMIT_USER_PER_MINUTE", "2"), ("RATE_LIMIT_USER_BURST", "2")],
    )
    .await;
    let project = app.seed("user_1").await;
    app.stripe_creates_sessions().await;

    assert_eq!(status(&app, project, "user_1").await, 200);
    assert_eq!(status(&app, project, "user_1").await, 200);
    assert_eq!(status(&app, project, "user_1").await, 429, "the replica's own quota still applies");
    let text = metrics(&app).await;
    assert!(text.contains(r#"customer_portal_rate_limit_redis_failures_total{reason="error"}"#), "{text}");
    assert!(
        text.contains(r#"customer_portal_rate_limit_checks_total{store="local",outcome="allowed"} 2"#),
        "{text}"
    );
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn a_stalled_redis_costs_a_request_at_most_the_redis_timeout(db: PgPool) {
    let (port, _stalled) = stalled_port().await;
    let url = format!("redis://127.0.0.1:{port}");
    let app = TestApp::spawn_with(db, &[("REDIS_URL", &url), ("REDIS_TIMEOUT_MS", "100")]).await;
    let project = app.seed("user_1").await;
    app.stripe_creates_sessions().await;

    for _ in 0..3 {
        let started = Instant::now();
        assert_eq!(status(&app, project, "user_1").await, 200);
        assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    }
    assert!(
        metrics(&app).await.contains(r#"customer_portal_rate_limit_redis_failures_total{reason="timeout"}"#)
    );
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn limits_are_shared_again_as_soon_as_redis_answers(db: PgPool) {
    let proxy = CuttableProxy::start(redis_upstream(), false).await;
    let (url, prefix) = (format!("redis://127.0.0.1:{}", proxy.port), unique_prefix());
    let app = TestApp::spawn_with(db, &[("REDIS_URL", &url), ("REDIS_KEY_PREFIX", &prefix)]).await;
    let project = app.seed("user_1").await;
    app.stripe_creates_sessions().await;
    assert_eq!(status(&app, project, "user_1").await, 200);
    assert!(metrics(&app).await.contains(r#"store="local""#), "Redis is cut: counted locally");

    proxy.restore();
    let back = eventually(Duration::from_secs(5), || async {
        status(&app, project, "user_1").await;
        metrics(&app)
            .await
            .contains(r#"customer_portal_rate_limit_checks_total{store="redis",outcome="allowed"}"#)
    })
    .await;
    assert!(back, "checks went back to Redis within 5 s");
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn a_request_refused_by_one_limit_charges_none_of_the_others(db: PgPool) {
    let (app, _) = replicas(
        &db,
        &[
            ("RATE_LIMIT_USER_PER_MINUTE", "1"),
            ("RATE_LIMIT_USER_BURST", "1"),
            ("RATE_LIMIT_PROJECT_PER_MINUTE", "3"),
            ("RATE_LIMIT_PROJECT_BURST", "3"),
        ],
    )
    .await;
    let project = app.seed("a").await;
    app.stripe_creates_sessions().await;

    assert_eq!(status(&app, project, "a").await, 200);
    for _ in 0..5 {
        assert_eq!(status(&app, project, "a").await, 429, "over the user's quota");
    }
    assert_ne!(status(&app, project, "b").await, 429, "the refused ones did not spend the project's");
    assert_ne!(status(&app, project, "c").await, 429);
    assert_eq!(status(&app, project, "d").await, 429, "the project's quota is 3");
}
