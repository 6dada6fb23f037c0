//! Per-user and per-project request quotas, so one user or one script cannot burn a
//! project's Stripe rate limit. Counted in memory, per process (GCRA via `governor`).

use std::{
    num::NonZeroU32,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use governor::{DefaultKeyedRateLimiter, clock::Clock};
use uuid::Uuid;

use crate::config::Quota;

/// The per-user and per-project limiters.
pub struct RateLimiter {
    per_user: Option<DefaultKeyedRateLimiter<(Uuid, String)>>,
    per_project: Option<DefaultKeyedRateLimiter<Uuid>>,
    checks: AtomicU64,
}

/// How often the limiters forget keys whose quota is full again, so memory stays
/// bounded by recent users rather than all users ever seen.
const PRUNE_EVERY: u64 = 4096;

fn governor_quota(limit: Quota) -> Option<governor::Quota> {
    let per_minute = NonZeroU32::new(limit.per_minute)?;
    let burst = NonZeroU32::new(limit.burst).unwrap_or(per_minute);
    Some(governor::Quota::per_minute(per_minute).allow_burst(burst))
}

impl RateLimiter {
    pub fn new(per_user: Quota, per_project: Quota) -> Self {
        Self {
            per_user: governor_quota(per_user).map(DefaultKeyedRateLimiter::dashmap),
            per_project: governor_quota(per_project).map(DefaultKeyedRateLimiter::dashmap),
            checks: AtomicU64::new(0),
        }
    }

    /// Counts one request of `user_id` in `project_id`; `Err` carries how long until it
    /// would be allowed.
    pub fn check(&self, project_id: Uuid, user_id: &str) -> Result<(), Duration> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.prune();
        }
        let clock = governor::clock::DefaultClock::default();
        if let Some(limiter) = &self.per_user {
            limiter
                .check_key(&(project_id, user_id.to_owned()))
                .map_err(|not_until| not_until.wait_time_from(clock.now()))?;
        }
        if let Some(limiter) = &self.per_project {
            limiter.check_key(&project_id).map_err(|not_until| not_until.wait_time_from(clock.now()))?;
        }
        Ok(())
    }

    fn prune(&self) {
        if let Some(limiter) = &self.per_user {
            limiter.retain_recent();
        }
        if let Some(limiter) = &self.per_project {
            limiter.retain_recent();
        }
    }
}
