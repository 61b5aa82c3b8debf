//! Webhook signatures (CONTRACT section 2): `v0=` + hex HMAC-SHA256 of `v0:<timestamp>:<body>`,
//! under our header names or Slack's, checked in constant time against the current and, during
//! a rotation, the previous signing secret.

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::ports::SigningSecrets;

/// How far a signature's timestamp may be from now, either way.
pub const MAX_SKEW_SECONDS: i64 = 300;

const TIMESTAMP_HEADERS: [&str; 2] = ["x-signature-timestamp", "x-slack-request-timestamp"];
const SIGNATURE_HEADERS: [&str; 2] = ["x-signature", "x-slack-signature"];

/// Why a request is not verified. Only logged: the caller gets a bare 401.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no signature timestamp header (X-Signature-Timestamp or X-Slack-Request-Timestamp)")]
    MissingTimestamp,
    #[error("no signature header (X-Signature or X-Slack-Signature)")]
    MissingSignature,
    #[error("the signature timestamp is not a number of seconds")]
    BadTimestamp,
    #[error("the signature timestamp is more than {MAX_SKEW_SECONDS} s from now")]
    OutsideWindow,
    #[error("the signature does not match")]
    Mismatch,
}

/// The signature headers of a request, looked up case-insensitively.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignatureHeaders {
    pub timestamp: Option<String>,
    pub signature: Option<String>,
}

impl SignatureHeaders {
    /// Picks the signature headers out of `(name, value)` pairs, ours before Slack's.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> SignatureHeaders {
        let pairs: Vec<(String, &str)> = pairs
            .into_iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v))
            .collect();
        let find = |names: &[&str]| {
            names.iter().find_map(|name| {
                pairs
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.trim().to_owned())
            })
        };
        SignatureHeaders {
            timestamp: find(&TIMESTAMP_HEADERS),
            signature: find(&SIGNATURE_HEADERS),
        }
    }
}

/// Verifies `body` (the exact bytes received) against the headers.
/// `check_age: false` verifies a signature carried on the work queue, whose age no longer matters.
pub fn verify(
    headers: &SignatureHeaders,
    body: &[u8],
    secrets: &SigningSecrets,
    now: DateTime<Utc>,
    check_age: bool,
) -> Result<(), SignatureError> {
    let timestamp = headers
        .timestamp
        .as_deref()
        .ok_or(SignatureError::MissingTimestamp)?;
    let signature = headers
        .signature
        .as_deref()
        .ok_or(SignatureError::MissingSignature)?;
    let seconds: i64 = timestamp
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    // abs_diff: `now - seconds` overflows for a timestamp near i64::MIN (a panic in debug
    // builds; in release it wraps, and one value per second slipped through the window).
    if check_age && now.timestamp().abs_diff(seconds) > MAX_SKEW_SECONDS.unsigned_abs() {
        return Err(SignatureError::OutsideWindow);
    }
    let expected = signature
        .strip_prefix("v0=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or(SignatureError::Mismatch)?;
    let candidates = std::iter::once(&secrets.current).chain(secrets.previous.as_ref());
    for secret in candidates {
        let mut mac = hmac_for(secret.expose().as_bytes());
        mac.update(signed_payload(timestamp, body).as_slice());
        // verify_slice compares in constant time.
        if mac.verify_slice(&expected).is_ok() {
            return Ok(());
        }
    }
    Err(SignatureError::Mismatch)
}

/// `v0=<hex>` for `body` signed at `timestamp` (for tests, the demo and `make invoke`).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = hmac_for(secret);
    mac.update(signed_payload(&timestamp.to_string(), body).as_slice());
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

fn signed_payload(timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(body.len() + timestamp.len() + 4);
    payload.extend_from_slice(b"v0:");
    payload.extend_from_slice(timestamp.as_bytes());
    payload.push(b':');
    payload.extend_from_slice(body);
    payload
}

fn hmac_for(secret: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length, so this cannot fail.
    match <Hmac<Sha256> as KeyInit>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redacted::Secret;

    fn secrets(current: &str, previous: Option<&str>) -> SigningSecrets {
        SigningSecrets {
            current: Secret::new(current),
            previous: previous.map(Secret::new),
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-11-28T17:06:15Z".parse().unwrap()
    }

    fn headers(timestamp: i64, signature: String) -> SignatureHeaders {
        SignatureHeaders {
            timestamp: Some(timestamp.to_string()),
            signature: Some(signature),
        }
    }

    #[test]
    fn slack_s_published_example_verifies() {
        // https://api.slack.com/authentication/verifying-requests-from-slack (the documented example).
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let slack = SignatureHeaders::from_pairs([
            ("X-Slack-Request-Timestamp", "1531420618"),
            (
                "X-Slack-Signature",
                "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
            ),
        ]);
        let at = DateTime::from_timestamp(1_531_420_618, 0).unwrap();
        assert_eq!(
            verify(
                &slack,
                body,
                &secrets("8f742231b10e8888abcd99yyyzzz85a5", None),
                at,
                true
            ),
            Ok(())
        );
    }

    #[test]
    fn our_headers_either_case_and_both_secrets_during_rotation() {
        let body = br#"{"groupId":"x"}"#;
        let ts = now().timestamp();
        let by_old = sign(b"old", ts, body);
        let pairs = [
            ("x-SIGNATURE-timestamp", ts.to_string()),
            ("X-Signature", by_old.clone()),
        ];
        let parsed = SignatureHeaders::from_pairs(pairs.iter().map(|(n, v)| (*n, v.as_str())));
        assert_eq!(
            verify(&parsed, body, &secrets("new", Some("old")), now(), true),
            Ok(())
        );
        assert_eq!(
            verify(&parsed, body, &secrets("new", None), now(), true),
            Err(SignatureError::Mismatch)
        );
        let by_new = headers(ts, sign(b"new", ts, body));
        assert_eq!(
            verify(&by_new, body, &secrets("new", Some("old")), now(), true),
            Ok(())
        );
    }

    #[test]
    fn the_window_is_300_seconds_either_way_unless_age_is_not_checked() {
        let body = b"{}";
        for (offset, ok) in [
            (0, true),
            (300, true),
            (-300, true),
            (301, false),
            (-301, false),
        ] {
            let ts = now().timestamp() + offset;
            let result = verify(
                &headers(ts, sign(b"s", ts, body)),
                body,
                &secrets("s", None),
                now(),
                true,
            );
            assert_eq!(result.is_ok(), ok, "offset {offset}");
        }
        let old = now().timestamp() - 3600;
        assert_eq!(
            verify(
                &headers(old, sign(b"s", old, body)),
                body,
                &secrets("s", None),
                now(),
                false
            ),
            Ok(())
        );
    }

    #[test]
    fn a_timestamp_at_the_ends_of_i64_is_outside_the_window_not_an_overflow() {
        // Found by `make fuzz` (target `signature`): `now - seconds` overflowed. Each is signed
        // correctly, so only the window can refuse it; the last one is the value that wrapped to
        // i64::MIN in release builds, whose abs() stayed negative and passed the window.
        let body = b"{}";
        let s = secrets("s", None);
        for ts in [
            i64::MIN,
            i64::MIN + 1,
            -9_223_372_028_264_850_689,
            i64::MAX,
            now().timestamp().wrapping_add(i64::MIN),
        ] {
            assert_eq!(
                verify(&headers(ts, sign(b"s", ts, body)), body, &s, now(), true),
                Err(SignatureError::OutsideWindow),
                "timestamp {ts}"
            );
        }
    }

    #[test]
    fn anything_else_is_refused() {
        let body = b"{}";
        let ts = now().timestamp();
        let good = sign(b"s", ts, body);
        let s = secrets("s", None);
        assert_eq!(
            verify(&headers(ts, good.clone()), b"{} ", &s, now(), true),
            Err(SignatureError::Mismatch),
            "one byte more"
        );
        assert_eq!(
            verify(&headers(ts + 1, good.clone()), body, &s, now(), true),
            Err(SignatureError::Mismatch),
            "another timestamp"
        );
        assert_eq!(
            verify(
                &headers(ts, good.replace("v0=", "v1=")),
                body,
                &s,
                now(),
                true
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&headers(ts, "v0=zz".into()), body, &s, now(), true),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&headers(ts, good[..20].into()), body, &s, now(), true),
            Err(SignatureError::Mismatch)
        );
        let no_ts = SignatureHeaders {
            timestamp: None,
            signature: Some(good.clone()),
        };
        assert_eq!(
            verify(&no_ts, body, &s, now(), true),
            Err(SignatureError::MissingTimestamp)
        );
        let no_sig = SignatureHeaders {
            timestamp: Some(ts.to_string()),
            signature: None,
        };
        assert_eq!(
            verify(&no_sig, body, &s, now(), true),
            Err(SignatureError::MissingSignature)
        );
        let bad_ts = SignatureHeaders {
            timestamp: Some("soon".into()),
            signature: Some(good),
        };
        assert_eq!(
            verify(&bad_ts, body, &s, now(), true),
            Err(SignatureError::BadTimestamp)
        );
    }
}
