//! The settings of limits shared by replicas: Redis, and the per-project budget of calls
//! to Stripe.

use std::time::Duration;

use secrecy::SecretString;

use super::{ConfigError, Quota, bad, millis, parse_or};

/// `REDIS_URL` and how long a check may wait for it.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// `redis://[user:password@]host[:port][/db]`; may hold a password, so never printed.
    pub url: SecretString,
    /// `REDIS_TIMEOUT_MS`: a check Redis has not answered by then uses this process's
    /// own limits instead (fail open), so Redis never stalls a request.
    pub timeout: Duration,
    /// `REDIS_KEY_PREFIX`: keeps several services (or tests) on one Redis apart.
    pub key_prefix: String,
}

/// Calls to Stripe per project, per mode, shared by its users: Stripe limits a whole
/// account (25 requests/s in test mode, 100 in live), so one project's burst gets our
/// 429 before Stripe throttles the account. A zero rate turns one off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StripeBudget {
    pub test: Quota,
    pub live: Quota,
}

pub(super) fn redis_config<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
) -> Result<Option<RedisConfig>, ConfigError> {
    let Some(url) = get("REDIS_URL") else { return Ok(None) };
    // The URL may hold a password, so the messages never repeat it.
    if url.starts_with("rediss://") {
        return Err(bad(
            "REDIS_URL",
            "TLS (rediss://) is not supported: use redis:// (a TLS sidecar if needed)",
        ));
    }
    if !url.starts_with("redis://") || redis::Client::open(url).is_err() {
        return Err(bad("REDIS_URL", "is not a valid redis:// URL"));
    }
    let key_prefix = get("REDIS_KEY_PREFIX").unwrap_or("customer-portal").to_owned();
    Ok(Some(RedisConfig {
        url: SecretString::from(url.to_owned()),
        timeout: millis(get("REDIS_TIMEOUT_MS"), "REDIS_TIMEOUT_MS", 50)?,
        key_prefix,
    }))
}

pub(super) fn stripe_budget<'a>(get: &impl Fn(&str) -> Option<&'a str>) -> Result<StripeBudget, ConfigError> {
    let mode = |rate: &'static str, burst: &'static str, default: u32| -> Result<Quota, ConfigError> {
        let per_second: u32 = parse_or(get(rate), rate, Some(default))?;
        let burst = parse_or(get(burst), burst, Some(per_second))?;
        let per_minute = per_second.checked_mul(60).ok_or_else(|| bad(rate, "is too large"))?;
        Ok(Quota { per_minute, burst })
    };
    Ok(StripeBudget {
        test: mode("STRIPE_BUDGET_TEST_PER_SECOND", "STRIPE_BUDGET_TEST_BURST", 20)?,
        live: mode("STRIPE_BUDGET_LIVE_PER_SECOND", "STRIPE_BUDGET_LIVE_BURST", 80)?,
    })
}
