//! Open-redirect protection: where a `return_url` may send the user after the portal.

use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::*;

async fn project_with_origins(app: &TestApp, origins: &[&str]) -> Uuid {
    let project = app.seed("user_1").await;
    sqlx::query("UPDATE projects SET return_url_allowed_origins = $2 WHERE id = $1")
        .bind(project)
        .bind(origins)
        .execute(&app.db)
        .await
        .expect("update");
    project
}

async fn post(app: &TestApp, project: Uuid, query: &str, return_url: &str) -> reqwest::Response {
    app.post_portal(Some(&token(project, "user_1")), query, json!({ "return_url": return_url })).await
}

fn not_allowed(input: &str) -> Value {
    json!({"detail":[{"type":"value_error","loc":["body","return_url"],"msg":"Value error, return_url is not on an allowed origin","input":input,"ctx":{"error":{}}}]})
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn rejects_return_url_on_an_origin_off_the_projects_list(db: PgPool) {
    let app = TestApp::spawn(db).await;
    app.stripe_creates_sessions().await;
    let project = project_with_origins(&app, &["https://app.example.com"]).await;

    let response = post(&app, project, "", "https://evil.example/login").await;

    assert_eq!(response.status(), 422);
    assert_eq!(body(response).await, not_allowed("https://evil.example/login"));
    assert!(app.stripe_requests().await.is_empty());
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn rejects_the_userinfo_trick_that_puts_an_allowed_name_before_the_host(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let project = project_with_origins(&app, &["https://app.example.com"]).await;

    let response = post(&app, project, "", "https://app.example.com@evil.example/").await;

    assert_eq!(response.status(), 422);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn rejects_an_allowed_host_on_another_port_or_scheme(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let project = project_with_origins(&app, &["https://app.example.com"]).await;

    assert_eq!(post(&app, project, "", "https://app.example.com:8443/x").await.status(), 422);
    assert_eq!(post(&app, project, "", "http://app.example.com/x").await.status(), 422);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn accepts_return_url_on_the_projects_list(db: PgPool) {
    let app = TestApp::spawn(db).await;
    app.stripe_creates_sessions().await;
    let project = project_with_origins(&app, &["https://other.example", "https://app.example.com"]).await;

    let response = post(&app, project, "?test_mode=false", "https://app.example.com/billing?tab=1").await;

    assert_eq!(response.status(), 200);
    assert_eq!(form(&app.stripe_requests().await[0])["return_url"], "https://app.example.com/billing?tab=1");
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn project_lists_add_to_the_global_list(db: PgPool) {
    let app = TestApp::spawn_with(db, &[("RETURN_URL_ALLOWED_ORIGINS", "https://global.example")]).await;
    app.stripe_creates_sessions().await;
    let project = project_with_origins(&app, &["https://app.example.com"]).await;

    assert_eq!(post(&app, project, "", "https://global.example/").await.status(), 200);
    assert_eq!(post(&app, project, "", "https://app.example.com/").await.status(), 200);
    assert_eq!(post(&app, project, "", "https://elsewhere.example/").await.status(), 422);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn rejects_plain_http_when_no_list_is_set(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let project = app.seed("user_1").await;

    let response = post(&app, project, "", "http://app.example.com/account").await;

    assert_eq!(response.status(), 422);
    assert_eq!(body(response).await, not_allowed("http://app.example.com/account"));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn accepts_http_localhost_in_test_mode(db: PgPool) {
    let app = TestApp::spawn(db).await;
    app.stripe_creates_sessions().await;
    let project = app.seed("user_1").await;

    assert_eq!(post(&app, project, "", "http://localhost:3000/account").await.status(), 200);
    assert_eq!(post(&app, project, "", "http://127.0.0.1:5173/").await.status(), 200);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn rejects_http_localhost_in_live_mode(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let project = app.seed("user_1").await;

    let response = post(&app, project, "?test_mode=false", "http://localhost:3000/account").await;

    assert_eq!(response.status(), 422);
}
