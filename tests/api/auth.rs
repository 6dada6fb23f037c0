//! Every way a bearer token can be wrong is a 401 with `WWW-Authenticate: Bearer`,
//! decided before the body is read.

use jsonwebtoken::{Algorithm, Header};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::*;

async fn assert_refused(app: &TestApp, token: Option<&str>, detail: &str) {
    let response = app.post_portal(token, "", json!({ "return_url": RETURN_URL })).await;
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_eq!(body(response).await, json!({ "detail": detail }));
    assert!(app.stripe_requests().await.is_empty(), "Stripe must not be called");
}

async fn refused_claims(db: PgPool, edit: impl FnOnce(&mut Value)) {
    let app = TestApp::spawn(db).await;
    let project = app.seed("user_1").await;
    let mut claims = claims(project, "user_1");
    edit(&mut claims);
    assert_refused(&app, Some(&sign(&claims)), "Could not validate credentials").await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn refuses_a_request_without_authorization(db: PgPool) {
    let app = TestApp::spawn(db).await;
    assert_refused(&app, None, "Not authenticated").await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn refuses_a_scheme_other_than_bearer(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let project = app.seed("user_1").await;
    let response = app
        .http
        .post(app.url(PORTAL_ROUTE))
        .header("Authorization", format!("Basic {}", token(project, "user_1")))
        .json(&json!({ "return_url": RETURN_URL }))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_eq!(body(response).await, json!({ "detail": "Not authenticated" }));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn accepts_the_bearer_scheme_in_any_case(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let project = app.seed("user_1").await;
    app.stripe_creates_sessions().await;
    let response = app
        .http
        .post(app.url(PORTAL_ROUTE))
        .header("Authorization", format!("bearer {}", token(project, "user_1")))
        .json(&json!({ "return_url": RETURN_URL }))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn refuses_a_token_signed_with_another_secret(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let project = app.seed("user_1").await;
    let forged =
        sign_with(&Header::default(), &claims(project, "user_1"), "another-secret-of-sufficient-length!!");
    assert_refused(&app, Some(&forged), "Could not validate credentials").await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn refuses_an_expired_token(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let project = app.seed("user_1").await;
    let mut claims = claims(project, "user_1");
    claims["exp"] = json!(now() - 120);
    assert_refused(&app, Some(&sign(&claims)), "Token has expired").await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn accepts_a_token_expired_within_the_leeway(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let project = app.seed("user_1").await;
    app.stripe_creates_sessions().await;
    let mut claims = claims(project, "user_1");
    claims["exp"] = json!(now() - 5);
    let response = app.post_portal(Some(&sign(&claims)), "", json!({ "return_url": RETURN_URL })).await;
    assert_eq!(response.status(), 200);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn refuses_a_token_not_yet_valid(db: PgPool) {
    refused_claims(db, |c| c["nbf"] = json!(now() + 600)).await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn refuses_a_token_issued_in_the_future(db: PgPool) {
    refused_claims(db, |c| c["iat"] = json!(now() + 600)).await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn refuses_a_token_without_exp(db: PgPool) {
    refused_claims(db, |c| {
        c.as_object_mut().expect("object").remove("exp");
    })
    .await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn refuses_a_token_without_sub(db: PgPool) {
    refused_claims(db, |c| {
        c.as_object_mut().expect("object").remove("sub");
    })
    .await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn refuses_a_token_with_a_non_string_sub(db: PgPool) {
    refused_claims(db, |c| c["sub"] = json!(42)).await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn refuses_a_token_with_an_empty_sub(db: PgPool) {
    refused_claims(db, |c| c["sub"] = json!("")).await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn refuses_a_token_without_project_id(db: PgPool) {
    refused_claims(db, |c| {
        c.as_object_mut().expect("object").remove("project_id");
    })
    .await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn refuses_a_token_whose_project_id_is_not_a_uuid(db: PgPool) {
    refused_claims(db, |c| c["project_id"] = json!("project-1")).await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn refuses_an_unsigned_alg_none_token(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let project = app.seed("user_1").await;
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let unsigned =
        format!("{}.{}.", b64(&json!({ "alg": "none", "typ": "JWT" })), b64(&claims(project, "user_1")));
    assert_refused(&app, Some(&unsigned), "Could not validate credentials").await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn refuses_an_algorithm_other_than_the_pinned_one(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let project = app.seed("user_1").await;
    let hs512 = sign_with(&Header::new(Algorithm::HS512), &claims(project, "user_1"), JWT_SECRET);
    assert_refused(&app, Some(&hs512), "Could not validate credentials").await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn refuses_a_garbage_token(db: PgPool) {
    let app = TestApp::spawn(db).await;
    assert_refused(&app, Some("not.a.jwt"), "Could not validate credentials").await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn refuses_an_oversized_token_unread(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let project = app.seed("user_1").await;
    let mut claims = claims(project, "user_1");
    claims["padding"] = json!("x".repeat(10_000));
    assert_refused(&app, Some(&sign(&claims)), "Could not validate credentials").await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn refuses_a_wrong_issuer_when_one_is_configured(db: PgPool) {
    let app = TestApp::spawn_with(db, &[("JWT_ISSUER", "https://auth.example.com")]).await;
    let project = app.seed("user_1").await;
    let mut claims = claims(project, "user_1");
    claims["iss"] = json!("https://evil.example.com");
    assert_refused(&app, Some(&sign(&claims)), "Could not validate credentials").await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn refuses_a_missing_issuer_when_one_is_configured(db: PgPool) {
    let app = TestApp::spawn_with(db, &[("JWT_ISSUER", "https://auth.example.com")]).await;
    let project = app.seed("user_1").await;
    assert_refused(&app, Some(&token(project, "user_1")), "Could not validate credentials").await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn refuses_a_wrong_audience_when_one_is_configured(db: PgPool) {
    let app = TestApp::spawn_with(db, &[("JWT_AUDIENCE", "customer-portal")]).await;
    let project = app.seed("user_1").await;
    let mut claims = claims(project, "user_1");
    claims["aud"] = json!("another-service");
    assert_refused(&app, Some(&sign(&claims)), "Could not validate credentials").await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn accepts_the_configured_issuer_and_audience(db: PgPool) {
    let app = TestApp::spawn_with(
        db,
        &[("JWT_ISSUER", "https://auth.example.com"), ("JWT_AUDIENCE", "customer-portal")],
    )
    .await;
    let project = app.seed("user_1").await;
    app.stripe_creates_sessions().await;
    let mut claims = claims(project, "user_1");
    claims["iss"] = json!("https://auth.example.com");
    claims["aud"] = json!(["customer-portal", "other"]);
    let response = app.post_portal(Some(&sign(&claims)), "", json!({ "return_url": RETURN_URL })).await;
    assert_eq!(response.status(), 200);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn checks_auth_before_the_body_and_query(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let response = app
        .http
        .post(app.url(&format!("{PORTAL_ROUTE}?test_mode=maybe")))
        .header("content-type", "application/json")
        .body("{\"return_url\": ")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 401);
    assert_eq!(body(response).await, json!({ "detail": "Not authenticated" }));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn checks_auth_before_the_body_size(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let response = app.post_portal(None, "", json!({ "return_url": "x".repeat(100_000) })).await;
    assert_eq!(response.status(), 401);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn a_valid_token_for_an_unknown_project_is_not_a_401(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let response =
        app.post_portal(Some(&token(Uuid::new_v4(), "u")), "", json!({ "return_url": RETURN_URL })).await;
    assert_eq!(response.status(), 404);
}
