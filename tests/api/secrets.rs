//! Stripe keys stored encrypted at rest, and the command that encrypts them in place.

use std::process::Command;

use customer_portal::secrets::EncryptionKeys;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::*;

const KEY_A: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const KEY_B: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

async fn stored_keys(db: &PgPool, project: Uuid) -> (Option<String>, Option<String>) {
    sqlx::query_as("SELECT stripe_test_secret_key, stripe_live_secret_key FROM projects WHERE id = $1")
        .bind(project)
        .fetch_one(db)
        .await
        .expect("row")
}

fn encrypt_keys(db: &PgPool, keys: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_customer-portal"))
        .arg("encrypt-keys")
        .env("DATABASE_URL", database_url_of(db))
        .env("JWT_SECRET", JWT_SECRET)
        .env("SECRETS_ENCRYPTION_KEY", keys)
        .current_dir(std::env::temp_dir())
        .output()
        .expect("runs")
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn sends_stripe_the_decrypted_key_of_an_encrypted_row(db: PgPool) {
    let app = TestApp::spawn_with(db, &[("SECRETS_ENCRYPTION_KEY", KEY_A)]).await;
    let project = Uuid::new_v4();
    let sealed = EncryptionKeys::parse(KEY_A).expect("key").encrypt(TEST_KEY, project, false);
    sqlx::query("INSERT INTO projects (id, stripe_test_secret_key) VALUES ($1, $2)")
        .bind(project)
        .bind(&sealed)
        .execute(&app.db)
        .await
        .expect("insert");
    insert_customer(&app.db, project, "user_1", false, "cus_test_123").await;
    app.stripe_creates_sessions().await;

    let response =
        app.post_portal(Some(&token(project, "user_1")), "", json!({ "return_url": RETURN_URL })).await;

    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&app.stripe_requests().await[0], "authorization"),
        Some(format!("Bearer {TEST_KEY}").as_str())
    );
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn still_accepts_plaintext_keys_when_encryption_is_configured(db: PgPool) {
    let app = TestApp::spawn_with(db, &[("SECRETS_ENCRYPTION_KEY", KEY_A)]).await;
    let project = app.seed("user_1").await;
    app.stripe_creates_sessions().await;

    let response =
        app.post_portal(Some(&token(project, "user_1")), "", json!({ "return_url": RETURN_URL })).await;

    assert_eq!(response.status(), 200);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn refuses_an_encrypted_key_copied_from_another_project(db: PgPool) {
    let app = TestApp::spawn_with(db, &[("SECRETS_ENCRYPTION_KEY", KEY_A)]).await;
    let victim = Uuid::new_v4();
    let stolen = EncryptionKeys::parse(KEY_A).expect("key").encrypt(TEST_KEY, victim, false);
    let attacker = insert_project(&app.db, Some(&stolen), None).await;
    insert_customer(&app.db, attacker, "user_1", false, "cus_attacker").await;
    app.stripe_creates_sessions().await;

    let response =
        app.post_portal(Some(&token(attacker, "user_1")), "", json!({ "return_url": RETURN_URL })).await;

    assert_eq!(response.status(), 500);
    assert_eq!(body(response).await, json!({ "detail": "Internal Server Error" }));
    assert!(app.stripe_requests().await.is_empty());
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn encrypt_keys_command_encrypts_plaintext_rows_in_place(db: PgPool) {
    let project = insert_project(&db, Some(TEST_KEY), Some(LIVE_KEY)).await;
    let no_keys = insert_project(&db, None, None).await;

    let output = encrypt_keys(&db, KEY_A);

    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("1 project(s)"));
    let ring = EncryptionKeys::parse(KEY_A).expect("key");
    let (test, live) = stored_keys(&db, project).await;
    let (test, live) = (test.expect("test key"), live.expect("live key"));
    assert!(test.starts_with("enc:v1:") && !test.contains(TEST_KEY));
    assert_eq!(ring.decrypt(&test, project, false).as_deref(), Ok(TEST_KEY));
    assert_eq!(ring.decrypt(&live, project, true).as_deref(), Ok(LIVE_KEY));
    assert_eq!(stored_keys(&db, no_keys).await, (None, None));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn encrypt_keys_command_is_idempotent_and_rotates_to_a_new_key(db: PgPool) {
    let project = insert_project(&db, Some(TEST_KEY), None).await;
    assert!(encrypt_keys(&db, KEY_A).status.success());
    let once = stored_keys(&db, project).await;
    assert!(encrypt_keys(&db, KEY_A).status.success());
    assert_eq!(stored_keys(&db, project).await, once, "nothing to do the second time");

    let output = encrypt_keys(&db, &format!("{KEY_B},{KEY_A}"));

    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let rotated = stored_keys(&db, project).await.0.expect("key");
    let only_b = EncryptionKeys::parse(KEY_B).expect("key");
    assert_eq!(only_b.decrypt(&rotated, project, false).as_deref(), Ok(TEST_KEY));
}
