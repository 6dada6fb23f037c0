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

mod jwks {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, jwk::Jwk};
    use serde_json::json;
    use sqlx::PgPool;
    use wiremock::{Mock, MockServer, ResponseTemplate, matchers};

    use super::read;
    use crate::support::*;

    fn rsa_key() -> EncodingKey {
        EncodingKey::from_rsa_pem(&read("rsa-private.pem")).expect("rsa key")
    }

    fn jwks(kid: &str) -> serde_json::Value {
        let mut jwk = Jwk::from_encoding_key(&rsa_key(), Algorithm::RS256).expect("jwk");
        jwk.common.key_id = Some(kid.to_owned());
        json!({ "keys": [jwk] })
    }

    fn signed_with_kid(kid: Option<&str>, claims: &serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &rsa_key()).expect("signs")
    }

    async fn app_with_jwks(db: PgPool, idp: &MockServer, interval_ms: &str) -> TestApp {
        let url = format!("{}/.well-known/jwks.json", idp.uri());
        let app = TestApp::spawn_with(
            db,
            &[("JWT_ALGORITHMS", "RS256"), ("JWKS_URL", &url), ("JWKS_REFRESH_INTERVAL_MS", interval_ms)],
        )
        .await;
        app.stripe_creates_sessions().await;
        app
    }

    async fn status(app: &TestApp, token: &str) -> u16 {
        app.post_portal(Some(token), "", json!({ "return_url": RETURN_URL })).await.status().as_u16()
    }

    #[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
    async fn accepts_a_token_whose_kid_is_in_the_jwks(db: PgPool) {
        let idp = MockServer::start().await;
        Mock::given(matchers::path("/.well-known/jwks.json"))
            .respond_with(ResponseTemplate::new(200).set_body_json(jwks("key-1")))
            .mount(&idp)
            .await;
        let app = app_with_jwks(db, &idp, "5000").await;
        let project = app.seed("user_1").await;

        assert_eq!(status(&app, &signed_with_kid(Some("key-1"), &claims(project, "user_1"))).await, 200);
    }

    #[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
    async fn refuses_a_token_without_kid_when_keys_come_from_jwks(db: PgPool) {
        let idp = MockServer::start().await;
        Mock::given(matchers::any())
            .respond_with(ResponseTemplate::new(200).set_body_json(jwks("key-1")))
            .mount(&idp)
            .await;
        let app = app_with_jwks(db, &idp, "5000").await;
        let project = app.seed("user_1").await;

        assert_eq!(status(&app, &signed_with_kid(None, &claims(project, "user_1"))).await, 401);
    }

    #[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
    async fn fetches_the_jwks_again_when_a_rotated_kid_appears(db: PgPool) {
        let idp = MockServer::start().await;
        Mock::given(matchers::any())
            .respond_with(ResponseTemplate::new(200).set_body_json(jwks("old")))
            .up_to_n_times(1)
            .mount(&idp)
            .await;
        Mock::given(matchers::any())
            .respond_with(ResponseTemplate::new(200).set_body_json(jwks("new")))
            .mount(&idp)
            .await;
        let app = app_with_jwks(db, &idp, "1").await;
        let project = app.seed("user_1").await;
        let claims = claims(project, "user_1");

        assert_eq!(status(&app, &signed_with_kid(Some("old"), &claims)).await, 200);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        assert_eq!(status(&app, &signed_with_kid(Some("new"), &claims)).await, 200);
    }

    #[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
    async fn unknown_kids_refetch_the_jwks_at_most_once_per_interval(db: PgPool) {
        let idp = MockServer::start().await;
        Mock::given(matchers::any())
            .respond_with(ResponseTemplate::new(200).set_body_json(jwks("key-1")))
            .expect(1)
            .mount(&idp)
            .await;
        let app = app_with_jwks(db, &idp, "60000").await;
        let project = app.seed("user_1").await;
        let claims = claims(project, "user_1");

        assert_eq!(status(&app, &signed_with_kid(Some("key-1"), &claims)).await, 200);
        for forged in ["a", "b", "c", "d"] {
            assert_eq!(status(&app, &signed_with_kid(Some(forged), &claims)).await, 401);
        }
    }

    #[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
    async fn serves_cached_keys_while_the_jwks_endpoint_is_down(db: PgPool) {
        let idp = MockServer::start().await;
        Mock::given(matchers::any())
            .respond_with(ResponseTemplate::new(200).set_body_json(jwks("key-1")))
            .up_to_n_times(1)
            .mount(&idp)
            .await;
        Mock::given(matchers::any()).respond_with(ResponseTemplate::new(503)).mount(&idp).await;
        let app = app_with_jwks(db, &idp, "1").await;
        let project = app.seed("user_1").await;
        let claims = claims(project, "user_1");

        assert_eq!(status(&app, &signed_with_kid(Some("key-1"), &claims)).await, 200);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        // An unknown kid makes it refetch, which fails; the cached key keeps working.
        assert_eq!(status(&app, &signed_with_kid(Some("other"), &claims)).await, 401);
        assert_eq!(status(&app, &signed_with_kid(Some("key-1"), &claims)).await, 200);
    }
}
