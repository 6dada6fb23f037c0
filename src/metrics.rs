//! Prometheus metrics, served at `GET /metrics`: requests by route and status, their
//! latency, Stripe calls by outcome and their latency, and the database pool's use.
//!
//! Each `AppState` owns its registry (no global recorder), so two apps in one process,
//! as in the tests, never count each other's requests.

use std::time::Duration;

use axum::http::Method;
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::{Registry, Unit},
};
use sqlx::PgPool;

/// Request latency buckets, in seconds: from a cached-path request to a Stripe deadline.
const LATENCY_BUCKETS: [f64; 14] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    /// The route template, never the raw path: callers must not create label values.
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    /// `create_session` or `retrieve_subscription`.
    call: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    /// One of the event types the service uses, `other`, or `unknown` before verification.
    r#type: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RateLimitLabels {
    /// `redis` (shared by replicas) or `local` (this process: no Redis, or it failed).
    store: &'static str,
    /// `allowed` or `limited`.
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    /// `timeout` or `error`.
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    state: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_duration: HistogramFamily<RouteLabels>,
    stripe_requests: Family<OutcomeLabels, Counter>,
    stripe_duration: HistogramFamily<OutcomeLabels>,
    pool_connections: Family<PoolLabels, Gauge>,
    webhook_events: Family<WebhookLabels, Counter>,
    rate_limit_checks: Family<RateLimitLabels, Counter>,
    redis_failures: Family<ReasonLabels, Counter>,
}

impl Metrics {
    pub fn new(pool_max_connections: u32) -> Self {
        let mut registry = Registry::with_prefix("customer_portal");
        let requests = Family::<RequestLabels, Counter>::default();
        let request_duration: HistogramFamily<RouteLabels> = Family::new_with_constructor(latency_histogram);
        let stripe_requests = Family::<OutcomeLabels, Counter>::default();
        let stripe_duration: HistogramFamily<OutcomeLabels> = Family::new_with_constructor(latency_histogram);
        let pool_connections = Family::<PoolLabels, Gauge>::default();
        let max: Gauge = Gauge::default();
        max.set(i64::from(pool_max_connections));

        registry.register("http_requests", "HTTP requests answered, by route and status", requests.clone());
        registry.register_with_unit(
            "http_request_duration",
            "Time from request to response head",
            Unit::Seconds,
            request_duration.clone(),
        );
        registry.register(
            "stripe_requests",
            "Calls to Stripe, retries included, by call and outcome",
            stripe_requests.clone(),
        );
        registry.register_with_unit(
            "stripe_request_duration",
            "Time spent on one call to Stripe, retries included",
            Unit::Seconds,
            stripe_duration.clone(),
        );
        registry.register(
            "db_pool_connections",
            "Open database connections, by state (idle, in_use)",
            pool_connections.clone(),
        );
        registry.register("db_pool_max_connections", "The pool's connection limit", max);
        let webhook_events = Family::<WebhookLabels, Counter>::default();
        registry.register(
            "stripe_webhook_events",
            "Stripe webhook deliveries, by event type and outcome",
            webhook_events.clone(),
        );
        let rate_limit_checks = Family::<RateLimitLabels, Counter>::default();
        registry.register(
            "rate_limit_checks",
            "Quota checks (user, project and Stripe budget at once), by store and outcome",
            rate_limit_checks.clone(),
        );
        let redis_failures = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "rate_limit_redis_failures",
            "Checks Redis did not answer in time or failed, which fell back to this process's limits",
            redis_failures.clone(),
        );

        Self {
            registry,
            requests,
            request_duration,
            stripe_requests,
            stripe_duration,
            pool_connections,
            webhook_events,
            rate_limit_checks,
            redis_failures,
        }
    }

    /// Counts one webhook delivery.
    pub fn observe_webhook(&self, kind: &'static str, outcome: &'static str) {
        self.webhook_events.get_or_create(&WebhookLabels { r#type: kind, outcome }).inc();
    }

    pub fn observe_request(&self, method: &Method, route: &str, status: u16, elapsed: Duration) {
        // Only standard methods become label values, so no caller can grow the series.
        let method = match *method {
            Method::GET => "GET",
            Method::POST => "POST",
            Method::PUT => "PUT",
            Method::PATCH => "PATCH",
            Method::DELETE => "DELETE",
            Method::HEAD => "HEAD",
            Method::OPTIONS => "OPTIONS",
            _ => "other",
        };
        let route = route.to_owned();
        self.request_duration
            .get_or_create(&RouteLabels { method, route: route.clone() })
            .observe(elapsed.as_secs_f64());
        self.requests.get_or_create(&RequestLabels { method, route, status }).inc();
    }

    /// Records one call to Stripe, retries included, however it ended (`ok` or the
    /// error's short name).
    pub fn observe_stripe(&self, call: &'static str, outcome: &'static str, elapsed: Duration) {
        self.stripe_requests.get_or_create(&OutcomeLabels { call, outcome }).inc();
        self.stripe_duration.get_or_create(&OutcomeLabels { call, outcome }).observe(elapsed.as_secs_f64());
    }

    /// One quota check: where it was counted and whether it passed.
    pub fn observe_rate_limit(&self, store: &'static str, allowed: bool) {
        let outcome = if allowed { "allowed" } else { "limited" };
        self.rate_limit_checks.get_or_create(&RateLimitLabels { store, outcome }).inc();
    }

    /// A check Redis did not answer (`timeout`) or answered with an error (`error`).
    pub fn observe_redis_failure(&self, reason: &'static str) {
        self.redis_failures.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// The text exposition, with the pool read at scrape time.
    pub fn render(&self, pool: &PgPool) -> String {
        let open = i64::from(pool.size());
        let idle = i64::try_from(pool.num_idle()).unwrap_or(i64::MAX);
        self.pool_connections.get_or_create(&PoolLabels { state: "idle" }).set(idle);
        self.pool_connections.get_or_create(&PoolLabels { state: "in_use" }).set((open - idle).max(0));
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}
