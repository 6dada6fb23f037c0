//! The `Stripe-Signature` check, as Stripe's SDKs do it: pure, with the clock passed in.
//!
//! Header `t=<unix>,v1=<hex>[,v1=<hex>…]`; the signed payload is `"{t}.{raw body}"`,
//! HMAC-SHA256 with the endpoint's `whsec_…` secret (the whole string, as Stripe uses
//! it); any one `v1` that matches passes, other schemes (`v0`) are ignored, and `t` may
//! be at most 300 s away from now in either direction.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// How far `t` may be from now, either way.
pub const TOLERANCE: Duration = Duration::from_secs(300);

/// Headers longer than this are refused unread: real ones carry one or two signatures.
const MAX_HEADER_BYTES: usize = 4 * 1024;

/// Why a delivery's signature was refused. Never carries the header or the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no Stripe-Signature header")]
    Missing,
    #[error("Stripe-Signature is not `t=<unix>,v1=<hex>`")]
    Malformed,
    #[error("timestamp outside the tolerance")]
    OutOfTolerance,
    #[error("no v1 signature matches")]
    NoMatch,
}

/// A parsed header: the timestamp and every `v1` signature, decoded.
#[derive(Debug, PartialEq, Eq)]
pub struct SignatureHeader {
    pub timestamp: i64,
    pub signatures: Vec<[u8; 32]>,
}

/// Parses `t=…,v1=…`. Unknown schemes and stray items are skipped, as the SDKs skip
/// them; a missing `t`, a non-numeric `t`, or no well-formed `v1` is malformed.
pub fn parse(header: &str) -> Result<SignatureHeader, SignatureError> {
    if header.len() > MAX_HEADER_BYTES {
        return Err(SignatureError::Malformed);
    }
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for item in header.split(',') {
        let Some((key, value)) = item.trim().split_once('=') else { continue };
        match key {
            "t" => timestamp = Some(value.parse::<i64>().map_err(|_| SignatureError::Malformed)?),
            "v1" => {
                let mut bytes = [0u8; 32];
                if hex::decode_to_slice(value, &mut bytes).is_ok() {
                    signatures.push(bytes);
                }
            }
            _ => {}
        }
    }
    match timestamp {
        Some(timestamp) if !signatures.is_empty() => Ok(SignatureHeader { timestamp, signatures }),
        _ => Err(SignatureError::Malformed),
    }
}

/// `HMAC-SHA256(secret, "{t}.{body}")`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// Checks `header` against `body` with any of `secrets` (the current one and, during a
/// roll, the previous one), at `now`.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &[&str],
    now: SystemTime,
) -> Result<(), SignatureError> {
    let parsed = parse(header.ok_or(SignatureError::Missing)?)?;
    let now = match now.duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    };
    if parsed.timestamp.abs_diff(now) > TOLERANCE.as_secs() {
        return Err(SignatureError::OutOfTolerance);
    }
    let matched = secrets.iter().any(|secret| {
        let expected = sign(secret, parsed.timestamp, body);
        // Every candidate is compared in full, so timing says nothing about which failed.
        parsed
            .signatures
            .iter()
            .fold(false, |found, candidate| found | bool::from(candidate.ct_eq(&expected)))
    });
    if matched { Ok(()) } else { Err(SignatureError::NoMatch) }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const SECRET: &str = "whsec_test_secret_0123456789";

    /// The header Stripe would send for `body` at `timestamp`.
    fn header_for(secret: &str, timestamp: i64, body: &[u8]) -> String {
        format!("t={timestamp},v1={}", hex::encode(sign(secret, timestamp, body)))
    }
    const BODY: &[u8] = br#"{"id":"evt_1","object":"event"}"#;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn a_header_stripe_would_send_verifies() {
        let header = header_for(SECRET, 1_700_000_000, BODY);
        assert_eq!(verify(Some(&header), BODY, &[SECRET], at(1_700_000_000)), Ok(()));
    }

    #[test]
    fn any_one_matching_v1_passes_and_v0_is_ignored() {
        let good = hex::encode(sign(SECRET, 1_700_000_000, BODY));
        let header = format!("t=1700000000,v0={good},v1={},v1={good}", "ab".repeat(32));
        assert_eq!(verify(Some(&header), BODY, &[SECRET], at(1_700_000_000)), Ok(()));
        let v0_only = format!("t=1700000000,v0={good}");
        assert_eq!(
            verify(Some(&v0_only), BODY, &[SECRET], at(1_700_000_000)),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn the_tolerance_is_300_seconds_either_way() {
        let header = header_for(SECRET, 1_700_000_000, BODY);
        for now in [1_700_000_300, 1_699_999_700] {
            assert_eq!(verify(Some(&header), BODY, &[SECRET], at(now)), Ok(()));
        }
        for now in [1_700_000_301, 1_699_999_699] {
            assert_eq!(verify(Some(&header), BODY, &[SECRET], at(now)), Err(SignatureError::OutOfTolerance));
        }
    }

    #[test]
    fn a_changed_body_or_another_secret_does_not_match() {
        let header = header_for(SECRET, 1_700_000_000, BODY);
        let now = at(1_700_000_000);
        assert_eq!(verify(Some(&header), b"{}", &[SECRET], now), Err(SignatureError::NoMatch));
        assert_eq!(verify(Some(&header), BODY, &["whsec_other"], now), Err(SignatureError::NoMatch));
        assert_eq!(verify(Some(&header), BODY, &["whsec_other", SECRET], now), Ok(()));
    }

    #[test]
    fn garbled_headers_are_malformed() {
        for header in ["", "t=,v1=", "v1=abcd", "t=abc,v1=00", "t=1700000000", "t=1700000000,v1=zz"] {
            assert_eq!(parse(header), Err(SignatureError::Malformed), "{header:?}");
        }
        assert_eq!(verify(None, BODY, &[SECRET], at(0)), Err(SignatureError::Missing));
    }

    proptest! {
        #[test]
        fn the_parser_never_panics_on_any_header(header in ".{0,300}") {
            let _ = parse(&header);
            let _ = verify(Some(&header), BODY, &[SECRET], at(1_700_000_000));
        }

        #[test]
        fn the_parser_never_panics_on_header_like_input(
            items in proptest::collection::vec(("(t|v1|v0|x|)", "[0-9a-f=,-]{0,70}"), 0..6),
        ) {
            let header: Vec<String> = items.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let header = header.join(",");
            if let Ok(parsed) = parse(&header) {
                prop_assert!(!parsed.signatures.is_empty());
            }
        }

        #[test]
        fn every_signed_timestamp_and_body_round_trips(t in 0i64..4_000_000_000, body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let header = header_for(SECRET, t, &body);
            prop_assert_eq!(verify(Some(&header), &body, &[SECRET], at(t as u64)), Ok(()));
        }
    }
}
