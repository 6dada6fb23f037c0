//! The HTTP routes, and FastAPI-shaped answers for requests that match none of them.

mod checkout_sync;
mod extract;
mod health;
mod metrics;
mod openapi;
mod portal;
mod state;
mod webhooks;

pub use portal::PATH as PORTAL_PATH;
pub use state::{AppState, StartupError};

use std::time::Duration;

use axum::{
    BoxError, Router,
    error_handling::HandleErrorLayer,
    extract::DefaultBodyLimit,
    http::{HeaderName, HeaderValue, Method, header},
    response::IntoResponse,
    routing::{get, post},
};
use tower::ServiceBuilder;
use tower_http::{
    catch_panic::CatchPanicLayer,
    cors::{AllowOrigin, CorsLayer},
};

use crate::{config::CorsOrigins, error::ApiError, telemetry};

/// The whole HTTP application: routes and the layers around them.
pub fn app(state: AppState) -> Router {
    let config = &state.config;
    let mut router = router(config.max_in_flight)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::record));
    if let Some(cors) = cors(&config.cors_allowed_origins) {
        router = router.layer(cors);
    }
    telemetry::instrument(router)
        // A bug must cost one request a 500, never the process.
        .layer(CatchPanicLayer::custom(|_| ApiError::Internal("handler panicked".into()).into_response()))
        .with_state(state)
}

fn router(max_in_flight: usize) -> Router<AppState> {
    // Only the portal route is limited: health checks must answer under any load.
    let shed = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(|_: BoxError| async { ApiError::Overloaded }))
        .load_shed()
        .concurrency_limit(max_in_flight);
    Router::new()
        .route(portal::PATH, post(portal::create_session).layer(shed))
        .route(checkout_sync::PATH, post(checkout_sync::sync))
        .route(webhooks::PATH, post(webhooks::receive).layer(DefaultBodyLimit::max(webhooks::MAX_BODY_BYTES)))
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
        .route("/metrics", get(metrics::serve))
        .route("/openapi.json", get(openapi::document))
        .merge(openapi::swagger_ui())
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
}

/// Browsers may call from the configured origins only; with none configured the
/// service sends no CORS headers, so only same-origin pages can read its answers.
fn cors(origins: &CorsOrigins) -> Option<CorsLayer> {
    let allow = match origins {
        CorsOrigins::None => return None,
        CorsOrigins::Any => AllowOrigin::any(),
        // Each was checked to be a bare origin at start-up, so each is a valid header value.
        CorsOrigins::List(list) => {
            AllowOrigin::list(list.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
        }
    };
    let layer = CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, HeaderName::from_static("x-request-id")])
        .expose_headers([header::RETRY_AFTER, HeaderName::from_static("x-request-id")])
        .max_age(Duration::from_secs(600));
    Some(layer)
}
