//! Who is calling. The bearer JWT is checked against a key and algorithms pinned by
//! configuration (never by the token) and becomes an [`EndUser`]. Pure: no HTTP here;
//! the extractor in `routes` takes the token from the header.

mod jwks;

use std::time::Duration;

use jsonwebtoken::{
    Algorithm, AlgorithmFamily, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind,
};
use secrecy::ExposeSecret;
use serde::Deserialize;
use uuid::Uuid;

use crate::config::{ConfigError, JwtConfig, JwtKeySource};

use jwks::JwksCache;

/// Tokens longer than this are refused unread; real ones are well under 2 KiB.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Why a request's credentials were refused; every one is a 401.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No usable bearer credentials were sent.
    #[error("not authenticated")]
    Missing,
    /// A token was sent but refused; the reason is for the log, not the caller.
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("token expired")]
    Expired,
}

/// The signed-in user of a SaaS project, as their token vouches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndUser {
    pub user_id: String,
    /// The token's project scope: the only project this request may touch.
    pub project_id: Uuid,
}

/// Verifies tokens; built once at start-up.
pub struct Authenticator {
    keys: Keys,
    validation: Validation,
    leeway_secs: u64,
}

enum Keys {
    Static(DecodingKey),
    Jwks(Box<JwksCache>),
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    project_id: String,
    iat: Option<f64>,
}

impl Authenticator {
    pub fn new(config: &JwtConfig) -> Result<Self, ConfigError> {
        let keys = match &config.key {
            JwtKeySource::Secret(secret) => {
                Keys::Static(DecodingKey::from_secret(secret.expose_secret().as_bytes()))
            }
            JwtKeySource::PublicKeyPem(pem) => {
                Keys::Static(public_key(config.algorithms[0], pem).map_err(|e| ConfigError {
                    name: "JWT_PUBLIC_KEY_FILE",
                    message: format!("is not a PEM public key for {:?}: {e}", config.algorithms[0]),
                })?)
            }
            JwtKeySource::Jwks(url, interval) => Keys::Jwks(Box::new(JwksCache::new(url.clone(), *interval))),
        };
        let mut validation = Validation::new(config.algorithms[0]);
        validation.algorithms = config.algorithms.clone();
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = config.leeway.as_secs();
        validation.validate_nbf = true;
        validation.validate_aud = config.audience.is_some();
        if let Some(aud) = &config.audience {
            validation.set_audience(&[aud]);
        }
        if let Some(iss) = &config.issuer {
            validation.set_issuer(&[iss]);
            validation.required_spec_claims.insert("iss".into());
        }
        Ok(Self { keys, validation, leeway_secs: config.leeway.as_secs() })
    }

    /// The end user a bearer token names, if its signature and claims hold.
    pub async fn verify(&self, token: &str) -> Result<EndUser, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Invalid("token too large".into()));
        }
        let jwks_key;
        let key = match &self.keys {
            Keys::Static(key) => key,
            Keys::Jwks(cache) => {
                let header =
                    jsonwebtoken::decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
                let kid =
                    header.kid.ok_or_else(|| AuthError::Invalid("no kid in the token header".into()))?;
                jwks_key = cache
                    .key(&kid)
                    .await
                    .ok_or_else(|| AuthError::Invalid(format!("unknown kid {kid:?}")))?;
                &jwks_key
            }
        };
        let claims = jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid(e.to_string()),
            })?
            .claims;
        let now = jsonwebtoken::get_current_timestamp() as f64;
        if claims.iat.is_some_and(|iat| iat > now + self.leeway_secs as f64) {
            return Err(AuthError::Invalid("iat is in the future".into()));
        }
        if claims.sub.is_empty() {
            return Err(AuthError::Invalid("sub is empty".into()));
        }
        let project_id = Uuid::try_parse(&claims.project_id)
            .map_err(|_| AuthError::Invalid("project_id is not a UUID".into()))?;
        Ok(EndUser { user_id: claims.sub, project_id })
    }
}

/// A signed token for local development and curl, with the configured HMAC secret,
/// issuer and audience. Public-key setups sign their tokens elsewhere.
pub fn mint_dev_token(config: &JwtConfig, user: &EndUser, ttl: Duration) -> Result<String, String> {
    let JwtKeySource::Secret(secret) = &config.key else {
        return Err(
            "minting needs an HS* setup (JWT_SECRET); public-key tokens are signed by your identity provider"
                .into(),
        );
    };
    let now = jsonwebtoken::get_current_timestamp();
    let mut claims = serde_json::json!({
        "sub": user.user_id,
        "project_id": user.project_id,
        "iat": now,
        "exp": now + ttl.as_secs(),
    });
    if let Some(iss) = &config.issuer {
        claims["iss"] = iss.as_str().into();
    }
    if let Some(aud) = &config.audience {
        claims["aud"] = aud.as_str().into();
    }
    let key = EncodingKey::from_secret(secret.expose_secret().as_bytes());
    jsonwebtoken::encode(&Header::new(config.algorithms[0]), &claims, &key).map_err(|e| e.to_string())
}

fn public_key(alg: Algorithm, pem: &[u8]) -> jsonwebtoken::errors::Result<DecodingKey> {
    match alg.family() {
        AlgorithmFamily::Ec => DecodingKey::from_ec_pem(pem),
        AlgorithmFamily::Ed => DecodingKey::from_ed_pem(pem),
        AlgorithmFamily::Rsa | AlgorithmFamily::Hmac => DecodingKey::from_rsa_pem(pem),
    }
}
