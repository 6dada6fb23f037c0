//! `GET /metrics`, and the middleware that counts and times every request.

use std::{sync::Arc, time::Instant};

use axum::{
    extract::{MatchedPath, Request, State},
    http::{HeaderValue, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use sqlx::PgPool;

use crate::metrics::Metrics;

/// The OpenMetrics text format Prometheus scrapes, with the pool read at scrape time.
pub async fn serve(State(metrics): State<Arc<Metrics>>, State(db): State<PgPool>) -> Response {
    let mut response = metrics.render(&db).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

/// Counts and times every request, labelled by its route template.
pub async fn record(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let response = next.run(request).await;
    metrics.observe_request(
        &method,
        route.as_deref().unwrap_or("unmatched"),
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}
