//! A database that is down is a clean 503, never a hang, a 404 or a 200.

use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

use crate::support::*;

/// The service with a database that refuses connections.
async fn app_without_database() -> TestApp {
    let port = closed_port().await;
    let db = PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(500))
        .connect_lazy(&format!("postgres://postgres@127.0.0.1:{port}/postgres"))
        .expect("lazy pool");
    TestApp::spawn(db).await
}

#[tokio::test]
async fn answers_503_when_the_database_is_down() {
    let app = app_without_database().await;
    let started = Instant::now();

    let response = app
        .post_portal(Some(&token(Uuid::new_v4(), "user_1")), "", json!({ "return_url": RETURN_URL }))
        .await;

    assert_eq!(response.status(), 503);
    assert_eq!(body(response).await, json!({ "detail": "Database unavailable" }));
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    assert!(app.stripe_requests().await.is_empty());
}

#[tokio::test]
async fn readyz_answers_503_when_the_database_is_down() {
    let app = app_without_database().await;
    let response = app.http.get(app.url("/readyz")).send().await.expect("sent");
    assert_eq!(response.status(), 503);
    assert_eq!(body(response).await, json!({ "detail": "Database unavailable" }));
}

#[tokio::test]
async fn healthz_still_answers_when_the_database_is_down() {
    let app = app_without_database().await;
    let response = app.http.get(app.url("/healthz")).send().await.expect("sent");
    assert_eq!(response.status(), 200);
}
