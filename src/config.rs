//! Settings, read from the environment once at start-up and validated, so that a bad
//! setting stops the process before it binds, with a message naming the variable.

use std::{collections::HashMap, net::SocketAddr, str::FromStr, time::Duration};

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use sqlx::postgres::PgConnectOptions;
use url::Url;

mod jwt;
mod limits;
#[cfg(test)]
mod tests;

use jwt::jwt_config;
pub use jwt::{JwtConfig, JwtKeySource};
pub use limits::{RedisConfig, StripeBudget};

/// Everything the service needs to run.
#[derive(Clone, Debug)]
pub struct Config {
    pub database: DatabaseConfig,
    pub listen_addr: SocketAddr,
    pub jwt: JwtConfig,
    pub stripe: StripeConfig,
    /// Origins a browser may call from; empty means no CORS headers at all.
    pub cors_allowed_origins: CorsOrigins,
    /// Origins every `return_url` must be on, as `scheme://host[:port]`; empty means any
    /// http(s) origin.
    pub return_url_allowed_origins: Vec<String>,
    /// `SECRETS_ENCRYPTION_KEY`: decrypts Stripe keys stored encrypted, first one current;
    /// empty when none are configured.
    pub encryption_keys: Vec<EncryptionKey>,
    pub max_body_bytes: usize,
    pub user_quota: Quota,
    pub project_quota: Quota,
    /// Calls to Stripe per project and mode, under Stripe's own per-account limit.
    pub stripe_budget: StripeBudget,
    /// `REDIS_URL`: where the quotas above are shared by every replica; `None` counts
    /// them in this process only.
    pub redis: Option<RedisConfig>,
    /// Portal requests served at once; more are shed with a 503 so memory stays bounded.
    pub max_in_flight: usize,
    /// `WORKER_THREADS`: threads serving requests, each with a runtime of its own;
    /// default, the CPUs this process may use.
    pub worker_threads: usize,
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
    /// Connections that apply webhook events, each one event at a time.
    pub webhook_connections: usize,
    /// `DATABASE_PGBOUNCER`: `DATABASE_URL` is a PgBouncer in transaction mode, so no
    /// statement outlives its transaction and no startup option is sent.
    pub pgbouncer: bool,
    /// `DATABASE_DIRECT_URL`: a connection with a session of its own (PostgreSQL itself
    /// or a session-mode pool), for migrations and admin commands; required with
    /// `pgbouncer`.
    pub direct_connect_options: Option<PgConnectOptions>,
}

impl DatabaseConfig {
    /// The same settings on a connection with a session of its own: `DATABASE_DIRECT_URL`
    /// when set. What migrations and the admin commands use.
    pub fn session(self) -> Self {
        match self.direct_connect_options.clone() {
            Some(direct) => Self { connect_options: direct, pgbouncer: false, ..self },
            None => self,
        }
    }
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
            .field("webhook_connections", &self.webhook_connections)
            .field("pgbouncer", &self.pgbouncer)
            .finish_non_exhaustive()
    }
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

/// Request quotas: `per_minute` requests on average, `burst` at once. Zero disables one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    pub per_minute: u32,
    pub burst: u32,
}

/// `CORS_ALLOWED_ORIGINS`: none, any (`*`), or a list of origins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CorsOrigins {
    None,
    Any,
    List(Vec<String>),
}

/// One AES-256 key of `SECRETS_ENCRYPTION_KEY`: 32 bytes, never printed.
#[derive(Clone)]
pub struct EncryptionKey([u8; 32]);

impl EncryptionKey {
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EncryptionKey(..)")
    }
}

/// Parses comma-separated base64 keys of 32 bytes each, first one current.
pub fn parse_encryption_keys(value: &str) -> Result<Vec<EncryptionKey>, String> {
    let keys = value
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(|encoded| {
            let bytes = B64.decode(encoded).map_err(|_| "each key must be base64".to_owned())?;
            let bytes = <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
                format!("each key must be 32 bytes (base64 of 32 random bytes), got {}", bytes.len())
            })?;
            Ok(EncryptionKey(bytes))
        })
        .collect::<Result<Vec<_>, String>>()?;
    if keys.is_empty() {
        return Err("no key given".into());
    }
    Ok(keys)
}

/// A web origin as browsers compare them, `scheme://host[:port]`, from a bare origin such
/// as `https://app.example.com`; anything with a path, query or credentials is refused.
pub fn parse_origin(s: &str) -> Result<String, String> {
    let url = Url::parse(s).map_err(|_| format!("{s:?} is not an origin"))?;
    let is_bare = url.path() == "/" && url.query().is_none() && url.fragment().is_none();
    if !matches!(url.scheme(), "http" | "https") || !is_bare || !url.username().is_empty() {
        return Err(format!("{s:?} is not an origin like https://app.example.com"));
    }
    Ok(url.origin().ascii_serialization())
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
            stripe: stripe_config(&get)?,
            cors_allowed_origins: cors_origins(get("CORS_ALLOWED_ORIGINS"))?,
            return_url_allowed_origins: origin_list(
                get("RETURN_URL_ALLOWED_ORIGINS"),
                "RETURN_URL_ALLOWED_ORIGINS",
            )?,
            encryption_keys: encryption_keys(&get)?,
            max_body_bytes: parse_or(get("MAX_BODY_BYTES"), "MAX_BODY_BYTES", Some(4 * 1024))
                .and_then(|n: usize| positive("MAX_BODY_BYTES", n))?,
            user_quota: Quota {
                per_minute: parse_or(
                    get("RATE_LIMIT_USER_PER_MINUTE"),
                    "RATE_LIMIT_USER_PER_MINUTE",
                    Some(30),
                )?,
                burst: parse_or(get("RATE_LIMIT_USER_BURST"), "RATE_LIMIT_USER_BURST", Some(10))?,
            },
            project_quota: Quota {
                per_minute: parse_or(
                    get("RATE_LIMIT_PROJECT_PER_MINUTE"),
                    "RATE_LIMIT_PROJECT_PER_MINUTE",
                    Some(6000),
                )?,
                burst: parse_or(get("RATE_LIMIT_PROJECT_BURST"), "RATE_LIMIT_PROJECT_BURST", Some(200))?,
            },
            stripe_budget: limits::stripe_budget(&get)?,
            redis: limits::redis_config(&get)?,
            max_in_flight: parse_or(get("MAX_IN_FLIGHT"), "MAX_IN_FLIGHT", Some(4096))
                .and_then(|n: usize| positive("MAX_IN_FLIGHT", n))?,
            worker_threads: parse_or(
                get("WORKER_THREADS"),
                "WORKER_THREADS",
                Some(std::thread::available_parallelism().map_or(1, usize::from)),
            )
            .and_then(|n: usize| positive("WORKER_THREADS", n))?,
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
/// secrets keys; Stripe's settings only for `webhook-setup`, and they all have defaults.
/// Not the token settings, so a team can set up a project before the service is
/// configured.
#[derive(Debug)]
pub struct AdminConfig {
    pub database: DatabaseConfig,
    pub encryption_keys: Vec<EncryptionKey>,
    pub stripe: StripeConfig,
}

impl AdminConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let vars: HashMap<String, String> = std::env::vars().collect();
        let get = |name: &str| vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
        Ok(Self {
            database: database_config(&get)?.session(),
            encryption_keys: encryption_keys(&get)?,
            stripe: stripe_config(&get)?,
        })
    }
}

fn stripe_config<'a>(get: &impl Fn(&str) -> Option<&'a str>) -> Result<StripeConfig, ConfigError> {
    Ok(StripeConfig {
        api_base: stripe_api_base(get("STRIPE_API_BASE"))?,
        connect_timeout: millis(get("STRIPE_CONNECT_TIMEOUT_MS"), "STRIPE_CONNECT_TIMEOUT_MS", 2_000)?,
        timeout: millis(get("STRIPE_TIMEOUT_MS"), "STRIPE_TIMEOUT_MS", 10_000)?,
        max_retries: parse_or(get("STRIPE_MAX_RETRIES"), "STRIPE_MAX_RETRIES", Some(2))?,
        retry_initial_backoff: millis(get("STRIPE_RETRY_BACKOFF_MS"), "STRIPE_RETRY_BACKOFF_MS", 500)?,
    })
}

fn database_config<'a>(get: &impl Fn(&str) -> Option<&'a str>) -> Result<DatabaseConfig, ConfigError> {
    let database_url = get("DATABASE_URL").ok_or_else(|| bad("DATABASE_URL", "is required"))?;
    let connect_options = postgres_url("DATABASE_URL", database_url)?;
    let pgbouncer = parse_or(get("DATABASE_PGBOUNCER"), "DATABASE_PGBOUNCER", Some(false))?;
    let direct_connect_options =
        get("DATABASE_DIRECT_URL").map(|url| postgres_url("DATABASE_DIRECT_URL", url)).transpose()?;
    if pgbouncer && direct_connect_options.is_none() {
        return Err(bad(
            "DATABASE_DIRECT_URL",
            "is required with DATABASE_PGBOUNCER=true: migrations and admin commands need a session \
             (PostgreSQL itself, or a PgBouncer pool in session mode)",
        ));
    }
    let max_connections = parse_or(get("DATABASE_MAX_CONNECTIONS"), "DATABASE_MAX_CONNECTIONS", Some(10))
        .and_then(|n: u32| positive("DATABASE_MAX_CONNECTIONS", n))?;
    let lookup_connections = parse_or(
        get("DATABASE_LOOKUP_CONNECTIONS"),
        "DATABASE_LOOKUP_CONNECTIONS",
        Some(2_usize.min(max_connections as usize)),
    )
    .and_then(|n| positive("DATABASE_LOOKUP_CONNECTIONS", n))?;
    let webhook_connections = parse_or(
        get("DATABASE_WEBHOOK_CONNECTIONS"),
        "DATABASE_WEBHOOK_CONNECTIONS",
        Some(4_usize.min(max_connections as usize)),
    )
    .and_then(|n| positive("DATABASE_WEBHOOK_CONNECTIONS", n))?;
    for (name, n) in [
        ("DATABASE_LOOKUP_CONNECTIONS", lookup_connections),
        ("DATABASE_WEBHOOK_CONNECTIONS", webhook_connections),
    ] {
        if n > max_connections as usize {
            return Err(bad(name, format!("must be at most DATABASE_MAX_CONNECTIONS ({max_connections})")));
        }
    }
    Ok(DatabaseConfig {
        connect_options,
        max_connections,
        lookup_connections,
        webhook_connections,
        pgbouncer,
        direct_connect_options,
        acquire_timeout: millis(get("DATABASE_ACQUIRE_TIMEOUT_MS"), "DATABASE_ACQUIRE_TIMEOUT_MS", 1_500)?,
        query_timeout: millis(get("DATABASE_QUERY_TIMEOUT_MS"), "DATABASE_QUERY_TIMEOUT_MS", 2_000)?,
    })
}

/// A PostgreSQL URL; the URL may hold a password, so the message never repeats it.
fn postgres_url(name: &'static str, url: &str) -> Result<PgConnectOptions, ConfigError> {
    Some(url)
        .filter(|url| url.starts_with("postgres://") || url.starts_with("postgresql://"))
        .and_then(|url| PgConnectOptions::from_str(url).ok())
        .ok_or_else(|| bad(name, "is not a valid postgres:// URL"))
}

fn encryption_keys<'a>(get: &impl Fn(&str) -> Option<&'a str>) -> Result<Vec<EncryptionKey>, ConfigError> {
    get("SECRETS_ENCRYPTION_KEY")
        .map(|v| parse_encryption_keys(v).map_err(|e| bad("SECRETS_ENCRYPTION_KEY", e)))
        .transpose()
        .map(Option::unwrap_or_default)
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
        Some(_) => Ok(CorsOrigins::List(origin_list(value, name)?)),
    }
}

fn origin_list(value: Option<&str>, name: &'static str) -> Result<Vec<String>, ConfigError> {
    value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| parse_origin(s).map_err(|e| bad(name, e)))
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
