//! Liveness and readiness, for orchestrators and load balancers.

use std::time::Duration;

use axum::{Json, extract::State};
use serde_json::json;
use sqlx::PgPool;

use crate::{db, error::ApiError};

/// How long readiness waits for the database before saying no.
const READY_WITHIN: Duration = Duration::from_secs(1);

/// Liveness: the process is up and serving HTTP. Never touches the database.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive.", example = json!({"status": "ok"}))))]
pub async fn live() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: the database answers within a second.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready.", example = json!({"status": "ok"})),
        (status = 503, description = "The database does not answer.", body = crate::error::ErrorBody,
            example = json!({"detail": "Database unavailable"})),
    ))]
pub async fn ready(State(db): State<PgPool>) -> Result<Json<serde_json::Value>, ApiError> {
    if db::is_ready(&db, READY_WITHIN).await {
        Ok(Json(json!({ "status": "ok" })))
    } else {
        Err(ApiError::NotReady)
    }
}
