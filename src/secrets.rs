//! Stripe keys at rest: AES-256-GCM with keys from `SECRETS_ENCRYPTION_KEY`.
//!
//! A stored value is `enc:v1:<key id>:<base64(nonce ‖ ciphertext)>`. The key ID (a
//! fingerprint of the key) lets several keys decrypt while the first one encrypts, so
//! keys rotate without downtime. The project and mode are bound in as associated data,
//! so a ciphertext copied to another project or column does not decrypt.

use aes_gcm::{
    Aes256Gcm, KeyInit, Nonce,
    aead::{Aead, AeadCore, OsRng, Payload},
};
use base64::{Engine, engine::general_purpose::STANDARD as B64};
use sha2::{Digest, Sha256};
use uuid::Uuid;

const PREFIX: &str = "enc:v1:";
const NONCE_BYTES: usize = 12;

/// The encryption keys, first one current.
#[derive(Clone)]
pub struct KeyRing {
    keys: Vec<(String, Aes256Gcm)>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("key_ids", &self.keys.iter().map(|(id, _)| id).collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("encrypted with key {0}, which SECRETS_ENCRYPTION_KEY does not hold")]
    UnknownKey(String),
    #[error("the value is encrypted but SECRETS_ENCRYPTION_KEY is not set")]
    NoKeys,
    #[error("the encrypted value is malformed or was not made for this project and mode")]
    Corrupt,
}

/// True when a stored value is encrypted rather than plaintext.
pub fn is_encrypted(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

/// Binds a ciphertext to its row and column.
fn associated_data(project: Uuid, livemode: bool) -> String {
    format!("{project}:{}", if livemode { "live" } else { "test" })
}

impl KeyRing {
    /// Parses comma-separated base64 keys of 32 bytes each.
    pub fn parse(value: &str) -> Result<Self, String> {
        let keys = value
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|encoded| {
                let bytes = B64.decode(encoded).map_err(|_| "each key must be base64".to_owned())?;
                if bytes.len() != 32 {
                    return Err(format!(
                        "each key must be 32 bytes (base64 of 32 random bytes), got {}",
                        bytes.len()
                    ));
                }
                let id =
                    Sha256::digest(&bytes).iter().take(4).map(|b| format!("{b:02x}")).collect::<String>();
                let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| "invalid key".to_owned())?;
                Ok((id, cipher))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err("no key given".into());
        }
        Ok(Self { keys })
    }

    pub fn current_key_id(&self) -> &str {
        &self.keys[0].0
    }

    pub fn encrypt(&self, plaintext: &str, project: Uuid, livemode: bool) -> String {
        let (id, cipher) = &self.keys[0];
        // A fresh random nonce from the OS for every value: GCM must never reuse one.
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let aad = associated_data(project, livemode);
        let sealed = cipher
            .encrypt(&nonce, Payload { msg: plaintext.as_bytes(), aad: aad.as_bytes() })
            .expect("AES-GCM encryption of a short message cannot fail");
        let mut out = nonce.to_vec();
        out.extend(sealed);
        format!("{PREFIX}{id}:{}", B64.encode(out))
    }

    pub fn decrypt(&self, stored: &str, project: Uuid, livemode: bool) -> Result<String, SecretError> {
        let rest = stored.strip_prefix(PREFIX).ok_or(SecretError::Corrupt)?;
        let (id, payload) = rest.split_once(':').ok_or(SecretError::Corrupt)?;
        let (_, cipher) =
            self.keys.iter().find(|(k, _)| k == id).ok_or_else(|| SecretError::UnknownKey(id.to_owned()))?;
        let bytes = B64.decode(payload).map_err(|_| SecretError::Corrupt)?;
        if bytes.len() <= NONCE_BYTES {
            return Err(SecretError::Corrupt);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
        let nonce = Nonce::from(<[u8; NONCE_BYTES]>::try_from(nonce).map_err(|_| SecretError::Corrupt)?);
        let aad = associated_data(project, livemode);
        let plain = cipher
            .decrypt(&nonce, Payload { msg: sealed, aad: aad.as_bytes() })
            .map_err(|_| SecretError::Corrupt)?;
        String::from_utf8(plain).map_err(|_| SecretError::Corrupt)
    }

    /// True when `stored` is plaintext or encrypted under a key other than the current.
    pub fn needs_encrypting(&self, stored: &str) -> bool {
        !stored.starts_with(&format!("{PREFIX}{}:", self.current_key_id()))
    }
}

/// A stored key as usable plaintext: decrypted when encrypted, as-is otherwise.
pub fn reveal(
    keys: Option<&KeyRing>,
    stored: String,
    project: Uuid,
    livemode: bool,
) -> Result<String, SecretError> {
    if !is_encrypted(&stored) {
        return Ok(stored);
    }
    keys.ok_or(SecretError::NoKeys)?.decrypt(&stored, project, livemode)
}

/// Why `encrypt_all` stopped; nothing was changed when it returns an error.
#[derive(Debug, thiserror::Error)]
pub enum EncryptAllError {
    #[error("project {project}: {error}")]
    Secret { project: Uuid, error: SecretError },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Encrypts every plaintext key, and re-encrypts every key under an older key, with the
/// current key, in one transaction. Returns how many projects changed.
pub async fn encrypt_all(db: &sqlx::PgPool, ring: &KeyRing) -> Result<usize, EncryptAllError> {
    let mut tx = db.begin().await?;
    let mut changed = 0;
    for row in crate::db::project_keys_for_update(&mut *tx).await? {
        let reseal = |stored: Option<String>, livemode: bool| -> Result<Option<String>, EncryptAllError> {
            match stored {
                Some(value) if !value.is_empty() && ring.needs_encrypting(&value) => {
                    let plain = reveal(Some(ring), value, row.id, livemode)
                        .map_err(|error| EncryptAllError::Secret { project: row.id, error })?;
                    Ok(Some(ring.encrypt(&plain, row.id, livemode)))
                }
                other => Ok(other),
            }
        };
        let test = reseal(row.test.clone(), false)?;
        let live = reseal(row.live.clone(), true)?;
        if test != row.test || live != row.live {
            crate::db::set_project_keys(&mut *tx, row.id, test.as_deref(), live.as_deref()).await?;
            changed += 1;
        }
    }
    tx.commit().await?;
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    const KEY_B: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

    #[test]
    fn round_trips_a_key_for_its_project_and_mode() {
        let ring = KeyRing::parse(KEY_A).expect("key");
        let project = Uuid::new_v4();
        let stored = ring.encrypt("sk_test_abc", project, false);
        assert!(stored.starts_with("enc:v1:") && !stored.contains("sk_test_abc"));
        assert_eq!(ring.decrypt(&stored, project, false).as_deref(), Ok("sk_test_abc"));
    }

    #[test]
    fn a_ciphertext_moved_to_another_project_or_mode_does_not_decrypt() {
        let ring = KeyRing::parse(KEY_A).expect("key");
        let project = Uuid::new_v4();
        let stored = ring.encrypt("sk_live_abc", project, true);
        assert_eq!(ring.decrypt(&stored, Uuid::new_v4(), true), Err(SecretError::Corrupt));
        assert_eq!(ring.decrypt(&stored, project, false), Err(SecretError::Corrupt));
    }

    #[test]
    fn old_keys_still_decrypt_after_rotation() {
        let project = Uuid::new_v4();
        let stored = KeyRing::parse(KEY_A).expect("key").encrypt("sk_test_abc", project, false);
        let rotated = KeyRing::parse(&format!("{KEY_B},{KEY_A}")).expect("keys");
        assert_eq!(rotated.decrypt(&stored, project, false).as_deref(), Ok("sk_test_abc"));
        assert!(rotated.needs_encrypting(&stored));
        assert!(!rotated.needs_encrypting(&rotated.encrypt("sk_test_abc", project, false)));
    }

    #[test]
    fn a_tampered_ciphertext_does_not_decrypt() {
        let ring = KeyRing::parse(KEY_A).expect("key");
        let project = Uuid::new_v4();
        let mut stored = ring.encrypt("sk_test_abc", project, false);
        let last = stored.pop().expect("non-empty");
        stored.push(if last == 'A' { 'B' } else { 'A' });
        assert!(ring.decrypt(&stored, project, false).is_err());
    }

    #[test]
    fn refuses_keys_of_the_wrong_size() {
        assert!(KeyRing::parse("c2hvcnQ=").is_err());
        assert!(KeyRing::parse("not base64!").is_err());
    }
}
