//! Who is calling. The bearer JWT is checked against a key and algorithms pinned by
//! configuration (never by the token) and becomes an [`EndUser`], before anything else
//! about the request is looked at.

use std::{sync::Arc, time::Duration};

use axum::{
    extract::{FromRef, FromRequestParts},
    http::{HeaderMap, header::AUTHORIZATION, request::Parts},
};
use jsonwebtoken::{
    Algorithm, AlgorithmFamily, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind,
};
use secrecy::ExposeSecret;
use serde::Deserialize;
use uuid::Uuid;

use crate::{
    config::{ConfigError, JwtConfig, JwtKey},
    error::ApiError,
    jwks::JwksCache,
};

/// Tokens longer than this are refused unread; real ones are well under 2 KiB.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

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
            JwtKey::Secret(secret) => {
                Keys::Static(DecodingKey::from_secret(secret.expose_secret().as_bytes()))
            }
            JwtKey::PublicKeyPem(pem) => {
                Keys::Static(public_key(config.algorithms[0], pem).map_err(|e| ConfigError {
                    name: "JWT_PUBLIC_KEY_FILE",
                    message: format!("is not a PEM public key for {:?}: {e}", config.algorithms[0]),
                })?)
            }
            JwtKey::Jwks(url, interval) => Keys::Jwks(Box::new(JwksCache::new(url.clone(), *interval))),
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

    /// The end user named by the request's `Authorization: Bearer` token.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<EndUser, ApiError> {
        let token = bearer_token(headers)?;
        if token.len() > MAX_TOKEN_BYTES {
            return Err(ApiError::InvalidToken("token too large".into()));
        }
        let jwks_key;
        let key = match &self.keys {
            Keys::Static(key) => key,
            Keys::Jwks(cache) => {
                let header =
                    jsonwebtoken::decode_header(token).map_err(|e| ApiError::InvalidToken(e.to_string()))?;
                let kid =
                    header.kid.ok_or_else(|| ApiError::InvalidToken("no kid in the token header".into()))?;
                jwks_key = cache
                    .key(&kid)
                    .await
                    .ok_or_else(|| ApiError::InvalidToken(format!("unknown kid {kid:?}")))?;
                &jwks_key
            }
        };
        let claims = jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => ApiError::TokenExpired,
                _ => ApiError::InvalidToken(e.to_string()),
            })?
            .claims;
        let now = jsonwebtoken::get_current_timestamp() as f64;
        if claims.iat.is_some_and(|iat| iat > now + self.leeway_secs as f64) {
            return Err(ApiError::InvalidToken("iat is in the future".into()));
        }
        if claims.sub.is_empty() {
            return Err(ApiError::InvalidToken("sub is empty".into()));
        }
        let project_id = Uuid::try_parse(&claims.project_id)
            .map_err(|_| ApiError::InvalidToken("project_id is not a UUID".into()))?;
        Ok(EndUser { user_id: claims.sub, project_id })
    }
}

/// A signed token for local development and curl, with the configured HMAC secret,
/// issuer and audience. Public-key setups sign their tokens elsewhere.
pub fn mint_dev_token(config: &JwtConfig, user: &EndUser, ttl: Duration) -> Result<String, String> {
    let JwtKey::Secret(secret) = &config.key else {
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

/// The credentials of a single `Authorization: Bearer <token>` header, as FastAPI's
/// `HTTPBearer` reads it: scheme case-insensitive, one space, a non-empty token.
fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next().ok_or(ApiError::NotAuthenticated)?;
    if values.next().is_some() {
        return Err(ApiError::InvalidToken("more than one Authorization header".into()));
    }
    let value = value.to_str().map_err(|_| ApiError::NotAuthenticated)?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(token.trim())
        }
        _ => Err(ApiError::NotAuthenticated),
    }
}

impl<S> FromRequestParts<S> for EndUser
where
    S: Send + Sync,
    Arc<Authenticator>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Arc::<Authenticator>::from_ref(state).authenticate(&parts.headers).await
    }
}
