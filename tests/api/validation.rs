//! 422s in Pydantic v2's shape, matching the contract's reference bodies, and the 413.

use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::*;

/// Sends a raw body with a valid token; the project exists so only validation can fail.
async fn send_raw(app: &TestApp, query: &str, content_type: Option<&str>, body: &str) -> reqwest::Response {
    let project = app.seed("user_1").await;
    let mut request =
        app.http.post(app.url(&format!("{PORTAL_ROUTE}{query}"))).bearer_auth(token(project, "user_1"));
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    request.body(body.to_owned()).send().await.expect("sent")
}

async fn assert_422(app: &TestApp, query: &str, body: &str, expected: Value) {
    let response = send_raw(app, query, Some("application/json"), body).await;
    assert_eq!(response.status(), 422, "for {body:?}");
    assert_eq!(super::support::body(response).await, expected, "for {body:?}");
    assert!(app.stripe_requests().await.is_empty());
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn rejects_an_empty_object_as_missing_return_url(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let expected =
        json!({"detail":[{"type":"missing","loc":["body","return_url"],"msg":"Field required","input":{}}]});
    assert_422(&app, "", "{}", expected).await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn rejects_an_empty_return_url(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let expected = json!({"detail":[{"type":"string_too_short","loc":["body","return_url"],"msg":"String should have at least 1 character","input":"","ctx":{"min_length":1}}]});
    assert_422(&app, "", r#"{"return_url": ""}"#, expected).await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn rejects_a_non_string_return_url(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let expected = json!({"detail":[{"type":"string_type","loc":["body","return_url"],"msg":"Input should be a valid string","input":5}]});
    assert_422(&app, "", r#"{"return_url": 5}"#, expected).await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn rejects_a_return_url_that_is_not_a_url(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let expected = json!({"detail":[{"type":"value_error","loc":["body","return_url"],"msg":"Value error, return_url must be an absolute http or https URL","input":"not a url","ctx":{"error":{}}}]});
    assert_422(&app, "", r#"{"return_url": "not a url"}"#, expected).await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn rejects_return_urls_that_are_relative_or_not_http(db: PgPool) {
    let app = TestApp::spawn(db).await;
    for url in [
        "/account",
        "javascript:alert(1)",
        "ftp://example.com/x",
        "data:text/html,hi",
        "https://",
        " https://a.example/",
    ] {
        let body = json!({ "return_url": url }).to_string();
        let expected = json!({"detail":[{"type":"value_error","loc":["body","return_url"],"msg":"Value error, return_url must be an absolute http or https URL","input":url,"ctx":{"error":{}}}]});
        assert_422(&app, "", &body, expected).await;
    }
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn rejects_malformed_json_at_pythons_position(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let expected = json!({"detail":[{"type":"json_invalid","loc":["body",15],"msg":"JSON decode error","input":{},"ctx":{"error":"Expecting value"}}]});
    assert_422(&app, "", r#"{"return_url": "#, expected).await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn rejects_a_missing_body(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let response = send_raw(&app, "", None, "").await;
    assert_eq!(response.status(), 422);
    assert_eq!(
        body(response).await,
        json!({"detail":[{"type":"missing","loc":["body"],"msg":"Field required","input":null}]})
    );
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn rejects_a_json_null_body_as_missing(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let expected = json!({"detail":[{"type":"missing","loc":["body"],"msg":"Field required","input":null}]});
    assert_422(&app, "", "null", expected).await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn rejects_a_body_that_is_not_an_object(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let input = json!([{ "return_url": RETURN_URL }]);
    let expected = json!({"detail":[{"type":"model_attributes_type","loc":["body"],"msg":"Input should be a valid dictionary or object to extract fields from","input":input}]});
    assert_422(&app, "", &input.to_string(), expected).await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn rejects_a_body_that_is_not_json(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let response = send_raw(&app, "", Some("text/plain"), "return_url=https://a.example").await;
    assert_eq!(response.status(), 422);
    assert_eq!(
        body(response).await,
        json!({"detail":[{"type":"model_attributes_type","loc":["body"],"msg":"Input should be a valid dictionary or object to extract fields from","input":"return_url=https://a.example"}]})
    );
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn reads_a_body_without_content_type_as_json(db: PgPool) {
    let app = TestApp::spawn(db).await;
    app.stripe_creates_sessions().await;
    let response = send_raw(&app, "", None, &json!({ "return_url": RETURN_URL }).to_string()).await;
    assert_eq!(response.status(), 200);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn rejects_an_unparseable_test_mode(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let expected = json!({"detail":[{"type":"bool_parsing","loc":["query","test_mode"],"msg":"Input should be a valid boolean, unable to interpret input","input":"maybe"}]});
    assert_422(&app, "?test_mode=maybe", &json!({ "return_url": RETURN_URL }).to_string(), expected).await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn reports_query_and_body_errors_together(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let expected = json!({"detail":[
        {"type":"bool_parsing","loc":["query","test_mode"],"msg":"Input should be a valid boolean, unable to interpret input","input":""},
        {"type":"missing","loc":["body","return_url"],"msg":"Field required","input":{}},
    ]});
    assert_422(&app, "?test_mode=", "{}", expected).await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn rejects_a_return_url_outside_the_allowed_origins(db: PgPool) {
    let app = TestApp::spawn_with(db, &[("RETURN_URL_ALLOWED_ORIGINS", "https://app.example.com")]).await;
    let expected = json!({"detail":[{"type":"value_error","loc":["body","return_url"],"msg":"Value error, return_url is not on an allowed origin","input":"https://evil.example/phish","ctx":{"error":{}}}]});
    assert_422(&app, "", r#"{"return_url": "https://evil.example/phish"}"#, expected).await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn accepts_a_return_url_on_an_allowed_origin(db: PgPool) {
    let app = TestApp::spawn_with(
        db,
        &[("RETURN_URL_ALLOWED_ORIGINS", "https://other.example, https://app.example.com")],
    )
    .await;
    app.stripe_creates_sessions().await;
    let response = send_raw(&app, "", None, &json!({ "return_url": RETURN_URL }).to_string()).await;
    assert_eq!(response.status(), 200);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn answers_413_to_a_body_over_the_limit(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let big = json!({ "return_url": RETURN_URL, "padding": "x".repeat(8 * 1024) }).to_string();
    let response = send_raw(&app, "", Some("application/json"), &big).await;
    assert_eq!(response.status(), 413);
    assert_eq!(body(response).await, json!({ "detail": "Request body too large" }));
    assert!(app.stripe_requests().await.is_empty());
}
