//! Settings are refused by name, and secrets never show in their Debug output.

use jsonwebtoken::Algorithm;

use super::*;

const SECRET: &str = "0123456789abcdef0123456789abcdef";

fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    let mut map: HashMap<String, String> =
        [("DATABASE_URL", "postgres://u:hunter2@db/app"), ("JWT_SECRET", SECRET)]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    map.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    map
}

fn error_for(pairs: &[(&str, &str)]) -> ConfigError {
    Config::from_vars(&vars(pairs)).expect_err("config should be refused")
}

#[test]
fn defaults_follow_the_contract() {
    let config = Config::from_vars(&vars(&[])).expect("valid config");
    assert_eq!(config.listen_addr.to_string(), "0.0.0.0:8080");
    assert_eq!(config.jwt.algorithms, vec![Algorithm::HS256]);
    assert_eq!(config.stripe.api_base.as_str(), "https://api.stripe.com/");
    assert_eq!(config.cors_allowed_origins, CorsOrigins::None);
    assert_eq!(config.stripe.max_retries, 2);
}

#[test]
fn missing_database_url_is_named() {
    let mut map = vars(&[]);
    map.remove("DATABASE_URL");
    let err = Config::from_vars(&map).expect_err("refused");
    assert_eq!(err.name, "DATABASE_URL");
}

#[test]
fn malformed_database_url_is_named_without_its_password() {
    let err = error_for(&[("DATABASE_URL", "mysql://u:hunter2@db")]);
    assert_eq!(err.name, "DATABASE_URL");
    assert!(!err.to_string().contains("hunter2"));
}

#[test]
fn debug_output_never_shows_the_database_password() {
    let config = Config::from_vars(&vars(&[])).expect("valid config");
    assert!(!format!("{config:?}").contains("hunter2"));
}

#[test]
fn short_jwt_secret_is_refused() {
    assert_eq!(error_for(&[("JWT_SECRET", "short")]).name, "JWT_SECRET");
}

#[test]
fn missing_jwt_secret_is_refused_for_hmac() {
    let mut map = vars(&[]);
    map.remove("JWT_SECRET");
    assert_eq!(Config::from_vars(&map).expect_err("refused").name, "JWT_SECRET");
}

#[test]
fn unknown_or_none_algorithm_is_refused() {
    assert_eq!(error_for(&[("JWT_ALGORITHMS", "none")]).name, "JWT_ALGORITHMS");
    assert_eq!(error_for(&[("JWT_ALGORITHMS", "HS257")]).name, "JWT_ALGORITHMS");
}

#[test]
fn mixing_hmac_and_public_key_algorithms_is_refused() {
    assert_eq!(error_for(&[("JWT_ALGORITHMS", "HS256,RS256")]).name, "JWT_ALGORITHMS");
}

#[test]
fn public_key_algorithms_need_a_key_file() {
    assert_eq!(error_for(&[("JWT_ALGORITHMS", "RS256")]).name, "JWT_PUBLIC_KEY_FILE");
}

#[test]
fn header_timeout_must_be_positive() {
    assert_eq!(error_for(&[("HTTP_HEADER_TIMEOUT_SECONDS", "0")]).name, "HTTP_HEADER_TIMEOUT_SECONDS");
    assert_eq!(error_for(&[("HTTP_HEADER_TIMEOUT_SECONDS", "soon")]).name, "HTTP_HEADER_TIMEOUT_SECONDS");
}

#[test]
fn worker_threads_must_be_a_positive_count() {
    assert_eq!(error_for(&[("WORKER_THREADS", "0")]).name, "WORKER_THREADS");
    assert_eq!(error_for(&[("WORKER_THREADS", "all")]).name, "WORKER_THREADS");
}

#[test]
fn bad_listen_addr_is_named() {
    assert_eq!(error_for(&[("LISTEN_ADDR", "localhost")]).name, "LISTEN_ADDR");
}

#[test]
fn stripe_api_base_must_be_http_url() {
    assert_eq!(error_for(&[("STRIPE_API_BASE", "ftp://x")]).name, "STRIPE_API_BASE");
    assert_eq!(error_for(&[("STRIPE_API_BASE", "not a url")]).name, "STRIPE_API_BASE");
}

#[test]
fn cors_origins_must_be_bare_origins() {
    assert_eq!(error_for(&[("CORS_ALLOWED_ORIGINS", "https://a.example/path")]).name, "CORS_ALLOWED_ORIGINS");
    let config =
        Config::from_vars(&vars(&[("CORS_ALLOWED_ORIGINS", "https://a.example, http://localhost:3000")]))
            .expect("valid");
    assert_eq!(
        config.cors_allowed_origins,
        CorsOrigins::List(vec!["https://a.example".into(), "http://localhost:3000".into()])
    );
}

#[test]
fn zero_timeouts_are_refused() {
    assert_eq!(error_for(&[("STRIPE_TIMEOUT_MS", "0")]).name, "STRIPE_TIMEOUT_MS");
    assert_eq!(error_for(&[("DATABASE_ACQUIRE_TIMEOUT_MS", "abc")]).name, "DATABASE_ACQUIRE_TIMEOUT_MS");
}

#[test]
fn a_malformed_encryption_key_is_refused() {
    assert_eq!(error_for(&[("SECRETS_ENCRYPTION_KEY", "short")]).name, "SECRETS_ENCRYPTION_KEY");
}

#[test]
fn jwks_url_needs_public_key_algorithms() {
    assert_eq!(error_for(&[("JWKS_URL", "https://idp.example/jwks")]).name, "JWKS_URL");
    let config =
        Config::from_vars(&vars(&[("JWT_ALGORITHMS", "RS256"), ("JWKS_URL", "https://idp.example/jwks")]))
            .expect("valid");
    assert!(matches!(config.jwt.key, JwtKeySource::Jwks(..)));
}

#[test]
fn the_stripe_budget_defaults_stay_under_stripes_account_limits() {
    let config = Config::from_vars(&vars(&[])).expect("valid config");
    assert_eq!(config.stripe_budget.test, Quota { per_minute: 20 * 60, burst: 20 });
    assert_eq!(config.stripe_budget.live, Quota { per_minute: 80 * 60, burst: 80 });
    assert!(config.redis.is_none(), "no Redis: limits per process");
}

#[test]
fn a_bad_redis_url_is_named_without_repeating_it() {
    for url in ["http://cache:6379", "rediss://:hunter2@cache:6380", "redis://:hunter2@[bad"] {
        let err = error_for(&[("REDIS_URL", url)]);
        assert_eq!(err.name, "REDIS_URL", "{url}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}

#[test]
fn redis_settings_are_read_and_the_url_is_never_printed() {
    let config = Config::from_vars(&vars(&[
        ("REDIS_URL", "redis://:hunter2@cache:6379/0"),
        ("REDIS_TIMEOUT_MS", "20"),
    ]))
    .expect("valid config");
    let redis = config.redis.as_ref().expect("redis configured");
    assert_eq!(redis.timeout, Duration::from_millis(20));
    assert_eq!(redis.key_prefix, "customer-portal");
    assert!(!format!("{config:?}").contains("hunter2"));
}

#[test]
fn pgbouncer_mode_needs_a_direct_url_for_migrations_and_admin_commands() {
    let err = error_for(&[("DATABASE_PGBOUNCER", "true")]);
    assert_eq!(err.name, "DATABASE_DIRECT_URL");

    let config = Config::from_vars(&vars(&[
        ("DATABASE_PGBOUNCER", "true"),
        ("DATABASE_DIRECT_URL", "postgres://u:hunter2@db-direct:5432/app"),
    ]))
    .expect("valid config");
    assert!(config.database.pgbouncer);
    let session = config.database.session();
    assert!(!session.pgbouncer);
    assert_eq!(session.connect_options.get_host(), "db-direct");
}
