//! The token settings: which algorithms, which key, and the optional claims to check.

use std::{collections::HashMap, str::FromStr, time::Duration};

use jsonwebtoken::{Algorithm, AlgorithmFamily};
use secrecy::SecretString;
use url::Url;

use super::{ConfigError, bad, millis, parse_or};

const MIN_SECRET_BYTES: usize = 32;

#[derive(Clone, Debug)]
pub struct JwtConfig {
    pub algorithms: Vec<Algorithm>,
    pub key: JwtKeySource,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub leeway: Duration,
}

/// Where token signatures are checked against; the algorithm family decides which.
#[derive(Clone, Debug)]
pub enum JwtKeySource {
    Secret(SecretString),
    PublicKeyPem(Vec<u8>),
    /// Keys fetched from a JWKS endpoint, picked by the token's `kid`, refetched at
    /// most once per interval.
    Jwks(Url, Duration),
}

impl JwtConfig {
    /// Only the token settings, for commands that need no database.
    pub fn from_env() -> Result<Self, ConfigError> {
        let vars: HashMap<String, String> = std::env::vars().collect();
        jwt_config(&|name: &str| vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()))
    }
}

pub(super) fn jwt_config<'a>(get: &impl Fn(&str) -> Option<&'a str>) -> Result<JwtConfig, ConfigError> {
    let algorithms = match get("JWT_ALGORITHMS") {
        None => vec![Algorithm::HS256],
        Some(list) => list
            .split(',')
            .map(|a| {
                let a = a.trim();
                // `none` is not an Algorithm variant, so it can never be allowed.
                Algorithm::from_str(a)
                    .map_err(|_| bad("JWT_ALGORITHMS", format!("{a:?} is not a supported algorithm")))
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    let families: Vec<_> = algorithms.iter().map(|a| a.family()).collect();
    if families.windows(2).any(|w| w[0] != w[1]) {
        // Mixing HMAC with public-key algorithms is how key-confusion attacks start.
        return Err(bad(
            "JWT_ALGORITHMS",
            "must all use the same kind of key (all HS*, all RS*/PS*, all ES*, or EdDSA)",
        ));
    }
    let key = if families[0] == AlgorithmFamily::Hmac {
        for name in ["JWT_PUBLIC_KEY_FILE", "JWKS_URL"] {
            if get(name).is_some() {
                return Err(bad(
                    name,
                    "is set but JWT_ALGORITHMS names HMAC algorithms; set JWT_ALGORITHMS to RS256, ES256 or EdDSA",
                ));
            }
        }
        let secret = get("JWT_SECRET").ok_or_else(|| bad("JWT_SECRET", "is required for HS* algorithms"))?;
        if secret.len() < MIN_SECRET_BYTES {
            return Err(bad("JWT_SECRET", format!("must be at least {MIN_SECRET_BYTES} bytes")));
        }
        JwtKeySource::Secret(secret.to_owned().into())
    } else {
        match (get("JWT_PUBLIC_KEY_FILE"), get("JWKS_URL")) {
            (Some(_), Some(_)) => {
                return Err(bad("JWKS_URL", "set JWT_PUBLIC_KEY_FILE or JWKS_URL, not both"));
            }
            (Some(path), None) => JwtKeySource::PublicKeyPem(
                std::fs::read(path)
                    .map_err(|e| bad("JWT_PUBLIC_KEY_FILE", format!("cannot read {path}: {e}")))?,
            ),
            (None, Some(url)) => JwtKeySource::Jwks(
                Url::parse(url)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .ok_or_else(|| bad("JWKS_URL", "must be an http(s) URL"))?,
                millis(get("JWKS_REFRESH_INTERVAL_MS"), "JWKS_REFRESH_INTERVAL_MS", 5_000)?,
            ),
            (None, None) => {
                return Err(bad("JWT_PUBLIC_KEY_FILE", "or JWKS_URL is required for public-key algorithms"));
            }
        }
    };
    Ok(JwtConfig {
        algorithms,
        key,
        issuer: get("JWT_ISSUER").map(str::to_owned),
        audience: get("JWT_AUDIENCE").map(str::to_owned),
        leeway: Duration::from_secs(parse_or(get("JWT_LEEWAY_SECONDS"), "JWT_LEEWAY_SECONDS", Some(30))?),
    })
}
