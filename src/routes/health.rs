//! Liveness and readiness, for orchestrators and load balancers.

use std::time::Duration;

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::{AppState, db};

/// How long readiness waits for the database before saying no.
const READY_WITHIN: Duration = Duration::from_secs(1);

/// The process is up and serving HTTP.
pub async fn live() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// The service can do its work: the database answers in time.
pub async fn ready(State(state): State<AppState>) -> Response {
    if db::is_ready(&state.db, READY_WITHIN).await {
        Json(json!({ "status": "ok" })).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "detail": "Database unavailable" }))).into_response()
    }
}
