//! The signed report links (CONTRACT section 7): `?expires=<unix seconds>&sig=v0=<hex>`, hex =
//! HMAC-SHA256(signing secret, `"v0:" + expires + ":GET /drills/{name}/report"`). One signature
//! opens the HTML report and the CSV. Pure.

use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// A link is refused when it expires more than this far ahead.
pub const MAX_LINK_DAYS: i64 = 31;
/// How long the link in a drill's final outcome (`reportUrl`) stays valid.
pub const REPORT_URL_DAYS: i64 = 30;

/// Why a report link is refused (401). Only logged: the caller gets a bare 401.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("the link has no expires or no sig parameter")]
    Missing,
    #[error("the link's expires is not a number of seconds")]
    BadExpiry,
    #[error("the link expired")]
    Expired,
    #[error("the link expires more than {MAX_LINK_DAYS} days from now")]
    TooFarAhead,
    #[error("the link's signature does not match")]
    Mismatch,
}

/// The text a report link signs.
fn signed_text(name: &str, expires: i64) -> String {
    format!("v0:{expires}:GET /drills/{name}/report")
}

fn mac(secret: &[u8]) -> Hmac<Sha256> {
    match <Hmac<Sha256> as KeyInit>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    }
}

/// `v0=<hex>` for the report of drill `name`, valid until `expires` (unix seconds).
pub fn sign(secret: &[u8], name: &str, expires: i64) -> String {
    let mut mac = mac(secret);
    mac.update(signed_text(name, expires).as_bytes());
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// The query of a link valid for `days` from `now`: `expires=...&sig=v0%3D...`.
pub fn query(secret: &[u8], name: &str, now: DateTime<Utc>, days: i64) -> String {
    let expires = (now + Duration::days(days)).timestamp();
    let sig = sign(secret, name, expires);
    format!("expires={expires}&sig={}", sig.replace('=', "%3D"))
}

/// The report's URL under `base` (`PUBLIC_BASE_URL`, with or without a trailing slash).
pub fn report_url(base: &str, secret: &[u8], name: &str, now: DateTime<Utc>) -> String {
    format!(
        "{}/drills/{name}/report?{}",
        base.trim_end_matches('/'),
        query(secret, name, now, REPORT_URL_DAYS)
    )
}

/// Checks a link's `expires` and `sig` (as decoded from the query) against each secret (the
/// current and, during a rotation, the previous one), in constant time.
pub fn verify<'a>(
    secrets: impl IntoIterator<Item = &'a [u8]>,
    name: &str,
    expires: Option<&str>,
    sig: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), LinkError> {
    let (Some(expires), Some(sig)) = (expires, sig) else {
        return Err(LinkError::Missing);
    };
    let seconds: i64 = expires.parse().map_err(|_| LinkError::BadExpiry)?;
    let now_seconds = now.timestamp();
    if seconds <= now_seconds {
        return Err(LinkError::Expired);
    }
    if seconds.saturating_sub(now_seconds) > MAX_LINK_DAYS * 86_400 {
        return Err(LinkError::TooFarAhead);
    }
    let expected = sig
        .strip_prefix("v0=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or(LinkError::Mismatch)?;
    for secret in secrets {
        let mut mac = mac(secret);
        mac.update(signed_text(name, seconds).as_bytes());
        if mac.verify_slice(&expected).is_ok() {
            return Ok(());
        }
    }
    Err(LinkError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-12-02T08:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_signed_link_verifies_until_it_expires() {
        let expires = now().timestamp() + 3600;
        let sig = sign(b"s3cret", "orders-monthly", expires);
        let e = expires.to_string();
        let ok = verify(
            [b"s3cret".as_slice()],
            "orders-monthly",
            Some(&e),
            Some(&sig),
            now(),
        );
        assert_eq!(ok, Ok(()));
        let later = now() + Duration::seconds(3600);
        assert_eq!(
            verify(
                [b"s3cret".as_slice()],
                "orders-monthly",
                Some(&e),
                Some(&sig),
                later
            ),
            Err(LinkError::Expired)
        );
    }

    #[test]
    fn the_previous_secret_verifies_during_a_rotation() {
        let expires = now().timestamp() + 60;
        let sig = sign(b"old", "d", expires);
        let e = expires.to_string();
        let secrets = [b"new".as_slice(), b"old".as_slice()];
        assert_eq!(verify(secrets, "d", Some(&e), Some(&sig), now()), Ok(()));
    }

    #[test]
    fn tampered_far_ahead_or_missing_links_are_refused() {
        let expires = now().timestamp() + 3600;
        let sig = sign(b"s3cret", "orders-monthly", expires);
        let e = expires.to_string();
        let key = [b"s3cret".as_slice()];
        // Another drill's name, another expiry, another secret, a changed signature.
        assert_eq!(
            verify(key, "orders-weekly", Some(&e), Some(&sig), now()),
            Err(LinkError::Mismatch)
        );
        let e2 = (expires + 1).to_string();
        assert_eq!(
            verify(key, "orders-monthly", Some(&e2), Some(&sig), now()),
            Err(LinkError::Mismatch)
        );
        assert_eq!(
            verify(
                [b"other".as_slice()],
                "orders-monthly",
                Some(&e),
                Some(&sig),
                now()
            ),
            Err(LinkError::Mismatch)
        );
        let last = if sig.ends_with('0') { '1' } else { '0' };
        let flipped = format!("{}{last}", &sig[..sig.len() - 1]);
        assert_eq!(
            verify(key, "orders-monthly", Some(&e), Some(&flipped), now()),
            Err(LinkError::Mismatch)
        );
        assert_eq!(
            verify(key, "orders-monthly", Some(&e), Some("zz"), now()),
            Err(LinkError::Mismatch)
        );
        let far = now().timestamp() + 31 * 86_400 + 1;
        let far_sig = sign(b"s3cret", "orders-monthly", far);
        assert_eq!(
            verify(
                key,
                "orders-monthly",
                Some(&far.to_string()),
                Some(&far_sig),
                now()
            ),
            Err(LinkError::TooFarAhead)
        );
        assert_eq!(
            verify(key, "orders-monthly", None, Some(&sig), now()),
            Err(LinkError::Missing)
        );
        assert_eq!(
            verify(key, "orders-monthly", Some("soon"), Some(&sig), now()),
            Err(LinkError::BadExpiry)
        );
    }

    #[test]
    fn the_report_url_carries_a_30_day_link() {
        let url = report_url("https://x.example/prod/", b"k", "orders-monthly", now());
        let expires = now().timestamp() + 30 * 86_400;
        assert_eq!(
            url,
            format!(
                "https://x.example/prod/drills/orders-monthly/report?expires={expires}&sig={}",
                sign(b"k", "orders-monthly", expires).replace('=', "%3D")
            )
        );
    }
}
