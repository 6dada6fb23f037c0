//! The HTTP routes, and FastAPI-shaped answers for requests that match none of them.

mod health;
mod openapi;
mod portal;

pub use openapi::ApiDoc;

use std::time::Duration;

use axum::{
    BoxError, Router,
    error_handling::HandleErrorLayer,
    http::{HeaderName, Method, header},
    routing::{get, post},
};
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::{AppState, config::CorsOrigins, error::ApiError, metrics};

pub const PORTAL_PATH: &str = "/api/v1/payments/stripe/customer-portal";

pub fn router(max_in_flight: usize) -> Router<AppState> {
    // Only the portal route is limited: health checks must answer under any load.
    let shed = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(|_: BoxError| async { ApiError::Overloaded }))
        .load_shed()
        .concurrency_limit(max_in_flight);
    Router::new()
        .route(PORTAL_PATH, post(portal::create_session).layer(shed))
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
pub fn cors(origins: &CorsOrigins) -> Option<CorsLayer> {
    let allow = match origins {
        CorsOrigins::None => return None,
        CorsOrigins::Any => AllowOrigin::any(),
        CorsOrigins::List(list) => AllowOrigin::list(list.iter().cloned()),
    };
    let layer = CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, HeaderName::from_static("x-request-id")])
        .expose_headers([header::RETRY_AFTER, HeaderName::from_static("x-request-id")])
        .max_age(Duration::from_secs(600));
    Some(layer)
}
