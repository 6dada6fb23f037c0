//! Settings, read from the environment once at start-up and validated, so that a bad
//! setting stops the process before it binds, with a message naming the variable.

use std::{collections::HashMap, net::SocketAddr, str::FromStr, time::Duration};

use axum::http::HeaderValue;
use jsonwebtoken::{Algorithm, AlgorithmFamily};
use secrecy::SecretString;
use sqlx::postgres::PgConnectOptions;
use url::Url;

use crate::{rate_limit::Limit, secrets::KeyRing};

/// Everything the service needs to run.
#[derive(Clone, Debug)]
pub struct Config {
    pub database: DatabaseConfig,
    pub listen_addr: SocketAddr,
    pub jwt: JwtConfig,
    pub stripe: StripeConfig,
    /// Origins a browser may call from; empty means no CORS headers at all.
    pub cors_allowed_origins: CorsOrigins,
    /// Origins every `return_url` must be on; empty means any http(s) origin.
    pub return_url_allowed_origins: Vec<Origin>,
    /// Decrypts Stripe keys stored encrypted; `None` when none are configured.
    pub secrets: Option<KeyRing>,
    pub max_body_bytes: usize,
    pub rate_limit_per_user: Limit,
    pub rate_limit_per_project: Limit,
    /// Portal requests served at once; more are shed with a 503 so memory stays bounded.
    pub max_in_flight: usize,
    pub shutdown_grace: Duration,
    /// How long a connection may take to deliver a request's headers, idle keep-alive
    /// time included, before it is closed.
    pub header_timeout: Duration,
}

#[derive(Clone)]
pub struct DatabaseConfig {
    pub connect_options: PgConnectOptions,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// How long a portal lookup query may run before its requests get a 503.
    pub query_timeout: Duration,
    /// Connections that answer portal lookups, each one batch at a time.
    pub lookup_connections: usize,
}

/// By hand, because `PgConnectOptions`' own Debug prints the password.
impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let o = &self.connect_options;
        f.debug_struct("DatabaseConfig")
            .field("host", &o.get_host())
            .field("port", &o.get_port())
            .field("database", &o.get_database())
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("query_timeout", &self.query_timeout)
            .field("lookup_connections", &self.lookup_connections)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug)]
pub struct JwtConfig {
    pub algorithms: Vec<Algorithm>,
    pub key: JwtKey,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub leeway: Duration,
}

/// Where token signatures are checked against; the algorithm family decides which.
#[derive(Clone, Debug)]
pub enum JwtKey {
    Secret(SecretString),
    PublicKeyPem(Vec<u8>),
    /// Keys fetched from a JWKS endpoint, picked by the token's `kid`, refetched at
    /// most once per interval.
    Jwks(Url, Duration),
}

#[derive(Clone, Debug)]
pub struct StripeConfig {
    pub api_base: Url,
    pub connect_timeout: Duration,
    /// The whole call, retries included.
    pub timeout: Duration,
    pub max_retries: u32,
    /// The first retry's delay; later ones double, with jitter.
    pub retry_initial_backoff: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CorsOrigins {
    None,
    Any,
    List(Vec<HeaderValue>),
}

/// A web origin, `scheme://host[:port]`, as browsers compare them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin(String);

impl Origin {
    /// The origin of an absolute http(s) URL.
    pub fn of(url: &Url) -> Self {
        Origin(url.origin().ascii_serialization())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Origin {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let url = Url::parse(s).map_err(|_| format!("{s:?} is not an origin"))?;
        let is_bare = url.path() == "/" && url.query().is_none() && url.fragment().is_none();
        if !matches!(url.scheme(), "http" | "https") || !is_bare || !url.username().is_empty() {
            return Err(format!("{s:?} is not an origin like https://app.example.com"));
        }
        Ok(Origin::of(&url))
    }
}

/// A setting that is missing or malformed; the message names the variable.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {message}")]
pub struct ConfigError {
    pub name: &'static str,
    pub message: String,
}

fn bad(name: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError { name, message: message.into() }
}

const MIN_SECRET_BYTES: usize = 32;

impl Config {
    /// Reads the process environment (after `.env`, which `main` loads).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(&std::env::vars().collect())
    }

    /// Reads the given variables; empty values count as unset.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |name: &str| vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());

        let listen_addr = parse_or(get("LISTEN_ADDR"), "LISTEN_ADDR", "0.0.0.0:8080".parse().ok())?;

        Ok(Config {
            database: database_config(&get)?,
            listen_addr,
            jwt: jwt_config(&get)?,
            stripe: StripeConfig {
                api_base: stripe_api_base(get("STRIPE_API_BASE"))?,
                connect_timeout: millis(
                    get("STRIPE_CONNECT_TIMEOUT_MS"),
                    "STRIPE_CONNECT_TIMEOUT_MS",
                    2_000,
                )?,
                timeout: millis(get("STRIPE_TIMEOUT_MS"), "STRIPE_TIMEOUT_MS", 10_000)?,
                max_retries: parse_or(get("STRIPE_MAX_RETRIES"), "STRIPE_MAX_RETRIES", Some(2))?,
                retry_initial_backoff: millis(
                    get("STRIPE_RETRY_BACKOFF_MS"),
                    "STRIPE_RETRY_BACKOFF_MS",
                    500,
                )?,
            },
            cors_allowed_origins: cors_origins(get("CORS_ALLOWED_ORIGINS"))?,
            return_url_allowed_origins: origin_list(
                get("RETURN_URL_ALLOWED_ORIGINS"),
                "RETURN_URL_ALLOWED_ORIGINS",
            )?,
            secrets: secrets_config(&get)?,
            max_body_bytes: parse_or(get("MAX_BODY_BYTES"), "MAX_BODY_BYTES", Some(4 * 1024))
                .and_then(|n: usize| positive("MAX_BODY_BYTES", n))?,
            rate_limit_per_user: Limit {
                per_minute: parse_or(
                    get("RATE_LIMIT_USER_PER_MINUTE"),
                    "RATE_LIMIT_USER_PER_MINUTE",
                    Some(30),
                )?,
                burst: parse_or(get("RATE_LIMIT_USER_BURST"), "RATE_LIMIT_USER_BURST", Some(10))?,
            },
            rate_limit_per_project: Limit {
                per_minute: parse_or(
                    get("RATE_LIMIT_PROJECT_PER_MINUTE"),
                    "RATE_LIMIT_PROJECT_PER_MINUTE",
                    Some(6000),
                )?,
                burst: parse_or(get("RATE_LIMIT_PROJECT_BURST"), "RATE_LIMIT_PROJECT_BURST", Some(200))?,
            },
            max_in_flight: parse_or(get("MAX_IN_FLIGHT"), "MAX_IN_FLIGHT", Some(4096))
                .and_then(|n: usize| positive("MAX_IN_FLIGHT", n))?,
            shutdown_grace: Duration::from_secs(parse_or(
                get("SHUTDOWN_GRACE_SECONDS"),
                "SHUTDOWN_GRACE_SECONDS",
                Some(20),
            )?),
            header_timeout: Duration::from_secs(
                parse_or(get("HTTP_HEADER_TIMEOUT_SECONDS"), "HTTP_HEADER_TIMEOUT_SECONDS", Some(75))
                    .and_then(|n: u64| positive("HTTP_HEADER_TIMEOUT_SECONDS", n))?,
            ),
        })
    }
}

/// What the admin commands need: the database and, to encrypt or show keys, the
/// secrets keys. Not the token or Stripe settings, so a team can set up a project
/// before the service is configured.
#[derive(Debug)]
pub struct AdminConfig {
    pub database: DatabaseConfig,
    pub secrets: Option<KeyRing>,
}

impl AdminConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let vars: HashMap<String, String> = std::env::vars().collect();
        let get = |name: &str| vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
        Ok(Self { database: database_config(&get)?, secrets: secrets_config(&get)? })
    }
}

fn database_config<'a>(get: &impl Fn(&str) -> Option<&'a str>) -> Result<DatabaseConfig, ConfigError> {
    let database_url = get("DATABASE_URL").ok_or_else(|| bad("DATABASE_URL", "is required"))?;
    // The URL may hold a password, so the message never repeats it.
    let connect_options = Some(database_url)
        .filter(|url| url.starts_with("postgres://") || url.starts_with("postgresql://"))
        .and_then(|url| PgConnectOptions::from_str(url).ok())
        .ok_or_else(|| bad("DATABASE_URL", "is not a valid postgres:// URL"))?;
    let max_connections = parse_or(get("DATABASE_MAX_CONNECTIONS"), "DATABASE_MAX_CONNECTIONS", Some(10))
        .and_then(|n: u32| positive("DATABASE_MAX_CONNECTIONS", n))?;
    let lookup_connections = parse_or(
        get("DATABASE_LOOKUP_CONNECTIONS"),
        "DATABASE_LOOKUP_CONNECTIONS",
        Some(2_usize.min(max_connections as usize)),
    )
    .and_then(|n| positive("DATABASE_LOOKUP_CONNECTIONS", n))?;
    if lookup_connections > max_connections as usize {
        return Err(bad(
            "DATABASE_LOOKUP_CONNECTIONS",
            format!("must be at most DATABASE_MAX_CONNECTIONS ({max_connections})"),
        ));
    }
    Ok(DatabaseConfig {
        connect_options,
        max_connections,
        lookup_connections,
        acquire_timeout: millis(get("DATABASE_ACQUIRE_TIMEOUT_MS"), "DATABASE_ACQUIRE_TIMEOUT_MS", 1_500)?,
        query_timeout: millis(get("DATABASE_QUERY_TIMEOUT_MS"), "DATABASE_QUERY_TIMEOUT_MS", 2_000)?,
    })
}

fn secrets_config<'a>(get: &impl Fn(&str) -> Option<&'a str>) -> Result<Option<KeyRing>, ConfigError> {
    get("SECRETS_ENCRYPTION_KEY")
        .map(|v| KeyRing::parse(v).map_err(|e| bad("SECRETS_ENCRYPTION_KEY", e)))
        .transpose()
}

impl JwtConfig {
    /// Only the token settings, for commands that need no database.
    pub fn from_env() -> Result<Self, ConfigError> {
        let vars: HashMap<String, String> = std::env::vars().collect();
        jwt_config(&|name: &str| vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()))
    }
}

fn jwt_config<'a>(get: &impl Fn(&str) -> Option<&'a str>) -> Result<JwtConfig, ConfigError> {
    let algorithms = match get("JWT_ALGORITHMS") {
        None => vec![Algorithm::HS256],
        Some(list) => list
            .split(',')
            .map(|a| {
                let a = a.trim();
                // `none` is not an Algorithm variant, so it can never be allowed.
                Algorithm::from_str(a)
                    .map_err(|_| bad("JWT_ALGORITHMS", format!("{a:?} is not a supported algorithm")))
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    let families: Vec<_> = algorithms.iter().map(|a| a.family()).collect();
    if families.windows(2).any(|w| w[0] != w[1]) {
        // Mixing HMAC with public-key algorithms is how key-confusion attacks start.
        return Err(bad(
            "JWT_ALGORITHMS",
            "must all use the same kind of key (all HS*, all RS*/PS*, all ES*, or EdDSA)",
        ));
    }
    let key = if families[0] == AlgorithmFamily::Hmac {
        for name in ["JWT_PUBLIC_KEY_FILE", "JWKS_URL"] {
            if get(name).is_some() {
                return Err(bad(
                    name,
                    "is set but JWT_ALGORITHMS names HMAC algorithms; set JWT_ALGORITHMS to RS256, ES256 or EdDSA",
                ));
            }
        }
        let secret = get("JWT_SECRET").ok_or_else(|| bad("JWT_SECRET", "is required for HS* algorithms"))?;
        if secret.len() < MIN_SECRET_BYTES {
            return Err(bad("JWT_SECRET", format!("must be at least {MIN_SECRET_BYTES} bytes")));
        }
        JwtKey::Secret(secret.to_owned().into())
    } else {
        match (get("JWT_PUBLIC_KEY_FILE"), get("JWKS_URL")) {
            (Some(_), Some(_)) => {
                return Err(bad("JWKS_URL", "set JWT_PUBLIC_KEY_FILE or JWKS_URL, not both"));
            }
            (Some(path), None) => JwtKey::PublicKeyPem(
                std::fs::read(path)
                    .map_err(|e| bad("JWT_PUBLIC_KEY_FILE", format!("cannot read {path}: {e}")))?,
            ),
            (None, Some(url)) => JwtKey::Jwks(
                Url::parse(url)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .ok_or_else(|| bad("JWKS_URL", "must be an http(s) URL"))?,
                millis(get("JWKS_REFRESH_INTERVAL_MS"), "JWKS_REFRESH_INTERVAL_MS", 5_000)?,
            ),
            (None, None) => {
                return Err(bad("JWT_PUBLIC_KEY_FILE", "or JWKS_URL is required for public-key algorithms"));
            }
        }
    };
    Ok(JwtConfig {
        algorithms,
        key,
        issuer: get("JWT_ISSUER").map(str::to_owned),
        audience: get("JWT_AUDIENCE").map(str::to_owned),
        leeway: Duration::from_secs(parse_or(get("JWT_LEEWAY_SECONDS"), "JWT_LEEWAY_SECONDS", Some(30))?),
    })
}

fn stripe_api_base(value: Option<&str>) -> Result<Url, ConfigError> {
    let name = "STRIPE_API_BASE";
    let url = Url::parse(value.unwrap_or("https://api.stripe.com"))
        .map_err(|_| bad(name, "is not an absolute URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(bad(name, "must be an http(s) URL such as https://api.stripe.com"));
    }
    Ok(url)
}

fn cors_origins(value: Option<&str>) -> Result<CorsOrigins, ConfigError> {
    let name = "CORS_ALLOWED_ORIGINS";
    match value {
        None => Ok(CorsOrigins::None),
        Some("*") => Ok(CorsOrigins::Any),
        Some(_) => Ok(CorsOrigins::List(
            origin_list(value, name)?
                .iter()
                .map(|o| HeaderValue::from_str(o.as_str()).map_err(|_| bad(name, "has an invalid origin")))
                .collect::<Result<_, _>>()?,
        )),
    }
}

fn origin_list(value: Option<&str>, name: &'static str) -> Result<Vec<Origin>, ConfigError> {
    value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|e: String| bad(name, e)))
        .collect()
}

fn parse_or<T: FromStr>(
    value: Option<&str>,
    name: &'static str,
    default: Option<T>,
) -> Result<T, ConfigError> {
    match value {
        Some(v) => v.parse().map_err(|_| bad(name, format!("{v:?} is not valid"))),
        None => default.ok_or_else(|| bad(name, "is required")),
    }
}

fn positive<T: PartialOrd + Default>(name: &'static str, n: T) -> Result<T, ConfigError> {
    if n > T::default() { Ok(n) } else { Err(bad(name, "must be greater than 0")) }
}

fn millis(value: Option<&str>, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
    parse_or(value, name, Some(default)).and_then(|n| positive(name, n)).map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
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
        assert_eq!(
            error_for(&[("CORS_ALLOWED_ORIGINS", "https://a.example/path")]).name,
            "CORS_ALLOWED_ORIGINS"
        );
        let config =
            Config::from_vars(&vars(&[("CORS_ALLOWED_ORIGINS", "https://a.example, http://localhost:3000")]))
                .expect("valid");
        assert_eq!(
            config.cors_allowed_origins,
            CorsOrigins::List(vec![
                HeaderValue::from_static("https://a.example"),
                HeaderValue::from_static("http://localhost:3000")
            ])
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
        let config = Config::from_vars(&vars(&[
            ("JWT_ALGORITHMS", "RS256"),
            ("JWKS_URL", "https://idp.example/jwks"),
        ]))
        .expect("valid");
        assert!(matches!(config.jwt.key, JwtKey::Jwks(..)));
    }
}
