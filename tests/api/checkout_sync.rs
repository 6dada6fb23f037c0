//! `POST /api/v1/payments/stripe/checkout-sync`: the user back from Checkout before the
//! webhook is linked from the session Stripe reports.

use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;
use wiremock::{Mock, ResponseTemplate, matchers};

use crate::{support::*, webhooks::link_of};

const SYNC_ROUTE: &str = "/api/v1/payments/stripe/checkout-sync";
const SESSION: &str = "cs_test_a1B2c3D4e5F6g7H8";

async fn post_sync(app: &TestApp, token: Option<&str>, query: &str, body: Value) -> reqwest::Response {
    let mut request = app.http.post(app.url(&format!("{SYNC_ROUTE}{query}")));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.json(&body).send().await.expect("sent")
}

fn session(user: &str, status: &str, customer: Value) -> Value {
    json!({
        "id": SESSION,
        "object": "checkout.session",
        "created": now() - 60,
        "client_reference_id": user,
        "customer": customer,
        "metadata": {},
        "status": status,
        "livemode": false,
    })
}

async fn stripe_has_session(app: &TestApp, session: Value) {
    Mock::given(matchers::method("GET"))
        .and(matchers::path(format!("/v1/checkout/sessions/{SESSION}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(session))
        .mount(&app.stripe)
        .await;
}

async fn project(db: &PgPool) -> Uuid {
    insert_project(db, Some(TEST_KEY), Some(LIVE_KEY)).await
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn a_completed_session_of_the_user_links_its_customer(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = project(&db).await;
    stripe_has_session(&app, session("user_1", "complete", json!("cus_A1234567"))).await;
    let response =
        post_sync(&app, Some(&token(project, "user_1")), "", json!({ "session_id": SESSION })).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(body(response).await, json!({ "linked": true }));
    assert_eq!(link_of(&db, project, "user_1").await.as_deref(), Some("cus_A1234567"));
    let read = &app.stripe_requests().await[0];
    assert_eq!(header(read, "authorization"), Some(format!("Bearer {TEST_KEY}").as_str()));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn the_portal_opens_right_after_a_checkout_sync(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = project(&db).await;
    stripe_has_session(&app, session("user_1", "complete", json!("cus_A1234567"))).await;
    app.stripe_creates_sessions().await;
    let token = token(project, "user_1");
    assert_eq!(post_sync(&app, Some(&token), "", json!({ "session_id": SESSION })).await.status(), 200);
    let response = app.post_portal(Some(&token), "", json!({ "return_url": RETURN_URL })).await;
    assert_eq!(response.status(), 200);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn a_repeated_sync_answers_linked_again(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = project(&db).await;
    stripe_has_session(&app, session("user_1", "complete", json!("cus_A1234567"))).await;
    let token = token(project, "user_1");
    for _ in 0..2 {
        let response = post_sync(&app, Some(&token), "", json!({ "session_id": SESSION })).await;
        assert_eq!(body(response).await, json!({ "linked": true }));
    }
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn a_session_with_the_user_in_its_metadata_is_theirs(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = project(&db).await;
    let mut found = session("", "complete", json!({ "id": "cus_A1234567", "object": "customer" }));
    found["client_reference_id"] = Value::Null;
    found["metadata"] = json!({ "user_id": "user_1" });
    stripe_has_session(&app, found).await;
    let response =
        post_sync(&app, Some(&token(project, "user_1")), "", json!({ "session_id": SESSION })).await;
    assert_eq!(response.status(), 200);
    assert_eq!(link_of(&db, project, "user_1").await.as_deref(), Some("cus_A1234567"));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn another_users_session_is_not_found_and_links_nothing(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = project(&db).await;
    stripe_has_session(&app, session("user_2", "complete", json!("cus_A1234567"))).await;
    let response =
        post_sync(&app, Some(&token(project, "user_1")), "", json!({ "session_id": SESSION })).await;
    assert_eq!(response.status(), 404);
    assert_eq!(body(response).await, json!({ "detail": "Checkout session not found for user" }));
    assert_eq!(link_of(&db, project, "user_1").await, None);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn a_session_stripe_does_not_know_is_not_found(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = project(&db).await;
    Mock::given(matchers::path(format!("/v1/checkout/sessions/{SESSION}")))
        .respond_with(stripe_error(404, "invalid_request_error", "resource_missing", Some("session")))
        .mount(&app.stripe)
        .await;
    let response =
        post_sync(&app, Some(&token(project, "user_1")), "", json!({ "session_id": SESSION })).await;
    assert_eq!(response.status(), 404);
    assert_eq!(body(response).await, json!({ "detail": "Checkout session not found for user" }));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn an_open_session_is_not_complete(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = project(&db).await;
    stripe_has_session(&app, session("user_1", "open", Value::Null)).await;
    let response =
        post_sync(&app, Some(&token(project, "user_1")), "", json!({ "session_id": SESSION })).await;
    assert_eq!(response.status(), 409);
    assert_eq!(body(response).await, json!({ "detail": "Checkout session is not complete" }));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn a_missing_or_malformed_session_id_is_a_422_in_pydantics_shape(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = project(&db).await;
    let token = token(project, "user_1");
    let missing = post_sync(&app, Some(&token), "", json!({})).await;
    assert_eq!(missing.status(), 422);
    assert_eq!(
        body(missing).await,
        json!({"detail": [{"type": "missing", "loc": ["body", "session_id"], "msg": "Field required", "input": {}}]})
    );
    let malformed = post_sync(&app, Some(&token), "", json!({ "session_id": "../v1/customers" })).await;
    assert_eq!(malformed.status(), 422);
    assert_eq!(body(malformed).await["detail"][0]["type"], "string_pattern_mismatch");
    let not_a_string = post_sync(&app, Some(&token), "", json!({ "session_id": 5 })).await;
    assert_eq!(body(not_a_string).await["detail"][0]["type"], "string_type");
    assert!(app.stripe_requests().await.is_empty(), "nothing reached Stripe");
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn a_request_without_a_token_is_a_401_whatever_its_body(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let response = post_sync(&app, None, "", json!({})).await;
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_eq!(body(response).await, json!({ "detail": "Not authenticated" }));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn a_revoked_key_is_a_502_as_for_the_portal(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = project(&db).await;
    Mock::given(matchers::path(format!("/v1/checkout/sessions/{SESSION}")))
        .respond_with(stripe_error(401, "invalid_request_error", "api_key_expired", None))
        .mount(&app.stripe)
        .await;
    let response =
        post_sync(&app, Some(&token(project, "user_1")), "", json!({ "session_id": SESSION })).await;
    assert_eq!(response.status(), 502);
    assert_eq!(body(response).await, json!({ "detail": "Stripe rejected the request" }));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn a_project_without_a_key_for_the_mode_is_not_found(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = insert_project(&db, Some(TEST_KEY), None).await;
    let response = post_sync(
        &app,
        Some(&token(project, "user_1")),
        "?test_mode=false",
        json!({ "session_id": SESSION }),
    )
    .await;
    assert_eq!(response.status(), 404);
    assert_eq!(body(response).await, json!({ "detail": "Project not found or Stripe not configured" }));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn a_sync_does_not_override_a_newer_link(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = project(&db).await;
    // Written by another service after the session was created.
    insert_customer(&db, project, "user_1", false, "cus_Newer1234").await;
    stripe_has_session(&app, session("user_1", "complete", json!("cus_A1234567"))).await;
    let response =
        post_sync(&app, Some(&token(project, "user_1")), "", json!({ "session_id": SESSION })).await;
    assert_eq!(response.status(), 200);
    assert_eq!(link_of(&db, project, "user_1").await.as_deref(), Some("cus_Newer1234"));
}
