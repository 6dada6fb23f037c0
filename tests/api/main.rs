//! Black-box tests over HTTP: the real router on a loopback port, a real PostgreSQL
//! (a fresh migrated database per test) and a fake Stripe on loopback.

mod support;

mod admin;
mod auth;
mod browser;
mod checkout_sync;
mod config;
mod errors;
mod flows;
mod fuzz;
mod keys;
mod layers;
mod logs;
mod lookups;
mod metrics;
mod openapi;
mod pgbouncer;
mod portal;
mod process;
mod rate_limits;
mod redirects;
mod resilience;
mod routes;
mod secrets;
mod shared_limits;
mod stripe_failures;
mod validation;
mod webhook_setup;
mod webhooks;
