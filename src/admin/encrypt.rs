//! `customer-portal encrypt-keys`: every stored Stripe key and webhook signing secret
//! sealed with the current encryption key, in one transaction, so a failure leaves every
//! row as it was.

use std::collections::BTreeSet;

use uuid::Uuid;

use crate::{
    db::projects,
    secrets::{EncryptionKeys, SecretError, reveal},
};

/// Why `encrypt_all` stopped; nothing was changed when it returns an error.
#[derive(Debug, thiserror::Error)]
pub enum EncryptAllError {
    #[error("project {project}: {error}")]
    Secret { project: Uuid, error: SecretError },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Encrypts every plaintext key and webhook secret, and re-encrypts every one under an
/// older key, with the current key. Returns how many projects changed.
pub async fn encrypt_all(db: &sqlx::PgPool, keys: &EncryptionKeys) -> Result<usize, EncryptAllError> {
    let mut tx = db.begin().await?;
    let mut changed = BTreeSet::new();
    for row in projects::project_keys_for_update(&mut *tx).await? {
        let reseal = |stored: Option<String>, livemode: bool| -> Result<Option<String>, EncryptAllError> {
            match stored {
                Some(value) if !value.is_empty() && keys.needs_encrypting(&value) => {
                    let plain = reveal(Some(keys), value, row.id, livemode)
                        .map_err(|error| EncryptAllError::Secret { project: row.id, error })?;
                    Ok(Some(keys.encrypt(&plain, row.id, livemode)))
                }
                other => Ok(other),
            }
        };
        let test = reseal(row.test.clone(), false)?;
        let live = reseal(row.live.clone(), true)?;
        if test != row.test || live != row.live {
            projects::set_project_keys(&mut *tx, row.id, test.as_deref(), live.as_deref()).await?;
            changed.insert(row.id);
        }
    }
    changed.extend(super::webhooks::encrypt_webhook_secrets(&mut tx, keys).await?);
    tx.commit().await?;
    Ok(changed.len())
}
