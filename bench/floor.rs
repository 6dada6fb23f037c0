//! The benchmark's floor: what the service's stack costs with none of the service's
//! work. The same HTTP server (`server::serve_on_threads`, one runtime per core, the
//! same hyper settings), an axum route, and reqwest with a client per thread, doing
//! only the two HTTP halves the nginx proxy does: a client's request in, a fixed form
//! to Stripe out, its answer in, `{"portal_url": ...}` out. No token check, lookup,
//! validation, request log, metrics or middleware.
//!
//! `bench/run` loads it beside nginx and the service, so one run says how much of the
//! service's CPU per request is the stack itself and how much is the service's own.
//!
//!   LISTEN_ADDR=127.0.0.1:3001 STRIPE_API_BASE=http://127.0.0.1:12111 bench-floor

use std::{net::SocketAddr, sync::Arc};

use axum::{Json, Router, extract::State, http::StatusCode, routing::post};
use customer_portal::{PORTAL_PATH, server};
use serde::Deserialize;
use serde_json::{Value, json};
use thread_local::ThreadLocal;

const FORM: &[(&str, &str)] =
    &[("customer", "cus_bench_1_1"), ("return_url", "https://app.example.com/account")];

struct Stripe {
    clients: ThreadLocal<reqwest::Client>,
    sessions_url: String,
}

#[derive(Deserialize)]
struct Session {
    url: String,
}

async fn portal(State(stripe): State<Arc<Stripe>>) -> Result<Json<Value>, StatusCode> {
    let client = stripe.clients.get_or(reqwest::Client::new);
    let answer = client
        .post(&stripe.sessions_url)
        .bearer_auth("sk_test_bench_1")
        .form(FORM)
        .send()
        .await
        .map_err(|_| StatusCode::BAD_GATEWAY)?;
    let body = answer.bytes().await.map_err(|_| StatusCode::BAD_GATEWAY)?;
    let session: Session = serde_json::from_slice(&body).map_err(|_| StatusCode::BAD_GATEWAY)?;
    Ok(Json(json!({ "portal_url": session.url })))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let setting =
        |name: &str| std::env::var(name).map_err(|_| std::io::Error::other(format!("{name} is not set")));
    let addr: SocketAddr = setting("LISTEN_ADDR")?.parse().map_err(std::io::Error::other)?;
    let base = setting("STRIPE_API_BASE")?;
    let stripe = Arc::new(Stripe {
        clients: ThreadLocal::new(),
        sessions_url: format!("{}/v1/billing_portal/sessions", base.trim_end_matches('/')),
    });
    let app = Router::new().route(PORTAL_PATH, post(portal)).with_state(stripe);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let options = server::ServeOptions {
        grace: std::time::Duration::from_secs(1),
        header_timeout: std::time::Duration::from_secs(30),
    };
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    server::serve_on_threads(server::listen_on_threads(addr, threads)?, app, stop, options).await
}
