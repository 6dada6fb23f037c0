//! The application's state: built once from the configuration, shared by every request.

use std::sync::Arc;

use axum::extract::FromRef;
use sqlx::PgPool;

use crate::{
    auth::Authenticator,
    checkout_sync::CheckoutSync,
    config::{Config, ConfigError},
    lookup::Lookups,
    metrics::Metrics,
    portal::Portal,
    rate_limit::{Limits, RateLimitError, RateLimiter},
    secrets::EncryptionKeys,
    stripe::StripeClient,
    webhooks::{self, Webhooks},
};

/// What every request can reach: cheap handles, cloned per request. Handlers take the
/// part they need (`State<Arc<Portal>>`, `State<PgPool>`, ...).
#[derive(Clone)]
pub struct AppState {
    pub(super) config: Arc<Config>,
    db: PgPool,
    auth: Arc<Authenticator>,
    portal: Arc<Portal>,
    webhooks: Arc<Webhooks>,
    checkout_sync: Arc<CheckoutSync>,
    metrics: Arc<Metrics>,
}

impl FromRef<AppState> for Arc<Authenticator> {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

impl FromRef<AppState> for Arc<Portal> {
    fn from_ref(state: &AppState) -> Self {
        state.portal.clone()
    }
}

impl FromRef<AppState> for Arc<Webhooks> {
    fn from_ref(state: &AppState) -> Self {
        state.webhooks.clone()
    }
}

impl FromRef<AppState> for Arc<CheckoutSync> {
    fn from_ref(state: &AppState) -> Self {
        state.checkout_sync.clone()
    }
}

impl FromRef<AppState> for Arc<Metrics> {
    fn from_ref(state: &AppState) -> Self {
        state.metrics.clone()
    }
}

impl FromRef<AppState> for PgPool {
    fn from_ref(state: &AppState) -> Self {
        state.db.clone()
    }
}

/// Why the service could not be put together from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot build the Stripe HTTP client: {0}")]
    StripeClient(#[from] reqwest::Error),
    #[error(transparent)]
    RateLimiter(#[from] RateLimitError),
}

impl AppState {
    pub fn new(config: Config, db: PgPool) -> Result<Self, StartupError> {
        let database = &config.database;
        let lookups = Lookups::new(
            db.clone(),
            database.lookup_connections,
            config.worker_threads,
            database.query_timeout,
            config.max_in_flight,
            database.pgbouncer,
        );
        let metrics = Arc::new(Metrics::new(config.database.max_connections));
        let limits = Limits {
            user: config.user_quota,
            project: config.project_quota,
            stripe_test: config.stripe_budget.test,
            stripe_live: config.stripe_budget.live,
        };
        // One client and one limiter, so the portal and the sync share connections and quotas.
        let stripe = StripeClient::new(&config.stripe)?;
        let rate_limiter = Arc::new(RateLimiter::new(limits, config.redis.as_ref(), metrics.clone())?);
        let portal = Portal {
            lookups,
            stripe: stripe.clone(),
            rate_limiter: rate_limiter.clone(),
            metrics: metrics.clone(),
            encryption_keys: EncryptionKeys::new(&config.encryption_keys),
            allowed_origins: config.return_url_allowed_origins.clone(),
        };
        let webhooks = Webhooks::new(
            db.clone(),
            database.webhook_connections,
            EncryptionKeys::new(&config.encryption_keys),
        );
        webhooks::spawn_pruning(db.clone(), std::time::Duration::from_secs(3600));
        let checkout_sync = CheckoutSync {
            db: db.clone(),
            stripe,
            rate_limiter,
            metrics: metrics.clone(),
            encryption_keys: EncryptionKeys::new(&config.encryption_keys),
        };
        Ok(Self {
            auth: Arc::new(Authenticator::new(&config.jwt)?),
            portal: Arc::new(portal),
            webhooks: Arc::new(webhooks),
            checkout_sync: Arc::new(checkout_sync),
            metrics,
            config: Arc::new(config),
            db,
        })
    }
}
