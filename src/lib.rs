//! customer-portal: opens the Stripe Customer Portal for a SaaS app's signed-in users.
//!
//! `main.rs` only wires; everything here is reachable from tests without a socket.

// What the binary and the tests use.
pub mod admin;
pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod secrets;
pub mod server;
pub mod stripe;
pub mod telemetry;

// The service's insides, reached only through `app`.
mod checkout_sync;
mod error;
mod lookup;
mod metrics;
mod portal;
mod rate_limit;
mod routes;
mod validation;
mod webhooks;

pub use routes::{AppState, PORTAL_PATH, StartupError, app};
pub use server::serve;
