//! What the caller sees when Stripe fails, and how the client retries.

use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::PgPool;
use wiremock::ResponseTemplate;

use crate::support::*;

async fn call(app: &TestApp) -> reqwest::Response {
    let project = app.seed("user_1").await;
    app.post_portal(Some(&token(project, "user_1")), "", json!({ "return_url": RETURN_URL })).await
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn retries_a_stripe_500_with_the_same_idempotency_key(db: PgPool) {
    let app = TestApp::spawn(db).await;
    app.stripe_sessions_answer_once(stripe_error(500, "api_error", "internal", None)).await;
    app.stripe_creates_sessions().await;

    let response = call(&app).await;

    assert_eq!(response.status(), 200);
    let requests = app.stripe_requests().await;
    assert_eq!(requests.len(), 2);
    assert_eq!(header(&requests[0], "idempotency-key"), header(&requests[1], "idempotency-key"));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn gives_up_after_two_retries_and_answers_502(db: PgPool) {
    let app = TestApp::spawn(db).await;
    app.stripe_sessions_answer_exactly(stripe_error(500, "api_error", "internal", None), 3).await;

    let response = call(&app).await;

    assert_eq!(response.status(), 502);
    assert_eq!(body(response).await, json!({ "detail": "Stripe rejected the request" }));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn does_not_retry_a_stripe_400(db: PgPool) {
    let app = TestApp::spawn(db).await;
    app.stripe_sessions_answer_exactly(
        stripe_error(400, "invalid_request_error", "parameter_invalid_empty", Some("return_url")),
        1,
    )
    .await;

    let response = call(&app).await;

    assert_eq!(response.status(), 502);
    assert_eq!(body(response).await, json!({ "detail": "Stripe rejected the request" }));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn answers_502_when_stripe_rejects_the_projects_key(db: PgPool) {
    let app = TestApp::spawn(db).await;
    app.stripe_sessions_answer_exactly(
        stripe_error(401, "invalid_request_error", "api_key_expired", None),
        1,
    )
    .await;

    let response = call(&app).await;

    assert_eq!(response.status(), 502);
    let text = response.text().await.expect("body");
    assert_eq!(text, r#"{"detail":"Stripe rejected the request"}"#);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn does_not_retry_when_stripe_says_should_retry_false(db: PgPool) {
    let app = TestApp::spawn(db).await;
    app.stripe_sessions_answer_exactly(
        stripe_error(503, "api_error", "unavailable", None).insert_header("Stripe-Should-Retry", "false"),
        1,
    )
    .await;

    assert_eq!(call(&app).await.status(), 502);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn retries_a_400_when_stripe_says_should_retry_true(db: PgPool) {
    let app = TestApp::spawn(db).await;
    app.stripe_sessions_answer_once(
        stripe_error(400, "invalid_request_error", "lock_timeout", None)
            .insert_header("Stripe-Should-Retry", "true"),
    )
    .await;
    app.stripe_creates_sessions().await;

    assert_eq!(call(&app).await.status(), 200);
    assert_eq!(app.stripe_requests().await.len(), 2);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn honours_retry_after_on_a_429(db: PgPool) {
    let app = TestApp::spawn(db).await;
    app.stripe_sessions_answer_once(
        stripe_error(429, "invalid_request_error", "rate_limit", None).insert_header("Retry-After", "0.3"),
    )
    .await;
    app.stripe_creates_sessions().await;

    let started = Instant::now();
    let response = call(&app).await;

    assert_eq!(response.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(300), "retried after {:?}", started.elapsed());
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn answers_503_with_retry_after_when_stripe_keeps_rate_limiting(db: PgPool) {
    let app = TestApp::spawn(db).await;
    app.stripe_sessions_answer_exactly(
        stripe_error(429, "invalid_request_error", "rate_limit", None).insert_header("Retry-After", "0"),
        3,
    )
    .await;

    let response = call(&app).await;

    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(body(response).await, json!({ "detail": "Stripe is rate limiting requests; retry later" }));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn answers_504_when_stripe_does_not_answer_within_the_deadline(db: PgPool) {
    let app = TestApp::spawn_with(db, &[("STRIPE_TIMEOUT_MS", "300")]).await;
    app.stripe_sessions_answer(session_created().set_delay(Duration::from_secs(5))).await;

    let started = Instant::now();
    let response = call(&app).await;

    assert_eq!(response.status(), 504);
    assert_eq!(body(response).await, json!({ "detail": "Stripe did not answer in time" }));
    assert!(started.elapsed() < Duration::from_secs(3), "held for {:?}", started.elapsed());
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn answers_503_when_stripe_is_unreachable(db: PgPool) {
    let port = closed_port().await;
    let base = format!("http://127.0.0.1:{port}");
    let app = TestApp::spawn_with(db, &[("STRIPE_API_BASE", &base)]).await;

    let response = call(&app).await;

    assert_eq!(response.status(), 503);
    assert_eq!(body(response).await, json!({ "detail": "Stripe is unreachable" }));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn answers_502_when_stripe_answers_something_unreadable(db: PgPool) {
    let app = TestApp::spawn(db).await;
    app.stripe_sessions_answer(ResponseTemplate::new(200).set_body_string("<html>proxy error</html>")).await;

    let response = call(&app).await;

    assert_eq!(response.status(), 502);
    assert_eq!(body(response).await, json!({ "detail": "Stripe rejected the request" }));
}
