//! Token verification keys from a JWKS endpoint, picked by `kid`. Keys are cached; an
//! unknown `kid` or a stale cache triggers a refresh, at most once per refresh interval
//! (so forged `kid`s cannot hammer the endpoint), and an endpoint that is down leaves
//! the cache in service.

use std::{
    collections::HashMap,
    sync::RwLock,
    time::{Duration, Instant},
};

use jsonwebtoken::{DecodingKey, jwk::JwkSet};
use url::Url;

/// Keys older than this are refetched, so a key the issuer removed stops working.
const MAX_AGE: Duration = Duration::from_secs(15 * 60);

pub struct JwksCache {
    url: Url,
    min_refresh_interval: Duration,
    http: reqwest::Client,
    keys: RwLock<HashMap<String, DecodingKey>>,
    /// When the last fetch was tried; the lock also makes concurrent misses fetch once.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
    fetched_at: RwLock<Option<Instant>>,
}

impl JwksCache {
    pub fn new(url: Url, min_refresh_interval: Duration) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5))
            .build()
            .expect("a client with timeouts builds");
        Self {
            url,
            min_refresh_interval,
            http,
            keys: RwLock::new(HashMap::new()),
            last_fetch: tokio::sync::Mutex::new(None),
            fetched_at: RwLock::new(None),
        }
    }

    /// The key for `kid`, fetching the set when it is unknown or the cache is stale.
    pub async fn key(&self, kid: &str) -> Option<DecodingKey> {
        let stale = self.fetched_at.read().expect("lock").is_none_or(|at| at.elapsed() > MAX_AGE);
        if !stale && let Some(key) = self.cached(kid) {
            return Some(key);
        }
        {
            let mut last = self.last_fetch.lock().await;
            // Another request may have fetched while this one waited for the lock.
            let recently = last.is_some_and(|at| at.elapsed() < self.min_refresh_interval);
            if !recently {
                *last = Some(Instant::now());
                self.refresh().await;
            }
        }
        self.cached(kid)
    }

    fn cached(&self, kid: &str) -> Option<DecodingKey> {
        self.keys.read().expect("lock").get(kid).cloned()
    }

    async fn refresh(&self) {
        let fetched = async {
            let response = self.http.get(self.url.clone()).send().await?.error_for_status()?;
            response.bytes().await
        };
        let parsed = fetched
            .await
            .map_err(|e| e.to_string())
            .and_then(|body| serde_json::from_slice::<JwkSet>(&body).map_err(|e| e.to_string()));
        match parsed {
            Ok(set) => {
                let keys: HashMap<_, _> = set
                    .keys
                    .iter()
                    .filter_map(|jwk| Some((jwk.common.key_id.clone()?, DecodingKey::from_jwk(jwk).ok()?)))
                    .collect();
                tracing::info!(keys = keys.len(), "fetched JWKS");
                *self.keys.write().expect("lock") = keys;
                *self.fetched_at.write().expect("lock") = Some(Instant::now());
            }
            Err(e) => tracing::warn!(error = %e, "cannot fetch JWKS; serving cached keys"),
        }
    }
}
