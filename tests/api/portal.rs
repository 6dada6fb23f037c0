//! The portal route's successful path and its two 404s.

use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;
use wiremock::{Mock, matchers};

use crate::support::*;

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn returns_the_portal_url_for_a_user_with_a_customer(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let project = app.seed("user_1").await;
    app.stripe_creates_sessions().await;

    let response =
        app.post_portal(Some(&token(project, "user_1")), "", json!({ "return_url": RETURN_URL })).await;

    assert_eq!(response.status(), 200);
    assert_eq!(body(response).await, json!({ "portal_url": PORTAL_URL }));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn success_is_marked_not_cacheable(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let project = app.seed("user_1").await;
    app.stripe_creates_sessions().await;

    let response =
        app.post_portal(Some(&token(project, "user_1")), "", json!({ "return_url": RETURN_URL })).await;

    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["content-type"], "application/json");
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn sends_stripe_the_test_customer_return_url_and_test_key_by_default(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let project = app.seed("user_1").await;
    app.stripe_creates_sessions().await;

    app.post_portal(Some(&token(project, "user_1")), "", json!({ "return_url": RETURN_URL })).await;

    let requests = app.stripe_requests().await;
    assert_eq!(requests.len(), 1);
    let sent = &requests[0];
    assert_eq!(sent.method.as_str(), "POST");
    assert_eq!(sent.url.path(), SESSIONS_PATH);
    assert_eq!(header(sent, "authorization"), Some(format!("Bearer {TEST_KEY}").as_str()));
    assert_eq!(header(sent, "stripe-version"), Some(customer_portal::stripe::API_VERSION));
    assert_eq!(header(sent, "content-type"), Some("application/x-www-form-urlencoded"));
    let form = form(sent);
    assert_eq!(form.len(), 2, "only customer and return_url: {form:?}");
    assert_eq!(form["customer"], "cus_test_123");
    assert_eq!(form["return_url"], RETURN_URL);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn sends_an_idempotency_key_with_each_session_request(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let project = app.seed("user_1").await;
    app.stripe_creates_sessions().await;
    let token = token(project, "user_1");

    app.post_portal(Some(&token), "", json!({ "return_url": RETURN_URL })).await;
    app.post_portal(Some(&token), "", json!({ "return_url": RETURN_URL })).await;

    let keys: Vec<_> =
        app.stripe_requests().await.iter().map(|r| header(r, "idempotency-key").map(str::to_owned)).collect();
    assert_eq!(keys.len(), 2);
    assert!(keys.iter().all(|k| k.as_ref().is_some_and(|k| !k.is_empty())));
    assert_ne!(keys[0], keys[1], "two user requests are two sessions");
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn uses_the_live_key_and_live_customer_when_test_mode_is_false(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let project = app.seed("user_1").await;
    app.stripe_creates_sessions().await;

    let response = app
        .post_portal(Some(&token(project, "user_1")), "?test_mode=false", json!({ "return_url": RETURN_URL }))
        .await;

    assert_eq!(response.status(), 200);
    let sent = &app.stripe_requests().await[0];
    assert_eq!(header(sent, "authorization"), Some(format!("Bearer {LIVE_KEY}").as_str()));
    assert_eq!(form(sent)["customer"], "cus_live_456");
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn accepts_every_pydantic_spelling_of_test_mode(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let project = app.seed("user_1").await;
    app.stripe_creates_sessions().await;
    let token = token(project, "user_1");
    let cases =
        [("true", "cus_test_123"), ("YES", "cus_test_123"), ("1", "cus_test_123"), ("on", "cus_test_123")]
            .into_iter()
            .chain([
                ("False", "cus_live_456"),
                ("no", "cus_live_456"),
                ("0", "cus_live_456"),
                ("f", "cus_live_456"),
            ]);

    for (spelling, customer) in cases {
        let response = app
            .post_portal(Some(&token), &format!("?test_mode={spelling}"), json!({ "return_url": RETURN_URL }))
            .await;
        assert_eq!(response.status(), 200, "test_mode={spelling}");
        let last = app.stripe_requests().await.pop().expect("a Stripe call");
        assert_eq!(form(&last)["customer"], customer, "test_mode={spelling}");
    }
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn ignores_unknown_body_fields(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let project = app.seed("user_1").await;
    app.stripe_creates_sessions().await;

    let response = app
        .post_portal(
            Some(&token(project, "user_1")),
            "",
            json!({ "return_url": RETURN_URL, "customer": "cus_someone_else", "extra": [1, 2] }),
        )
        .await;

    assert_eq!(response.status(), 200);
    let form = form(&app.stripe_requests().await[0]);
    assert_eq!(form["customer"], "cus_test_123");
    assert!(!form.contains_key("extra"));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn returns_404_when_user_has_no_customer(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let project = app.seed("user_1").await;
    app.stripe_creates_sessions().await;

    let response =
        app.post_portal(Some(&token(project, "user_2")), "", json!({ "return_url": RETURN_URL })).await;

    assert_eq!(response.status(), 404);
    assert_eq!(body(response).await, json!({ "detail": "No Stripe customer found for user" }));
    assert!(app.stripe_requests().await.is_empty());
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn returns_404_when_user_has_a_customer_only_in_the_other_mode(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let project = insert_project(&app.db, Some(TEST_KEY), Some(LIVE_KEY)).await;
    insert_customer(&app.db, project, "user_1", false, "cus_test_only").await;

    let response = app
        .post_portal(Some(&token(project, "user_1")), "?test_mode=false", json!({ "return_url": RETURN_URL }))
        .await;

    assert_eq!(response.status(), 404);
    assert_eq!(body(response).await, json!({ "detail": "No Stripe customer found for user" }));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn returns_404_when_project_is_unknown(db: PgPool) {
    let app = TestApp::spawn(db).await;
    app.seed("user_1").await;

    let response = app
        .post_portal(Some(&token(Uuid::new_v4(), "user_1")), "", json!({ "return_url": RETURN_URL }))
        .await;

    assert_eq!(response.status(), 404);
    assert_eq!(body(response).await, json!({ "detail": "Project not found or Stripe not configured" }));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn returns_404_when_project_has_no_key_for_the_mode(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let project = insert_project(&app.db, Some(TEST_KEY), None).await;
    insert_customer(&app.db, project, "user_1", true, "cus_live_456").await;

    let response = app
        .post_portal(Some(&token(project, "user_1")), "?test_mode=false", json!({ "return_url": RETURN_URL }))
        .await;

    assert_eq!(response.status(), 404);
    assert_eq!(body(response).await, json!({ "detail": "Project not found or Stripe not configured" }));
    assert!(app.stripe_requests().await.is_empty());
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn never_sends_a_live_key_for_a_test_mode_request(db: PgPool) {
    let app = TestApp::spawn(db).await;
    // Misconfigured: the live key stored in the test-key column.
    let project = insert_project(&app.db, Some(LIVE_KEY), None).await;
    insert_customer(&app.db, project, "user_1", false, "cus_test_123").await;

    let response =
        app.post_portal(Some(&token(project, "user_1")), "", json!({ "return_url": RETURN_URL })).await;

    assert_eq!(response.status(), 404);
    assert_eq!(body(response).await, json!({ "detail": "Project not found or Stripe not configured" }));
    assert!(app.stripe_requests().await.is_empty());
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn token_for_one_project_never_reaches_another_projects_customer_or_key(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let victim = app.seed("user_1").await;
    let attacker_project = insert_project(&app.db, Some("sk_test_attacker"), None).await;
    app.stripe_creates_sessions().await;

    // Same user ID, other project: the victim's customer must not be found.
    let response = app
        .post_portal(Some(&token(attacker_project, "user_1")), "", json!({ "return_url": RETURN_URL }))
        .await;

    assert_eq!(response.status(), 404);
    assert_eq!(body(response).await, json!({ "detail": "No Stripe customer found for user" }));
    assert!(app.stripe_requests().await.is_empty());
    let _ = victim;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn returns_404_when_stripe_says_no_such_customer(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let project = app.seed("user_1").await;
    Mock::given(matchers::path(SESSIONS_PATH))
        .respond_with(stripe_error(400, "invalid_request_error", "resource_missing", Some("customer")))
        .expect(1)
        .mount(&app.stripe)
        .await;

    let response =
        app.post_portal(Some(&token(project, "user_1")), "", json!({ "return_url": RETURN_URL })).await;

    assert_eq!(response.status(), 404);
    assert_eq!(body(response).await, json!({ "detail": "No Stripe customer found for user" }));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn rows_naming_only_the_contract_columns_still_insert(db: PgPool) {
    sqlx::query("INSERT INTO projects (id) VALUES ($1)")
        .bind(Uuid::new_v4())
        .execute(&db)
        .await
        .expect("insert");
}
