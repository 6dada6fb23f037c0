//! Quotas per user and per project, and each project's budget of calls to Stripe, so
//! one user, one script or one busy project cannot burn the Stripe account's rate limit.
//!
//! With `REDIS_URL` every replica counts in Redis (GCRA, one script per check, so one
//! round trip per request); without it each process counts on its own. When Redis fails
//! or does not answer within `REDIS_TIMEOUT_MS`, a check falls back to this process's
//! own limits (fail open: a replica's quota rather than the shared one, never a 5xx nor
//! a stalled request), with a warning and a metric, until Redis answers again.

mod local;
mod shared;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use uuid::Uuid;

use crate::{
    config::{Quota, RedisConfig},
    metrics::Metrics,
};

/// The limits, zero turning one off.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub user: Quota,
    pub project: Quota,
    /// Calls to Stripe per project in test mode.
    pub stripe_test: Quota,
    /// Calls to Stripe per project in live mode.
    pub stripe_live: Quota,
}

/// One request to count: whose, which mode, and how many Stripe calls it will make.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub project_id: Uuid,
    pub user_id: &'a str,
    pub livemode: bool,
    pub stripe_calls: u32,
}

/// The limiters: shared through Redis when configured, this process's always.
pub struct RateLimiter {
    local: local::Local,
    shared: Option<shared::Shared>,
    metrics: Arc<Metrics>,
    /// Redis failed last time: the next success is logged as the recovery.
    degraded: AtomicBool,
    /// After a failure, checks skip Redis until this time (ms since `started`), so an
    /// outage costs one request in a while the Redis timeout, not every request.
    skip_redis_until: AtomicU64,
    started: Instant,
}

/// How long checks go straight to this process's limits after Redis failed one; also
/// about how soon shared limits return once Redis answers again.
const REDIS_RETRY_AFTER: Duration = Duration::from_millis(250);

#[derive(Debug, thiserror::Error)]
#[error("REDIS_URL: {0}")]
pub struct RateLimitError(#[from] redis::RedisError);

impl RateLimiter {
    /// Connects to Redis lazily: the service starts (and serves, on its own limits)
    /// while Redis is down.
    pub fn new(
        limits: Limits,
        redis: Option<&RedisConfig>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, RateLimitError> {
        Ok(Self {
            local: local::Local::new(&limits),
            shared: redis.map(|config| shared::Shared::new(&limits, config)).transpose()?,
            metrics,
            degraded: AtomicBool::new(false),
            skip_redis_until: AtomicU64::new(0),
            started: Instant::now(),
        })
    }

    /// Counts one request; `Err` carries how long until it would be allowed. All of a
    /// request's limits pass or none is charged (in Redis; in-process, in order).
    pub async fn check(&self, request: &Request<'_>) -> Result<(), Duration> {
        let now = self.elapsed_ms();
        if let Some(shared) =
            self.shared.as_ref().filter(|_| now >= self.skip_redis_until.load(Ordering::Relaxed))
        {
            match shared.check(request).await {
                Ok(verdict) => {
                    if self.degraded.swap(false, Ordering::Relaxed) {
                        tracing::info!("Redis answers again: rate limits are shared again");
                    }
                    self.metrics.observe_rate_limit("redis", verdict.is_ok());
                    return verdict;
                }
                Err(failure) => {
                    let retry_at = self.elapsed_ms() + REDIS_RETRY_AFTER.as_millis() as u64;
                    self.skip_redis_until.store(retry_at, Ordering::Relaxed);
                    self.metrics.observe_redis_failure(failure.reason());
                    if !self.degraded.swap(true, Ordering::Relaxed) {
                        tracing::warn!(error = %failure, "Redis failed: rate limits are this replica's own until it answers");
                    }
                }
            }
        }
        let verdict = self.local.check(request);
        self.metrics.observe_rate_limit("local", verdict.is_ok());
        verdict
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// GCRA's two numbers for a quota, in microseconds: the time one request costs, and how
/// far ahead of now the quota may be spent (the burst). `None` when it is turned off.
fn gcra(quota: Quota) -> Option<(u64, u64)> {
    if quota.per_minute == 0 {
        return None;
    }
    let interval = 60_000_000 / u64::from(quota.per_minute);
    let burst = if quota.burst == 0 { quota.per_minute } else { quota.burst };
    Some((interval.max(1), interval.max(1) * u64::from(burst)))
}

/// A request's Stripe calls as charged: at most a whole burst, so it can ever pass.
fn stripe_cost(calls: u32, quota: Quota) -> u32 {
    let burst = if quota.burst == 0 { quota.per_minute } else { quota.burst };
    calls.min(burst).max(1)
}
