//! Stripe keys as a person types them: checked for their mode before anything is
//! written, and shown masked.

use super::error::{AdminError, Result};
use crate::stripe::key_fits_mode;

/// A Stripe secret or restricted key of the right mode (the rule the portal applies),
/// whole enough not to be a typo. The message never repeats the key.
pub(super) fn check_key(key: &str, livemode: bool) -> Result<()> {
    let (flag, wanted, other) =
        if livemode { ("--live-key", "live", "test") } else { ("--test-key", "test", "live") };
    // `sk_test_` / `rk_live_`...: the prefix is the first eight characters.
    let whole = key.get(..8).is_some_and(|prefix| is_id_with_prefix(key, prefix));
    if key_fits_mode(key, livemode) && whole {
        return Ok(());
    }
    let hint = if key_fits_mode(key, livemode) {
        "it does not look like a Stripe key".into()
    } else if key_fits_mode(key, !livemode) {
        format!("that is a {other}-mode key")
    } else if key.starts_with("pk_") {
        "that is a publishable key; the service needs a secret (sk_) or restricted (rk_) key".into()
    } else {
        "it does not look like a Stripe key".into()
    };
    Err(AdminError::Invalid(format!("{flag}: expected sk_{wanted}_… or rk_{wanted}_…; {hint}")))
}

/// `prefix` followed by at least 8 letters and digits, as Stripe's IDs and keys are.
pub(super) fn is_id_with_prefix(value: &str, prefix: &str) -> bool {
    value
        .strip_prefix(prefix)
        .is_some_and(|rest| rest.len() >= 8 && rest.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// `sk_test_…wxyz`: enough to tell keys apart, not enough to use one.
pub(super) fn mask(key: &str) -> String {
    let prefix_len = key.match_indices('_').nth(1).map_or(0, |(i, _)| i + 1);
    let tail_start = key.len().saturating_sub(4).max(prefix_len);
    format!("{}…{}", &key[..prefix_len], &key[tail_start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_the_prefix_and_the_last_four_characters() {
        assert_eq!(mask("sk_test_51TESTKEYabcdefghijklmnop"), "sk_test_…mnop");
        assert_eq!(mask("rk_live_12345678"), "rk_live_…5678");
        assert_eq!(mask("short"), "…hort");
    }

    #[test]
    fn keys_are_checked_for_their_mode() {
        assert!(check_key("sk_test_51TESTKEYabcdefgh", false).is_ok());
        assert!(check_key("rk_live_51LIVEKEYabcdefgh", true).is_ok());
        let wrong = check_key("sk_live_51LIVEKEYabcdefgh", false).unwrap_err().to_string();
        assert_eq!(wrong, "--test-key: expected sk_test_… or rk_test_…; that is a live-mode key");
        let publishable = check_key("pk_test_51TESTKEYabcdefgh", false).unwrap_err().to_string();
        assert!(publishable.contains("publishable"));
        assert!(!publishable.contains("51TESTKEY"), "the key is never repeated");
    }
}
