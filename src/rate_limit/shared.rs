//! The limits every replica shares, in Redis: one Lua script checks and charges all of
//! a request's limits atomically, on Redis's clock, in one round trip.

use std::time::Duration;

use redis::{
    Client, Script,
    aio::{ConnectionManager, ConnectionManagerConfig},
};
use secrecy::ExposeSecret;

use super::{Limits, Request, gcra, stripe_cost};
use crate::config::{Quota, RedisConfig};

/// GCRA over several keys, all or nothing. For key i, ARGV holds its interval and burst
/// tolerance (µs) and the request's cost. A key holds its theoretical arrival time (µs,
/// Redis's clock) and expires once the quota is full again. Answers 0 when allowed,
/// else the µs to wait; a refused request charges nothing.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tats = {}
local wait = 0
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[3 * i - 2])
  local tolerance = tonumber(ARGV[3 * i - 1])
  local cost = tonumber(ARGV[3 * i])
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local new_tat = tat + interval * cost
  local allow_at = new_tat - tolerance
  if allow_at > now and allow_at - now > wait then wait = allow_at - now end
  tats[i] = new_tat
end
if wait > 0 then return wait end
for i, key in ipairs(KEYS) do
  local ttl = math.floor((tats[i] - now) / 1000) + 1
  redis.call('SET', key, string.format('%d', tats[i]), 'PX', ttl)
end
return 0
";

/// How Redis failed a check.
#[derive(Debug, thiserror::Error)]
pub(super) enum Failure {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

impl Failure {
    pub(super) fn reason(&self) -> &'static str {
        match self {
            Failure::Timeout(_) => "timeout",
            Failure::Redis(_) => "error",
        }
    }
}

#[derive(Clone, Copy)]
struct Gcra {
    interval: u64,
    tolerance: u64,
}

fn limit(quota: Quota) -> Option<(Gcra, Quota)> {
    gcra(quota).map(|(interval, tolerance)| (Gcra { interval, tolerance }, quota))
}

pub(super) struct Shared {
    connection: ConnectionManager,
    script: Script,
    timeout: Duration,
    prefix: String,
    user: Option<(Gcra, Quota)>,
    project: Option<(Gcra, Quota)>,
    stripe_test: Option<(Gcra, Quota)>,
    stripe_live: Option<(Gcra, Quota)>,
}

impl Shared {
    /// Connects on first use and reconnects by itself: once per failed check, no retries
    /// of its own, so a refused connection fails the check at once.
    pub(super) fn new(limits: &Limits, config: &RedisConfig) -> Result<Self, redis::RedisError> {
        let client = Client::open(config.url.expose_secret())?;
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(0);
        Ok(Self {
            connection: ConnectionManager::new_lazy_with_config(client, manager)?,
            script: Script::new(GCRA),
            timeout: config.timeout,
            prefix: config.key_prefix.clone(),
            user: limit(limits.user),
            project: limit(limits.project),
            stripe_test: limit(limits.stripe_test),
            stripe_live: limit(limits.stripe_live),
        })
    }

    /// `Ok` with the verdict when Redis answered in time.
    pub(super) async fn check(&self, request: &Request<'_>) -> Result<Result<(), Duration>, Failure> {
        // One hash tag per project, so a Redis Cluster keeps a request's keys together.
        let base = format!("{}:{{{}}}", self.prefix, request.project_id);
        let mut invocation = self.script.prepare_invoke();
        let mut any = false;
        let mut add = |key: String, (gcra, _): (Gcra, Quota), cost: u32| {
            invocation.key(key).arg(gcra.interval).arg(gcra.tolerance).arg(cost);
            any = true;
        };
        if let Some(user) = self.user {
            add(format!("{base}:u:{}", request.user_id), user, 1);
        }
        if let Some(project) = self.project {
            add(format!("{base}:p"), project, 1);
        }
        let (stripe, mode) =
            if request.livemode { (self.stripe_live, "live") } else { (self.stripe_test, "test") };
        if let Some(stripe) = stripe.filter(|_| request.stripe_calls > 0) {
            add(format!("{base}:s:{mode}"), stripe, stripe_cost(request.stripe_calls, stripe.1));
        }
        if !any {
            return Ok(Ok(()));
        }
        let mut connection = self.connection.clone();
        let answer = tokio::time::timeout(self.timeout, invocation.invoke_async::<u64>(&mut connection))
            .await
            .map_err(|_| Failure::Timeout(self.timeout))??;
        Ok(if answer == 0 { Ok(()) } else { Err(Duration::from_micros(answer)) })
    }
}
