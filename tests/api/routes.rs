//! Everything around the portal route: unknown routes and methods, health, CORS.

use serde_json::json;
use sqlx::PgPool;

use crate::support::*;

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn answers_404_json_for_an_unknown_route(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let response = app.http.get(app.url("/nope")).send().await.expect("sent");
    assert_eq!(response.status(), 404);
    assert_eq!(body(response).await, json!({ "detail": "Not Found" }));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn answers_405_json_for_a_wrong_method(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let response =
        app.http.get(app.url("/api/v1/payments/stripe/customer-portal")).send().await.expect("sent");
    assert_eq!(response.status(), 405);
    assert_eq!(body(response).await, json!({ "detail": "Method Not Allowed" }));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn healthz_answers_while_the_process_runs(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let response = app.http.get(app.url("/healthz")).send().await.expect("sent");
    assert_eq!(response.status(), 200);
    assert_eq!(body(response).await, json!({ "status": "ok" }));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn readyz_answers_200_when_the_database_does(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let response = app.http.get(app.url("/readyz")).send().await.expect("sent");
    assert_eq!(response.status(), 200);
    assert_eq!(body(response).await, json!({ "status": "ok" }));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn every_response_carries_a_request_id(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let response = app.http.get(app.url("/healthz")).send().await.expect("sent");
    assert!(response.headers().get("x-request-id").is_some_and(|v| !v.is_empty()));
    let response =
        app.http.get(app.url("/healthz")).header("x-request-id", "abc-123").send().await.expect("sent");
    assert_eq!(response.headers()["x-request-id"], "abc-123");
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn allows_a_preflight_with_authorization_from_an_allowed_origin(db: PgPool) {
    let app = TestApp::spawn_with(db, &[("CORS_ALLOWED_ORIGINS", "https://app.example.com")]).await;
    let response = app
        .http
        .request(reqwest::Method::OPTIONS, app.url("/api/v1/payments/stripe/customer-portal"))
        .header("Origin", "https://app.example.com")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "authorization,content-type")
        .send()
        .await
        .expect("sent");
    assert!(response.status().is_success());
    let headers = response.headers();
    assert_eq!(headers["access-control-allow-origin"], "https://app.example.com");
    let allowed = headers["access-control-allow-headers"].to_str().expect("ascii").to_ascii_lowercase();
    assert!(allowed.contains("authorization") && allowed.contains("content-type"), "{allowed}");
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn gives_no_cors_grant_to_an_unlisted_origin(db: PgPool) {
    let app = TestApp::spawn_with(db, &[("CORS_ALLOWED_ORIGINS", "https://app.example.com")]).await;
    let response = app
        .http
        .request(reqwest::Method::OPTIONS, app.url("/api/v1/payments/stripe/customer-portal"))
        .header("Origin", "https://evil.example")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .expect("sent");
    assert!(response.headers().get("access-control-allow-origin").is_none());
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn grants_cors_on_the_actual_post_from_an_allowed_origin(db: PgPool) {
    let app = TestApp::spawn_with(db, &[("CORS_ALLOWED_ORIGINS", "https://app.example.com")]).await;
    let response = app
        .http
        .post(app.url("/api/v1/payments/stripe/customer-portal"))
        .header("Origin", "https://app.example.com")
        .json(&json!({}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["access-control-allow-origin"], "https://app.example.com");
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn finishes_in_flight_requests_on_shutdown(db: PgPool) {
    let mut app = TestApp::spawn(db).await;
    let project = app.seed("user_1").await;
    wiremock::Mock::given(wiremock::matchers::path(SESSIONS_PATH))
        .respond_with(session_created().set_delay(std::time::Duration::from_millis(500)))
        .mount(&app.stripe)
        .await;
    let token = token(project, "user_1");

    let in_flight = {
        let (http, url) = (app.http.clone(), app.url("/api/v1/payments/stripe/customer-portal"));
        tokio::spawn(async move {
            http.post(url).bearer_auth(token).json(&json!({ "return_url": RETURN_URL })).send().await
        })
    };
    while app.stripe_requests().await.is_empty() {
        tokio::task::yield_now().await;
    }
    app.shut_down();

    let response = in_flight.await.expect("joined").expect("answered");
    assert_eq!(response.status(), 200);
    assert!(app.server.await.expect("joined").is_ok());
}
