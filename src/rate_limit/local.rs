//! This process's limits, in memory (GCRA via `governor`): the only ones without Redis,
//! the fallback while Redis fails.

use std::{
    num::NonZeroU32,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use governor::{DefaultKeyedRateLimiter, NotUntil, clock::Clock};
use uuid::Uuid;

use super::{Limits, Request, stripe_cost};
use crate::config::Quota;

/// How often the limiters forget keys whose quota is full again, so memory stays
/// bounded by recent users rather than all users ever seen.
const PRUNE_EVERY: u64 = 4096;

struct Limiter<K: std::hash::Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    quota: Quota,
}

pub(super) struct Local {
    per_user: Option<Limiter<(Uuid, String)>>,
    per_project: Option<Limiter<Uuid>>,
    stripe_test: Option<Limiter<Uuid>>,
    stripe_live: Option<Limiter<Uuid>>,
    checks: AtomicU64,
}

fn limiter<K: std::hash::Hash + Eq + Clone>(quota: Quota) -> Option<Limiter<K>> {
    let per_minute = NonZeroU32::new(quota.per_minute)?;
    let burst = NonZeroU32::new(quota.burst).unwrap_or(per_minute);
    let governed = governor::Quota::per_minute(per_minute).allow_burst(burst);
    Some(Limiter { limiter: DefaultKeyedRateLimiter::dashmap(governed), quota })
}

fn wait(not_until: &NotUntil<<governor::clock::DefaultClock as Clock>::Instant>) -> Duration {
    not_until.wait_time_from(governor::clock::DefaultClock::default().now())
}

impl Local {
    pub(super) fn new(limits: &Limits) -> Self {
        Self {
            per_user: limiter(limits.user),
            per_project: limiter(limits.project),
            stripe_test: limiter(limits.stripe_test),
            stripe_live: limiter(limits.stripe_live),
            checks: AtomicU64::new(0),
        }
    }

    pub(super) fn check(&self, request: &Request<'_>) -> Result<(), Duration> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.prune();
        }
        let project = request.project_id;
        if let Some(user) = &self.per_user {
            user.limiter.check_key(&(project, request.user_id.to_owned())).map_err(|n| wait(&n))?;
        }
        if let Some(per_project) = &self.per_project {
            per_project.limiter.check_key(&project).map_err(|n| wait(&n))?;
        }
        let stripe = if request.livemode { &self.stripe_live } else { &self.stripe_test };
        if let Some(stripe) = stripe.as_ref().filter(|_| request.stripe_calls > 0) {
            let cost =
                NonZeroU32::new(stripe_cost(request.stripe_calls, stripe.quota)).unwrap_or(NonZeroU32::MIN);
            // The cost is at most the burst, so capacity is never insufficient.
            if let Ok(Err(not_until)) = stripe.limiter.check_key_n(&project, cost) {
                return Err(wait(&not_until));
            }
        }
        Ok(())
    }

    fn prune(&self) {
        if let Some(l) = &self.per_user {
            l.limiter.retain_recent();
        }
        for l in [&self.per_project, &self.stripe_test, &self.stripe_live].into_iter().flatten() {
            l.limiter.retain_recent();
        }
    }
}
