//! Asymmetric token keys from a PEM file, and the key-confusion attacks they invite.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use sqlx::PgPool;

use crate::support::*;

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).expect("fixture exists")
}

fn signed(alg: Algorithm, key: &EncodingKey, claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, key).expect("signs")
}

async fn status_with(
    db: PgPool,
    algorithms: &str,
    public_key: &str,
    make_token: impl FnOnce(&serde_json::Value) -> String,
) -> u16 {
    let path = fixture(public_key);
    let app =
        TestApp::spawn_with(db, &[("JWT_ALGORITHMS", algorithms), ("JWT_PUBLIC_KEY_FILE", &path)]).await;
    let project = app.seed("user_1").await;
    app.stripe_creates_sessions().await;
    let token = make_token(&claims(project, "user_1"));
    app.post_portal(Some(&token), "", json!({ "return_url": RETURN_URL })).await.status().as_u16()
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn accepts_an_rs256_token_signed_by_the_configured_key(db: PgPool) {
    let key = EncodingKey::from_rsa_pem(&read("rsa-private.pem")).expect("rsa key");
    assert_eq!(status_with(db, "RS256", "rsa-public.pem", |c| signed(Algorithm::RS256, &key, c)).await, 200);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn accepts_an_es256_token_signed_by_the_configured_key(db: PgPool) {
    let key = EncodingKey::from_ec_pem(&read("ec-private.pem")).expect("ec key");
    assert_eq!(status_with(db, "ES256", "ec-public.pem", |c| signed(Algorithm::ES256, &key, c)).await, 200);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn accepts_an_eddsa_token_signed_by_the_configured_key(db: PgPool) {
    let key = EncodingKey::from_ed_pem(&read("ed-private.pem")).expect("ed key");
    assert_eq!(status_with(db, "EdDSA", "ed-public.pem", |c| signed(Algorithm::EdDSA, &key, c)).await, 200);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn rejects_hs256_token_when_rsa_key_configured(db: PgPool) {
    // The classic confusion: the public key, which anyone has, used as an HMAC secret.
    let public = read("rsa-public.pem");
    let status = status_with(db, "RS256", "rsa-public.pem", |c| {
        signed(Algorithm::HS256, &EncodingKey::from_secret(&public), c)
    })
    .await;
    assert_eq!(status, 401);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn rejects_an_rsa_algorithm_that_is_not_in_the_configured_list(db: PgPool) {
    let key = EncodingKey::from_rsa_pem(&read("rsa-private.pem")).expect("rsa key");
    assert_eq!(status_with(db, "RS256", "rsa-public.pem", |c| signed(Algorithm::RS512, &key, c)).await, 401);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn rejects_a_token_signed_by_a_key_other_than_the_configured_one(db: PgPool) {
    let other = EncodingKey::from_ec_pem(&read("ec-private.pem")).expect("ec key");
    assert_eq!(
        status_with(db, "RS256", "rsa-public.pem", |c| signed(Algorithm::ES256, &other, c)).await,
        401
    );
}

#[test]
fn refuses_to_start_with_a_public_key_file_that_is_not_a_key() {
    let vars: std::collections::HashMap<String, String> = [
        ("DATABASE_URL", "postgres://localhost/x"),
        ("JWT_ALGORITHMS", "RS256"),
        ("JWT_PUBLIC_KEY_FILE", concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let config = customer_portal::config::Config::from_vars(&vars).expect("the file is readable");
    let error = customer_portal::auth::Authenticator::new(&config.jwt).err().expect("not a PEM key");
    assert_eq!(error.name, "JWT_PUBLIC_KEY_FILE");
}
