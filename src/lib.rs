//! customer-portal: opens the Stripe Customer Portal for a SaaS app's signed-in users.
//!
//! `main.rs` only wires; everything here is reachable from tests without a socket.

pub mod admin;
pub mod auth;
pub mod config;
pub mod db;
pub mod error;
pub mod jwks;
pub mod lookup;
pub mod metrics;
pub mod rate_limit;
pub mod routes;
pub mod secrets;
pub mod server;
pub mod stripe;
pub mod telemetry;
pub mod validation;

pub use server::serve;

use std::sync::Arc;

use axum::{
    Router,
    extract::{DefaultBodyLimit, FromRef},
    response::IntoResponse,
};
use sqlx::PgPool;
use tower_http::catch_panic::CatchPanicLayer;

use crate::{
    auth::Authenticator, config::Config, error::ApiError, lookup::Lookups, metrics::Metrics,
    rate_limit::RateLimits, stripe::StripeClient,
};

/// What every request can reach: cheap handles, cloned per request.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: PgPool,
    pub lookups: Lookups,
    pub auth: Arc<Authenticator>,
    pub stripe: StripeClient,
    pub rate_limits: Arc<RateLimits>,
    pub metrics: Arc<Metrics>,
}

impl FromRef<AppState> for Arc<Authenticator> {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

/// Why the service could not be put together from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("cannot build the Stripe HTTP client: {0}")]
    StripeClient(#[from] reqwest::Error),
    #[error("cannot start the database lookup thread: {0}")]
    LookupThread(std::io::Error),
}

impl AppState {
    /// Starts the lookup loaders' thread.
    pub fn new(config: Config, db: PgPool) -> Result<Self, StartupError> {
        let database = &config.database;
        let lookups = Lookups::start(
            db.clone(),
            database.lookup_connections,
            database.query_timeout,
            config.max_in_flight,
        )
        .map_err(StartupError::LookupThread)?;
        Ok(Self {
            lookups,
            auth: Arc::new(Authenticator::new(&config.jwt)?),
            stripe: StripeClient::new(&config.stripe)?,
            rate_limits: Arc::new(RateLimits::new(config.rate_limit_per_user, config.rate_limit_per_project)),
            metrics: Arc::new(Metrics::new(config.database.max_connections)),
            config: Arc::new(config),
            db,
        })
    }
}

/// The whole HTTP application: routes and the layers around them.
pub fn app(state: AppState) -> Router {
    let config = &state.config;
    let mut router = routes::router(config.max_in_flight)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::record));
    if let Some(cors) = routes::cors(&config.cors_allowed_origins) {
        router = router.layer(cors);
    }
    telemetry::instrument(router)
        // A bug must cost one request a 500, never the process.
        .layer(CatchPanicLayer::custom(|_| ApiError::Internal("handler panicked".into()).into_response()))
        .with_state(state)
}
