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

use crate::config::{EncryptionKey, parse_encryption_keys};

const PREFIX: &str = "enc:v1:";
const NONCE_BYTES: usize = 12;

/// The encryption keys of `SECRETS_ENCRYPTION_KEY`, first one current.
#[derive(Clone)]
pub struct EncryptionKeys {
    keys: Vec<(String, Aes256Gcm)>,
}

impl std::fmt::Debug for EncryptionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptionKeys")
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

/// The associated data of a webhook signing secret: its own, so that neither an API key
/// nor another project's or mode's secret decrypts in its place.
pub fn webhook_context(project: Uuid, livemode: bool) -> String {
    format!("{}:webhook", associated_data(project, livemode))
}

impl EncryptionKeys {
    /// `None` when no key is configured.
    pub fn new(keys: &[EncryptionKey]) -> Option<Self> {
        let keys: Vec<_> = keys
            .iter()
            .map(|key| {
                let id = Sha256::digest(key.bytes()).iter().take(4).map(|b| format!("{b:02x}")).collect();
                (id, Aes256Gcm::new(key.bytes().into()))
            })
            .collect();
        (!keys.is_empty()).then_some(Self { keys })
    }

    /// Parses `SECRETS_ENCRYPTION_KEY`'s format: comma-separated base64 keys of 32 bytes.
    pub fn parse(value: &str) -> Result<Self, String> {
        Self::new(&parse_encryption_keys(value)?).ok_or_else(|| "no key given".into())
    }

    pub fn current_key_id(&self) -> &str {
        &self.keys[0].0
    }

    pub fn encrypt(&self, plaintext: &str, project: Uuid, livemode: bool) -> String {
        self.encrypt_in(plaintext, &associated_data(project, livemode))
    }

    pub fn decrypt(&self, stored: &str, project: Uuid, livemode: bool) -> Result<String, SecretError> {
        self.decrypt_in(stored, &associated_data(project, livemode))
    }

    /// Encrypts with `context` as associated data (see `webhook_context`).
    pub fn encrypt_in(&self, plaintext: &str, context: &str) -> String {
        let (id, cipher) = &self.keys[0];
        // A fresh random nonce from the OS for every value: GCM must never reuse one.
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = cipher
            .encrypt(&nonce, Payload { msg: plaintext.as_bytes(), aad: context.as_bytes() })
            .expect("AES-GCM encryption of a short message cannot fail");
        let mut out = nonce.to_vec();
        out.extend(sealed);
        format!("{PREFIX}{id}:{}", B64.encode(out))
    }

    pub fn decrypt_in(&self, stored: &str, context: &str) -> Result<String, SecretError> {
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
        let plain = cipher
            .decrypt(&nonce, Payload { msg: sealed, aad: context.as_bytes() })
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
    keys: Option<&EncryptionKeys>,
    stored: String,
    project: Uuid,
    livemode: bool,
) -> Result<String, SecretError> {
    if !is_encrypted(&stored) {
        return Ok(stored);
    }
    keys.ok_or(SecretError::NoKeys)?.decrypt(&stored, project, livemode)
}

/// As `reveal`, for a value encrypted with `context` as associated data.
pub fn reveal_in(
    keys: Option<&EncryptionKeys>,
    stored: String,
    context: &str,
) -> Result<String, SecretError> {
    if !is_encrypted(&stored) {
        return Ok(stored);
    }
    keys.ok_or(SecretError::NoKeys)?.decrypt_in(&stored, context)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    const KEY_B: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

    #[test]
    fn round_trips_a_key_for_its_project_and_mode() {
        let ring = EncryptionKeys::parse(KEY_A).expect("key");
        let project = Uuid::new_v4();
        let stored = ring.encrypt("sk_test_abc", project, false);
        assert!(stored.starts_with("enc:v1:") && !stored.contains("sk_test_abc"));
        assert_eq!(ring.decrypt(&stored, project, false).as_deref(), Ok("sk_test_abc"));
    }

    #[test]
    fn a_ciphertext_moved_to_another_project_or_mode_does_not_decrypt() {
        let ring = EncryptionKeys::parse(KEY_A).expect("key");
        let project = Uuid::new_v4();
        let stored = ring.encrypt("sk_live_abc", project, true);
        assert_eq!(ring.decrypt(&stored, Uuid::new_v4(), true), Err(SecretError::Corrupt));
        assert_eq!(ring.decrypt(&stored, project, false), Err(SecretError::Corrupt));
    }

    #[test]
    fn old_keys_still_decrypt_after_rotation() {
        let project = Uuid::new_v4();
        let stored = EncryptionKeys::parse(KEY_A).expect("key").encrypt("sk_test_abc", project, false);
        let rotated = EncryptionKeys::parse(&format!("{KEY_B},{KEY_A}")).expect("keys");
        assert_eq!(rotated.decrypt(&stored, project, false).as_deref(), Ok("sk_test_abc"));
        assert!(rotated.needs_encrypting(&stored));
        assert!(!rotated.needs_encrypting(&rotated.encrypt("sk_test_abc", project, false)));
    }

    #[test]
    fn a_tampered_ciphertext_does_not_decrypt() {
        let ring = EncryptionKeys::parse(KEY_A).expect("key");
        let project = Uuid::new_v4();
        let mut stored = ring.encrypt("sk_test_abc", project, false);
        let last = stored.pop().expect("non-empty");
        stored.push(if last == 'A' { 'B' } else { 'A' });
        assert!(ring.decrypt(&stored, project, false).is_err());
    }

    #[test]
    fn refuses_keys_of_the_wrong_size() {
        assert!(EncryptionKeys::parse("c2hvcnQ=").is_err());
        assert!(EncryptionKeys::parse("not base64!").is_err());
    }
}
